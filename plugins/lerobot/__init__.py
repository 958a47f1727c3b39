"""LeRobot policies as vlabench policies: ``smolvla``, ``act``, ``diffusion``, ``pi0``, ``pi05``
and every other type LeRobot's factory registers (found without importing LeRobot).

A preset names a type and a checkpoint (a local directory or a hub id, optionally
``org/name@revision``); the weights load through LeRobot's ``from_pretrained`` and run between
the checkpoint's own pre/post-processor pipelines. Options (all part of the run config hash):

* ``action_space`` / ``state_space``: what the numbers mean (LeRobot checkpoints do not say;
  the default ``unknown`` never matches an env, so the pair is reported incompatible);
* ``rename_map``: ``{env_key: policy_key}`` for camera and state names;
* ``n_action_steps`` (replanning interval), ``num_steps`` (denoising / flow steps),
  ``dtype``, ``compile``, ``revision``; the device is the preset's ``device``.

Torch threads per worker: ``--torch-threads N`` (``api.PolicyRequest.threads``; default torch's).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from functools import cache
from pathlib import Path
from typing import Any

from vlabench import api, hookimpl

from . import features, hub

MAIN_TYPES = {
    "smolvla": "SmolVLA (0.45B VLA: SmolVLM + flow-matching action expert)",
    "act": "ACT (Action Chunking Transformer)",
    "diffusion": "Diffusion Policy (U-Net, DDPM/DDIM)",
    "pi0": "Pi0 (PaliGemma 3B + flow-matching action expert)",
    "pi05": "Pi0.5 (PaliGemma + action expert, quantile-normalised)",
}
INSTALL_HINT = "pip install 'vlabench[lerobot]'"
_REGISTER = re.compile(r"register_subclass\(\s*[\"']([\w-]+)[\"']\s*\)")


@cache
def lerobot_policy_types() -> tuple[str, ...]:
    """Policy types registered in the installed LeRobot, read from its source files.

    Scans ``lerobot/policies/*/configuration_*.py`` for ``register_subclass("name")`` so that
    listing plugins never imports LeRobot (which takes seconds); empty when not installed.
    """
    try:
        spec = importlib.util.find_spec("lerobot")
    except (ImportError, ValueError):
        return ()
    if spec is None or not spec.submodule_search_locations:
        return ()
    found: set[str] = set()
    for root in spec.submodule_search_locations:
        for path in sorted(Path(root, "policies").glob("*/configuration_*.py")):
            try:
                found.update(_REGISTER.findall(path.read_text()))
            except OSError:
                continue
    return tuple(sorted(found))


def _checkpoint(request: api.PolicyRequest, *, weights: bool) -> features.Checkpoint:
    where = f"lerobot {request.type}"
    features.check_options(request.options, where)
    if not request.checkpoint:
        raise hub.CheckpointError(
            f"{where}: needs a checkpoint (a directory or hub id) in its registry preset"
        )
    path = hub.resolve(
        request.checkpoint, weights=weights, revision=request.options.get("revision")
    )
    ckpt = features.read_checkpoint(path)
    where = f"{where} checkpoint {request.checkpoint}"
    features.check_type(ckpt, request.type, where)
    features.check_stats(ckpt, where)
    features.check_step_option(ckpt, request.options, where)
    return ckpt


def describe(request: api.PolicyRequest) -> api.PolicyInterface:
    """Features from the checkpoint's config and processors (small files only, no weights)."""
    ckpt = _checkpoint(request, weights=False)
    return features.interface(ckpt, request.options, f"lerobot {request.checkpoint}")


def load(request: api.PolicyRequest) -> api.Policy:
    """Fetch (if needed) and load the checkpoint once; returns a batched policy."""
    from .policy import load as load_policy

    ckpt = _checkpoint(request, weights=True)
    iface = features.interface(ckpt, request.options, f"lerobot {request.checkpoint}")
    return load_policy(request, ckpt, iface)


@cache
def _hash_dir(path: str, stamp: tuple) -> str:
    digest = hashlib.sha256()
    for file in sorted(Path(path).iterdir()):
        if file.suffix in (".json", ".safetensors") and file.name != "vlabench_testkit.json":
            digest.update(file.name.encode())
            with file.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def fingerprint(request: api.PolicyRequest) -> str | None:
    """``hf:<repo>@<commit>`` for hub checkpoints, else a sha256 of the checkpoint's files.

    A hub commit identifies every file of the repo, so no weights are fetched for it.
    """
    if not request.checkpoint:
        return None
    repo = hub.split_revision(request.checkpoint)[0]
    revision = request.options.get("revision")
    if hub.is_hub_id(repo):
        path = hub.resolve(request.checkpoint, weights=False, revision=revision)
        return f"hf:{repo}@{hub.snapshot_revision(path)}"
    path = hub.resolve(request.checkpoint, weights=True, revision=revision)
    stamp = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(path.iterdir()))
    return "sha256:" + _hash_dir(str(path), stamp)


def spec(policy_type: str) -> api.PolicySpec:
    """The PolicySpec of one LeRobot policy type."""
    description = MAIN_TYPES.get(policy_type, f"LeRobot policy type {policy_type!r} (generic)")
    return api.PolicySpec(
        name=policy_type,
        description=f"{description} via LeRobot; checkpoint: directory or hub id",
        load=load,
        describe=describe,
        requires=("lerobot", "torch"),
        install_hint=INSTALL_HINT,
        packages=("lerobot", "torch", "transformers"),
        fingerprint=fingerprint,
    )


def _select_action_dims(params: Any) -> Any:
    from vlabench_plugins.adapters.select import SelectActionDims

    return SelectActionDims(params)


SELECT_ACTION_DIMS = api.AdapterSpec(
    "select_action_dims",
    "Send only some policy action entries to the env (params: indices, optional space).",
    _select_action_dims,
)


@hookimpl
def vlabench_adapters() -> list[api.AdapterSpec]:
    """``select_action_dims`` (generic; lives with the adapters, offered here)."""
    return [SELECT_ACTION_DIMS]


@hookimpl
def vlabench_policies() -> list[api.PolicySpec]:
    """The five main LeRobot types and every other type the installed LeRobot registers."""
    names = list(MAIN_TYPES) + [t for t in lerobot_policy_types() if t not in MAIN_TYPES]
    return [spec(name) for name in names]
