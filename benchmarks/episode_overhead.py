"""Where the runner's extra time goes on PushT (state only): per run, per episode, per step.

The same-work comparison of rollout_overhead.py (vlabench's runner with the noop policy vs
gym-pusht stepped directly, same seeds, neither rendering), at three shapes, each side run
round robin ``--repeats`` times (medians):

* ``1 x 1``: one episode of one step: the run's fixed cost (plan, run row, env build);
* ``N x 1``: ``--episodes`` episodes of one step: adds N-1 episodes (reset, record, store);
* ``1 x S``: one episode of ``--steps`` steps: adds S-1 steps (policy call, env step).

The extra time of vlabench over the raw loop at each shape, solved for the three costs:
per step = (extra(1 x S) - extra(1 x 1)) / (S - 1), per episode = (extra(N x 1) -
extra(1 x 1)) / (N - 1), per run = extra(1 x 1) less one episode and one step. The last
line predicts the same-work ratio of ``N x S`` runs from them.

``--before`` adds a third side at every shape: the runner with the code this script keeps a
copy of (:func:`before`: the ``SIGALRM`` timer armed and disarmed around every policy and env
call; the per-episode run-status write through an ORM load, numpy called once per percentile
and per list, the run's config hashed again), so that the before/after numbers come from one
run.

``--timer-check`` also runs one ``1 x S`` comparison with a third side, the runner with the
inline executor's per-call ``SIGALRM`` switched off: what the timer costs per step, and each
side's least-disturbed run (on a busy machine the medians carry its load).

    MUJOCO_GL=egl .venv/bin/python benchmarks/episode_overhead.py --episodes 20 --steps 600
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternate
from rollout_overhead import pusht_raw, vlabench_side


def _start_per_call(self: Any, kind: str, entries: Any = ()) -> None:
    """``CallClock.start`` before lazy arming: the timer armed at every bounded call."""
    from vlabench.runtime import deadlines as d

    code, timeout = self._limits[kind]
    now = time.monotonic()
    buffer, seq = self.buffer, self._seq + 2
    n = min(len(entries), d.MAX_ENTRIES)
    deadline = now + timeout if timeout else math.inf
    d._HEAD.pack_into(buffer, 0, seq - 1, code, n, now, deadline, timeout or 0.0)
    offset = d._HEAD.size
    for index, step in entries[:n] if n < len(entries) else entries:
        d._ENTRY.pack_into(buffer, offset, index, step)
        offset += d._ENTRY.size
    d._SEQ.pack_into(buffer, 0, seq)
    self._seq = seq
    if self.alarm and timeout:
        signal.setitimer(signal.ITIMER_REAL, timeout)


def _end_per_call(self: Any) -> None:
    """``CallClock.end`` before lazy arming: the timer disarmed after every call."""
    from vlabench.runtime import deadlines as d

    buffer, seq = self.buffer, self._seq + 2
    d._IDLE.pack_into(buffer, 0, seq - 1, 0)
    d._SEQ.pack_into(buffer, 0, seq)
    self._seq = seq
    if self.alarm:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _status_through_orm(self: Any, run_id: int, status: str, error: str | None = None) -> None:
    """``Store.set_run_status`` before: the run loaded through the ORM, then flushed."""
    from vlabench.store.models import FINAL_STATUSES, Run, utcnow

    with self._write() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise LookupError(f"no run with id {run_id}")
        run.status = status
        run.error = error
        now = utcnow()
        if status == "running" and run.started_at is None:
            run.started_at = now
        run.finished_at = now if status in FINAL_STATUSES else None
        session.commit()


def _percentiles_apart(values: Any) -> tuple[float | None, float | None]:
    """``rollout._percentiles`` before: one numpy call per percentile."""
    import numpy as np

    if not values:
        return None, None
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def _metrics_per_list(self: Any) -> dict[str, float]:
    """``ActionSchedule.metrics`` before: each list converted by every numpy call."""
    import numpy as np

    out = {"inference.calls": float(self.calls), "inference.idle_steps": float(self.idle_steps)}
    if self._async:
        out["inference.stale_chunks"] = float(self.stale_chunks)
    if self.latencies_ms:
        out["inference.latency_ms"] = float(np.mean(self.latencies_ms))
        out["inference.latency_ms_max"] = float(np.max(self.latencies_ms))
        out["inference.delay_steps"] = float(np.mean(self.delays))
    if self.jumps:
        out["chunk.discontinuity"] = float(np.mean(self.jumps))
    return out


@contextlib.contextmanager
def before() -> Iterator[None]:
    """The runner's per-call code as it was before this script's cuts, for the duration:
    the per-call timer, the ORM status write, numpy called per percentile and per list, the
    run's config hashed at every episode."""
    from vlabench.execute.runner import Runner
    from vlabench.runtime import rollout
    from vlabench.runtime.deadlines import CallClock
    from vlabench.runtime.inference import ActionSchedule
    from vlabench.store.store import Store

    specs = Runner._specs

    def specs_hashing(self: Any, config: Any, indices: Any) -> Any:
        self._hashes.clear()  # hashed again, as at every episode before
        return specs(self, config, indices)

    saved = (CallClock.start, CallClock.end, Store.set_run_status, rollout._percentiles,
             ActionSchedule.metrics)  # fmt: skip
    CallClock.start, CallClock.end = _start_per_call, _end_per_call  # type: ignore[method-assign]
    Store.set_run_status = _status_through_orm  # type: ignore[method-assign]
    rollout._percentiles = _percentiles_apart
    ActionSchedule.metrics = _metrics_per_list  # type: ignore[method-assign]
    Runner._specs = specs_hashing  # type: ignore[method-assign]
    try:
        yield
    finally:
        (CallClock.start, CallClock.end, Store.set_run_status, rollout._percentiles,
         ActionSchedule.metrics) = saved  # type: ignore[method-assign]  # fmt: skip
        Runner._specs = specs  # type: ignore[method-assign]


