"""`vlabench leaderboard`, `compare` and `show`: read the store, print boards and runs."""

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from vlabench.cli.app import Context, app, console, context, fail
from vlabench.cli.options import in_range


def print_board(c: Context, **filters: Any) -> None:
    from vlabench.report.board import board_from_store
    from vlabench.report.terminal import board_table

    board = board_from_store(c.store(), **filters)
    console().print(board_table(board))


_DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]
_SINCE = typer.Option(metavar="DATE", formats=_DATE_FORMATS, help="Runs created on or after.")
_UNTIL = typer.Option(metavar="DATE", formats=_DATE_FORMATS, help="Runs created before.")
_CONFIDENCE = in_range("--confidence", 0, 1, open_low=True, open_high=True)


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
            help="Columns: suite | task | group (task groups stored with the runs: registry "
            "suites, when the runs were written, whose tasks are a subset of a stored suite's, "
            "e.g. metaworld_mt50:metaworld_easy)."
        ),
    ] = "suite",
    group: Annotated[
        list[str] | None,
        typer.Option(help="Only these stored task groups (repeatable; implies --by group)."),
    ] = None,
    interval: Annotated[
        str, typer.Option(help="wilson | clopper-pearson | bootstrap (stratified by task).")
    ] = "wilson",
    confidence: Annotated[
        float, typer.Option(help="Interval confidence level, in (0, 1).", callback=_CONFIDENCE)
    ] = 0.95,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to a file.")] = None,
) -> None:
    """Success rate per policy and suite (or task), with n and a 95% interval.

    Columns never mix protocols (two protocols, two columns). Ranks only where intervals
    separate; =k marks a tie.

    Example: vlabench leaderboard --format html -o board.html
    """
    from vlabench.report.board import GROUPINGS, INTERVALS, UnknownGroupError, board_from_store
    from vlabench.report.exporters import exporters

    c = context(ctx)
    if by not in GROUPINGS:
        raise fail(f"--by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    if group and by == "task":
        raise fail("--group needs --by group (or no --by), got --by task")
    by = "group" if group else by
    if interval not in INTERVALS:
        raise fail(f"--interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    specs = exporters(c.catalog())
    if not fmt:
        by_suffix = {spec.suffix: name for name, spec in specs.items()}
        fmt = by_suffix.get(output.suffix, "") if output else "table"
        if not fmt:
            raise fail(f"cannot tell the format from {output}: give --format")
    spec = specs.get(fmt)
    if fmt != "table" and spec is None:
        raise fail(f"unknown format {fmt!r} (formats: table, {', '.join(sorted(specs))})")
    if spec is not None and spec.binary and output is None:
        raise fail(f"format {fmt} is binary: write it to a file with --output FILE")
    try:
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
            group=group,
        )
    except UnknownGroupError as exc:
        raise fail(f"--group: {exc}") from None
    if spec is None:
        from vlabench.report.terminal import board_table

        console().print(board_table(board))
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
        raise fail(f"format {fmt} returned bytes: write it to a file with --output FILE")
    else:
        sys.stdout.write(data if data.endswith("\n") else data + "\n")


@app.command("compare")
def compare_cmd(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="Policy A (as in the leaderboard's policy column).")],
    b: Annotated[str, typer.Argument(help="Policy B.")],
    suite: Annotated[list[str] | None, typer.Option(help="Only these suites.")] = None,
    confidence: Annotated[
        float, typer.Option(help="Confidence level, in (0, 1).", callback=_CONFIDENCE)
    ] = 0.95,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    until_decided: Annotated[
        bool,
        typer.Option(
            "--until-decided",
            help="First extend the stored runs of A and B (each task both ran) in rounds of "
            "paired episodes until the anytime-valid interval of A - B says A > B, B > A or "
            "no difference larger than --delta, or --episodes runs out; then compare.",
        ),
    ] = False,
    delta: Annotated[
        float,
        typer.Option(
            help="With --until-decided: the smallest difference that matters, in (0, 1).",
            callback=in_range("--delta", 0, 1, open_low=True, open_high=True),
        ),
    ] = 0.1,
    round_: Annotated[
        int,
        typer.Option(
            "--round", help="With --until-decided: episodes per task between looks, >= 1.",
            callback=in_range("--round", 1),
        ),
    ] = 10,
    episodes: Annotated[
        int | None,
        typer.Option(
            "--episodes", "-n",
            help="With --until-decided: the budget, episodes per task (default: the suite's).",
            callback=in_range("--episodes", 1),
        ),
    ] = None,
) -> None:
    """Paired comparison of A and B on the same episodes (suite, task, seed, init state).

    Per task and overall (all pairs pooled): McNemar's exact test, which decides, and the
    exact interval for the difference that matches it; for runs stopped by a sequential
    rule, the anytime-valid interval instead. Example:
    vlabench compare smolvla pi0 --suite libero_spatial;
    vlabench compare metaworld-expert random --suite metaworld_mt10 --until-decided
    """
    import json

    from vlabench.report.compare import CompareError, compare
    from vlabench.report.terminal import comparison_table

    c = context(ctx)
    if until_decided:
        _decide(c, a, b, suite, delta, round_, episodes)
    try:
        result = compare(c.store(), a, b, suite=suite, confidence=confidence)
    except CompareError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        return
    out = console()
    out.print(comparison_table(result))
    for note in result.notes:
        out.print(f"note: {note}", markup=False)
    out.print(result.verdict(), markup=False)  # once, after the table and its rule


