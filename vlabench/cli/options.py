"""Options shared by `run`, `matrix` and `interleave`, and what turns them into settings."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from vlabench.cli.app import Context, fail, load_registry

if TYPE_CHECKING:
    from vlabench.execute.settings import ExecutionSettings
    from vlabench.registry import Registry
    from vlabench.runtime.inference import InferenceConfig


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
)
THRESHOLD = typer.Option(
    "--chunk-threshold",
    help="async: request the next chunk when the queue is at most this fraction of a chunk.",
    rich_help_panel=LATENCY_PANEL,
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


EPISODES = typer.Option("--episodes", "-n", help="Episodes per task (default: the suite's).")
MAX_STEPS = typer.Option(help="Override the suite's max steps (a different protocol).")
BATCH = typer.Option("--batch-size", "-b", help="Episodes run at once (one policy call).")
EXECUTOR = typer.Option(
    "--executor",
    help="inline (this process) | processes (local workers, default) | ray (a Ray cluster).",
)
WORKERS = typer.Option(
    "--workers", "-j", help="Parallel workers (default: the CPU count; ray: the cluster's CPUs)."
)
ADDRESS = typer.Option(
    "--address", metavar="ADDR", help="Ray cluster: auto | ray://host:10001 (default: local)."
)
RETRIES = typer.Option(
    "--retries", help="Times a job whose worker crashed is retried before it is failed."
)
RECORD_VIDEO = typer.Option(
    "--record-video",
    metavar="N",
    help="Save the first N episodes of each task as mp4; the path is stored on the episode.",
)
VIDEO_DIR = typer.Option(
    "--video-dir",
    metavar="PATH",
    help="Where videos go (default: videos/ next to a SQLite store, else ./vlabench-videos).",
)

TORCH_THREADS = typer.Option(
    "--torch-threads",
    metavar="N",
    help="Torch intra-op threads of each policy (default: torch's); speed only, not part of "
    "the run config.",
)


def execution_settings(
    c: Context,
    *,
    record_video: int = 0,
    video_dir: Path | None = None,
    armed: bool = False,
    torch_threads: int | None = None,
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