def pieces(repeats: int) -> dict[str, dict[str, float]]:
    """CPU time (``time.process_time``: the machine's other load left out) of each cut piece,
    now and :func:`before`, round robin, medians: the call clock of one step (a policy call and
    an env step, under the inline executor's alarm), one run-status write, the percentiles and
    metrics of a 300-step episode, hashing the run's config."""
    import shutil
    import tempfile

    from vlabench.catalog import load_catalog
    from vlabench.execute.runner import Runner
    from vlabench.plan.jobs import plan
    from vlabench.registry import load_registry
    from vlabench.runtime import rollout
    from vlabench.runtime.deadlines import Bracket, CallClock, alarms
    from vlabench.runtime.inference import ActionSchedule, InferenceConfig
    from vlabench.store import open_store

    def cpu(fn: Any, n: int, scale: float) -> float:
        start = time.process_time()
        for i in range(n):
            fn(i)
        return scale * (time.process_time() - start) / n

    tmp = tempfile.mkdtemp(prefix="vlabench-pieces-")
    catalog = load_catalog()
    pairs = plan(["noop"], ["pusht"], load_registry(), catalog, episodes=1, max_steps=1)
    store = open_store(f"sqlite:///{tmp}/s.db")
    runner = Runner(store, catalog)
    [job], _ = runner.plan_jobs(pairs)
    schedule = ActionSchedule(InferenceConfig(), 10.0, 1, None)
    schedule.latencies_ms, schedule.delays = [0.5] * 300, [0] * 300
    latencies = [0.5 + (i % 7) / 10 for i in range(300)]
    clock = CallClock()

    def step(i: int) -> None:
        with Bracket(clock, "policy.predict", [(0, i)]):
            pass
        with Bracket(clock, "env.step", [(0, i)]):
            pass

    def run_all() -> dict[str, float]:
        with alarms(clock):
            found = {"call clock, us per step": cpu(step, 20000, 1e6)}
        found["run-status write, ms"] = cpu(
            lambda i: store.set_run_status(job.run_id, "running", f"note {i}"), 200, 1e3
        )
        found["percentiles and metrics, us per episode"] = cpu(
            lambda i: (rollout._percentiles(latencies), schedule.metrics()), 1000, 1e6
        )
        found["config hashed, us per episode"] = cpu(
            lambda i: runner._specs(job.config, [0]), 1000, 1e6
        )
        return found

    runs: dict[str, list[dict[str, float]]] = {"now": [], "before": []}
    try:
        for _ in range(repeats):
            runs["now"].append(run_all())
            with before():
                runs["before"].append(run_all())
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        side: {k: statistics.median(r[k] for r in found) for k in found[0]}
        for side, found in runs.items()
    }