def _decide(
    c: Context, a: str, b: str, suite: list[str] | None, delta: float, round_: int,
    episodes: int | None,
) -> None:
    """``compare --until-decided``: extend A's and B's stored runs in paired rounds until
    the sequential test decides (each look printed)."""
    from vlabench.execute.choose import make_executor
    from vlabench.execute.rounds import paired_configs, run_until_decided
    from vlabench.execute.runner import Runner
    from vlabench.report.compare import CompareError, select_runs
    from vlabench.sequential import StoppingRule
    from vlabench.store import reads

    store = c.store(write=True)
    runs = reads.run_counts(store, suite=suite)
    try:
        configs_a, configs_b = paired_configs(
            select_runs(runs, a), select_runs(runs, b), episodes
        )
    except (CompareError, ValueError) as exc:
        raise fail(str(exc)) from None
    catalog = c.catalog()
    executor = make_executor("processes", catalog, allow=c.allow, block=c.block)
    runner = Runner(store, catalog, executor=executor)
    rule = StoppingRule("until-decided", delta=delta, round=round_)
    try:
        state = run_until_decided(runner, configs_a, configs_b, rule, say=print)
    except KeyboardInterrupt as exc:
        print("interrupted: finished episodes are stored; run it again to resume", file=sys.stderr)
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    if state.stopped == "stalled":
        raise fail("a round stored no episodes: see `vlabench show` of the runs for why")


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
    out = console()
    out.print(table)
    for ep in episodes:
        if ep.get("labels"):
            pairs = ", ".join(f"{k}={v}" for k, v in sorted(ep["labels"].items()))
            out.print(
                f"labels of episode {ep['episode_index']}: {pairs}", markup=False, soft_wrap=True
            )
        if ep.get("video_path"):
            out.print(
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
        _show_run(context(ctx), int(target), episodes)
        return
    _show_policy(context(ctx), target, suite, task, episodes)


def _show_policy(
    c: Context, who: str, suite: list[str] | None, task: list[str] | None, episodes: bool
) -> None:
    from rich.table import Table
    from rich.text import Text

    from vlabench.report.cells import stopped_sequentially
    from vlabench.report.identity import policy_identity, policy_labels
    from vlabench.sequential import rate_sequence
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
        raise fail(f"no runs of {who!r} match in {store.url} (policies: {known})")
    table = Table(title=Text(f"runs of {who}"))
    for header in ("run", "policy", "suite", "task", "protocol", "status", "success %", "n"):
        table.add_column(header, overflow="fold")
    for run in chosen:
        rate = ""
        if run["n"]:
            seq = stopped_sequentially(run)  # anytime-valid, never fixed-n, after stopping
            low, high = (rate_sequence if seq else wilson_interval)(run["successes"], run["n"])
            rate = f"{100 * run['successes'] / run['n']:.1f} [{100 * low:.1f}, {100 * high:.1f}]"
            rate += "~" if seq else ""
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
    out = console()
    out.print(table)
    if task and episodes:
        loaded = reads.episodes_by_run(store, [r["id"] for r in chosen])
        for run in chosen:
            title = f"run {run['id']}: {run['suite']}/{run['task']}"
            _print_episodes(loaded.get(run["id"], []), title)
    elif not task:
        out.print("see episodes with --task TASK, or `vlabench show RUN_ID`", markup=False)


def _show_run(c: Context, run_id: int, episodes: bool) -> None:
    import json

    store = c.store()
    run = store.get_run(run_id)
    if run is None:
        raise fail(f"no run with id {run_id} in {store.url}")
    out = console()
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
    # the protocol hash covers the env and its options too: two hashes, visibly two protocols
    env_options = (run.get("config") or {}).get("env_options", {})
    lines.append(
        f"  env options (part of the protocol, env {run['env']}): "
        f"{json.dumps(env_options, sort_keys=True)}"
    )
    if rule := (run.get("report_meta") or {}).get("sequential"):
        lines.append(f"  sequential (stopping rule, looks): {json.dumps(rule, sort_keys=True)}")
    lines.append(f"  versions: {json.dumps(run['versions'], sort_keys=True)}")
    if code := _plugin_code(run.get("versions") or {}):
        lines.append(f"  plugin code (the run is only extended with this code): {code}")
    for line in lines:  # user strings: no rich markup; JSON kept whole, to be copied
        out.print(line, markup=False, soft_wrap=True)
    if episodes:
        _print_episodes(store.episodes(run_id))


def _plugin_code(versions: dict[str, Any]) -> str:
    """``example 0.1.0 source 1a2b3c4d5e6f7a8b, pusht 0.1.0``: the plugin versions a run
    stored, with the source fingerprint of those installed from a local folder."""
    sources = versions.get("plugin_sources") or {}
    return ", ".join(
        f"{name} {version or '?'}" + (f" source {sources[name]}" if name in sources else "")
        for name, version in sorted((versions.get("plugins") or {}).items())
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
