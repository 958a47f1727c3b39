"""What latency costs a chunking policy: success and time to success per inference mode.

Runs ``metaworld-expert-chunked`` (the scripted expert planning 20-action chunks in a
private copy of the simulator, so its chunks are perfect and every loss is the schedule's)
on Meta-World MT10 (state only) in ``sync`` and, for each latency, ``sync-realtime`` and
``async``; prints success, mean time to success (simulated seconds) and idle steps, each
realtime mode next to sync on the same episodes.

    .venv/bin/python benchmarks/latency_modes.py --episodes 5 --latencies 50 100 200 300

Meta-World runs at 80 Hz, so 100 ms is 8 control steps.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")


def run_mode(store: Any, inference: Any, args: argparse.Namespace) -> list[int]:
    """Run the suite in one mode; the run ids."""
    from vlabench.catalog import load_catalog
    from vlabench.execute.choose import make_executor
    from vlabench.execute.runner import Runner
    from vlabench.plan.jobs import plan
    from vlabench.registry import PolicyPreset, load_registry

    catalog, registry = load_catalog(), load_registry()
    registry.policies["chunked_expert"] = PolicyPreset(
        type="metaworld-expert-chunked", options={"chunk_size": args.chunk}
    )
    suite = registry.suites[args.suite]
    registry.suites[args.suite] = suite.model_copy(update={"env_options": {"cameras": []}})
    pairs = plan(
        ["chunked_expert"],
        [args.suite],
        registry,
        catalog,
        episodes=args.episodes,
        max_steps=args.max_steps,
        inference=inference,
    )
    executor = make_executor("processes", catalog, workers=args.workers)
    results = Runner(store, catalog, executor=executor).run_pairs(pairs)
    return [r.run_id for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="metaworld_mt10")
    parser.add_argument("--episodes", type=int, default=5, help="per task")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--chunk", type=int, default=20)
    parser.add_argument("--latencies", type=float, nargs="+", default=[50, 100, 200, 300])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()

    from vlabench.report.latency import latency_costs
    from vlabench.runtime.inference import InferenceConfig
    from vlabench.store import open_store

    rows = []
    with tempfile.TemporaryDirectory() as tmp, open_store(f"sqlite:///{Path(tmp)}/l.db") as store:
        run_mode(store, InferenceConfig("sync"), args)
        for latency in args.latencies:
            for mode in ("sync-realtime", "async"):
                ids = run_mode(store, InferenceConfig(mode, f"{latency:g}"), args)
                for cost in latency_costs(store, ids):
                    assert cost.sync is not None
                    rows.append(
                        {
                            "mode": mode,
                            "latency_ms": latency,
                            "episodes": cost.realtime.n,
                            "success": cost.realtime.success_rate,
                            "sync_success": cost.sync.success_rate,
                            "time_to_success_s": cost.realtime.time_to_success_s,
                            "sync_time_to_success_s": cost.sync.time_to_success_s,
                            "idle_steps": cost.realtime.idle_steps,
                            "calls": cost.realtime.inference_calls,
                            "jump": cost.realtime.discontinuity,
                            "sync_jump": cost.sync.discontinuity,
                        }
                    )
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    print(f"{args.suite}, {args.episodes} episodes per task, chunk {args.chunk}, 80 Hz")
    print(f"{'mode':<14} {'ms':>5} {'success':>8} {'(sync)':>7} {'to success s':>13} "
          f"{'(sync)':>7} {'idle':>6} {'calls':>6} {'jump':>6} {'(sync)':>7}")
    for r in rows:
        print(
            f"{r['mode']:<14} {r['latency_ms']:>5g} {100 * r['success']:>7.1f}% "
            f"{100 * r['sync_success']:>6.1f}% {r['time_to_success_s'] or 0:>13.2f} "
            f"{r['sync_time_to_success_s'] or 0:>7.2f} {r['idle_steps']:>6.1f} "
            f"{r['calls']:>6.1f} {r['jump'] or 0:>6.3f} {r['sync_jump'] or 0:>7.3f}"
        )


if __name__ == "__main__":
    main()
