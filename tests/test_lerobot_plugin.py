"""The LeRobot plugin: tiny random-weight checkpoints of every main type, run on PushT.

Offline and on CPU: checkpoints are written by ``save_pretrained`` in the test
(``tests/lerobot_testkit.py``); the VLM config, processor and tokenizers LeRobot loads by hub
name are local stand-ins in a temporary hub cache with the hub offline.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lerobot")
pytest.importorskip("gym_pusht")

import lerobot_testkit as tk
from conftest import CLI
from vlabench_plugins import lerobot as plugin
from vlabench_plugins.lerobot import hub

from vlabench import api
from vlabench.catalog import load_catalog
from vlabench.execute.runner import Runner
from vlabench.plan.compat import build_adapters, check, policy_request
from vlabench.plan.jobs import plan
from vlabench.plan.resolve import resolve_policy, resolve_suite
from vlabench.registry import load_registry
from vlabench.store import open_store

SPACES = "{action_space: pixel_xy_512, state_space: pixel_xy_512}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """Stand-ins, one small checkpoint per type, a registry file and a catalog."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("lerobot")
    with tk.lerobot_offline(root / "hf"):
        ckpts = {kind: tk.build_checkpoint(kind, root / kind) for kind in tk.KINDS}
        ckpts["joints6"] = tk.build_checkpoint("act", root / "joints6", action_dim=6)
        ckpts["pi05_no_q"] = tk.build_checkpoint("pi05", root / "pi05_no_q", stats="no_quantiles")
        ckpts["act_no_stats"] = tk.build_checkpoint("act", root / "act_no_stats", stats="none")
        lines = [
            "version: 1",
            "suites:",
            "  tiny_pusht: {env: pusht, episodes: 2, max_steps: 5, seed: 0}",
            "policies:",
        ]
        for kind in tk.KINDS:
            entry = f"{{type: {kind}, checkpoint: {ckpts[kind]}, options: {SPACES}}}"
            lines.append(f"  t_{kind}: {entry}")
        lines += [
            f"  joints6: {{type: act, checkpoint: {ckpts['joints6']},",
            "            options: {action_space: so100_joint_pos, state_space: pixel_xy_512}}",
            f"  joints6_adapted: {{type: act, checkpoint: {ckpts['joints6']},",
            "            options: {action_space: so100_joint_pos, state_space: pixel_xy_512}}",
            f"  pi05_no_q: {{type: pi05, checkpoint: {ckpts['pi05_no_q']}, options: {SPACES}}}",
            "  offline_hub: {type: smolvla, checkpoint: lerobot/smolvla_base}",
            "adapters:",
            "  - policy: joints6_adapted",
            "    env: pusht",
            "    steps: [{type: select_action_dims, indices: [0, 1], space: pixel_xy_512}]",
        ]
        registry_file = root / "registry.yaml"
        registry_file.write_text("\n".join(lines) + "\n")
        catalog = load_catalog(allow={"pusht", "lerobot"})
        yield {
            "root": root,
            "ckpts": ckpts,
            "registry_file": registry_file,
            "registry": load_registry([registry_file]),
            "catalog": catalog,
        }


def _run(world: dict, preset: str, tmp_path: Path, batch_size: int = 2):
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    pairs = plan([preset], ["tiny_pusht"], world["registry"], world["catalog"])
    assert pairs[0].runnable, pairs[0].reason
    [result] = Runner(store, world["catalog"], batch_size=batch_size).run_pairs(pairs)
    return store, result


def test_every_lerobot_type_is_offered_without_importing_lerobot() -> None:
    names = [s.name for s in plugin.vlabench_policies()]
    assert names[:5] == ["smolvla", "act", "diffusion", "pi0", "pi05"]
    assert {"tdmpc", "vqbet", "pi0_fast"} <= set(names)  # listed generically from LeRobot
    assert len(names) == len(set(names))


@pytest.mark.parametrize("kind", tk.KINDS)
def test_checkpoint_runs_on_pusht_and_episodes_are_stored(
    world: dict, kind: str, tmp_path: Path
) -> None:
    with tk.lerobot_offline(world["root"] / "hf"):
        store, result = _run(world, f"t_{kind}", tmp_path)
    assert result.status == "finished", result.error
    episodes = store.episodes(result.run_id)
    assert [e["episode_index"] for e in episodes] == [0, 1]
    for episode in episodes:
        assert episode["failure_reason"] is None
        assert episode["steps"] == 5
        assert episode["latency_p50_ms"] > 0
    run = store.get_run(result.run_id)
    assert run["checkpoint_hash"].startswith("sha256:")
    assert run["policy_type"] == kind


