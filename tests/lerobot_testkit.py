"""Tiny LeRobot checkpoints and offline stand-ins for the hub, for tests and benchmarks.

Nothing here downloads anything. The public API:

* :func:`build_checkpoint` writes a small random-weight checkpoint of a LeRobot policy type
  (``act``, ``diffusion``, ``smolvla``, ``pi0``, ``pi05``) with ``save_pretrained`` and its
  pre/post-processor pipelines (with normalisation stats) into a directory;
* :func:`offline_hub` lays out locally generated stand-ins for the hub repos LeRobot's code
  loads by name (the SmolVLM config/processor/tokenizer for SmolVLA, the PaliGemma tokenizer for
  Pi0/Pi0.5) as a hub cache, and switches the hub to offline mode, in this process (it patches
  ``huggingface_hub.constants``) and for subprocesses (the env dict it yields);
* :func:`tiny_pi_models` makes LeRobot's Pi0/Pi0.5 build small Gemma/SigLIP models instead of
  the 4B-parameter defaults (their sizes are fixed in code); it must be active both when a Pi
  checkpoint is built and when it is loaded, in the same process;
* :func:`lerobot_offline` combines the two.

Checkpoints made here carry a ``vlabench_testkit.json`` marker saying how they were built.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

KINDS = ("act", "diffusion", "smolvla", "pi0", "pi05")
SMOLVLM_ID = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
PALIGEMMA_ID = "google/paligemma-3b-pt-224"
MARKER = "vlabench_testkit.json"
_SNAPSHOT = "0" * 40
_SPECIALS = {
    "fake_image_token": "<fake_token_around_image>",
    "global_image_token": "<global-img>",
    "image_token": "<image>",
    "end_of_utterance_token": "<end_of_utterance>",
}
_SENTENCES = [
    "Push the T-shaped block onto the T-shaped target.",
    "pick up the black bowl and place it on the plate",
    "open the drawer, close the door, press the button",
]
TINY_VOCAB = 512
"""Vocabulary of the tiny Pi language models (the stand-in tokenizer has fewer tokens)."""


# -- tokenizer and VLM stand-ins ---------------------------------------------------------
def build_tokenizer(path: Path, vocab_size: int = 300) -> Path:
    """Train a byte-level BPE tokenizer on a few sentences and save it (HF format) to ``path``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<bos>", "<eos>", "<unk>", *_SPECIALS.values()]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_SENTENCES * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        extra_special_tokens=dict(_SPECIALS),
    )
    path.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(path)
    return path


SMOLVLM_SIZES = {
    "tiny": {
        "text": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                 "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16},
        "vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                   "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        "scale_factor": 2,
        "vocab_size": None,  # the stand-in tokenizer's
    },
    # The architecture of HuggingFaceTB/SmolVLM2-500M-Video-Instruct (random weights)
    "default": {
        "text": {"hidden_size": 960, "intermediate_size": 2560, "num_hidden_layers": 32,
                 "num_attention_heads": 15, "num_key_value_heads": 5, "head_dim": 64},
        "vision": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                   "num_attention_heads": 12, "image_size": 512, "patch_size": 16},
        "scale_factor": 4,
        "vocab_size": 49280,
    },
}


def build_smolvlm(path: Path, tokenizer_dir: Path, size: str = "tiny") -> Path:
    """A ``SmolVLMConfig`` and ``SmolVLMProcessor`` saved to ``path``.

    ``size="tiny"``: 32x32 images, two 64-wide layers; ``"default"``: the architecture of
    SmolVLM2-500M (for latency measurements at the real size).
    """
    from transformers import (
        AutoTokenizer,
        SmolVLMConfig,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    arch = SMOLVLM_SIZES[size]
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    vocab = arch["vocab_size"] or len(tok)
    side = arch["vision"]["image_size"]
    grid = side // arch["vision"]["patch_size"] // arch["scale_factor"]
    config = SmolVLMConfig(
        text_config={
            "model_type": "llama",
            **arch["text"],
            "vocab_size": vocab,
            "max_position_embeddings": 8192,
        },
        vision_config=dict(arch["vision"]),
        scale_factor=arch["scale_factor"],
        vocab_size=vocab,
        image_token_id=tok.convert_tokens_to_ids(_SPECIALS["image_token"]),
    )
    path.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(path)
    image_processor = SmolVLMImageProcessor(
        do_resize=False,
        do_image_splitting=False,
        size={"longest_edge": side},
        max_image_size={"longest_edge": side},
    )
    processor = SmolVLMProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        video_processor=SmolVLMVideoProcessor(),
        image_seq_len=grid * grid,
    )
    processor.save_pretrained(path)
    return path


