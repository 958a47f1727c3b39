"""`vlabench record`: roll a policy out on a suite and write the episodes as a dataset."""

from pathlib import Path
from typing import Annotated

import typer

from vlabench.cli import options as opts
from vlabench.cli.app import app, console, context, fail, load_registry


@app.command("record")
def record_cmd(
    ctx: typer.Context,
    policy: Annotated[str, typer.Argument(help="Policy preset or type (e.g. metaworld-expert).")],
    suite: Annotated[str, typer.Option("--suite", help="Suite from the registry.")],
    out: Annotated[Path, typer.Option("--out", help="Dataset directory (must not exist).")],
    episodes: Annotated[int | None, opts.EPISODES] = None,
    max_steps: Annotated[int | None, opts.MAX_STEPS] = None,
    task: Annotated[
        list[str] | None, opts.TASKS
    ] = None,
    only_success: Annotated[
        bool, typer.Option("--only-success", help="Keep only the episodes that succeeded.")
    ] = False,
    image_size: Annotated[
        int | None,
        typer.Option(
            "--image-size", min=8, max=4096, help="Cameras at N x N (the env's image_size)."
        ),
    ] = None,
    resize: Annotated[
        int | None,
        typer.Option(
            "--resize", min=8, max=4096,
            help="Write cameras downsampled to N x N (antialiased, as LeRobot's resize step).",
        ),
    ] = None,
    observation: Annotated[
        list[str] | None,
        typer.Option(
            "--observation", metavar="KEY",
            help="Keep only these observation features (repeatable; default: all).",
        ),
    ] = None,
    env_option: Annotated[list[str] | None, opts.ENV_OVERRIDE] = None,
    repo_id: Annotated[
        str, typer.Option("--repo-id", help="The dataset's repo id (meta/info.json).")
    ] = "local/recorded",
) -> None:
    """Roll POLICY out on a suite and write a LeRobotDataset v3.0.

    LeRobot's own writer; the suite's seeds and init states, as in
    `vlabench run`. Each frame: the observation the policy saw (LeRobot's
    keys: observation.state, observation.images.*, ...), the action the
    env received and the task's instruction; fps is the env's. It loads
    with LeRobotDataset, trains with `lerobot-train --dataset.root=DIR`
    and replays in the `dataset` env.

    Example: vlabench record metaworld-expert --suite metaworld_mt10
    --task reach-v3 -n 20 --only-success --image-size 64 --out data/reach;
    only what lerobot-eval's Meta-World env gives, rendered at its 480 px
    and written at 96 px: ... --resize 96 --observation observation.state
    --observation observation.images.corner2
    """
    from vlabench.execute.recording import record_configs, write
    from vlabench.plan.jobs import plan
    from vlabench.registry import RegistryError

    c = context(ctx)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise fail(f"{out} exists; give a new directory to --out")
    overrides = opts.parse_env_options(env_option or [])
    if image_size is not None:
        overrides["image_size"] = image_size
    cat, reg = c.catalog(), load_registry(c)
    try:
        [pair] = plan(
            [policy], [suite], reg, cat, episodes=episodes, max_steps=max_steps, tasks=task,
            env_overrides=overrides,
        )  # fmt: skip
    except (RegistryError, ValueError) as exc:
        raise fail(str(exc)) from None
    if not pair.runnable:
        raise fail(f"{policy} x {suite}: {pair.status}: {pair.reason}")
    configs = pair.runs
    total = sum(cfg.protocol.episodes for cfg in configs)
    out_console = console()
    from rich.progress import Progress

    with Progress(console=out_console, disable=c.quiet, transient=True) as bar:
        job = bar.add_task("recording", total=total)
        try:
            recording = record_configs(
                configs, cat, only_success=only_success,
                on_episode=lambda record: bar.advance(job),
            )  # fmt: skip
            options = {"fps": recording.interface.fps, "repo_id": repo_id,
                       "robot_type": configs[0].env, "resize": resize,
                       "observations": observation}  # fmt: skip
            path = write(recording, cat, str(out), options)
        except (RegistryError, ValueError) as exc:
            raise fail(str(exc)) from None
    kept = len(recording.episodes)
    wins = sum(r.success for r in recording.records)
    frames = sum(len(e) for e in recording.episodes)
    out_console.print(
        f"{kept} episodes, {frames} frames ({wins}/{len(recording.records)} succeeded)",
        markup=False, highlight=False,
    )  # fmt: skip
    out_console.print(f"written to {path}", markup=False, highlight=False, soft_wrap=True)
