"""`vlabench robustness`: a policy on a suite's control and its perturbed variants, paired."""

from pathlib import Path
from typing import Annotated

import typer

from vlabench.cli import options as opts
from vlabench.cli.app import app, context, fail, load_registry


def _folder(store_url: str) -> Path:
    """Where reports go: beside a SQLite store, else the current directory."""
    from sqlalchemy.engine import make_url

    url = make_url(store_url)
    database = url.database if url.get_backend_name() == "sqlite" else None
    return Path(database).parent if database and database != ":memory:" else Path.cwd()


@app.command("robustness")
def robustness_cmd(
    ctx: typer.Context,
    policies: Annotated[
        list[str],
        typer.Argument(help="Policy presets or types (one or more).", metavar="POLICY..."),
    ],
    suite: Annotated[str, typer.Option("--suite", help="The control suite (from the registry).")],
    axis: Annotated[
        list[str] | None,
        typer.Option("--axis", help="A perturbation axis (repeatable; default: every axis "
                     "that applies to the suite's env; registry.yaml `perturbations:` lists "
                     "them)."),
    ] = None,
    severity: Annotated[
        list[int] | None,
        typer.Option("--severity", help="Only these severities, >= 1 (repeatable; default: "
                     "all of each axis)."),
    ] = None,
    episodes: Annotated[int | None, opts.EPISODES] = None,
    task: Annotated[
        list[str] | None, opts.TASKS
    ] = None,
    batch_size: Annotated[int, opts.BATCH] = 1,
    executor: Annotated[str | None, opts.EXECUTOR] = None,
    workers: Annotated[int | None, opts.WORKERS] = None,
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Run nothing; report what the store holds.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Folder for robustness_<policy>_<suite>.png and "
                     ".html (default: beside a SQLite store, else here)."),
    ] = None,
) -> None:
    """Run a suite's control and each axis x severity on the same episodes.

    Reports per axis and severity: success [Wilson], the paired difference to
    the control [Newcombe] and McNemar's p; writes a profile plot (PNG) and an
    HTML page with it. Several policies are ranked by their worst drop, a
    shared rank wherever the intervals overlap. Re-running resumes, like run.
    Each variant SUITE@AXIS:K is a suite of its own (run, matrix, leaderboard).

    Example: vlabench robustness metaworld-expert --suite metaworld_mt10
    --axis state_noise --axis action_noise --task reach-v3 -n 10
    """
    from vlabench.registry import RegistryError

    c = context(ctx)
    reg = load_registry(c)
    cat = c.catalog()
    try:
        env = reg.suite(suite).env
        chosen = axis or [a for a, cfg in reg.perturbations.items()
                          if _applies(cat, cfg.perturbation, env)]
        variants = reg.variants(suite, chosen)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    for k in severity or []:
        if k < 1:
            raise fail(f"--severity must be >= 1, got {k}")
    if severity:
        variants = [v for v in variants if int(v.rsplit(":", 1)[1]) in severity]
    if not variants:
        raise fail(f"no perturbed variant of {suite!r} for axes {chosen} and severities "
                   f"{severity}")
    if not report_only:
        from vlabench.cli.evaluate import _execute
        from vlabench.cli.summaries import print_results

        results = _execute(
            c, list(policies), [suite, *variants], episodes=episodes, max_steps=None, tasks=task,
            batch_size=batch_size, executor=executor or "processes", workers=workers,
            settings=opts.execution_settings(c), registry=reg,
        )
        print_results(results)
    _report(c, list(policies), suite, chosen, output, write=not report_only)


def _applies(cat: object, perturbation: str, env: str) -> bool:
    spec = getattr(cat, "perturbations", {}).get(perturbation)
    return spec is not None and (not spec.envs or env in spec.envs)


def _report(
    c: object, policies: list[str], suite: str, axes: list[str], output: Path | None,
    write: bool,
) -> None:
    from vlabench.report.compare import CompareError
    from vlabench.report.robustness import profile, rank, table_lines, to_html, to_png

    store = c.store(write=write)  # type: ignore[attr-defined]
    profiles = []
    for policy in policies:
        try:
            prof = profile(store, policy, suite, axes=axes)
        except CompareError as exc:
            raise fail(str(exc)) from None
        if not prof.arms or not prof.control.n:
            raise fail(f"no paired control and perturbed episodes of {policy!r} on {suite!r} "
                       "in the store (run without --report-only first)")
        profiles.append(prof)
        for line in table_lines(prof):
            print(line)
    if len(profiles) > 1:
        print("ranked by worst drop (a shared rank where the intervals overlap):")
        for prof, place, tied in rank(profiles):
            arm = prof.worst()
            assert arm is not None
            print(f"  {place}{'=' if tied else ' '} {prof.policy[:30]:<30} {arm.axis}:"
                  f"{arm.severity} {100 * arm.difference:+.0f} [{100 * arm.low:+.0f}, "
                  f"{100 * arm.high:+.0f}]")
    folder = (output or _folder(store.url)).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"robustness_{'+'.join(policies)}_{suite}".replace("/", "_")
    png = to_png(profiles)
    (folder / f"{stem}.png").write_bytes(png)
    (folder / f"{stem}.html").write_text(to_html(profiles, png), encoding="utf-8")
    print(f"profile plot: {folder / stem}.png")
    print(f"HTML report: {folder / stem}.html")
