"""``instruction_typo``: letters of the instruction swapped, the same typos all episode."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vlabench import api

from ._step import PerturbStep, number


def typos(text: str, rate: float, rng: Any) -> str:
    """``text`` with each word of 3+ letters given, with probability ``rate``, one swap of
    two neighbouring inner letters (deterministic for a given generator state)."""
    words = text.split(" ")
    for i, word in enumerate(words):
        if len(word) >= 4 and rng.random() < rate:
            j = int(rng.integers(1, len(word) - 2))
            words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    return " ".join(words)


class InstructionTypo(PerturbStep):
    """Typos in ``task`` at ``rate`` per word; seeded per episode, so all its steps agree."""

    name = "instruction_typo"
    allowed = frozenset({"rate"})

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        super().__init__(params)
        self.rate = number(self.name, self.params, "rate", 0.0, high=1.0)

    def observation(self, batch: api.Batch) -> api.Batch:
        if self.rate == 0.0 or api.TASK_KEY not in batch:
            return batch
        episodes, _ = self.rows(batch)
        tasks = [
            typos(str(text), self.rate, self.rng(int(episode), 0, salt=30))
            for text, episode in zip(batch[api.TASK_KEY], episodes, strict=True)
        ]
        return {**batch, api.TASK_KEY: tasks}