@pytest.mark.parametrize("kind", ["act", "smolvla"])
def test_lerobot_chunks_run_under_async_inference(world: dict, kind: str, tmp_path: Path) -> None:
    """A real LeRobot chunk through the async schedule: requested ahead, merged, stored."""
    from vlabench.runtime.inference import InferenceConfig

    inference = InferenceConfig("async", latency="100", chunk_threshold=0.5)
    with tk.lerobot_offline(world["root"] / "hf"):
        store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
        pairs = plan(
            [f"t_{kind}"], ["tiny_pusht"], world["registry"], world["catalog"],
            max_steps=12, inference=inference,
        )
        [result] = Runner(store, world["catalog"], batch_size=2).run_pairs(pairs)
    assert result.status == "finished", result.error
    chunk = world["catalog"].policies[kind].describe(
        policy_request(pairs[0].runs[0], world["catalog"])
    ).chunk_size
    for episode in store.episodes(result.run_id):
        assert episode["failure_reason"] is None and episode["steps"] == 12
        metrics = episode["metrics"]
        assert metrics["inference.latency_ms"] == 100  # 1 step at PushT's 10 Hz
        assert metrics["inference.calls"] >= 12 // max(1, chunk // 2)
    assert store.get_run(result.run_id)["inference_mode"] == "async"


def test_describe_reads_features_from_the_config_without_weights(
    world: dict, tmp_path: Path
) -> None:
    small = tmp_path / "diffusion"
    shutil.copytree(world["ckpts"]["diffusion"], small)
    (small / "model.safetensors").unlink()  # describe never needs the weights
    env = world["catalog"].envs["pusht"].interface({})
    request = api.PolicyRequest("diffusion", str(small), {"n_action_steps": 2}, env)
    iface = plugin.describe(request)
    names = {f.name: f for f in iface.inputs}
    assert names["observation.images.top"].shape == (96, 96, 3)
    assert names["observation.state"].shape == (2,)
    assert names["observation.state"].space == "unknown"
    assert iface.action.shape == (2,) and iface.action.space == "unknown"
    assert (iface.action.low, iface.action.high) == ((0.0, 0.0), (512.0, 512.0))
    assert (iface.n_obs_steps, iface.chunk_size, iface.n_action_steps) == (2, 2, 2)
    smolvla = plugin.describe(
        api.PolicyRequest("smolvla", str(world["ckpts"]["smolvla"]), {}, env)
    )
    assert api.TASK_KEY in {f.name for f in smolvla.inputs}
    assert (smolvla.chunk_size, smolvla.n_action_steps) == (8, 4)


def test_result_changing_options_are_in_the_config_hash(world: dict) -> None:
    reg, cat = world["registry"], world["catalog"]
    base = resolve_suite("tiny_pusht", resolve_policy("t_pi0", reg, cat), reg, cat)[0]
    preset = reg.policies["t_pi0"]
    hashes = {base.config_hash()}
    for extra in ({"n_action_steps": 2}, {"num_steps": 4}, {"dtype": "bfloat16"}):
        reg.policies["t_pi0_opt"] = preset.model_copy(update={"options": preset.options | extra})
        choice = resolve_policy("t_pi0_opt", reg, cat)
        hashes.add(resolve_suite("tiny_pusht", choice, reg, cat)[0].config_hash())
    reg.policies.pop("t_pi0_opt")
    assert len(hashes) == 4


def test_options_reach_the_loaded_policy(world: dict) -> None:
    env = world["catalog"].envs["pusht"].interface({})
    options = {"n_action_steps": 2, "num_steps": 3, **{"action_space": "pixel_xy_512"}}
    with tk.lerobot_offline(world["root"] / "hf"):
        policy = plugin.load(api.PolicyRequest("pi0", str(world["ckpts"]["pi0"]), options, env))
    assert policy.interface.n_action_steps == 2
    assert policy.policy.config.num_inference_steps == 3
    with pytest.raises(hub.PresetError, match="unknown option"):
        plugin.describe(api.PolicyRequest("act", str(world["ckpts"]["act"]), {"steps": 3}, env))
    with pytest.raises(hub.PresetError, match="no denoising-step setting"):
        plugin.describe(
            api.PolicyRequest("act", str(world["ckpts"]["act"]), {"num_steps": 3}, env)
        )


