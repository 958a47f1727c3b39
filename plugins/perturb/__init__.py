"""Generic perturbations for robustness suites (any env): what the policy sees or sends.

Each is an adapter step (``perturb.<name>``) declared as a :class:`~vlabench.api.PerturbationSpec`
for registry axes (``perturbations:`` in registry.yaml); numpy only, seeded per episode.
"""

from __future__ import annotations

from vlabench import api, hookimpl

from .image import Blur, Brightness, ImageNoise, Occlusion
from .language import InstructionTypo
from .noise import ActionNoise, StateNoise
from .timing import DroppedFrames, ObservationDelay

STEPS = {
    StateNoise: ("observation", "Gaussian noise on observation.state (params: std[, key])."),
    ActionNoise: ("action", "Gaussian noise on each action the env receives (params: std)."),
    ObservationDelay: ("observation", "The policy sees the observation of k steps ago "
                       "(params: frames)."),
    DroppedFrames: ("observation", "Each frame lost with probability p; the policy sees the "
                    "last one it got (params: p)."),
    ImageNoise: ("observation", "Gaussian pixel noise on every camera (params: std, 0-255)."),
    Brightness: ("observation", "Brightness and contrast of every camera (params: brightness, "
                 "contrast; 1 = unchanged)."),
    Blur: ("observation", "Box blur of every camera (params: radius in pixels)."),
    Occlusion: ("observation", "A black square on every camera, placed per episode (params: "
                "size, a fraction of the image side)."),
    InstructionTypo: ("observation", "Swapped letters in the instruction, per episode (params: "
                      "rate per word)."),
}

ADAPTERS = [api.AdapterSpec(f"perturb.{cls.name}", text, cls) for cls, (_, text) in STEPS.items()]
PERTURBATIONS = [
    api.PerturbationSpec(cls.name, text, target, adapter=f"perturb.{cls.name}")  # type: ignore[arg-type]
    for cls, (target, text) in STEPS.items()
]


@hookimpl
def vlabench_adapters() -> list[api.AdapterSpec]:
    """The perturbation steps, as adapters the planner puts first in a perturbed run's pair."""
    return list(ADAPTERS)


@hookimpl
def vlabench_perturbations() -> list[api.PerturbationSpec]:
    """The generic perturbations."""
    return list(PERTURBATIONS)
