"""The adapter pipeline of a pair: observation adapters env -> policy, action adapters back.

Adapters are small composable steps (like gymnasium wrappers) declared per pair in
registry.yaml; :func:`vlabench.plan.compat.build_adapters` builds them from plugins' specs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vlabench.api import Adapter, Batch, Feature


class AdapterPipeline:
    """Applies a pair's adapters to batches (env -> policy) and actions (policy -> env)."""

    def __init__(self, adapters: Sequence[Adapter]) -> None:
        self.adapters = list(adapters)

    def observation_features(self, features: tuple[Feature, ...]) -> tuple[Feature, ...]:
        """The features the policy sees when the env offers ``features``."""
        for adapter in self.adapters:
            features = adapter.observation_features(features)
        return features

    def observation(self, batch: Batch) -> Batch:
        for adapter in self.adapters:
            batch = adapter.observation(batch)
        return batch

    def action(self, actions: np.ndarray) -> np.ndarray:
        for adapter in reversed(self.adapters):
            actions = adapter.action(actions)
        return actions
