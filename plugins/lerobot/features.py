"""A LeRobot checkpoint's config and processor files -> vlabench features (no torch, no weights).

LeRobot checkpoints say which features a policy reads and writes and how they are normalised,
but not what the numbers mean. Presets declare that with options: ``action_space`` and
``state_space`` (space tags such as ``pixel_xy_512``); without them the tags are ``unknown``,
so the compatibility check names both sides instead of running a meaningless pair. Camera
names are mapped with ``rename_map: {env_key: policy_key}`` (LeRobot's ``rename_map``).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlabench import api

from .hub import CONFIG_FILE, CheckpointError, PresetError

UNKNOWN_SPACE = "unknown"
PREPROCESSOR_FILE = "policy_preprocessor.json"
RESIZE_STEP = "image_crop_resize_processor"
"""LeRobot's registered image resize step (see :mod:`.resize`)."""
POSTPROCESSOR_FILE = "policy_postprocessor.json"
REQUIRED_STATS = {
    "MEAN_STD": ("mean", "std"),
    "MIN_MAX": ("min", "max"),
    "QUANTILES": ("q01", "q99"),
    "QUANTILE10": ("q10", "q90"),
}
STEP_FIELDS = ("num_inference_steps", "num_steps")
"""Config fields holding the number of denoising / flow-matching steps, by policy type."""
OPTIONS = {
    "action_space": "space tag of the actions (default: unknown)",
    "state_space": "space tag of observation.state (default: unknown)",
    "environment_state_space": "space tag of observation.environment_state (default: unknown)",
    "rename_map": "{env_key: policy_key}: env observation names the checkpoint knows otherwise",
    "n_action_steps": "actions executed per chunk before the next inference (replanning)",
    "num_steps": "denoising / flow-matching steps per chunk",
    "dtype": "float32 | bfloat16 | float16 (Pi0/Pi0.5: their weights; others: autocast)",
    "compile": "torch.compile the model (true/false)",
    "revision": "hub revision (branch, tag or commit)",
}
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Checkpoint:
    """What ``describe`` reads from a checkpoint directory."""

    path: Path
    config: dict[str, Any]
    preprocessor: dict[str, Any] | None
    postprocessor: dict[str, Any] | None

    @property
    def type(self) -> str:
        return str(self.config.get("type", ""))


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not readable JSON: {exc}") from None


def read_checkpoint(path: Path) -> Checkpoint:
    """Read config.json and the processor pipelines of a checkpoint directory."""
    config = _read_json(path / CONFIG_FILE)
    if config is None:
        raise CheckpointError(f"checkpoint {path}: no {CONFIG_FILE}")
    return Checkpoint(
        path, config, _read_json(path / PREPROCESSOR_FILE), _read_json(path / POSTPROCESSOR_FILE)
    )


