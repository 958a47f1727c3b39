"""The ``*_lerobot`` LIBERO suites compute the 8-d state exactly as ``lerobot-eval``.

LeRobot's ``LiberoProcessorStep`` casts the float64 quaternion to float32 before the
axis-angle; vlabench's default computes it in float64. The test checks bit equality of
``lerobot_state(raw, "lerobot")`` with LeRobot's own processor step on many quaternions
(including near-null rotations), and that the float64 default really differs (so the option
matters), without building a simulator.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("lerobot")
torch = pytest.importorskip("torch")


def _raws(n: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    raws = []
    for i in range(n):
        q = rng.normal(size=4)
        if i % 7 == 0:  # close to the identity: den near the 1e-10 threshold
            q = np.array([1e-9 * rng.normal(), 0.0, 0.0, 1.0])
        q /= np.linalg.norm(q)
        raws.append({
            "robot0_eef_pos": rng.normal(size=3) * 0.3,
            "robot0_eef_quat": q.astype(np.float64),
            "robot0_gripper_qpos": rng.normal(size=2) * 0.04,
        })  # fmt: skip
    return raws


def _lerobot_states(raws: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The state LeRobot's pipeline produces: preprocess_observation + LiberoProcessorStep."""
    from lerobot.envs.utils import preprocess_observation
    from lerobot.processor.env_processor import LiberoProcessorStep

    def batch(key: str) -> np.ndarray:
        return np.stack([r[key] for r in raws])

    obs = {
        "pixels": {"image": np.zeros((len(raws), 4, 4, 3), np.uint8)},
        "robot_state": {
            "eef": {"pos": batch("robot0_eef_pos"), "quat": batch("robot0_eef_quat"),
                    "mat": np.zeros((len(raws), 3, 3))},
            "gripper": {"qpos": batch("robot0_gripper_qpos"),
                        "qvel": np.zeros((len(raws), 2))},
            "joints": {"pos": np.zeros((len(raws), 7)), "vel": np.zeros((len(raws), 7))},
        },
    }  # fmt: skip
    processed = LiberoProcessorStep()._process_observation(preprocess_observation(obs))
    return processed["observation.state"].numpy()


def test_lerobot_arithmetic_is_bit_identical_to_lerobot_eval() -> None:
    from vlabench_plugins.libero.env import lerobot_state

    raws = _raws(300)
    theirs = _lerobot_states(raws)
    ours = np.stack([lerobot_state(r, "lerobot") for r in raws])
    assert ours.dtype == theirs.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)
    # the default (float64 quaternion) is what vlabench's standard suites use: it differs
    default = np.stack([lerobot_state(r) for r in raws])
    assert np.any(default != theirs)
    assert np.max(np.abs(default - theirs)) < 1e-5


def test_lerobot_suites_use_lerobots_pipeline() -> None:
    """Every ``*_lerobot`` suite: LeRobot's state arithmetic, hard resets, 10 settle steps."""
    from vlabench.registry import load_registry

    reg = load_registry()
    names = [n for n in reg.suites if n.startswith("libero_") and n.endswith("_lerobot")]
    assert len(names) == 5
    for name in names:
        suite = reg.suites[name]
        assert suite.env_options["state_arithmetic"] == "lerobot", name
        assert suite.env_options["hard_reset"] is True, name
        assert suite.settle_steps == 10 and suite.seed == 1000, name
