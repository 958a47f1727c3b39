"""Offline evaluation on LeRobotDatasets: held-out episodes replayed open-loop.

The ``dataset`` env feeds a policy the recorded observations of a dataset's held-out episodes
and scores its actions against the recorded ones (MSE and L1, raw and normalised, per action
dimension and over the chunk horizon; see :mod:`.metrics`). Its suites get leaderboard columns
of these errors (lower is better) instead of a success rate: nothing here pretends to know
whether the robot would have succeeded. LeRobot is imported only when a dataset is opened.
"""

from __future__ import annotations

from vlabench import api, hookimpl

from . import assets, env, record
from .metrics import COLUMNS

ENV_NAME = "dataset"

SPEC = api.EnvSpec(
    name=ENV_NAME,
    description="Open-loop replay of a LeRobotDataset's held-out episodes (action errors).",
    make=env.make,
    interface=env.interface,
    tasks=env.tasks,
    max_episode_steps=env.MAX_EPISODE_STEPS,
    success="ever",
    requires=("lerobot", "av"),
    install_hint="pip install 'lerobot[dataset]'",
    packages=("lerobot", "datasets", "av"),
    preflight=env.preflight,
    metric_columns=COLUMNS,
    options=env.DatasetOptions,
)


@hookimpl
def vlabench_envs() -> list[api.EnvSpec]:
    """The ``dataset`` replay env."""
    return [SPEC]


@hookimpl
def vlabench_assets() -> list[api.AssetSpec]:
    """The SO-100 datasets of the registry's suites (``vlabench assets so100``)."""
    return [assets.SPEC]


@hookimpl
def vlabench_recorders() -> list[api.RecorderSpec]:
    """LeRobotDataset v3.0, written by LeRobot's own writer (``vlabench record``)."""
    return [
        api.RecorderSpec(
            name="lerobot",
            description="LeRobotDataset v3.0 (LeRobot's writer; videos H.264)",
            write=record.write_recording,
        )
    ]