def safetensors_keys(path: Path) -> list[str]:
    """Tensor names in a safetensors file, read from its header (no tensor is loaded)."""
    try:
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
    except (OSError, struct.error, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file: {exc}") from None
    return [k for k in header if k != "__metadata__"]


def _stats_of(ckpt: Checkpoint, pipeline: dict[str, Any], registry_name: str) -> tuple:
    """(features, norm_map, {feature: set(stat names)}) of a pipeline's (un)normalizer step."""
    for step in pipeline.get("steps", []):
        if step.get("registry_name") != registry_name:
            continue
        cfg = step.get("config", {})
        found: dict[str, set[str]] = {}
        if step.get("state_file"):
            for key in safetensors_keys(ckpt.path / step["state_file"]):
                feature, _, stat = key.rpartition(".")
                found.setdefault(feature, set()).add(stat)
        return cfg.get("features", {}), cfg.get("norm_map", {}), found
    return None


def check_stats(ckpt: Checkpoint, where: str) -> None:
    """Refuse a checkpoint whose normalisation modes lack the stats they need.

    LeRobot silently skips normalisation of a feature without stats; a policy fed
    unnormalised numbers produces garbage, so this is an error here.
    """
    if ckpt.preprocessor is None or ckpt.postprocessor is None:
        raise CheckpointError(
            f"{where}: no {PREPROCESSOR_FILE} / {POSTPROCESSOR_FILE} (a checkpoint saved by "
            "LeRobot < 0.4 keeps its stats in the weights; convert it with LeRobot's "
            "lerobot/processor/migrate_policy_normalization.py)"
        )
    problems = []
    for pipeline, name in (
        (ckpt.preprocessor, "normalizer_processor"),
        (ckpt.postprocessor, "unnormalizer_processor"),
    ):
        found = _stats_of(ckpt, pipeline, name)
        if found is None:
            continue
        features, norm_map, stats = found
        for feature, spec in features.items():
            mode = norm_map.get(spec.get("type", ""), "IDENTITY")
            need = REQUIRED_STATS.get(mode, ())
            missing = [s for s in need if s not in stats.get(feature, set())]
            if missing:
                have = ", ".join(sorted(stats.get(feature, set()))) or "none"
                problems.append(f"{feature} ({mode}) needs {'/'.join(missing)}, has {have}")
    if problems:
        raise CheckpointError(
            f"{where}: normalisation stats missing in the processors: {'; '.join(problems)}"
        )


def check_options(options: Mapping[str, Any], where: str) -> None:
    """Unknown or malformed options are errors that list the known ones."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        known = ", ".join(sorted(OPTIONS))
        raise PresetError(f"{where}: unknown option(s) {unknown}; known: {known}")
    for key in ("n_action_steps", "num_steps"):
        value = options.get(key)
        bad = isinstance(value, bool) or not isinstance(value, int) or value < 1
        if value is not None and bad:
            raise PresetError(f"{where}: option {key!r} must be an int >= 1, got {value!r}")
    dtype = options.get("dtype", "float32")
    if dtype not in DTYPES:
        raise PresetError(f"{where}: option 'dtype' must be one of {DTYPES}, got {dtype!r}")
    if not isinstance(options.get("compile", False), bool):
        raise PresetError(f"{where}: option 'compile' must be true or false")
    rename = options.get("rename_map", {})
    if not isinstance(rename, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in rename.items()
    ):
        raise PresetError(f"{where}: option 'rename_map' must map env keys to policy keys")
    for key in ("action_space", "state_space", "environment_state_space", "revision"):
        value = options.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise PresetError(f"{where}: option {key!r} must be a non-empty string")


def _execution(ckpt: Checkpoint, options: Mapping[str, Any], where: str) -> tuple[int, int, int]:
    """(n_obs_steps, chunk_size, n_action_steps) with the ``n_action_steps`` override."""
    cfg = ckpt.config
    n_obs = int(cfg.get("n_obs_steps") or 1)
    if cfg.get("temporal_ensemble_coeff") is not None:
        raise CheckpointError(
            f"{where}: ACT temporal ensembling keeps per-episode state inside the policy, "
            "which vlabench's batched rollout does not support"
        )
    n_action = int(cfg.get("n_action_steps") or 1)
    # Diffusion returns its n_action_steps actions per chunk, the others chunk_size actions
    chunk = n_action if ckpt.type == "diffusion" else int(cfg.get("chunk_size") or n_action)
    limit = chunk
    if ckpt.type == "diffusion":
        limit = int(cfg.get("horizon", n_action)) - n_obs + 1
    override = options.get("n_action_steps")
    if override is not None:
        if override > limit:
            raise PresetError(
                f"{where}: option n_action_steps={override} exceeds what the checkpoint "
                f"predicts per chunk ({limit})"
            )
        n_action = override
        if ckpt.type == "diffusion":
            chunk = override
    return n_obs, chunk, n_action


def resizes_images(ckpt: Checkpoint) -> bool:
    """Whether the policy, or a resize step of its preprocessor (LeRobot's
    ``image_crop_resize_processor``), resizes images: then any camera resolution is accepted."""
    config = ckpt.config
    steps = (ckpt.preprocessor or {}).get("steps", [])
    return bool(
        config.get("resize_imgs_with_padding")
        or config.get("image_resolution")
        or config.get("resize_shape")
        or any(
            s.get("registry_name") == RESIZE_STEP
            and (s.get("config") or {}).get("resize_size")
            for s in steps
        )
    )


def reads_language(ckpt: Checkpoint) -> bool:
    """Whether the preprocessor tokenises the task instruction."""
    steps = (ckpt.preprocessor or {}).get("steps", [])
    return any("tokenizer" in str(s.get("registry_name", "")) for s in steps)


def _action_bounds(ckpt: Checkpoint) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The action range seen in training (stats min/max), when the postprocessor has it."""
    import numpy as np

    if ckpt.postprocessor is None:
        return None
    for step in ckpt.postprocessor.get("steps", []):
        if step.get("registry_name") != "unnormalizer_processor" or not step.get("state_file"):
            continue
        path = ckpt.path / step["state_file"]
        if not {"action.min", "action.max"} <= set(safetensors_keys(path)):
            return None
        from safetensors.numpy import load_file

        stats = load_file(str(path))
        low, high = (np.asarray(stats[k], float).reshape(-1) for k in ("action.min", "action.max"))
        return tuple(map(float, low)), tuple(map(float, high))
    return None


def interface(ckpt: Checkpoint, options: Mapping[str, Any], where: str) -> api.PolicyInterface:
    """The checkpoint's inputs and action as vlabench features, under the preset's options."""
    cfg = ckpt.config
    to_env = {policy: env for env, policy in (options.get("rename_map") or {}).items()}
    any_size = resizes_images(ckpt)
    inputs: list[api.Feature] = []
    for key, spec in (cfg.get("input_features") or {}).items():
        kind, shape = spec.get("type"), tuple(spec.get("shape") or ())
        name = to_env.get(key, key)
        if kind == "VISUAL":
            if "empty_camera" in key:
                continue  # filled by the policy itself
            hwc = None if any_size or len(shape) != 3 else (shape[1], shape[2], shape[0])
            inputs.append(api.Feature(name, "image", hwc, "uint8", "rgb", description=key))
        elif kind in ("STATE", "ENV"):
            space = options.get(
                "state_space" if kind == "STATE" else "environment_state_space", UNKNOWN_SPACE
            )
            inputs.append(api.Feature(name, "state", shape, "float32", space, description=key))
    if reads_language(ckpt):
        inputs.append(api.Feature(api.TASK_KEY, "language", None, "str"))
    outputs = cfg.get("output_features") or {}
    action_spec = outputs.get(api.ACTION_KEY)
    if not action_spec:
        raise CheckpointError(f"{where}: the config declares no 'action' output feature")
    bounds = _action_bounds(ckpt)
    action = api.Feature(
        api.ACTION_KEY,
        "action",
        tuple(action_spec.get("shape") or ()),
        "float32",
        options.get("action_space", UNKNOWN_SPACE),
        low=bounds[0] if bounds else None,
        high=bounds[1] if bounds else None,
        description=f"LeRobot {ckpt.type} action",
    )
    n_obs, chunk, n_action = _execution(ckpt, options, where)
    return api.PolicyInterface(
        inputs=tuple(inputs),
        action=action,
        n_obs_steps=n_obs,
        chunk_size=chunk,
        n_action_steps=n_action,
    )


def check_type(ckpt: Checkpoint, policy_type: str, where: str) -> None:
    """The checkpoint's config must be of the preset's policy type."""
    if ckpt.type != policy_type:
        raise CheckpointError(
            f"{where}: the checkpoint is a {ckpt.type or 'untyped'!r} policy, "
            f"the preset asks for type {policy_type!r}"
        )


def check_step_option(ckpt: Checkpoint, options: Mapping[str, Any], where: str) -> str | None:
    """The config field the ``num_steps`` option sets (error if the type has none)."""
    if options.get("num_steps") is None:
        return None
    field = next((f for f in STEP_FIELDS if f in ckpt.config), None)
    if field is None:
        raise PresetError(f"{where}: policy type {ckpt.type!r} has no denoising-step setting")
    return field
