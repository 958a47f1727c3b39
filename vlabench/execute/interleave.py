"""Interleaved A/B order of policies on one task, so that real-robot comparisons are fair.

On a real robot conditions drift during a session (light, temperature, wear, the operator's
resets). Running all of policy A's episodes and then all of B's confounds that drift with the
policy. Interleaving runs episode ``i`` of every policy before episode ``i + 1`` of any, in an
order that cancels linear drift (``abba``: A B, B A, A B, ...) or is shuffled per round with a
seed (``random``); ``alternate`` is plain A B, A B, ...

Every policy still gets the same seed and init state for episode ``i`` (the suite's protocol),
and each policy's episodes land in its own run, so the leaderboard and the paired tests work
unchanged. Interrupted sessions resume: episodes already stored are skipped.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Any, Literal

from vlabench.plan.configs import RunConfig

Order = Literal["abba", "alternate", "random"]
ORDERS: tuple[str, ...] = ("abba", "alternate", "random")


def schedule(
    n_policies: int, episodes: int, order: Order = "abba", seed: int = 0
) -> list[tuple[int, int]]:
    """``(policy index, episode index)`` in execution order: round ``i`` runs episode ``i`` of
    every policy, in the round's order."""
    if n_policies < 1 or episodes < 0:
        raise ValueError(f"need >= 1 policy and >= 0 episodes, got {n_policies}, {episodes}")
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r} (orders: {', '.join(ORDERS)})")
    rng = random.Random(seed)
    plan = []
    for episode in range(episodes):
        policies = list(range(n_policies))
        if order == "abba" and episode % 2 == 1:
            policies.reverse()
        elif order == "random":
            rng.shuffle(policies)
        plan.extend((p, episode) for p in policies)
    return plan


def check_comparable(configs: Sequence[RunConfig]) -> None:
    """Raise ValueError unless the configs differ only in their policy (same suite, task,
    env options, protocol): otherwise interleaving would compare different conditions."""
    if not configs:
        raise ValueError("interleaving needs at least one run config")
    first = configs[0]
    for other in configs[1:]:
        for name in ("suite", "env", "env_options", "task"):
            if getattr(other, name) != getattr(first, name):
                raise ValueError(
                    f"interleaved runs must share {name}: {first.policy.name} has "
                    f"{getattr(first, name)!r}, {other.policy.name} has {getattr(other, name)!r}"
                )
        if other.protocol.key() != first.protocol.key():
            raise ValueError(
                f"interleaved runs must share the protocol: {first.protocol.key()} vs "
                f"{other.protocol.key()}"
            )


def run_interleaved(
    configs: Sequence[RunConfig],
    run_config: Callable[[RunConfig], Any],
    order: Order = "abba",
    seed: int = 0,
) -> list[Any]:
    """Run one episode at a time across ``configs`` (one per policy) in :func:`schedule` order.

    ``run_config(config)`` runs the episodes a run lacks up to ``config.protocol.episodes``
    (:meth:`vlabench.execute.runner.Runner.run_config`); it is called with the episode count
    raised by one per round, so each call runs exactly the next episode of that policy (the
    config hash ignores the episode count: every call extends the same run). Returns each
    call's result.
    """
    check_comparable(configs)
    episodes = configs[0].protocol.episodes
    results = []
    for policy, episode in schedule(len(configs), episodes, order, seed):
        config = configs[policy]
        step = dataclasses.replace(
            config, protocol=dataclasses.replace(config.protocol, episodes=episode + 1)
        )
        results.append(run_config(step))
    return results
