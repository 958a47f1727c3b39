"""What `run`, `matrix` and `matrix --dry-run` print besides progress: the plan, the results
and, for runs in a realtime inference mode, what latency cost."""

from pathlib import Path
from typing import Any

from vlabench.cli.app import Context, console


def peek_store(c: Context) -> Any | None:
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


def print_plan(c: Context, pairs: list[Any], executor: Any) -> None:
    """The dry run: jobs and episodes per pair (minus what the store has), and why not."""
    from vlabench.plan.jobs import preview

    plans = preview(pairs, peek_store(c), executor.parallelism)
    out = console()
    runnable = [p for p in plans if p.pair.runnable]
    out.print(
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
            out.print(
                f"{head}{p.runs} run(s), {p.jobs} job(s), {p.episodes} episode(s) to run, "
                f"{p.stored} stored",
                markup=False,
                soft_wrap=True,
            )
        else:
            out.print(f"{head}{p.pair.status}: {p.pair.reason}", markup=False, soft_wrap=True)
        for i, reason in sorted(p.pair.run_errors.items()):
            out.print(f"    {p.pair.runs[i].label}: failed: {reason}", markup=False, soft_wrap=True)


def print_results(results: list[Any]) -> None:
    """Runs and episodes, counted apart: ``N run(s), M new episode(s) stored, F failed
    run(s), E failed episode(s)``; then each failed run once with its error (runs failing
    with the same error share one line)."""
    from rich.text import Text

    out = console()
    new = sum(r.new_episodes for r in results)
    bad_episodes = sum(getattr(r, "failed_episodes", 0) for r in results)
    failed = [r for r in results if r.status == "failed"]
    out.print(
        f"{len(results)} run(s), {new} new episode(s) stored, {len(failed)} failed run(s), "
        f"{bad_episodes} failed episode(s)",
        soft_wrap=True,
    )
    by_error: dict[str, list[str]] = {}
    for r in failed:
        by_error.setdefault(str(r.error), []).append(r.label)
    for error, labels in by_error.items():  # labels and errors are user strings: Text
        line = Text.assemble(("failed", "red"), f" {', '.join(labels)}: {error}")
        out.print(line, soft_wrap=True)


def print_latency(c: Context, results: list[Any]) -> None:
    """For runs in a realtime mode: what the latency cost, next to the same run in sync."""
    from vlabench.report.latency import latency_costs
    from vlabench.report.terminal import latency_table

    ids = [r.run_id for r in results if r.new_episodes or r.status == "finished"]
    costs = latency_costs(c.store(), ids)
    if costs:
        console().print(latency_table(costs))
