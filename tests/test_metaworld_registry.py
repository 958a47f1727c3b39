"""registry.yaml's Meta-World suites agree with metaworld (MT10, tasks) and LeRobot (groups)."""

from __future__ import annotations

import os

import pytest

from vlabench.execute.local import requested_features
from vlabench.plan.compat import check
from vlabench.registry import load_registry
from vlabench.runtime.adapters import AdapterPipeline

os.environ.setdefault("MUJOCO_GL", "egl")
pytest.importorskip("metaworld")

from vlabench_plugins import metaworld as mw
from vlabench_plugins.metaworld import expert, tasks
from vlabench_plugins.metaworld.features import ENV_STATE_KEY, TASK_NAME_KEY


def test_suites_match_metaworld_and_lerobot() -> None:
    from metaworld.env_dict import MT10_V3

    suites = load_registry().suites
    mw_suites = {name: s for name, s in suites.items() if s.env == "metaworld"}
    assert mw_suites["metaworld_mt10"].tasks == list(MT10_V3)
    assert mw_suites["metaworld_mt50"].tasks is None  # every task the env lists: all 50
    groups = tasks.difficulty_groups()
    assert {d: len(groups[d]) for d in tasks.DIFFICULTIES} == {
        "easy": 28,
        "medium": 11,
        "hard": 6,
        "very_hard": 5,
    }
    for difficulty in tasks.DIFFICULTIES:
        assert mw_suites[f"metaworld_{difficulty}"].tasks == list(groups[difficulty])
    assert sorted(t for g in groups.values() for t in g) == sorted(tasks.task_names())
    for task in tasks.task_names():
        assert mw_suites[f"metaworld_mt1_{task}"].tasks == [task]
    assert len(mw_suites) == 2 + 4 + 50
    for name, suite in mw_suites.items():
        mw.SPEC.interface(suite.env_options)  # valid options
        assert (suite.max_steps or mw.SPEC.max_episode_steps) == 500, name
        assert suite.seed == 1000, name
    assert load_registry().policies["metaworld-expert"].type == "metaworld-expert"


def test_expert_is_compatible_and_reads_only_state() -> None:
    iface = mw.SPEC.interface(load_registry().suites["metaworld_mt10"].env_options)
    described = expert.describe(None)  # type: ignore[arg-type]
    assert check(described, iface).ok
    policy = expert.load(None)  # type: ignore[arg-type]
    wanted = requested_features(iface.observation, policy, AdapterPipeline([]))
    assert wanted == [ENV_STATE_KEY, TASK_NAME_KEY]  # no camera: nothing is rendered
    no_state = iface.__class__(
        observation=tuple(f for f in iface.observation if f.name != ENV_STATE_KEY),
        action=iface.action,
        fps=iface.fps,
    )
    result = check(described, no_state)
    assert not result.ok and ENV_STATE_KEY in result.reason()
