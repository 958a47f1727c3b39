"""`vlabench sim-real`: agreement of stored sim success rates with real ones."""

from pathlib import Path
from typing import Annotated

import typer

from vlabench.cli.app import app, context, fail


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
        raise fail(str(exc)) from None
    aliases = {}
    for item in alias or []:
        stored, sep, name = item.partition("=")
        if not sep or not stored or not name:
            raise fail(f"--alias expects STORED=REAL, got {item!r}")
        aliases[stored] = name
    chosen = task_set or list(tables)
    unknown = [t for t in chosen if t not in tables]
    if unknown:
        raise fail(f"{real}: no task set {', '.join(unknown)} (has: {', '.join(tables)})")
    store = context(ctx).store()
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
