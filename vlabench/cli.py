"""The `vlabench` command line: parses, calls the core modules, prints.

Heavy modules (numpy, SQLAlchemy, simulators) are imported inside the commands so that
``vlabench --help`` stays fast.
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
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

    def catalog(self) -> "Catalog":
        from vlabench.plugins import catalog

        return catalog(self.allow, self.block)

    def registry(self) -> "Registry":
        from vlabench.registry import load_registry

        return load_registry(list(self.registry_files))

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
    """Progress bars: one line per job, with episode counts, successes and ETA."""

    def __init__(self, quiet: bool, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.console = _console()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("episodes, {task.fields[successes]} successes"),
            TimeRemainingColumn(),
            console=self.console,
            disable=quiet or not self.console.is_terminal,
        )
        self.live = not quiet and self.console.is_terminal
        self.plain = not quiet and not self.console.is_terminal
        self.overall = self.progress.add_task("matrix", total=total, successes=0)
        self.job: Any = None
        self.successes = self.job_successes = 0

    def __enter__(self) -> "_RichProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def job_started(self, label: str, total: int, done: int) -> None:
        self.job = self.progress.add_task(label, total=total, completed=done, successes=0)
        self.job_successes = 0
        self.progress.advance(self.overall, done)

    def episode_finished(self, record: Any) -> None:
        self.successes += record.success
        self.job_successes += record.success
        self.progress.update(self.job, advance=1, successes=self.job_successes)
        self.progress.update(self.overall, advance=1, successes=self.successes)

    def job_finished(self, label: str, status: str) -> None:
        if self.job is not None:
            self.progress.remove_task(self.job)
            self.job = None
        if self.plain:  # not a terminal (CI logs): one plain line per job
            print(f"{label}: {status}", flush=True)
        elif self.live and status != "finished":
            self.console.print(f"{label}: {status}")


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
) -> list[Any]:
    from vlabench.matrix import Runner, plan
    from vlabench.registry import RegistryError

    cat, reg = c.catalog(), _load_registry(c)
    try:
        pairs = plan(
            policies, suites, reg, cat, episodes=episodes, max_steps=max_steps, tasks=tasks
        )
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    console = _console()
    for pair in pairs:
        if not pair.runnable:
            console.print(
                f"[yellow]{pair.policy.name} × {pair.suite}: {pair.status}:[/] {pair.reason}"
            )
    if dry_run:
        for pair in pairs:
            episodes_total = sum(j.protocol.episodes for j in pair.jobs)
            console.print(
                f"{pair.policy.name} × {pair.suite}: {len(pair.jobs)} job(s), "
                f"{episodes_total} episodes, {pair.status}"
            )
        return []
    store = c.store()
    total = sum(j.protocol.episodes for p in pairs if p.runnable for j in p.jobs)
    with _RichProgress(c.quiet, total) as progress:
        runner = Runner(store, cat, progress, batch_size=batch_size)
        try:
            return runner.run_pairs(pairs)
        except KeyboardInterrupt:
            console.print(
                "[yellow]interrupted[/]: finished episodes are stored; "
                "run the same command again to resume"
            )
            raise typer.Exit(130) from None


_EPISODES = typer.Option("--episodes", "-n", help="Episodes per task (default: the suite's).")
_MAX_STEPS = typer.Option(help="Override the suite's max steps (a different protocol).")
_BATCH = typer.Option("--batch-size", "-b", help="Episodes run at once (one policy call).")


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    policy: Annotated[str, typer.Option("--policy", help="Policy preset or type.")],
    suite: Annotated[str, typer.Option("--suite", help="Suite from the registry.")],
    episodes: Annotated[int | None, _EPISODES] = None,
    max_steps: Annotated[int | None, _MAX_STEPS] = None,
    task: Annotated[
        list[str] | None, typer.Option("--task", help="Only these tasks (repeatable).")
    ] = None,
    batch_size: Annotated[int, _BATCH] = 1,
) -> None:
    """Evaluate one policy on one suite; re-running the same command resumes it.

    Example: vlabench run --policy noop --suite pusht --episodes 2
    """
    results = _execute(
        _ctx(ctx),
        [policy],
        [suite],
        episodes=episodes,
        max_steps=max_steps,
        tasks=task,
        batch_size=batch_size,
    )
    _print_results(results)
    if any(r.status == "failed" for r in results):
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
    dry_run: Annotated[bool, typer.Option(help="Print the plan without running.")] = False,
    leaderboard: Annotated[bool, typer.Option(help="Print the leaderboard at the end.")] = True,
) -> None:
    """Cross-evaluate every policy on every suite, checking each pair first.

    Incompatible pairs are stored and shown as "incompatible: reason", never run.
    Example: vlabench matrix --policy noop --policy random --suite pusht_quick
    """
    c = _ctx(ctx)
    policies, suites = policy or [], suite or []
    if not policies or not suites:
        from vlabench.registry import RegistryError

        try:
            preset = _load_registry(c).matrix(name)
        except RegistryError as exc:
            raise _fail(str(exc)) from None
        policies, suites = policies or preset.policies, suites or preset.suites
        episodes = episodes or preset.episodes
    results = _execute(
        c,
        policies,
        suites,
        episodes=episodes,
        max_steps=max_steps,
        tasks=None,
        batch_size=batch_size,
        dry_run=dry_run,
    )
    if dry_run:
        return
    _print_results(results)
    if leaderboard:
        _print_board(c, suite=suites, policy=policies)


def _print_results(results: list[Any]) -> None:
    console = _console()
    new = sum(r.new_episodes for r in results)
    failed = [r for r in results if r.status == "failed"]
    console.print(f"{len(results)} run(s), {new} new episode(s) stored, {len(failed)} failed")
    for r in failed:
        console.print(f"[red]failed[/] {r.label}: {r.error}")


# -- leaderboard and show ----------------------------------------------------------------
def _print_board(c: Context, **filters: Any) -> None:
    from vlabench.report.board import board_from_store
    from vlabench.report.terminal import board_table

    board = board_from_store(c.store(), **filters)
    _console().print(board_table(board))


@app.command("leaderboard")
def leaderboard_cmd(
    ctx: typer.Context,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table | md | csv | json (or a plugin's format)")
    ] = "table",
    suite: Annotated[list[str] | None, typer.Option(help="Only these suites.")] = None,
    policy: Annotated[list[str] | None, typer.Option(help="Only these policies.")] = None,
    env: Annotated[list[str] | None, typer.Option(help="Only these envs.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to a file.")] = None,
) -> None:
    """Success rate per policy and suite, with n and a 95% Wilson interval.

    Example: VLABENCH_DB=sqlite:///my.db vlabench leaderboard --format json
    """
    from vlabench.report.board import board_from_store
    from vlabench.report.formats import FORMATS

    c = _ctx(ctx)
    board = board_from_store(c.store(), suite=suite, policy=policy, env=env)
    if fmt == "table":
        from vlabench.report.terminal import board_table

        _console().print(board_table(board))
        return
    formats = dict(FORMATS)
    formats.update({name: spec.export for name, spec in c.catalog().exporters.items()})
    if fmt not in formats:
        raise _fail(f"unknown format {fmt!r} (formats: table, {', '.join(sorted(formats))})")
    text = formats[fmt](board)
    if output:
        output.write_text(text)
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="Run id (see `vlabench leaderboard`).")],
    episodes: Annotated[bool, typer.Option(help="List every episode.")] = True,
) -> None:
    """Show a run: its config, protocol, versions and episodes.

    Example: vlabench show 1
    """
    import json

    from rich.table import Table
    from rich.text import Text

    store = _ctx(ctx).store()
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
    if not episodes:
        return
    table = Table()
    columns = {
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
    for header in columns.values():
        table.add_column(header, overflow="fold")
    for ep in store.episodes(run_id):
        table.add_row(*(Text(_cell(ep.get(col))) for col in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