def _snapshot_dir(cache: Path, repo_id: str) -> Path:
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(_SNAPSHOT)
    return repo / "snapshots" / _SNAPSHOT


def populate_hub_cache(cache: Path, vlm_size: str = "tiny") -> Path:
    """Write the stand-ins into ``cache`` in the hub-cache layout (idempotent); returns it."""
    done = cache / ".vlabench_testkit_done"
    if done.exists():
        if done.read_text() != vlm_size:
            raise ValueError(f"{cache} holds {done.read_text()!r} stand-ins, not {vlm_size!r}")
        return cache
    tokenizer = build_tokenizer(cache.parent / "stand-in-tokenizer")
    build_smolvlm(_snapshot_dir(cache, SMOLVLM_ID), tokenizer, vlm_size)
    paligemma = _snapshot_dir(cache, PALIGEMMA_ID)
    paligemma.mkdir(parents=True, exist_ok=True)
    for item in tokenizer.iterdir():
        (paligemma / item.name).write_bytes(item.read_bytes())
    # AutoTokenizer reads the repo's config.json for its model type
    (paligemma / "config.json").write_text(json.dumps({"model_type": "paligemma"}))
    done.write_text(vlm_size)
    return cache


@contextlib.contextmanager
def offline_hub(root: Path, vlm_size: str = "tiny") -> Iterator[dict[str, str]]:
    """Stand-ins under ``root/hub`` and the hub offline, here and in subprocesses.

    ``vlm_size``: ``"tiny"`` (tests) or ``"default"`` (SmolVLM2-500M's architecture).

    Yields the environment (a copy of ``os.environ`` with ``HF_HOME``, ``HF_HUB_CACHE`` and
    ``HF_HUB_OFFLINE=1``) for subprocesses. In this process the same settings are patched into
    ``huggingface_hub.constants`` and ``os.environ`` and restored on exit.
    """
    from huggingface_hub import constants

    root = Path(root)
    cache = populate_hub_cache(root / "hub", vlm_size)
    settings = {"HF_HOME": str(root), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    saved_env = {k: os.environ.get(k) for k in settings}
    saved = (constants.HF_HOME, constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE)
    os.environ.update(settings)
    constants.HF_HOME, constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE = (
        str(root),
        str(cache),
        True,
    )
    try:
        yield {**os.environ}
    finally:
        constants.HF_HOME, constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE = saved
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- tiny Pi0 / Pi0.5 ----------------------------------------------------------------------
TINY_GEMMA = {
    "vlm": {"width": 64, "depth": 2, "mlp_dim": 128, "num_heads": 2, "num_kv_heads": 1},
    "expert": {"width": 32, "depth": 2, "mlp_dim": 64, "num_heads": 2, "num_kv_heads": 1},
}
TINY_HEAD_DIM = 16
TINY_PI_IMAGE = 28
"""Image side of tiny Pi checkpoints (SigLIP patch 14: a 2x2 grid of patches)."""


@contextlib.contextmanager
def tiny_pi_models() -> Iterator[None]:
    """Make LeRobot's Pi0/Pi0.5 build tiny Gemma/SigLIP models (patched in their modules).

    LeRobot builds the PaliGemma and action-expert configs in code from the variant names
    (``gemma_2b``, ``gemma_300m``) and fixes the SigLIP tower and the vocabulary; this swaps
    ``get_gemma_config`` and the two model classes for versions that shrink those configs, so
    LeRobot's unmodified modelling and processing code runs on a model of a few MB.
    """
    from lerobot.policies.pi0 import modeling_pi0
    from lerobot.policies.pi05 import modeling_pi05

    def patched(module: Any) -> dict[str, Any]:
        gemma_cls = module.GemmaConfig
        vlm_cls = module.PaliGemmaForConditionalGenerationWithPiGemma
        expert_cls = module.PiGemmaForCausalLM

        def get_gemma_config(variant: str) -> Any:
            size = TINY_GEMMA["vlm" if variant == "gemma_2b" else "expert"]
            return gemma_cls(head_dim=TINY_HEAD_DIM, **size)

        def make_vlm(config: Any) -> Any:
            config.text_config.vocab_size = TINY_VOCAB
            config.image_token_index = TINY_VOCAB - 1
            if hasattr(config, "_vocab_size"):
                config._vocab_size = TINY_VOCAB
            vision = config.vision_config
            vision.hidden_size, vision.intermediate_size = 32, 64
            vision.num_hidden_layers, vision.num_attention_heads = 1, 2
            vision.projection_dim = config.text_config.hidden_size
            return vlm_cls(config=config)

        def make_expert(config: Any) -> Any:
            config.vocab_size = TINY_VOCAB
            return expert_cls(config=config)

        return {
            "get_gemma_config": get_gemma_config,
            "PaliGemmaForConditionalGenerationWithPiGemma": make_vlm,
            "PiGemmaForCausalLM": make_expert,
        }

    saved = []
    try:
        for module in (modeling_pi0, modeling_pi05):
            for name, value in patched(module).items():
                saved.append((module, name, getattr(module, name)))
                setattr(module, name, value)
        yield
    finally:
        for module, name, value in reversed(saved):
            setattr(module, name, value)


@contextlib.contextmanager
def lerobot_offline(root: Path, vlm_size: str = "tiny") -> Iterator[dict[str, str]]:
    """:func:`offline_hub` and :func:`tiny_pi_models` together; yields the subprocess env."""
    with offline_hub(root, vlm_size) as env, tiny_pi_models():
        yield env


# -- checkpoints ---------------------------------------------------------------------------
def small_overrides(kind: str, image_size: int) -> dict[str, Any]:
    """Config fields that make a ``kind`` checkpoint small and fast on CPU (few sampling steps)."""
    if kind == "act":
        return {
            "pretrained_backbone_weights": None,
            "dim_model": 32,
            "n_heads": 2,
            "dim_feedforward": 64,
            "n_encoder_layers": 1,
            "n_decoder_layers": 1,
            "n_vae_encoder_layers": 1,
            "latent_dim": 8,
            "chunk_size": 8,
            "n_action_steps": 4,
        }
    if kind == "diffusion":
        return {
            "pretrained_backbone_weights": None,
            "horizon": 8,
            "n_action_steps": 4,
            "drop_n_last_frames": 3,
            "down_dims": (16, 32),
            "kernel_size": 3,
            "n_groups": 4,
            "diffusion_step_embed_dim": 16,
            "spatial_softmax_num_keypoints": 8,
            "noise_scheduler_type": "DDIM",
            "num_inference_steps": 3,
            "use_group_norm": True,
        }
    if kind == "smolvla":
        return {
            "vlm_model_name": SMOLVLM_ID,
            "load_vlm_weights": False,
            "num_vlm_layers": 2,
            "expert_width_multiplier": 0.5,
            "resize_imgs_with_padding": (32, 32),
            "chunk_size": 8,
            "n_action_steps": 4,
            "num_steps": 2,
            "max_state_dim": 8,
            "max_action_dim": 8,
            "tokenizer_max_length": 16,
        }
    if kind in ("pi0", "pi05"):
        return {
            "image_resolution": (TINY_PI_IMAGE, TINY_PI_IMAGE),
            "chunk_size": 8,
            "n_action_steps": 4,
            "num_inference_steps": 2,
            "max_state_dim": 8,
            "max_action_dim": 8,
            "tokenizer_max_length": 16 if kind == "pi0" else 48,
        }
    raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")


def make_stats(
    state_dim: int,
    action_dim: int,
    cameras: Sequence[str],
    *,
    low: float = 0.0,
    high: float = 512.0,
    quantiles: bool = True,
) -> dict[str, dict[str, Any]]:
    """Normalisation stats for state, action (uniform on ``[low, high]``) and cameras."""
    import numpy as np

    def vector(dim: int) -> dict[str, Any]:
        mid, half = (low + high) / 2, (high - low) / 2
        stats = {
            "mean": np.full(dim, mid, np.float32),
            "std": np.full(dim, half / np.sqrt(3), np.float32),
            "min": np.full(dim, low, np.float32),
            "max": np.full(dim, high, np.float32),
        }
        if quantiles:
            stats["q01"] = np.full(dim, low + 0.02 * half, np.float32)
            stats["q99"] = np.full(dim, high - 0.02 * half, np.float32)
        return stats

    out = {"observation.state": vector(state_dim), "action": vector(action_dim)}
    for cam in cameras:
        out[f"observation.images.{cam}"] = {
            "mean": np.full((3, 1, 1), 0.5, np.float32),
            "std": np.full((3, 1, 1), 0.25, np.float32),
            "min": np.zeros((3, 1, 1), np.float32),
            "max": np.ones((3, 1, 1), np.float32),
        }
    return out


def build_checkpoint(
    kind: str,
    path: Path,
    *,
    action_dim: int = 2,
    state_dim: int = 2,
    cameras: Sequence[str] = ("top",),
    image_size: int = 96,
    stats: str = "full",
    seed: int = 0,
    small: bool = True,
    **overrides: Any,
) -> Path:
    """Write a random-weight ``kind`` checkpoint (config, weights, processors) to ``path``.

    ``stats``: ``"full"`` (mean/std, min/max and quantiles), ``"no_quantiles"`` or ``"none"``.
    ``small=False`` keeps LeRobot's default sizes (never for pi0/pi05 in tests: 4B params).
    SmolVLA needs :func:`offline_hub`, Pi0/Pi0.5 need :func:`lerobot_offline` to be active.
    """
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.factory import (
        get_policy_class,
        make_policy_config,
        make_pre_post_processors,
    )

    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    fields = small_overrides(kind, image_size) if small else {}
    if not small and kind in ("act", "diffusion"):
        fields = {"pretrained_backbone_weights": None}
    if not small and kind == "smolvla":
        fields = {"load_vlm_weights": False}
    fields.update(overrides)
    inputs = {"observation.state": PolicyFeature(FeatureType.STATE, (state_dim,))}
    for cam in cameras:
        inputs[f"observation.images.{cam}"] = PolicyFeature(
            FeatureType.VISUAL, (3, image_size, image_size)
        )
    outputs = {"action": PolicyFeature(FeatureType.ACTION, (action_dim,))}
    config = make_policy_config(
        kind, input_features=inputs, output_features=outputs, device="cpu", **fields
    )
    torch.manual_seed(seed)
    policy = get_policy_class(kind)(config)
    path = Path(path)
    policy.save_pretrained(path)
    dataset_stats = None
    if stats != "none":
        dataset_stats = make_stats(
            state_dim, action_dim, cameras, quantiles=stats != "no_quantiles"
        )
    pre, post = make_pre_post_processors(config, dataset_stats=dataset_stats)
    pre.save_pretrained(path)
    post.save_pretrained(path)
    marker = {"kind": kind, "small": small, "stats": stats, "seed": seed}
    if kind in ("pi0", "pi05") and small:
        marker["tiny_pi"] = {"gemma": TINY_GEMMA, "vocab": TINY_VOCAB}
    (path / MARKER).write_text(json.dumps(marker, indent=2))
    return path
