"""Options shared by `run`, `matrix` and `interleave`, and what turns them into settings;
:func:`in_range`, the range check of every numeric flag."""

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from vlabench.cli.app import Context, fail, load_registry

if TYPE_CHECKING:
    from vlabench.execute.settings import ExecutionSettings
    from vlabench.registry import Registry
    from vlabench.runtime.inference import InferenceConfig


def in_range(
    flag: str,
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> Callable[[Any], Any]:
    """A typer Option ``callback`` that refuses a value out of range (NaN and infinities too)
    while the command line is parsed, before the command does anything:
    ``error: --episodes must be >= 1, got 0`` (exit code 2, one line). ``None`` (not given)
    passes."""
    if low is not None and high is not None:
        wanted = f"in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
    elif low is not None:
        wanted = f"{'>' if open_low else '>='} {low}"
    else:
        wanted = f"{'<' if open_high else '<='} {high}"

    def check(value: Any) -> Any:
        if value is None:
            return value
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value > low if open_low else value >= low
        if ok and high is not None:
            ok = value < high if open_high else value <= high
        if not ok:
            finite = "" if math.isfinite(value) else "a finite number "
            raise fail(f"{flag} must be {finite}{wanted}, got {value}")
        return value

    return check


def _check_latency(value: str | None) -> str | None:
    """``--latency-ms``: its numbers are checked up front too (negative, LOW > HIGH, ...)."""
    if value is None:
        return value
    from vlabench.runtime.inference import LatencyModel

    try:
        LatencyModel.parse(value)
    except ValueError as exc:
        raise fail(f"--latency-ms: {exc}") from None
    return value


LATENCY_PANEL = "Inference mode (latency)"
INFERENCE = typer.Option(
    "--inference",
    help="sync: the world waits for the policy (simulators); sync-realtime: it does not, the "
    "robot holds while a chunk is computed; async: the next chunk is computed while the robot "
    "executes the current one (LeRobot's async inference).",
    rich_help_panel=LATENCY_PANEL,
)
LATENCY = typer.Option(
    "--latency-ms",
    metavar="MODEL",
    help="Latency of each policy call in the realtime modes: measured (this machine, default), "
    "a number of ms (120), normal:MEAN,STD, uniform:LOW,HIGH or lognormal:MEDIAN,SIGMA.",
    rich_help_panel=LATENCY_PANEL,
    callback=_check_latency,
)
THRESHOLD = typer.Option(
    "--chunk-threshold",
    help="async: request the next chunk when the queue is at most this fraction of a chunk "
    "(0 to 1).",
    rich_help_panel=LATENCY_PANEL,
    callback=in_range("--chunk-threshold", 0, 1),
)
AGGREGATE = typer.Option(
    "--aggregate",
    help="async: merge overlapping actions: latest | average | weighted (0.3 old + 0.7 new) "
    "| conservative (0.7 old + 0.3 new).",
    rich_help_panel=LATENCY_PANEL,
)
HOLD = typer.Option(
    "--hold",
    help="While the robot has no action: repeat its last command, or send the env's noop.",
    rich_help_panel=LATENCY_PANEL,
)


def inference_config(
    mode: str, latency: str, threshold: float, aggregate: str, hold: str
) -> "InferenceConfig":
    from vlabench.runtime.inference import InferenceConfig

    try:
        return InferenceConfig(mode, latency, threshold, aggregate, hold)
    except ValueError as exc:
        raise fail(str(exc)) from None


EPISODES = typer.Option(
    "--episodes",
    "-n",
    help="Episodes per task, >= 1 (default: the suite's).",
    callback=in_range("--episodes", 1),
)
MAX_STEPS = typer.Option(
    "--max-steps",
    help="Override the suite's max steps, >= 1 (a different protocol).",
    callback=in_range("--max-steps", 1),
)
TASKS = typer.Option("--task", help="Only these tasks (repeatable).")
ENV_OVERRIDE = typer.Option(
    "--env-option", "-E", metavar="KEY=VALUE", help="Env option over the suite's."
)
BATCH = typer.Option(
    "--batch-size",
    "-b",
    help="Episodes run at once (one policy call), >= 1.",
    callback=in_range("--batch-size", 1),
)
EXECUTOR = typer.Option(
    "--executor",
    help="inline (this process) | processes (local workers, default) | ray (a Ray cluster).",
)
WORKERS = typer.Option(
    "--workers",
    "-j",
    help="Parallel workers, >= 1 (default: the CPU count; ray: the cluster's CPUs).",
    callback=in_range("--workers", 1),
)
ADDRESS = typer.Option(
    "--address", metavar="ADDR", help="Ray cluster: auto | ray://host:10001 (default: local)."
)
RETRIES = typer.Option(
    "--retries",
    help="Times a job whose worker crashed is retried before it is failed (>= 0).",
    callback=in_range("--retries", 0),
)
RECORD_VIDEO = typer.Option(
    "--record-video",
    metavar="N",
    help="Save the first N episodes of each task as mp4; the path is stored on the episode.",
    callback=in_range("--record-video", 0),
)
VIDEO_DIR = typer.Option(
    "--video-dir",
    metavar="PATH",
    help="Where videos go (default: videos/ next to a SQLite store, else ./vlabench-videos).",
)

TORCH_THREADS = typer.Option(
    "--torch-threads",
    metavar="N",
    help="Torch intra-op threads of each policy, >= 1 (default: torch's); speed only, not "
    "part of the run config.",
    callback=in_range("--torch-threads", 1),
)


CALL_TIMEOUT = typer.Option(
    "--call-timeout",
    metavar="S",
    help="Longest policy call, env step or env reset, in seconds (0: no limit), over the "
    "presets' and suites' call_timeout_s (default: 300 s a policy call or env reset, 120 s an "
    "env step). A call past it fails its episodes, timed out; its worker is replaced.",
    callback=in_range("--call-timeout", 0),
)


def execution_settings(
    c: Context,
    *,
    record_video: int = 0,
    video_dir: Path | None = None,
    armed: bool = False,
    torch_threads: int | None = None,
    call_timeout_s: float | None = None,
) -> "ExecutionSettings":
    """The execution settings of this command (videos, arming, threads): given to the
    executor, never stored in a run's config."""
    from vlabench.execute.settings import ExecutionSettings
    from vlabench.runtime import video
    from vlabench.store import default_url

    if record_video > 0 and video_dir is None:
        video_dir = video.default_directory(c.db or default_url())
    try:
        return ExecutionSettings.create(
            record_video=record_video,
            video_dir=video_dir,
            armed=armed,
            torch_threads=torch_threads,
            call_timeout_s=call_timeout_s,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None


def parse_env_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs, values parsed as YAML (``3`` int, ``true`` bool, ``[1, 2]`` list)."""
    import yaml

    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"--env-option expects KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise fail(f"--env-option {key}: not a YAML value: {exc}") from None
    return options


def choose_suite(
    c: Context, suite: str | None, env: str | None, fake: bool
) -> tuple[str, "Registry"]:
    """The suite to run and the registry to plan it with; the loaded registry is not changed.

    ``--env ENV`` runs the suite ``ENV_fake`` (with ``--fake``) or ``ENV`` when one is of that
    env, else a bare suite of the env, in a copy of the registry. ``-E`` options are not
    merged here: the plan takes them as overrides (its errors name the flag).
    """
    reg = load_registry(c)
    if env is None:
        assert suite is not None
        return suite, reg
    candidates = [f"{env}_fake", env] if fake else [env]
    name = next((n for n in candidates if n in reg.suites and reg.suites[n].env == env), env)
    if name in reg.suites and reg.suites[name].env == env:
        return name, reg
    from vlabench.registry import SuiteConfig

    return name, reg.with_suite(name, SuiteConfig(env=env))
