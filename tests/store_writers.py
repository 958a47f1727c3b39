"""A writer process for the store's concurrency tests: light to import (no test module, no
pytest), so that many can start at once from a fork server."""

from __future__ import annotations

from typing import Any

from vlabench.api import EpisodeRecord
from vlabench.store import open_store

FIELDS: dict[str, Any] = {
    "policy": "diffusion_pusht",
    "policy_type": "diffusion",
    "policy_plugin": "lerobot",
    "env": "pusht",
    "env_plugin": "pusht",
    "suite": "pusht",
    "task": "push_t",
    "protocol": {"name": "default", "max_steps": 300, "seed": 0},
    "protocol_hash": "proto1",
}


def record(index: int) -> EpisodeRecord:
    return EpisodeRecord("push_t", index, 1000 + index, None, index % 2 == 0, 42, 0.5, 1.25)


def hammer(url: str, worker: int, barrier: Any) -> tuple[int, bool, int]:
    """Open the fresh store with the others at once, then write a shared run's 40 episodes
    (every writer tries each; each is stored once) and 25 episodes of the writer's own run."""
    barrier.wait()
    with open_store(url) as s:
        run_id, created = s.get_or_create_run("shared", **FIELDS, n_episodes=40 + worker)
        own, _ = s.get_or_create_run(f"own-{worker}", **FIELDS, n_episodes=25)
        inserted = 0
        for i in range(40):
            inserted += s.add_episode(run_id, record((i + worker * 10) % 40))
            if i < 25:
                assert s.add_episode(own, record(i))
        return run_id, created, inserted
