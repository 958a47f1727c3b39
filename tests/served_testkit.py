"""Shared by the served-model tests: a chunked PushT policy and a run-and-read helper."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlabench import api


def chunky_io(request: api.PolicyRequest) -> api.PolicyInterface:
    env = request.env
    return api.PolicyInterface((env.feature(api.STATE_KEY),), env.action, chunk_size=4,
                               n_action_steps=2)


class Chunky:
    """PushT: a chunk of 4 targets walking away from the agent; 2 executed per chunk."""

    calls = 0
    fail_on: int | None = None

    def __init__(self, request: api.PolicyRequest) -> None:
        self.interface = chunky_io(request)

    def reset(self) -> None: ...

    def predict_action_chunk(self, batch: api.Batch) -> np.ndarray:
        Chunky.calls += 1
        if Chunky.calls == Chunky.fail_on:
            raise ValueError(f"boom on call {Chunky.calls}")
        state = np.asarray(batch[api.STATE_KEY], np.float32)
        steps = 9.0 * np.arange(1, 5, dtype=np.float32)[None, :, None]
        return state[:, None, :] + steps * np.array([1.0, -0.5], np.float32)

    def select_action(self, batch: api.Batch) -> np.ndarray:
        return self.predict_action_chunk(batch)[:, 0]


def outcomes(tmp_path: Path, policy: str, suite: str, registry, catalog, **kw) -> list[tuple]:
    from vlabench.execute.runner import Runner
    from vlabench.plan.jobs import plan
    from vlabench.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    pairs = plan([policy], [suite], registry, catalog, **kw)
    assert pairs[0].runnable, pairs[0].reason
    out = []
    for result in Runner(store, catalog).run_pairs(pairs):
        out += [(e["task"], e["episode_index"], e["success"], e["steps"],
                 round(e["reward_sum"], 6), e["failure_reason"])
                for e in store.episodes(result.run_id)]
    return sorted(out)
