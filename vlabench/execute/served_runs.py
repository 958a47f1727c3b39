"""Episodes a vla-eval benchmark runs against ``vlabench serve --protocol vlaeval``, stored.

vla-eval frames every episode with ``episode_start`` (its task: ``name``, ``episode_idx``
and benchmark fields such as ``suite``) and ``episode_end`` (``metrics.success``, ``steps``,
``elapsed_sec``, a ``failure_reason`` for errored episodes). Each (benchmark, task) becomes a
vlabench run: suite ``vlaeval_<benchmark class>`` (with the task's ``suite`` when it has
one), env ``vla-eval``, protocol ``vla-eval`` with the task's other fields, the served preset
as the policy; so those benchmarks get vlabench's intervals, boards and paired comparisons.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from vlabench import api
from vlabench.execute import provenance
from vlabench.plan.configs import config_hash_of, stable_hash

ENV = "vla-eval"
_PER_EPISODE = {"name", "episode_idx", "episode_id", "task_obj", "recording"}


def suite_name(benchmark: str, task: dict[str, Any]) -> str:
    """``vlaeval_<class>[_<suite>]`` from the HELLO's benchmark import string and the task."""
    base = benchmark.rsplit(":", 1)[-1].rsplit(".", 1)[-1] or "benchmark"
    name = f"vlaeval_{base}"
    if isinstance(task.get("suite"), str):
        name += f"_{task['suite']}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).lower()


class StoreRecorder:
    """Writes a vla-eval client's episodes into the store (the serving process is its only
    writer)."""

    def __init__(self, store: Any, served: dict[str, Any]) -> None:
        self.store = store
        self.served = served
        self._open: dict[str, dict[str, Any]] = {}
        self._runs: dict[str, int] = {}
        self._lock = threading.Lock()

    def started(self, session: str, benchmark: str, payload: dict[str, Any]) -> None:
        task = payload.get("task") if isinstance(payload.get("task"), dict) else {}
        self._open[session] = {"benchmark": benchmark, "task": dict(task),
                               "t0": time.perf_counter()}

    def _run(self, benchmark: str, task: dict[str, Any]) -> int:
        fields = {k: v for k, v in sorted(task.items()) if k not in _PER_EPISODE}
        suite = suite_name(benchmark, task)
        name = str(task.get("name", "task"))
        protocol = {"name": ENV, "benchmark": benchmark, **fields}
        served = self.served
        config = {"policy": {k: served.get(k) for k in ("name", "type", "plugin", "checkpoint",
                                                       "options")},
                  "suite": suite, "env": ENV, "task": name, "protocol": protocol,
                  "source": "vla-eval"}
        key = config_hash_of({**config, "protocol": dict(protocol)})
        if key in self._runs:
            return self._runs[key]
        run_id, _ = self.store.get_or_create_run(
            key, policy=served.get("name") or "served", policy_type=served.get("type") or "",
            policy_plugin=served.get("plugin") or "", checkpoint=served.get("checkpoint"),
            policy_options=served.get("options") or {}, env=ENV, env_plugin=ENV, suite=suite,
            task=name, protocol=protocol, protocol_hash=stable_hash({"env": ENV, **protocol}),
            config=config, inference_mode="sync", versions={}, host=provenance.host(),
            git_sha=provenance.git_sha(), status="pending", n_episodes=0)
        self._runs[key] = run_id
        return run_id

    def ended(self, session: str, payload: dict[str, Any], steps: int) -> None:
        opened = self._open.pop(session, None)
        if opened is None:
            return
        task = opened["task"]
        metrics = payload.get("metrics") if isinstance(payload.get("metrics"), dict) else {}
        failure = payload.get("failure_reason") or (
            None if payload else "the vla-eval client left during this episode")
        index = int(task.get("episode_idx", task.get("episode_id", 0)) or 0)
        numbers = {f"vlaeval.{k}": float(v) for k, v in metrics.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)}
        record = api.EpisodeRecord(
            task=str(task.get("name", "task")), episode_index=index, seed=index,
            init_state_id=None, success=bool(metrics.get("success", False)),
            steps=int(payload.get("steps", steps) or steps), reward_sum=0.0,
            wall_time_s=float(payload.get("elapsed_sec")
                              or time.perf_counter() - opened["t0"]),
            failure_reason=str(failure) if failure else None, metrics=numbers)
        with self._lock:
            run_id = self._run(opened["benchmark"], task)
            self.store.add_episode(run_id, record)
            n = len(self.store.finished_episode_indices(run_id))
            self.store.get_or_create_run(self.store.get_run(run_id)["config_hash"],
                                         n_episodes=n)
            # every stored episode is complete: the run is finished until the next one comes
            self.store.set_run_status(run_id, "finished")

    def close(self) -> None:
        """Record episodes still open as failed (the server is stopping)."""
        for session in list(self._open):
            self.ended(session, {"failure_reason": "the server stopped during this episode"},
                       0)
