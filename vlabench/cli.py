"""The `vlabench` command line: parses, calls the core modules, prints.

Heavy modules (numpy, SQLAlchemy, simulators) are imported inside the commands so that
``vlabench --help`` stays fast.
"""

import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from vlabench.inference import InferenceConfig
    from vlabench.plugins import Catalog
    from vlabench.registry import Registry

app = typer.Typer(
    name="vlabench",
    help=(
        "Evaluate robot policies on simulated and real suites; every episode is stored.\n\n"
        "Example: vlabench run --policy noop --suite pusht --episodes 2 && "
        "vlabench leaderboard"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class Context:
    """Global options, shared by every command."""

    db: str | None = None
    registry_files: list[Path] = field(default_factory=list)
    allow: frozenset[str] | None = None
    block: frozenset[str] = frozenset()
    quiet: bool = False
    suite_patch: Any = None
    """Set by ``run --env/-E/--fake``: ``patch(registry)`` edits suites after loading."""

    def catalog(self) -> "Catalog":
        from vlabench.plugins import catalog

        return catalog(self.allow, self.block)

    def registry(self) -> "Registry":
        from vlabench.registry import load_registry

        reg = load_registry(list(self.registry_files))
        if self.suite_patch is not None:
            self.suite_patch(reg)
        return reg

    def store(self) -> Any:
        from vlabench.store import open_store

        return open_store(self.db)


def _ctx(ctx: typer.Context) -> Context:
    return ctx.ensure_object(Context)


def _fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` (unwrapped, so file:line references stay whole) and exit."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


@app.callback()
def main_options(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Store URL (SQLAlchemy). Default: $VLABENCH_DB or sqlite:///benchmarks.db",
        ),
    ] = None,
    registry: Annotated[
        list[Path] | None,
        typer.Option(
            "--registry",
            metavar="FILE",
            help="Extra registry YAML merged over registry.yaml (repeatable).",
        ),
    ] = None,
    plugins: Annotated[
        str | None,
        typer.Option(
            metavar="NAMES",
            help="Only load these plugins (comma-separated). Env: VLABENCH_PLUGINS.",
        ),
    ] = None,
    disable_plugin: Annotated[
        list[str] | None,
        typer.Option(
            "--disable-plugin",
            "-p",
            metavar="NAME",
            help="Do not load this plugin (repeatable; 'no:NAME' works too). "
            "Env: VLABENCH_DISABLE_PLUGINS.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Global options (before the command): store, registry files, plugin selection."""
    blocked = {p.removeprefix("no:") for p in disable_plugin or []}
    ctx.obj = Context(
        db=db,
        registry_files=list(registry or []),
        allow=frozenset(p.strip() for p in plugins.split(",") if p.strip()) if plugins else None,
        block=frozenset(blocked),
        quiet=quiet,
    )


# -- plugins and listings ------------------------------------------------------------------
@app.command("plugins")
def plugins_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List installed plugins: version, status (loaded / failed / blocked), what they provide.

    A policy or env whose optional stack is missing is shown as unavailable, with the
    command that installs it. Example: vlabench plugins
    """
    import json

    from vlabench.plugins import missing_requirements

    cat = _ctx(ctx).catalog()
    report = []
    for info in cat.plugins:
        entry = {
            "name": info.name,
            "version": info.version,
            "status": info.status,
            "error": info.error,
            "provides": [],
            "unavailable": [],
        }
        for kind, specs in (
            ("policy", cat.policies),
            ("env", cat.envs),
            ("adapter", cat.adapters),
            ("exporter", cat.exporters),
            ("assets", cat.assets),
        ):
            for name, spec in specs.items():
                if cat.plugin_of(kind, name) != info.name:
                    continue
                entry["provides"].append(f"{kind}:{name}")
                missing = missing_requirements(getattr(spec, "requires", ()))
                if missing:
                    entry["unavailable"].append(
                        {
                            "name": name,
                            "missing": missing,
                            "install": getattr(spec, "install_hint", ""),
                        }
                    )
        report.append(entry)
    if as_json:
        print(json.dumps({"plugins": report, "problems": cat.problems}, indent=2))
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title="vlabench plugins")
    for col in ("plugin", "version", "status", "provides", "details"):
        table.add_column(col)
    for entry in report:
        notes = [
            f"{u['name']} unavailable (missing {', '.join(u['missing'])}): {u['install']}"
            for u in entry["unavailable"]
        ]
        details = entry["error"] or "; ".join(notes)
        table.add_row(
            entry["name"],
            entry["version"] or "?",
            entry["status"],
            " ".join(entry["provides"]),
            Text(details),
        )
    console = _console()
    console.print(table)
    for problem in cat.problems:
        console.print(f"warning: {problem}", markup=False)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    what: Annotated[str, typer.Argument(help="policies | envs | suites | matrices")],
) -> None:
    """List policies (presets and types), envs, suites or matrices.

    Example: vlabench list suites
    """
    from rich.table import Table

    c = _ctx(ctx)
    cat, reg = c.catalog(), _load_registry(c)
    table = Table()
    if what == "policies":
        for col in ("policy", "type", "checkpoint", "plugin", "description"):
            table.add_column(col)
        for name, preset in sorted(reg.policies.items()):
            plugin = cat.plugin_of("policy", preset.type)
            table.add_row(name, preset.type, preset.checkpoint or "", plugin, preset.description)
        for name, spec in sorted(cat.policies.items()):
            if name not in reg.policies:
                table.add_row(name, name, "", cat.plugin_of("policy", name), spec.description)
    elif what == "envs":
        for col in ("env", "plugin", "max steps", "success", "description"):
            table.add_column(col)
        for name, spec in sorted(cat.envs.items()):
            table.add_row(
                name,
                cat.plugin_of("env", name),
                str(spec.max_episode_steps),
                spec.success,
                spec.description,
            )
    elif what == "suites":
        for col in ("suite", "env", "tasks", "episodes/task", "max steps", "protocol"):
            table.add_column(col)
        for name, s in sorted(reg.suites.items()):
            tasks = ", ".join(s.tasks) if s.tasks else "all"
            table.add_row(
                name, s.env, tasks, str(s.episodes), str(s.max_steps or "env default"), s.protocol
            )
    elif what == "matrices":
        for col in ("matrix", "policies", "suites"):
            table.add_column(col)
        for name, m in sorted(reg.matrices.items()):
            table.add_row(name, ", ".join(m.policies), ", ".join(m.suites))
    else:
        raise _fail(f"cannot list {what!r}: choose policies, envs, suites or matrices")
    _console().print(table)


def _load_registry(c: Context) -> "Registry":
    from vlabench.registry import RegistryError

    try:
        return c.registry()
    except RegistryError as exc:
        raise _fail(str(exc)) from None


# -- check -----------------------------------------------------------------------------
@app.command("check")
def check_cmd(
    ctx: typer.Context,
    policy: Annotated[str, typer.Argument(help="Policy preset or type.")],
    target: Annotated[str, typer.Argument(help="Suite (uses its env options) or env name.")],
) -> None:
    """Check whether a policy can run on a suite or env, naming every mismatch.

    Exit code 0 when compatible, 1 when not. Example: vlabench check noop pusht
    """
    from vlabench.config import resolve_policy, resolve_suite
    from vlabench.matrix import check_pair
    from vlabench.registry import RegistryError, SuiteConfig

    c = _ctx(ctx)
    cat, reg = c.catalog(), _load_registry(c)
    try:
        choice = resolve_policy(policy, reg, cat)
        if target not in reg.suites and target in cat.envs:
            reg.suites[target] = SuiteConfig(env=target)
        config = resolve_suite(target, choice, reg, cat)[0]
        result = check_pair(config, cat)
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:  # a plugin's describe/interface refused (e.g. an unarmed robot)
        raise _fail(f"cannot check the pair: {type(exc).__name__}: {exc}") from None
    console = _console()
    if result.adapters:
        console.print(f"adapters: {' -> '.join(result.adapters)}")
    if result.ok:
        console.print(f"[green]compatible[/]: {policy} on {target}")
        return
    console.print(f"[red]incompatible[/]: {policy} on {target}")
    for mismatch in result.mismatches:
        console.print(f"  - {mismatch}")
    raise typer.Exit(1)


# -- run and matrix --------------------------------------------------------------------
class _RichProgress:
    """One live view of the whole matrix: jobs done / running / failed, episodes, ETA.

    On a terminal it is one live line. Elsewhere (CI logs) it stays quiet: a line per failed
    or retried job, a summary at most every ``every_s`` seconds, and a final one.
    """

    def __init__(self, quiet: bool, every_s: float = 30.0) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.console = _console()
        self.live = not quiet and self.console.is_terminal
        self.plain = not quiet and not self.console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]matrix[/]"),
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TextColumn("episodes · {task.fields[jobs]} · {task.fields[successes]} ok · ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.live,
        )
        self.task: Any = None
        self.jobs = self.done = self.running = self.failed = 0
        self.episodes = self.total = self.successes = 0
        self.every_s = every_s
        self.started = self.last_line = 0.0

    def __enter__(self) -> "_RichProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)
        if self.plain and self.task is not None:
            print(self.summary(), flush=True)

    def summary(self) -> str:
        import time

        line = (
            f"matrix: {self.done}/{self.jobs} jobs done, {self.running} running, "
            f"{self.failed} failed; {self.episodes}/{self.total} episodes, "
            f"{self.successes} successes"
        )
        elapsed = time.monotonic() - self.started
        if 0 < self.episodes < self.total:
            eta = elapsed / self.episodes * (self.total - self.episodes)
            line += f"; ETA {eta:.0f} s"
        return line

    def _jobs_field(self) -> str:
        failed = f", [red]{self.failed} failed[/]" if self.failed else ""
        return f"jobs {self.done}/{self.jobs}, {self.running} running{failed}"

    def _refresh(self) -> None:
        import time

        if self.task is not None:
            self.progress.update(
                self.task,
                completed=self.episodes,
                jobs=self._jobs_field(),
                successes=self.successes,
            )
        if self.plain and time.monotonic() - self.last_line >= self.every_s:
            self.last_line = time.monotonic()
            print(self.summary(), flush=True)

    def matrix_started(self, jobs: int, episodes: int) -> None:
        import time

        self.jobs, self.total = jobs, episodes
        self.started = self.last_line = time.monotonic()
        if jobs:
            self.task = self.progress.add_task(
                "matrix", total=episodes, jobs=self._jobs_field(), successes=0
            )

    def job_started(self, label: str, total: int, done: int) -> None:
        self.running += 1
        self._refresh()

    def episode_finished(self, record: Any) -> None:
        self.episodes += 1
        self.successes += bool(record.success)
        self._refresh()

    def job_retried(self, label: str, error: str) -> None:
        self._say(f"{label}: retrying: {error}")

    def job_finished(self, label: str, status: str) -> None:
        if self.task is None:  # a run decided at planning time (incompatible, nothing left)
            if self.plain:
                print(f"{label}: {status}", flush=True)
            return
        self.running -= 1
        self.done += 1
        if not status.startswith("finished"):
            self.failed += 1
            self._say(f"{label}: {status}")
        self._refresh()

    def _say(self, line: str) -> None:
        if self.live:
            self.console.print(line, markup=False)
        elif self.plain:
            print(line, flush=True)


def _execute(
    c: Context,
    policies: list[str],
    suites: list[str],
    *,
    episodes: int | None,
    max_steps: int | None,
    tasks: list[str] | None,
    batch_size: int,
    dry_run: bool = False,
    executor: str = "processes",
    workers: int | None = None,
    address: str | None = None,
    retries: int = 2,
    inference: "InferenceConfig | None" = None,
) -> list[Any]:
    from vlabench.executors import make_executor
    from vlabench.matrix import Runner, plan
    from vlabench.registry import RegistryError

    cat, reg = c.catalog(), _load_registry(c)
    try:
        pairs = plan(
            policies,
            suites,
            reg,
            cat,
            episodes=episodes,
            max_steps=max_steps,
            tasks=tasks,
            inference=inference,
        )
        chosen = make_executor(
            executor,
            cat,
            workers=workers,
            retries=retries,
            batch_size=batch_size,
            address=address,
            allow=c.allow,
            block=c.block,
        )
    except (RegistryError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console = _console()
    for pair in pairs:
        if not pair.runnable:
            console.print(
                f"[yellow]{pair.policy.name} × {pair.suite}: {pair.status}:[/] {pair.reason}",
            )
    if dry_run:
        _print_plan(c, pairs, chosen)
        return []
    store = c.store()
    with _RichProgress(c.quiet) as progress:
        runner = Runner(store, cat, progress, batch_size=batch_size, executor=chosen)
        try:
            return runner.run_pairs(pairs)
        except KeyboardInterrupt:
            console.print(
                "[yellow]interrupted[/]: finished episodes are stored; "
                "run the same command again to resume"
            )
            raise typer.Exit(130) from None


def _peek_store(c: Context) -> Any | None:
    """The store if it exists and has a schema, without creating or migrating anything."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url

    from vlabench.store import default_url, open_store

    url = c.db or default_url()
    sa_url = make_url(url)
    if sa_url.get_backend_name() == "sqlite" and not Path(sa_url.database or "").is_file():
        return None
    try:
        store = open_store(url, upgrade=False)
        return store if inspect(store.engine).has_table("runs") else None
    except Exception:
        return None


def _print_plan(c: Context, pairs: list[Any], executor: Any) -> None:
    """The dry run: jobs and episodes per pair (minus what the store has), and why not."""
    from vlabench.matrix import preview

    plans = preview(pairs, _peek_store(c), executor.parallelism)
    console = _console()
    runnable = [p for p in plans if p.pair.runnable]
    console.print(
        f"plan: {len(plans)} pair(s), {sum(p.runs for p in plans)} run(s); "
        f"{sum(p.jobs for p in runnable)} job(s), {sum(p.episodes for p in runnable)} "
        f"episode(s) to run ({sum(p.stored for p in runnable)} already stored); "
        f"{len(plans) - len(runnable)} pair(s) not runnable; "
        f"executor {executor.name} × {executor.parallelism}",
        soft_wrap=True,
    )
    for p in plans:
        head = f"  {p.pair.policy.name} × {p.pair.suite}: "
        if p.pair.runnable:
            console.print(
                f"{head}{p.runs} run(s), {p.jobs} job(s), {p.episodes} episode(s) to run, "
                f"{p.stored} stored",
                markup=False,
                soft_wrap=True,
            )
        else:
            console.print(f"{head}{p.pair.status}: {p.pair.reason}", markup=False, soft_wrap=True)


_LATENCY_PANEL = "Inference mode (latency)"
_INFERENCE = typer.Option(
    "--inference",
    help="sync: the world waits for the policy (simulators); sync-realtime: it does not, the "
    "robot holds while a chunk is computed; async: the next chunk is computed while the robot "
    "executes the current one (LeRobot's async inference).",
    rich_help_panel=_LATENCY_PANEL,
)
_LATENCY = typer.Option(
    "--latency-ms",
    metavar="MODEL",
    help="Latency of each policy call in the realtime modes: measured (this machine, default), "
    "a number of ms (120), normal:MEAN,STD, uniform:LOW,HIGH or lognormal:MEDIAN,SIGMA.",
    rich_help_panel=_LATENCY_PANEL,
)
_THRESHOLD = typer.Option(
    "--chunk-threshold",
    help="async: request the next chunk when the queue is at most this fraction of a chunk.",
    rich_help_panel=_LATENCY_PANEL,
)
_AGGREGATE = typer.Option(
    "--aggregate",
    help="async: merge overlapping actions: latest | average | weighted (0.3 old + 0.7 new) "
    "| conservative (0.7 old + 0.3 new).",
    rich_help_panel=_LATENCY_PANEL,
)
_HOLD = typer.Option(
    "--hold",
    help="While the robot has no action: repeat its last command, or send the env's noop.",
    rich_help_panel=_LATENCY_PANEL,
)


def _inference(
    mode: str, latency: str, threshold: float, aggregate: str, hold: str
) -> "InferenceConfig":
    from vlabench.inference import InferenceConfig

    try:
        return InferenceConfig(mode, latency, threshold, aggregate, hold)
    except ValueError as exc:
        raise _fail(str(exc)) from None


_EPISODES = typer.Option("--episodes", "-n", help="Episodes per task (default: the suite's).")
_MAX_STEPS = typer.Option(help="Override the suite's max steps (a different protocol).")
_BATCH = typer.Option("--batch-size", "-b", help="Episodes run at once (one policy call).")
_EXECUTOR = typer.Option(
    "--executor",
    help="inline (this process) | processes (local workers, default) | ray (a Ray cluster).",
)
_WORKERS = typer.Option(
    "--workers", "-j", help="Parallel workers (default: the CPU count; ray: the cluster's CPUs)."
)
_ADDRESS = typer.Option(
    "--address", metavar="ADDR", help="Ray cluster: auto | ray://host:10001 (default: local)."
)
_RETRIES = typer.Option(
    "--retries", help="Times a job whose worker crashed is retried before it is failed."
)
_RECORD_VIDEO = typer.Option(
    "--record-video",
    metavar="N",
    help="Save the first N episodes of each task as mp4; the path is stored on the episode.",
)
_VIDEO_DIR = typer.Option(
    "--video-dir",
    metavar="PATH",
    help="Where videos go (default: videos/ next to a SQLite store, else ./vlabench-videos).",
)


def _configure_video(c: Context, episodes: int, directory: Path | None) -> None:
    """Ask the rollouts (in this process and its workers) to record videos."""
    if episodes <= 0:
        return
    from vlabench import video
    from vlabench.store import default_url

    video.configure(episodes, directory or video.default_directory(c.db or default_url()))


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    policy: Annotated[str, typer.Option("--policy", help="Policy preset or type.")],
    suite: Annotated[str | None, typer.Option("--suite", help="Suite from the registry.")] = None,
    episodes: Annotated[int | None, _EPISODES] = None,
    max_steps: Annotated[int | None, _MAX_STEPS] = None,
    task: Annotated[
        list[str] | None, typer.Option("--task", help="Only these tasks (repeatable).")
    ] = None,
    batch_size: Annotated[int, _BATCH] = 1,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            help="Instead of --suite: the env's suite (ENV_fake with --fake, else ENV), "
            "or a bare suite of that env.",
        ),
    ] = None,
    env_option: Annotated[
        list[str] | None,
        typer.Option(
            "--env-option",
            "-E",
            metavar="KEY=VALUE",
            help="Env option (a YAML value) over the suite's env_options; part of the run "
            "config (repeatable).",
        ),
    ] = None,
    fake: Annotated[
        bool, typer.Option("--fake", help="Dry run on the env's fake hardware (fake=true).")
    ] = False,
    armed: Annotated[
        bool,
        typer.Option(
            "--armed",
            help="Let a hardware env move (it still asks for confirmation at the terminal).",
        ),
    ] = False,
    record_video: Annotated[int, _RECORD_VIDEO] = 0,
    video_dir: Annotated[Path | None, _VIDEO_DIR] = None,
    executor: Annotated[str | None, _EXECUTOR] = None,
    workers: Annotated[int | None, _WORKERS] = None,
    address: Annotated[str | None, _ADDRESS] = None,
    retries: Annotated[int, _RETRIES] = 2,
    inference: Annotated[str, _INFERENCE] = "sync",
    latency_ms: Annotated[str, _LATENCY] = "measured",
    chunk_threshold: Annotated[float, _THRESHOLD] = 0.5,
    aggregate: Annotated[str, _AGGREGATE] = "weighted",
    hold: Annotated[str, _HOLD] = "last",
) -> None:
    """Evaluate one policy on one suite; re-running the same command resumes it.

    Example: vlabench run --policy noop --suite pusht --episodes 2;
    vlabench run --policy noop --env parol6 --fake -n 1;
    vlabench run --policy smolvla_libero --suite libero_spatial --inference async
    --latency-ms 120 (what 120 ms of latency costs; the sync run is the reference).
    """
    import os

    c = _ctx(ctx)
    mode = _inference(inference, latency_ms, chunk_threshold, aggregate, hold)
    if (suite is None) == (env is None):
        raise _fail("give exactly one of --suite and --env")
    options = _parse_env_options(env_option or [])
    if fake:
        options["fake"] = True
    if armed:  # read by hardware envs, never stored: arming is not part of a run's identity
        os.environ["VLABENCH_ARMED"] = "1"
    suite = _patch_suite(c, suite, env, fake, options)
    _configure_video(c, record_video, video_dir)
    results = _execute(
        c,
        [policy],
        [suite],
        episodes=episodes,
        max_steps=max_steps,
        tasks=task,
        batch_size=batch_size,
        executor=executor or ("inline" if armed else "processes"),  # an armed robot: inline
        workers=workers,
        address=address,
        retries=retries,
        inference=mode,
    )
    _print_results(results)
    if mode.mode != "sync":  # a sync run is its own reference
        _print_latency(c, results)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def _parse_env_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs, values parsed as YAML (``3`` int, ``true`` bool, ``[1, 2]`` list)."""
    import yaml

    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise _fail(f"--env-option expects KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise _fail(f"--env-option {key}: not a YAML value: {exc}") from None
    return options


def _patch_suite(
    c: Context, suite: str | None, env: str | None, fake: bool, options: dict[str, Any]
) -> str:
    """The suite to run; ``--env`` and env options become a patch applied to the registry."""
    if env is None and not options:
        assert suite is not None
        return suite
    reg = _load_registry(c)
    name = suite
    if name is None:
        candidates = [f"{env}_fake", env] if fake else [env]
        name = next(
            (n for n in candidates if n in reg.suites and reg.suites[n].env == env), env
        )

    def patch(registry: "Registry") -> None:
        from vlabench.registry import SuiteConfig

        if name not in registry.suites and env is not None:
            registry.suites[name] = SuiteConfig(env=env)
        if options and name in registry.suites:
            old = registry.suites[name]
            merged = {**old.env_options, **options}
            registry.suites[name] = old.model_copy(update={"env_options": merged})

    c.suite_patch = patch
    assert name is not None
    return name


class _EpisodeLines:
    """Progress for interleaved runs: one plain line per episode."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.label = ""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None  # the other ProgressSink events: nothing to show

    def job_started(self, label: str, total: int, done: int) -> None:
        self.label = label

    def episode_finished(self, record: Any) -> None:
        if not self.quiet:
            outcome = record.failure_reason or ("success" if record.success else "failure")
            print(f"{self.label} episode {record.episode_index}: {outcome}", flush=True)


@app.command("interleave")
def interleave_cmd(
    ctx: typer.Context,
    policy: Annotated[
        list[str], typer.Option("--policy", help="Policies to compare (repeat, >= 2).")
    ],
    suite: Annotated[str | None, typer.Option("--suite", help="Suite from the registry.")] = None,
    env: Annotated[str | None, typer.Option("--env", help="As for `run`.")] = None,
    env_option: Annotated[
        list[str] | None,
        typer.Option("--env-option", "-E", metavar="KEY=VALUE", help="As for `run`."),
    ] = None,
    fake: Annotated[bool, typer.Option("--fake", help="As for `run`.")] = False,
    armed: Annotated[bool, typer.Option("--armed", help="As for `run`.")] = False,
    episodes: Annotated[int | None, _EPISODES] = None,
    max_steps: Annotated[int | None, _MAX_STEPS] = None,
    task: Annotated[
        list[str] | None, typer.Option("--task", help="Only these tasks (repeatable).")
    ] = None,
    order: Annotated[str, typer.Option(help="abba | alternate | random")] = "abba",
    seed: Annotated[int, typer.Option(help="Seed of the random order.")] = 0,
) -> None:
    """Compare policies episode by episode in interleaved order (fair on a real robot).

    Episode i of every policy runs before episode i+1 of any; each policy keeps its own run.
    Example: vlabench interleave --policy noop --policy random --env parol6 --fake -n 2
    """
    import os

    from vlabench.interleave import ORDERS, run_interleaved
    from vlabench.matrix import Runner, plan
    from vlabench.registry import RegistryError

    c = _ctx(ctx)
    if len(policy) < 2 or (suite is None) == (env is None) or order not in ORDERS:
        raise _fail(
            f"give >= 2 --policy, exactly one of --suite and --env, --order in {ORDERS}"
        )
    options = _parse_env_options(env_option or [])
    if fake:
        options["fake"] = True
    if armed:
        os.environ["VLABENCH_ARMED"] = "1"
    suite = _patch_suite(c, suite, env, fake, options)
    cat, reg = c.catalog(), _load_registry(c)
    try:
        pairs = plan(policy, [suite], reg, cat, episodes=episodes, max_steps=max_steps, tasks=task)
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    blocked = [p for p in pairs if not p.runnable]
    for pair in blocked:
        print(f"{pair.policy.name} × {pair.suite}: {pair.status}: {pair.reason}", file=sys.stderr)
    if blocked:
        raise typer.Exit(1)
    runner = Runner(c.store(), cat, _EpisodeLines(c.quiet))
    results = []
    try:
        for i in range(len(pairs[0].jobs)):  # one task at a time, the same for every policy
            configs = [pair.jobs[i] for pair in pairs]
            results += run_interleaved(configs, runner.run_job, order, seed)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        print("interrupted: finished episodes are stored; run it again to resume", file=sys.stderr)
        raise typer.Exit(130) from None
    runs = {r.run_id: r for r in results}  # the latest result of each run
    new = sum(r.new_episodes for r in results)
    failed = [r for r in runs.values() if r.status == "failed"]
    print(f"{len(runs)} run(s), {new} new episode(s) stored, {len(failed)} failed")
    for r in failed:
        print(f"failed {r.label}: {r.error}")
    if failed:
        raise typer.Exit(1)


@app.command("matrix")
def matrix_cmd(
    ctx: typer.Context,
    policy: Annotated[
        list[str] | None, typer.Option("--policy", help="Policies (repeatable).")
    ] = None,
    suite: Annotated[list[str] | None, typer.Option("--suite", help="Suites (repeatable).")] = None,
    name: Annotated[
        str, typer.Option("--name", help="Matrix from the registry when no --policy/--suite.")
    ] = "default",
    episodes: Annotated[int | None, _EPISODES] = None,
    max_steps: Annotated[int | None, _MAX_STEPS] = None,
    batch_size: Annotated[int, _BATCH] = 1,
    dry_run: Annotated[
        bool, typer.Option(help="Print the plan (jobs, episodes, incompatible pairs) only.")
    ] = False,
    leaderboard: Annotated[bool, typer.Option(help="Print the leaderboard at the end.")] = True,
    record_video: Annotated[int, _RECORD_VIDEO] = 0,
    video_dir: Annotated[Path | None, _VIDEO_DIR] = None,
    executor: Annotated[str, _EXECUTOR] = "processes",
    workers: Annotated[int | None, _WORKERS] = None,
    address: Annotated[str | None, _ADDRESS] = None,
    retries: Annotated[int, _RETRIES] = 2,
    inference: Annotated[str, _INFERENCE] = "sync",
    latency_ms: Annotated[str, _LATENCY] = "measured",
    chunk_threshold: Annotated[float, _THRESHOLD] = 0.5,
    aggregate: Annotated[str, _AGGREGATE] = "weighted",
    hold: Annotated[str, _HOLD] = "last",
) -> None:
    """Cross-evaluate every policy on every suite, checking each pair first.

    Incompatible pairs are stored and shown as "incompatible: reason", never run. Jobs run
    on local worker processes (--workers N), in this process (--executor inline) or on Ray
    (--executor ray --address auto); re-running the same command runs only what is missing.
    Example: vlabench matrix --policy noop --policy random --suite pusht_quick --workers 2
    """
    c = _ctx(ctx)
    mode = _inference(inference, latency_ms, chunk_threshold, aggregate, hold)
    policies, suites = policy or [], suite or []
    if not policies or not suites:
        from vlabench.registry import RegistryError

        try:
            preset = _load_registry(c).matrix(name)
        except RegistryError as exc:
            raise _fail(str(exc)) from None
        policies, suites = policies or preset.policies, suites or preset.suites
        episodes = episodes or preset.episodes
    _configure_video(c, record_video, video_dir)
    results = _execute(
        c,
        policies,
        suites,
        episodes=episodes,
        max_steps=max_steps,
        tasks=None,
        batch_size=batch_size,
        dry_run=dry_run,
        executor=executor,
        workers=workers,
        address=address,
        retries=retries,
        inference=mode,
    )
    if dry_run:
        return
    _print_results(results)
    if mode.mode != "sync":  # a sync run is its own reference
        _print_latency(c, results)
    if leaderboard:
        _print_board(c, suite=suites, policy=policies)


def _print_results(results: list[Any]) -> None:
    console = _console()
    new = sum(r.new_episodes for r in results)
    failed = [r for r in results if r.status == "failed"]
    console.print(f"{len(results)} run(s), {new} new episode(s) stored, {len(failed)} failed")
    for r in failed:
        console.print(f"[red]failed[/] {r.label}: {r.error}")


def _print_latency(c: Context, results: list[Any]) -> None:
    """For runs in a realtime mode: what the latency cost, next to the same run in sync."""
    from vlabench.report.latency import latency_costs
    from vlabench.report.terminal import latency_table

    ids = [r.run_id for r in results if r.new_episodes or r.status == "finished"]
    costs = latency_costs(c.store(), ids)
    if costs:
        _console().print(latency_table(costs))


# -- leaderboard and show ----------------------------------------------------------------
def _print_board(c: Context, **filters: Any) -> None:
    from vlabench.report.board import board_from_store
    from vlabench.report.terminal import board_table

    board = board_from_store(c.store(), **filters)
    _console().print(board_table(board))


_DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]
_SINCE = typer.Option(metavar="DATE", formats=_DATE_FORMATS, help="Runs created on or after.")
_UNTIL = typer.Option(metavar="DATE", formats=_DATE_FORMATS, help="Runs created before.")


@app.command("leaderboard")
def leaderboard_cmd(
    ctx: typer.Context,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="table | csv | json | md | latex | html | png (or a plugin's format); "
            "default: table, or from the --output suffix",
        ),
    ] = "",
    suite: Annotated[list[str] | None, typer.Option(help="Only these suites.")] = None,
    policy: Annotated[list[str] | None, typer.Option(help="Only these policies.")] = None,
    env: Annotated[list[str] | None, typer.Option(help="Only these envs.")] = None,
    protocol: Annotated[
        list[str] | None, typer.Option(help="Only these protocols (name or hash prefix).")
    ] = None,
    since: Annotated[datetime | None, _SINCE] = None,
    until: Annotated[datetime | None, _UNTIL] = None,
    by: Annotated[
        str,
        typer.Option(
            help="Columns: suite | task | group (registry suites whose tasks are a subset of "
            "a stored suite's, e.g. metaworld_mt50:metaworld_easy)."
        ),
    ] = "suite",
    group: Annotated[
        list[str] | None,
        typer.Option(help="Only these registry suites as groups (repeatable; implies --by group)."),
    ] = None,
    interval: Annotated[
        str, typer.Option(help="wilson | clopper-pearson | bootstrap (stratified by task).")
    ] = "wilson",
    confidence: Annotated[float, typer.Option(help="Interval confidence level.")] = 0.95,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to a file.")] = None,
) -> None:
    """Success rate per policy and suite (or task), with n and a 95% interval.

    Columns never mix protocols (two protocols, two columns). Ranks only where intervals
    separate; =k marks a tie.

    Example: vlabench leaderboard --format html -o board.html
    """
    from vlabench.report.board import GROUPINGS, INTERVALS, board_from_store
    from vlabench.report.exporters import exporters

    c = _ctx(ctx)
    if by not in GROUPINGS:
        raise _fail(f"--by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    if group and by == "task":
        raise _fail("--group needs --by group (or no --by), got --by task")
    by = "group" if group else by
    groups = _task_groups(c, group) if by == "group" else None
    if interval not in INTERVALS:
        raise _fail(f"--interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    if not 0 < confidence < 1:
        raise _fail(f"--confidence must be in (0, 1), got {confidence}")
    specs = exporters(c.catalog())
    if not fmt:
        by_suffix = {spec.suffix: name for name, spec in specs.items()}
        fmt = by_suffix.get(output.suffix, "") if output else "table"
        if not fmt:
            raise _fail(f"cannot tell the format from {output}: give --format")
    spec = specs.get(fmt)
    if fmt != "table" and spec is None:
        raise _fail(f"unknown format {fmt!r} (formats: table, {', '.join(sorted(specs))})")
    if spec is not None and spec.binary and output is None:
        raise _fail(f"format {fmt} is binary: write it to a file with --output FILE")
    board = board_from_store(
        c.store(),
        suite=suite,
        policy=policy,
        env=env,
        protocol=protocol,
        since=since,
        until=until,
        by=by,
        interval=interval,
        confidence=confidence,
        episodes=bool(spec is not None and spec.episodes),
        groups=groups,
    )
    if spec is None:
        from vlabench.report.terminal import board_table

        _console().print(board_table(board))
        return
    data = spec.export(board)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            output.write_bytes(data)
        else:
            output.write_text(data, encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)
    elif isinstance(data, bytes):
        raise _fail(f"format {fmt} returned bytes: write it to a file with --output FILE")
    else:
        sys.stdout.write(data if data.endswith("\n") else data + "\n")


def _task_groups(c: Context, names: list[str] | None) -> dict[str, tuple[str, list[str]]]:
    """Registry suites with an explicit task list as ``name -> (env, tasks)``: all, or ``names``."""
    from vlabench.registry import RegistryError

    reg = _load_registry(c)
    try:
        suites = {n: reg.suite(n) for n in names} if names else dict(reg.suites)
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    for n in names or []:
        if not suites[n].tasks:
            raise _fail(f"--group {n}: suite {n!r} lists no tasks, so it defines no group")
    return {n: (s.env, list(s.tasks)) for n, s in suites.items() if s.tasks}


@app.command("compare")
def compare_cmd(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="Policy A (as in the leaderboard's policy column).")],
    b: Annotated[str, typer.Argument(help="Policy B.")],
    suite: Annotated[list[str] | None, typer.Option(help="Only these suites.")] = None,
    confidence: Annotated[float, typer.Option(help="Confidence level.")] = 0.95,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Paired comparison of A and B on the same episodes (suite, task, seed, init state).

    Per task: McNemar's exact test and Newcombe's interval for the difference; overall:
    McNemar on all pairs and a stratified paired bootstrap over tasks. Example:
    vlabench compare smolvla pi0 --suite libero_spatial
    """
    import json

    from vlabench.report.compare import CompareError, compare
    from vlabench.report.terminal import comparison_table

    if not 0 < confidence < 1:
        raise _fail(f"--confidence must be in (0, 1), got {confidence}")
    try:
        result = compare(_ctx(ctx).store(), a, b, suite=suite, confidence=confidence)
    except CompareError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        return
    console = _console()
    console.print(comparison_table(result))
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    print(result.verdict())


_EPISODE_COLUMNS = {
    "episode_index": "episode",
    "seed": "seed",
    "init_state_id": "init state",
    "success": "success",
    "steps": "steps",
    "reward_sum": "return",
    "wall_time_s": "wall s",
    "latency_p50_ms": "p50 ms",
    "latency_p95_ms": "p95 ms",
    "clipped_actions": "clipped",
    "failure_reason": "failure",
}


def _print_episodes(episodes: list[dict[str, Any]], title: str = "") -> None:
    """The episodes as a table, then their video paths (whole, so they can be copied)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title) if title else None)
    for header in _EPISODE_COLUMNS.values():
        table.add_column(header, overflow="fold")
    for ep in episodes:
        table.add_row(*(Text(_cell(ep.get(col))) for col in _EPISODE_COLUMNS))
    console = _console()
    console.print(table)
    for ep in episodes:
        if ep.get("labels"):
            pairs = ", ".join(f"{k}={v}" for k, v in sorted(ep["labels"].items()))
            console.print(
                f"labels of episode {ep['episode_index']}: {pairs}", markup=False, soft_wrap=True
            )
        if ep.get("video_path"):
            console.print(
                f"video of episode {ep['episode_index']}: {ep['video_path']}",
                markup=False,
                soft_wrap=True,
            )


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="Run id, or a policy (as in the leaderboard) for its runs.")
    ],
    suite: Annotated[list[str] | None, typer.Option(help="Only these suites (policy).")] = None,
    task: Annotated[list[str] | None, typer.Option(help="Only these tasks (policy).")] = None,
    episodes: Annotated[bool, typer.Option(help="List every episode.")] = True,
) -> None:
    """Drill down: a run (config, protocol, versions, episodes) or a policy's runs.

    With a policy, each run is one line (suite, task, protocol, rate [interval], n);
    add --task to see their episodes. Examples: vlabench show 1; vlabench show noop --task
    push_t
    """
    if target.isdigit():
        _show_run(_ctx(ctx), int(target), episodes)
        return
    _show_policy(_ctx(ctx), target, suite, task, episodes)


def _show_policy(
    c: Context, who: str, suite: list[str] | None, task: list[str] | None, episodes: bool
) -> None:
    from rich.table import Table
    from rich.text import Text

    from vlabench.report.board import policy_identity, policy_labels
    from vlabench.stats import wilson_interval
    from vlabench.store import reads

    store = c.store()
    runs = reads.run_counts(store, suite=suite)
    labels = policy_labels(runs)
    chosen = [r for r in runs if labels[policy_identity(r)] == who] or [
        r for r in runs if r["policy"] == who
    ]
    if task:
        chosen = [r for r in chosen if r["task"] in task]
    if not chosen:
        known = ", ".join(sorted(set(labels.values()))) or "none"
        raise _fail(f"no runs of {who!r} match in {store.url} (policies: {known})")
    table = Table(title=Text(f"runs of {who}"))
    for header in ("run", "policy", "suite", "task", "protocol", "status", "success %", "n"):
        table.add_column(header, overflow="fold")
    for run in chosen:
        rate = ""
        if run["n"]:
            low, high = wilson_interval(run["successes"], run["n"])
            rate = f"{100 * run['successes'] / run['n']:.1f} [{100 * low:.1f}, {100 * high:.1f}]"
        protocol = str((run.get("protocol") or {}).get("name") or "")
        status = run["status"] + (f": {run['error']}" if run.get("error") else "")
        table.add_row(
            str(run["id"]),
            Text(labels[policy_identity(run)]),
            Text(run["suite"]),
            Text(run["task"]),
            Text(f"{protocol} ({run['protocol_hash'][:6]})"),
            Text(status),
            rate,
            str(run["n"]),
        )
    console = _console()
    console.print(table)
    if task and episodes:
        loaded = reads.episodes_by_run(store, [r["id"] for r in chosen])
        for run in chosen:
            title = f"run {run['id']}: {run['suite']}/{run['task']}"
            _print_episodes(loaded.get(run["id"], []), title)
    elif not task:
        console.print("see episodes with --task TASK, or `vlabench show RUN_ID`", markup=False)


def _show_run(c: Context, run_id: int, episodes: bool) -> None:
    import json

    store = c.store()
    run = store.get_run(run_id)
    if run is None:
        raise _fail(f"no run with id {run_id} in {store.url}")
    console = _console()
    summary = store.summary(run_id)
    lines = [
        f"run {run_id}: {run['policy']} × {run['suite']}/{run['task']} [{run['status']}] "
        f"{summary['successes']}/{summary['n']} successes, {summary['errors']} errors"
    ]
    for key in (
        "checkpoint",
        "checkpoint_hash",
        "config_hash",
        "protocol_hash",
        "host",
        "git_sha",
        "error",
        "created_at",
        "finished_at",
    ):
        if run.get(key):
            lines.append(f"  {key}: {run[key]}")
    lines.append(f"  protocol: {json.dumps(run['protocol'], sort_keys=True)}")
    lines.append(f"  versions: {json.dumps(run['versions'], sort_keys=True)}")
    for line in lines:  # user strings: no rich markup
        console.print(line, markup=False)
    if episodes:
        _print_episodes(store.episodes(run_id))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


# -- assets and sim-vs-real ----------------------------------------------------------------
@app.command("assets")
def assets_cmd(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="Asset set to fetch (see the list without it).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only report whether it is there (exit 1 if not).")
    ] = False,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", metavar="PATH", help="Look/fetch here instead of the default."),
    ] = None,
) -> None:
    """List plugins' data files (simulator assets), or fetch one set.

    Example: vlabench assets; vlabench assets simpler --check
    """
    cat = _ctx(ctx).catalog()
    location = str(directory) if directory is not None else None
    console = _console()
    if name is None:
        from rich.table import Table
        from rich.text import Text

        table = Table(title="vlabench assets")
        for col in ("assets", "plugin", "status", "location", "description"):
            table.add_column(col)
        for key, spec in sorted(cat.assets.items()):
            try:
                st = spec.status(location)
                state = "ready" if st.ready else f"missing: {', '.join(st.missing)}"
                where = st.location
            except Exception as exc:
                state, where = f"error: {type(exc).__name__}: {exc}", ""
            table.add_row(
                key, cat.plugin_of("assets", key), Text(state), Text(where), spec.description
            )
        console.print(table)
        return
    spec = cat.assets.get(name)
    if spec is None:
        from vlabench.registry import _unknown

        raise _fail(_unknown("asset set", name, cat.assets))
    try:
        st = spec.status(location) if check else spec.fetch(location)
    except Exception as exc:
        raise _fail(f"assets {name}: {exc}", 1) from None
    if st.ready:
        console.print(f"{name}: ready at {st.location}", markup=False)
    else:
        console.print(f"{name}: missing {', '.join(st.missing)} under {st.location}", markup=False)
    if st.hint:
        console.print(f"  {st.hint}", markup=False)
    if not st.ready:
        raise typer.Exit(1)


@app.command("sim-real")
def sim_real_cmd(
    ctx: typer.Context,
    real: Annotated[
        Path, typer.Option("--real", metavar="FILE", help="YAML table of real success rates.")
    ],
    task_set: Annotated[
        list[str] | None,
        typer.Option("--task-set", help="Task sets of the file to compare (default: all)."),
    ] = None,
    suite: Annotated[
        list[str] | None,
        typer.Option(help="Suites whose stored runs give the sim rates (default: the table's)."),
    ] = None,
    alias: Annotated[
        list[str] | None,
        typer.Option(metavar="STORED=REAL", help="Map a stored policy name to the table's."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Sim-vs-real agreement per task and task set: Pearson r and MMRV (SimplerEnv's metrics).

    Example: vlabench sim-real --real plugins/simpler/real_results.yaml --task-set simpler_bridge
    """
    import json

    from vlabench.report.sim_real import (
        agreement,
        format_table,
        load_real_tables,
        sim_rates_from_store,
    )

    try:
        tables = load_real_tables(real)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    aliases = {}
    for item in alias or []:
        stored, sep, name = item.partition("=")
        if not sep or not stored or not name:
            raise _fail(f"--alias expects STORED=REAL, got {item!r}")
        aliases[stored] = name
    chosen = task_set or list(tables)
    unknown = [t for t in chosen if t not in tables]
    if unknown:
        raise _fail(f"{real}: no task set {', '.join(unknown)} (has: {', '.join(tables)})")
    store = _ctx(ctx).store()
    report = []
    for set_name in chosen:
        table = tables[set_name]
        suites = suite or list(table.suites)
        sim = sim_rates_from_store(store, suites, aliases, table.metric)
        report.append((set_name, table, suites, agreement(sim, table.rates)))
    if as_json:
        out = {
            name: {
                "source": t.source,
                "metric": t.metric,
                "suites": suites,
                "agreement": [a.as_dict() for a in res],
            }
            for name, t, suites, res in report
        }
        print(json.dumps(out, indent=2))
        return
    for name, table, suites, results in report:
        print(f"{name}: {table.metric}, sim from suite(s) {', '.join(suites)}")
        print(f"  real: {table.source}")
        if not results:
            print(
                "  no task has two policies with both sim and real rates: run those policies "
                "on the suite(s) (names as in the table, or map them with --alias)"
            )
            continue
        print(format_table(results))


# -- serve (vlabench/remote.py) --------------------------------------------------------------
serve_app = typer.Typer(
    help="Serve a policy or env over WebSocket for `--policy remote://host:port` / suites "
    "with `env: remote://host:port`.",
    no_args_is_help=True,
)
app.add_typer(serve_app, name="serve")
_HOST = typer.Option("--host", help="Address to bind (loopback unless --allow-remote).")
_PORT = typer.Option("--port", help="Port (0 picks a free one).")
_ALLOW = typer.Option("--allow-remote", help="Allow a non-loopback --host (needs --token).")
_TOKEN = typer.Option(
    "--token", envvar="VLABENCH_TOKEN", help="Shared token clients must send (VLABENCH_TOKEN)."
)


def _serve(target: Any, host: str, port: int, allow_remote: bool, token: str | None) -> None:
    from vlabench.remote import Server

    try:
        server = Server(target, host=host, port=port, token=token, allow_remote=allow_remote)
    except PermissionError as exc:
        raise _fail(str(exc)) from None

    def started(s: Any) -> None:
        print(f"serving {s.kind} on {s.url} (health: http://{s.host}:{s.port}/health)", flush=True)

    try:
        server.serve_forever(started)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise _fail(f"cannot serve on {host}:{port}: {exc}") from None


@serve_app.command("policy")
def serve_policy_cmd(
    ctx: typer.Context,
    preset: Annotated[str, typer.Argument(help="Policy preset or type to serve.")],
    host: Annotated[str, _HOST] = "127.0.0.1",
    port: Annotated[int, _PORT] = 8765,
    allow_remote: Annotated[bool, _ALLOW] = False,
    token: Annotated[str | None, _TOKEN] = None,
    batch_wait_ms: Annotated[
        float, typer.Option(help="Gather concurrent requests for up to this long.")
    ] = 2.0,
) -> None:
    """Serve a policy: clients run `vlabench run --policy remote://HOST:PORT ...`.

    Concurrent requests from several clients are batched into one policy call; the policy is
    loaded per env interface on first use. Example: vlabench serve policy random --port 8765
    """
    from vlabench.config import resolve_policy
    from vlabench.isolation import policy_spec_for
    from vlabench.registry import RegistryError
    from vlabench.remote import PolicyService

    c = _ctx(ctx)
    cat, reg = c.catalog(), _load_registry(c)
    try:
        choice = resolve_policy(preset, reg, cat)
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    spec = policy_spec_for(choice, cat.policies[choice.type])
    service = PolicyService(
        spec, choice.checkpoint, choice.options, choice.device, batch_wait_ms, choice.type,
        choice.name,
    )
    _serve(service, host, port, allow_remote, token)


@serve_app.command("env")
def serve_env_cmd(
    ctx: typer.Context,
    env: Annotated[str, typer.Argument(help="Env name (see `vlabench list envs`).")],
    host: Annotated[str, _HOST] = "127.0.0.1",
    port: Annotated[int, _PORT] = 8766,
    allow_remote: Annotated[bool, _ALLOW] = False,
    token: Annotated[str | None, _TOKEN] = None,
) -> None:
    """Serve an env (one instance per client): suites use `env: remote://HOST:PORT`.

    Example: vlabench serve env pusht --port 8766
    """
    cat = _ctx(ctx).catalog()
    if env not in cat.envs:
        raise _fail(f"unknown env {env!r} (envs: {', '.join(sorted(cat.envs)) or 'none'})")
    _serve(cat.envs[env], host, port, allow_remote, token)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
