"""A loaded LeRobot policy behind vlabench's Policy contract (imports torch and lerobot).

Weights are loaded once with LeRobot's ``from_pretrained``; the checkpoint's own pre/post-
processor pipelines (normalisation from its stats, tokenisation, device) run around every
call. Inference is stateless per call: the core owns observation history and action queues,
so ``predict_action_chunk`` is used for a batch of episodes at any step of each.

Stochastic policies (Diffusion's noise, flow matching's) draw from torch's global generator,
which each call seeds from the episodes and steps it serves (:func:`noise_seed`): the same
episodes give the same actions in every run, worker and executor (for the same batching).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from vlabench import api

from . import features


def set_threads(threads: int | None) -> None:
    """Apply the request's torch intra-op threads (``api.PolicyRequest.threads``, from
    ``--torch-threads``); None keeps torch's default. Changes speed, not results."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"torch threads must be a positive int, got {threads!r}")
    import torch

    torch.set_num_threads(threads)


def noise_seed(batch: api.Batch) -> int | None:
    """A seed for one call, from its rows' episode indices and steps (None without them)."""
    index, step = batch.get(api.EPISODE_INDEX_KEY), batch.get(api.EPISODE_STEP_KEY)
    if index is None or step is None:
        return None
    rows = np.stack([np.asarray(index), np.asarray(step)]).astype(np.int64)
    return zlib.crc32(rows.tobytes())


def _to_tensor(key: str, value: Any) -> Any:
    """A batch entry in LeRobot's convention: images float (B[,T],C,H,W) in [0, 1]."""
    import torch

    array = np.asarray(value)
    if array.dtype == np.uint8 and array.ndim >= 4 and array.shape[-1] in (1, 3, 4):
        tensor = torch.from_numpy(np.ascontiguousarray(array)).float().div_(255.0)
        return tensor.movedim(-1, -3).contiguous()
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


class LeRobotPolicy:
    """A LeRobot ``PreTrainedPolicy`` with its processors, batched and stateless per call."""

    def __init__(
        self,
        interface: api.PolicyInterface,
        policy: Any,
        preprocessor: Any,
        postprocessor: Any,
        input_keys: set[str],
        rename: Mapping[str, str],
        device: str,
    ) -> None:
        self.interface = interface
        self.policy = policy
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.input_keys = input_keys
        self.rename = dict(rename)
        self.device = device
        self.autocast: Any = None
        """A torch dtype to run the model under ``torch.autocast`` with (option ``dtype``)."""

    def reset(self) -> None:
        """Clear LeRobot's internal queues (unused here: every call is stateless)."""
        self.policy.reset()

    def _observation(self, batch: api.Batch) -> dict[str, Any]:
        obs: dict[str, Any] = {}
        for key, value in batch.items():
            name = self.rename.get(key, key)
            if key == api.TASK_KEY:
                obs[api.TASK_KEY] = [str(t) for t in value]
            elif name in self.input_keys:
                obs[name] = _to_tensor(name, value)
        return obs

    def predict_action_chunk(self, batch: api.Batch) -> np.ndarray:
        """``(B, H, A)`` float32 actions in the env's units, one forward pass for the batch."""
        import torch

        obs = self._observation(batch)
        self.policy.reset()  # LeRobot's queues stay empty: every call is stateless
        seed = noise_seed(batch)
        if seed is not None:
            torch.manual_seed(seed)
        with torch.inference_mode():
            obs = self.preprocessor(obs)
            if self.autocast is None:
                chunk = self.policy.predict_action_chunk(obs)
            else:
                device_type = torch.device(self.device).type
                with torch.autocast(device_type=device_type, dtype=self.autocast):
                    chunk = self.policy.predict_action_chunk(obs)
            if chunk.ndim == 2:
                chunk = chunk[:, None]
            # LeRobot's postprocessors take one (B, A) action at a time (as its policy server)
            steps = [self.postprocessor(chunk[:, i]) for i in range(chunk.shape[1])]
            out = torch.stack([s.float().cpu() for s in steps], dim=1)
        return out.numpy().astype(np.float32, copy=False)

    def select_action(self, batch: api.Batch) -> np.ndarray:
        """``(B, A)``: the first action of a fresh chunk."""
        return self.predict_action_chunk(batch)[:, 0]


def load(
    request: api.PolicyRequest, ckpt: features.Checkpoint, interface: api.PolicyInterface
) -> LeRobotPolicy:
    """Load weights and processors of ``ckpt`` with LeRobot's factory, options applied."""
    import torch
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    set_threads(request.threads)
    options = request.options
    where = f"lerobot {request.type} {request.checkpoint}"
    config = PreTrainedConfig.from_pretrained(ckpt.path)
    config.device = request.device
    if options.get("n_action_steps") is not None:
        config.n_action_steps = int(options["n_action_steps"])
    field = features.check_step_option(ckpt, options, where)
    if field is not None:
        setattr(config, field, int(options["num_steps"]))
    dtype = options.get("dtype", "float32")
    own_dtype = hasattr(config, "dtype")  # Pi0 / Pi0.5 cast their own weights
    if own_dtype:
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"{where}: policy type {ckpt.type!r} runs in float32 or bfloat16")
        config.dtype = dtype
    if options.get("compile"):
        if not hasattr(config, "compile_model"):
            raise ValueError(f"{where}: policy type {ckpt.type!r} has no compile option")
        config.compile_model = True
    policy = get_policy_class(config.type).from_pretrained(str(ckpt.path), config=config)
    policy.eval()
    rename = dict(options.get("rename_map") or {})
    steps = {s.get("registry_name") for s in (ckpt.preprocessor or {}).get("steps", [])}
    pre_overrides: dict[str, Any] = {"device_processor": {"device": request.device}}
    if rename and "rename_observations_processor" in steps:
        pre_overrides["rename_observations_processor"] = {"rename_map": rename}
        rename_here: dict[str, str] = {}
        input_keys = set(rename) | set(config.input_features)
    else:
        rename_here, input_keys = rename, set(config.input_features)
    preprocessor, postprocessor = make_pre_post_processors(
        config,
        pretrained_path=str(ckpt.path),
        preprocessor_overrides=pre_overrides,
    )
    lerobot_policy = LeRobotPolicy(
        interface, policy, preprocessor, postprocessor, input_keys, rename_here, request.device
    )
    if dtype != "float32" and not own_dtype:  # mixed precision, as LeRobot's use_amp
        lerobot_policy.autocast = getattr(torch, dtype)
    return lerobot_policy