def test_torch_threads_come_from_the_request_only(
    world: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PolicyRequest.threads`` (``--torch-threads``) sets torch's threads; unset keeps them,
    and no environment variable does anything."""
    import torch

    env = world["catalog"].envs["pusht"].interface({})
    ckpt = str(world["ckpts"]["act"])
    monkeypatch.setenv("VLABENCH_TORCH_THREADS", "3")  # the old variable: ignored
    try:
        with tk.lerobot_offline(world["root"] / "hf"):
            plugin.load(api.PolicyRequest("act", ckpt, {}, env))
            assert torch.get_num_threads() == 1  # unset: left as it was
            plugin.load(api.PolicyRequest("act", ckpt, {}, env, threads=2))
            assert torch.get_num_threads() == 2
            with pytest.raises(ValueError, match="positive int"):
                plugin.load(api.PolicyRequest("act", ckpt, {}, env, threads=0))
    finally:
        torch.set_num_threads(1)


def test_joint_action_checkpoint_is_incompatible_with_pusht_until_adapted(
    world: dict, tmp_path: Path
) -> None:
    cli = CLI(tmp_path)
    proc = cli("--registry", str(world["registry_file"]), "check", "joints6", "pusht", ok=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "incompatible" in proc.stdout
    assert "action dimension: policy (6,), env (2,)" in proc.stdout
    assert "action space: policy so100_joint_pos, env pixel_xy_512" in proc.stdout
    proc = cli("--registry", str(world["registry_file"]), "check", "joints6_adapted", "pusht")
    assert "compatible" in proc.stdout and "SelectActionDims" in proc.stdout
    with tk.lerobot_offline(world["root"] / "hf"):
        store, result = _run(world, "joints6_adapted", tmp_path, batch_size=1)
    assert result.status == "finished", result.error
    assert [e["failure_reason"] for e in store.episodes(result.run_id)] == [None, None]


def test_adapter_maps_the_declared_action_feature(world: dict) -> None:
    steps = [{"type": "select_action_dims", "indices": [1, 0], "space": "pixel_xy_512"}]
    env = world["catalog"].envs["pusht"].interface({})
    request = api.PolicyRequest("act", str(world["ckpts"]["joints6"]), {}, env)
    result = check(plugin.describe(request), env, build_adapters(steps, world["catalog"]))
    assert [m.what for m in result.mismatches] == ["observation.state space"]
    [step] = build_adapters(steps, world["catalog"])
    actions = np.arange(12, dtype=np.float32).reshape(2, 6)
    assert step.action(actions).tolist() == [[1.0, 0.0], [7.0, 6.0]]
    bad = build_adapters([{"type": "select_action_dims", "indices": [6]}], world["catalog"])
    with pytest.raises(ValueError, match="index 6 out of range"):
        check(plugin.describe(request), env, bad)


def test_offline_hub_error_is_one_line(world: dict, tmp_path: Path) -> None:
    env = world["catalog"].envs["pusht"].interface({})
    request = api.PolicyRequest("smolvla", "lerobot/smolvla_base", {}, env)
    with tk.offline_hub(world["root"] / "hf"), pytest.raises(hub.HubUnreachable) as info:
        plugin.describe(request)
    message = "cannot reach the hub for lerobot/smolvla_base; pass a local directory"
    assert str(info.value) == message
    cli = CLI(tmp_path)
    cli.env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty-hf"))
    cli.env.pop("HF_HUB_CACHE", None)
    proc = cli("--registry", str(world["registry_file"]), "check", "offline_hub", "pusht", ok=False)
    assert proc.returncode != 0
    assert proc.stderr.strip() == f"error: {message}"


def test_checkpoint_without_the_stats_its_normalisation_needs_is_refused(world: dict) -> None:
    env = world["catalog"].envs["pusht"].interface({})
    request = api.PolicyRequest("pi05", str(world["ckpts"]["pi05_no_q"]), {}, env)
    with pytest.raises(hub.CheckpointError, match=r"action \(QUANTILES\) needs q01/q99"):
        plugin.describe(request)
    request = api.PolicyRequest("act", str(world["ckpts"]["act_no_stats"]), {}, env)
    with pytest.raises(hub.CheckpointError, match=r"observation.state \(MEAN_STD\) needs mean/std"):
        plugin.load(request)
    [pair] = plan(["pi05_no_q"], ["tiny_pusht"], world["registry"], world["catalog"])
    assert pair.status == "failed" and "q01/q99" in pair.reason


def test_wrong_type_and_missing_checkpoint_are_clear(world: dict, tmp_path: Path) -> None:
    env = world["catalog"].envs["pusht"].interface({})
    with pytest.raises(hub.CheckpointError, match="is a 'act' policy, the preset asks for type"):
        plugin.describe(api.PolicyRequest("pi0", str(world["ckpts"]["act"]), {}, env))
    with pytest.raises(hub.CheckpointError, match="neither a directory nor a hub id"):
        plugin.describe(api.PolicyRequest("act", str(tmp_path / "nope" / "x" / "y"), {}, env))


def test_registry_presets_resolve_to_hub_ids_with_valid_options(world: dict) -> None:
    from vlabench_plugins.lerobot import features

    registry = load_registry()
    presets = {
        name: p for name, p in registry.policies.items() if p.type in plugin.MAIN_TYPES
    }
    expected = {"smolvla_base", "smolvla_libero", "pi0_libero", "pi05_libero", "diffusion_pusht"}
    assert expected <= set(presets)
    for name, preset in presets.items():
        choice = resolve_policy(name, registry, world["catalog"])
        assert choice.plugin == "lerobot"
        features.check_options(preset.options, name)
        if name in expected:
            assert hub.is_hub_id(hub.split_revision(preset.checkpoint)[0]), name
            assert preset.options["action_space"] != features.UNKNOWN_SPACE


def test_a_resize_step_in_the_preprocessor_accepts_any_camera_size(
    world: dict, tmp_path: Path
) -> None:
    """A checkpoint trained at 96 px wants 96 px frames, until its saved preprocessor resizes
    them with LeRobot's own step (``add_resize_step``); the policy then runs on 480 px."""
    from vlabench_plugins.lerobot.resize import add_resize_step

    ckpt = tmp_path / "act"
    shutil.copytree(world["ckpts"]["act"], ckpt)
    env = world["catalog"].envs["pusht"].interface({})
    request = api.PolicyRequest("act", str(ckpt), {}, env)
    image = "observation.images.top"
    assert {f.name: f for f in plugin.describe(request).inputs}[image].shape == (96, 96, 3)
    add_resize_step(ckpt, 96)
    add_resize_step(ckpt, 96)  # replaced, not added twice
    pipeline = json.loads((ckpt / "policy_preprocessor.json").read_text())
    steps = [s["registry_name"] for s in pipeline["steps"]]
    assert steps.count("image_crop_resize_processor") == 1
    assert steps.index("image_crop_resize_processor") == steps.index("normalizer_processor") - 1
    assert {f.name: f for f in plugin.describe(request).inputs}[image].shape is None
    from vlabench_plugins.dataset.record import resize_images

    frame = np.random.default_rng(0).integers(0, 256, (480, 480, 3), dtype=np.uint8)
    state = np.full((1, 2), 256.0, np.float32)
    policy = plugin.load(request)
    policy.reset()
    full = policy.select_action({image: frame[None], "observation.state": state})
    policy.reset()
    small = resize_images([frame], 96)  # what `vlabench record --resize 96` writes
    recorded = policy.select_action({image: small, "observation.state": state})
    assert full.shape == recorded.shape == (1, 2)
    np.testing.assert_allclose(full, recorded, atol=1.0)  # pixels: 8-bit rounding apart


def test_a_stochastic_policy_draws_the_same_noise_for_the_same_episode_step(world: dict) -> None:
    """Diffusion samples from torch's global generator; each call seeds it from the episodes
    and steps it serves, so a run repeats itself whatever ran before it in the process."""
    import torch

    env = world["catalog"].envs["pusht"].interface({})
    request = api.PolicyRequest("diffusion", str(world["ckpts"]["diffusion"]), {}, env)
    policy = plugin.load(request)
    t = policy.interface.n_obs_steps
    rng = np.random.default_rng(1)
    obs = {"observation.images.top": rng.integers(0, 256, (2, t, 96, 96, 3), dtype=np.uint8),
           "observation.state": rng.uniform(0, 512, (2, t, 2)).astype(np.float32)}  # fmt: skip

    def chunk(steps: list[int]) -> np.ndarray:
        batch = {**obs, api.EPISODE_INDEX_KEY: np.array([0, 1]),
                 api.EPISODE_STEP_KEY: np.array(steps)}  # fmt: skip
        return policy.predict_action_chunk(batch)

    first = chunk([0, 4])
    torch.manual_seed(99)
    torch.rand(5)  # whatever else used the generator in between
    np.testing.assert_array_equal(chunk([0, 4]), first)
    assert not np.allclose(chunk([0, 8]), first)  # another step: other noise, other actions
    unseeded = {k: v for k, v in obs.items()}
    a, b = policy.predict_action_chunk(unseeded), policy.predict_action_chunk(unseeded)
    assert not np.allclose(a, b)  # without episodes and steps, nothing is seeded
