"""The trained reference ACT (tests/fixtures/metaworld_act_ref, SOURCE.md) really succeeds.

Evaluated through ``vlabench.evaluate`` on button-press-topdown-v3 (state only): the
random policy never presses the button in 500 steps, this checkpoint does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

pytest.importorskip("lerobot")
pytest.importorskip("metaworld")

CKPT = Path(__file__).parent / "fixtures" / "metaworld_act_ref"
SPACES = {
    "action_space": "metaworld_ee_delta",
    "state_space": "metaworld_hand_xyz_gripper",
    "environment_state_space": "metaworld_obs39",
}


def test_checkpoint_is_the_recorded_one() -> None:
    source = (CKPT / "SOURCE.md").read_text()
    digest = hashlib.sha256((CKPT / "model.safetensors").read_bytes()).hexdigest()
    assert f"{digest}  model.safetensors" in source
    assert (CKPT / "model.safetensors").stat().st_size < 5_000_000


def test_reference_act_succeeds_where_random_does_not() -> None:
    import vlabench

    trained = vlabench.evaluate(
        CKPT, "metaworld_mt10", episodes=5, options=SPACES, name="act_ref",
        tasks=["button-press-topdown-v3"], env_options={"cameras": []},
    )  # fmt: skip
    assert trained.summary.errored == 0
    assert trained.summary.successes >= 2, trained.summary
    wins = [e for e in trained.episodes if e["success"]]
    assert all(e["steps"] < 200 for e in wins)  # pressed early, then stopped on success
    random = vlabench.evaluate(
        "random", "metaworld_mt10", episodes=5, tasks=["button-press-topdown-v3"],
        env_options={"cameras": []},
    )  # fmt: skip
    assert random.summary.successes == 0
