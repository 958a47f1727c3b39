"""`vlabench sweep`: evaluate every checkpoint of a training run; print the learning curve."""

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from vlabench.cli import options as opts
from vlabench.cli.app import app, console, context, fail


def checkpoints(paths: list[Path]) -> list[tuple[str, int, Path]]:
    """``(training run, step, checkpoint dir)`` for each path: a LeRobot training output
    (``RUN/checkpoints/<step>/pretrained_model``, ``last`` skipped) or a checkpoint
    directory (its step from the first number in its or its parent's name, else its index)."""
    found = []
    for index, path in enumerate(paths):
        if (path / "checkpoints").is_dir():
            for step_dir in sorted((path / "checkpoints").iterdir()):
                model = step_dir / "pretrained_model"
                if step_dir.name.isdigit() and (model / "config.json").is_file():
                    found.append((path.name, int(step_dir.name), model))
        elif (path / "config.json").is_file():
            named = path.parent if path.name == "pretrained_model" else path
            number = re.search(r"\d+", named.name)
            run = named.parent.parent.name if named.parent.name == "checkpoints" else named.name
            found.append((run, int(number.group()) if number else index, path))
        else:
            raise fail(f"{path}: neither a training output (checkpoints/) nor a checkpoint")
    if not found:
        raise fail("no checkpoints found under " + ", ".join(map(str, paths)))
    return found


@app.command("sweep")
def sweep_cmd(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(help="Training output dirs (outputs/train/RUN) or checkpoints.")
    ],
    suite: Annotated[str, typer.Option("--suite", help="Suite from the registry.")],
    episodes: Annotated[int | None, opts.EPISODES] = None,
    max_steps: Annotated[int | None, opts.MAX_STEPS] = None,
    task: Annotated[
        list[str] | None, opts.TASKS
    ] = None,
    policy_options: Annotated[
        str | None,
        typer.Option(
            "--options",
            metavar="YAML",
            help="Preset options for every checkpoint, e.g. '{action_space: metaworld_ee_delta}'.",
        ),
    ] = None,
    env_option: Annotated[list[str] | None, opts.ENV_OVERRIDE] = None,
    batch_size: Annotated[int, opts.BATCH] = 1,
    png: Annotated[
        Path | None, typer.Option("--png", help="Also write the learning curve as a PNG.")
    ] = None,
) -> None:
    """Evaluate every checkpoint of LeRobot training runs on a suite.

    Each checkpoint is the policy RUN_STEP (type from its config.json);
    its runs store training_run and training_step. Checkpoints already
    in the store are skipped, so a re-run evaluates only new ones. One
    process, one LeRobot import. Prints success vs step (95% Wilson);
    `vlabench leaderboard -o FILE.html` shows the curves too.

    Example: vlabench sweep outputs/train/act_reach
    --suite metaworld_mt1_reach-v3 -n 20
    --options '{action_space: metaworld_ee_delta}'
    """
    import yaml

    from vlabench.evaluation import evaluate

    c = context(ctx)
    found = checkpoints(paths)
    try:
        options = yaml.safe_load(policy_options) if policy_options else {}
    except yaml.YAMLError as exc:
        raise fail(f"--options is not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(options, dict):
        raise fail("--options must be a YAML mapping, e.g. '{action_space: ...}'")
    env_options = opts.parse_env_options(env_option or [])
    from vlabench.store.engine import default_url

    c.store(write=True).close()  # created or upgraded here, or one line saying why not
    url = c.db or default_url()
    out = console()
    from rich.progress import Progress

    with Progress(console=out, disable=c.quiet, transient=True) as bar:
        job = bar.add_task("checkpoints", total=len(found))
        for run, step, path in found:
            try:
                evaluate(
                    path, suite, episodes, url, name=f"{run}_{step:06d}", options=options,
                    max_steps=max_steps, tasks=task, batch_size=batch_size,
                    env_options=env_options, registry=c.registry_files,
                    report_meta={"training_run": run, "training_step": step},
                )  # fmt: skip
            except ValueError as exc:
                raise fail(str(exc)) from None
            bar.advance(job)
    points = _points(url, suite, {run for run, _, _ in found})
    from vlabench.report.curves import to_png, to_text

    out.print(to_text(points), markup=False, highlight=False)
    if png is not None:
        png.write_bytes(to_png(points))
        out.print(f"learning curve: {png}", markup=False, highlight=False)


def _points(url: str, suite: str, runs: set[str]) -> list[Any]:
    from vlabench.report.curves import curve_points
    from vlabench.store import open_store

    with open_store(url, read_only=True) as store:
        stored = [
            r for r in store.runs(suite=suite)
            if (r.get("report_meta") or {}).get("training_run") in runs
        ]  # fmt: skip
        episodes = {r["id"]: store.episodes(r["id"]) for r in stored}
    return curve_points(stored, episodes)
