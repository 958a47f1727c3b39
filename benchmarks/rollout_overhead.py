"""Framework overhead: vlabench's runner (noop policy) vs a raw gymnasium loop, same episodes.

Every comparison runs the same episodes (seeds 1000.., the same actions, stop at success or
``--max-steps``) in this process, round robin, ``--repeats`` times, and prints medians and
the time ratio vlabench/raw. The vlabench side goes through the path of `vlabench run`:
registry -> plan -> check -> Runner -> rollout -> SQLite store (episodes written as they
finish), from planning on.

Two kinds of ratio:

* **same work**: both sides produce the same observations. ``render``: the runner is told
  the policy reads every feature (so the env renders its camera, as the raw loop does);
  ``state``: neither side renders. Target: within 3% (ratio <= 1.03).
* **what a user gets**: the raw loop renders the camera as a user's hand-written loop
  would, while vlabench renders only what the policy reads (the noop policy reads no image).

Envs: PushT (gym-pusht, noop = hold the agent position, 96x96 camera) and Meta-World
(``--mw-task``, noop = zero action, corner2 camera at ``--mw-image-size``; the rendering
sides run fewer steps, ``--mw-render-steps``, as a CPU renderer takes ~0.1 s a frame).
Both sides build their env in every timed run (the runner builds one per run); the raw
Meta-World env is built as the plugin and LeRobot build it (MT1 task, seeded resets) and
renders through a ``mujoco.Renderer`` as the plugin does.

    MUJOCO_GL=egl .venv/bin/python benchmarks/rollout_overhead.py --episodes 5 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")
warnings.filterwarnings("ignore", message="Constant")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Side, alternate  # noqa: E402

SEED = 1000


def pusht_raw(episodes: int, max_steps: int, render: bool) -> Side:
    """gym-pusht driven directly: hold the agent position; 96x96 pixels or the state only."""
    from gym_pusht.envs import PushTEnv

    def run() -> int:  # the env is built inside, as the runner builds its env for each run
        if render:
            env = PushTEnv(
                obs_type="pixels_agent_pos", observation_width=96, observation_height=96
            )
        else:
            env = PushTEnv(obs_type="state")
        steps = 0
        for i in range(episodes):
            obs, _ = env.reset(seed=SEED + i)
            for _ in range(max_steps):
                agent = obs["agent_pos"] if render else obs[:2]
                obs, _, terminated, truncated, info = env.step(np.asarray(agent, np.float32))
                steps += 1
                if terminated or truncated or info["is_success"]:
                    break
        env.close()
        return steps

    return run


def metaworld_raw(task: str, episodes: int, max_steps: int, render_size: int | None) -> Side:
    """metaworld + mujoco directly: the env built as LeRobot's (MT1 task, seeded resets),
    zero actions, optionally corner2 through a ``mujoco.Renderer`` (flipped), every step."""
    import mujoco
    from vlabench_plugins.metaworld.env import _build_inner

    action = np.zeros(4, np.float32)

    def run() -> int:  # the env is built inside, as the runner builds its env for each run
        env = _build_inner(task)
        env.model.cam_pos[2] = [0.75, 0.075, 0.7]  # LeRobot's corner2 position
        renderer = mujoco.Renderer(env.model, render_size, render_size) if render_size else None

        def render() -> None:
            if renderer is not None:
                renderer.update_scene(env.data, camera="corner2")
                np.flip(renderer.render(), (0, 1)).copy()

        steps = 0
        for i in range(episodes):
            env.seed(SEED + i)
            env.reset()
            render()
            for _ in range(max_steps):
                _, _, _, truncated, info = env.step(action)
                render()
                steps += 1
                if info["success"] or truncated:
                    break
        if renderer is not None:
            renderer.close()
        env.close()
        return steps

    return run


@contextlib.contextmanager
def policy_reads_everything(enabled: bool) -> Iterator[None]:
    """Make the runner request every env feature (the env then renders as the raw loop)."""
    from vlabench.execute import local as matrix

    original = matrix.requested_features
    if enabled:
        matrix.requested_features = lambda env_features, policy, adapters: [
            f.name for f in env_features
        ]
    try:
        yield
    finally:
        matrix.requested_features = original


def vlabench_side(
    suite: str,
    episodes: int,
    max_steps: int,
    render: bool,
    tasks: list[str] | None = None,
    policy: str = "noop",
    env_options: dict[str, Any] | None = None,
) -> Side:
    """`vlabench run --policy noop --suite SUITE` in-process, each time into a fresh store.

    Timed: planning (pair check), the runner (run rows, env build, rollout, an episode row
    written as each finishes). Not timed, as they are once per process or per store: loading
    the plugins and registry.yaml, creating the store (a migrated copy is put in place).
    """
    from vlabench.catalog import load_catalog
    from vlabench.execute.runner import Runner
    from vlabench.plan.jobs import plan
    from vlabench.registry import load_registry
    from vlabench.store import open_store

    catalog, registry = load_catalog(), load_registry()
    if env_options is not None:
        registry.suites[suite].env_options.update(env_options)
    tmp = Path(tempfile.mkdtemp(prefix="vlabench-bench-"))
    open_store(f"sqlite:///{tmp / 'template.db'}").close()
    counter = iter(range(10**6))

    def run() -> int:
        db = tmp / f"r{next(counter)}.db"
        shutil.copy(tmp / "template.db", db)
        with policy_reads_everything(render), open_store(f"sqlite:///{db}") as store:
            pairs = plan(
                [policy], [suite], registry, catalog, episodes=episodes, max_steps=max_steps,
                tasks=tasks,
            )  # fmt: skip
            [result] = Runner(store, catalog).run_pairs(pairs)
            assert result.status == "finished", result
            [run_row] = store.runs()
            return sum(e["steps"] for e in store.episodes(run_row["id"]))

    return run


RATIOS = {  # label: (vlabench side, raw side)
    "same work (render)": ("vlabench render", "raw render"),
    "same work (state)": ("vlabench state", "raw state"),
    "what a user gets": ("vlabench state, render steps", "raw render"),
}


def overhead(env: str, sides: dict[str, Side], repeats: int) -> list[dict[str, Any]]:
    """Alternate the sides of one env; one row per ratio of :data:`RATIOS`."""
    result = alternate(sides, repeats, same_counts=False)
    seconds, fastest, counts = result["seconds"], result["fastest"], result["counts"]
    rows = []
    for label, (vla, raw) in RATIOS.items():
        vla = vla if vla in sides else "vlabench state"
        if counts[vla] != counts[raw]:
            raise AssertionError(f"{env} {label}: {vla} took {counts[vla]} steps, {raw} "
                                 f"{counts[raw]}")  # fmt: skip
        rows.append(
            {
                "env": env,
                "comparison": label,
                "steps": counts[raw],
                "raw_s": seconds[raw],
                "vlabench_s": seconds[vla],
                "ratio": seconds[vla] / seconds[raw],
                "ratio_fastest": fastest[vla] / fastest[raw],
                "repeats": repeats,
            }
        )
    return rows


def pusht_sides(episodes: int, max_steps: int) -> dict[str, Side]:
    return {
        "raw render": pusht_raw(episodes, max_steps, True),
        "vlabench render": vlabench_side("pusht", episodes, max_steps, True),
        "raw state": pusht_raw(episodes, max_steps, False),
        "vlabench state": vlabench_side("pusht", episodes, max_steps, False),
    }


def metaworld_sides(
    task: str, episodes: int, state_steps: int, render_steps: int, size: int
) -> dict[str, Side]:
    """Rendering is slow on a CPU renderer: the render sides run ``render_steps`` steps."""
    options = {"cameras": ["corner2"], "image_size": size}
    suite = "metaworld_mt50"

    def vla(steps: int, render: bool) -> Side:
        return vlabench_side(suite, episodes, steps, render, [task], "noop", options)

    return {
        "raw render": metaworld_raw(task, episodes, render_steps, size),
        "vlabench render": vla(render_steps, True),
        "vlabench state, render steps": vla(render_steps, False),
        "raw state": metaworld_raw(task, episodes, state_steps, None),
        "vlabench state": vla(state_steps, False),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=5, help="PushT episodes")
    parser.add_argument("--max-steps", type=int, default=200, help="PushT steps per episode")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mw-task", default="reach-v3")
    parser.add_argument("--mw-episodes", type=int, default=2)
    parser.add_argument("--mw-max-steps", type=int, default=500, help="state-only sides")
    parser.add_argument("--mw-render-steps", type=int, default=20, help="rendering sides")
    parser.add_argument("--mw-image-size", type=int, default=128)
    parser.add_argument("--only", choices=("pusht", "metaworld"), help="one env only")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    if args.only in (None, "pusht"):
        rows += overhead("pusht", pusht_sides(args.episodes, args.max_steps), args.repeats)
    if args.only in (None, "metaworld"):
        sides = metaworld_sides(
            args.mw_task, args.mw_episodes, args.mw_max_steps, args.mw_render_steps,
            args.mw_image_size,
        )  # fmt: skip
        rows += overhead(f"metaworld {args.mw_task}", sides, args.repeats)
    print(f"noop policy, seeds {SEED}.., median of {args.repeats} (round robin); PushT "
          f"{args.episodes} x <= {args.max_steps} steps (96x96); Meta-World {args.mw_episodes} "
          f"x <= {args.mw_max_steps} steps, rendering {args.mw_episodes} x <= "
          f"{args.mw_render_steps} ({args.mw_image_size}x{args.mw_image_size} corner2)")
    print(f"{'env':<20} {'comparison':<20} {'steps':>6} {'raw s':>8} {'vlabench s':>10} "
          f"{'ratio':>6} {'fastest':>7}")  # fmt: skip
    for row in rows:
        print(f"{row['env']:<20} {row['comparison']:<20} {row['steps']:>6} {row['raw_s']:>8.3f} "
              f"{row['vlabench_s']:>10.3f} {row['ratio']:>6.3f} "
              f"{row['ratio_fastest']:>7.3f}")  # fmt: skip
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