def extra(episodes: int, steps: int, repeats: int, compare: bool) -> tuple[dict[str, float], float]:
    """Medians: each vlabench side's extra seconds over the raw loop, the raw loop's seconds."""
    vla = vlabench_side("pusht", episodes, steps, False)
    sides = {"raw": pusht_raw(episodes, steps, False), "vlabench": vla}
    if compare:

        def old() -> int:
            with before():
                return vla()

        sides["vlabench, before"] = old
    seconds = alternate(sides, repeats)["seconds"]
    return {k: v - seconds["raw"] for k, v in seconds.items() if k != "raw"}, seconds["raw"]


def timer_check(steps: int, repeats: int) -> dict[str, Any]:
    """Extra us per step over the raw loop, with and without the per-call ``SIGALRM``."""
    import vlabench.execute.inline as inline

    vla = vlabench_side("pusht", 1, steps, False)
    alarms = inline.alarms

    def no_timer() -> int:
        inline.alarms = lambda clock: contextlib.nullcontext()
        try:
            return vla()
        finally:
            inline.alarms = alarms

    sides = {"raw": pusht_raw(1, steps, False), "vlabench": vla, "vlabench, no timer": no_timer}
    result = alternate(sides, repeats)
    out = {}
    for stat in ("seconds", "fastest"):
        values = result[stat]
        out[stat] = {k: 1e6 * (v - values["raw"]) / steps for k, v in values.items() if k != "raw"}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--timer-check", action="store_true", help="also with/without SIGALRM")
    parser.add_argument("--before", action="store_true", help="also the pre-cut per-call code")
    args = parser.parse_args()
    n, s = args.episodes, args.steps
    base, raw_base = extra(1, 1, args.repeats, args.before)
    many, raw_many = extra(n, 1, args.repeats, args.before)
    long, raw_long = extra(1, s, args.repeats, args.before)
    raw_step = (raw_long - raw_base) / (s - 1)
    raw_episode = (raw_many - raw_base) / (n - 1)
    shape = (10, 300)
    raw_total = shape[0] * (raw_episode + shape[1] * raw_step)
    row: dict[str, Any] = {
        "raw_episode_ms": 1000 * raw_episode, "raw_step_us": 1e6 * raw_step,
        "episodes": n, "steps": s, "repeats": args.repeats,
    }  # fmt: skip
    print(f"PushT state-only, noop, median of {args.repeats}; vlabench's extra over the raw loop:")
    for side in base:
        per_step = (long[side] - base[side]) / (s - 1)
        per_episode = (many[side] - base[side]) / (n - 1)
        per_run = base[side] - per_episode - per_step
        ours = per_run + shape[0] * (per_episode + shape[1] * per_step)
        found = {
            "per_run_ms": 1000 * per_run, "per_episode_ms": 1000 * per_episode,
            "per_step_us": 1e6 * per_step, "predicted_ratio_10x300": (raw_total + ours) / raw_total,
        }  # fmt: skip
        if side == "vlabench":
            row.update(found)
        else:
            row["before"] = found
        print(f" {side}:")
        print(f"  per run      {found['per_run_ms']:8.1f} ms   (plan, run row, env build)")
        print(f"  per episode  {found['per_episode_ms']:8.2f} ms   (raw loop's own: "
              f"{row['raw_episode_ms']:.2f} ms)")  # fmt: skip
        print(f"  per step     {found['per_step_us']:8.1f} us   (raw loop's own: "
              f"{row['raw_step_us']:.1f} us)")  # fmt: skip
        print(f"  predicted same-work ratio, 10 x 300 steps: "
              f"{found['predicted_ratio_10x300']:.3f}")  # fmt: skip
    if args.before:
        row["pieces_cpu"] = pieces(args.repeats)
        for name, now in row["pieces_cpu"]["now"].items():
            print(f"  CPU {name}: {now:.2f} (before {row['pieces_cpu']['before'][name]:.2f})")
    if args.timer_check:
        row["timer_check_us_per_step"] = timer_check(s, args.repeats)
        for stat, label in (("seconds", "median"), ("fastest", "fastest run")):
            found = row["timer_check_us_per_step"][stat]
            print(
                f"  1 x {s}, extra us/step ({label}): "
                + ", ".join(f"{k} {v:.0f}" for k, v in found.items())
            )
    print(json.dumps(row))


if __name__ == "__main__":
    main()
