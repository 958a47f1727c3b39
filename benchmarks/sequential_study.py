"""Sequential A/B evaluation: error rates and episodes saved, by seeded simulation; a live run.

Simulation (no simulator): policies A and B succeed independently on each paired episode.
The sequential test (vlabench.sequential: anytime-valid interval of rate_A - rate_B, a look
every ``--round`` pairs) is compared with

* under the null (equal rates 0.1..0.9): the false-decision rate at ANY look (so at every
  stopping time), next to exact McNemar re-tested at every look (peeking) and once at the
  budget;
* under alternatives (B at 0.5, A 5..30 points better): the median and 90th percentile of
  pairs to a decision (undecided sequences count as the budget), against the fixed n at
  which exact McNemar has the same power as the sequential test within its budget (three
  times the fixed n for 80% power).

    .venv/bin/python benchmarks/sequential_study.py --sequences 2000

Live (``--live``): Meta-World MT10, ``metaworld-expert-chunked`` in ``sync`` (A) against
``sync-realtime`` at 200 ms (B), state only, paired episodes in rounds until decided; the
episodes stay in ``--db``.

    .venv/bin/python benchmarks/sequential_study.py --live --db sqlite:///sequential_live.db
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

ALPHA = 0.05


def mcnemar_p(only_a: Any, only_b: Any) -> Any:
    """Two-sided exact McNemar p-values (vectorised; as vlabench.stats.mcnemar_exact)."""
    from scipy.stats import binom

    d = only_a + only_b
    p = np.minimum(1.0, 2.0 * binom.cdf(np.minimum(only_a, only_b), d, 0.5))
    return np.where(d == 0, 1.0, p)


def simulate(
    rng: np.random.Generator, pa: float, pb: float, sequences: int, budget: int, every: int
) -> tuple[Any, Any, Any]:
    """Cumulative only-A, only-B counts and n at every look (sequences x looks)."""
    from vlabench.sequential import paired_sequence_bounds  # noqa: F401  (checked importable)

    looks = budget // every
    only_a = np.zeros((sequences, looks), dtype=np.int64)
    only_b = np.zeros((sequences, looks), dtype=np.int64)
    p10, p01 = pa * (1 - pb), pb * (1 - pa)
    # per look: a multinomial draw of (only A, only B, concordant) over `every` pairs
    draws = rng.multinomial(every, [p10, p01, 1 - p10 - p01], size=(sequences, looks))
    only_a[:] = np.cumsum(draws[..., 0], axis=1)
    only_b[:] = np.cumsum(draws[..., 1], axis=1)
    n = np.broadcast_to(np.arange(every, looks * every + 1, every), only_a.shape)
    return only_a, only_b, n


def decisions(only_a: Any, only_b: Any, n: Any, delta: float | None) -> Any:
    """Codes per look: 1 A > B, -1 B > A, 2 no difference, 0 undecided."""
    from vlabench.sequential import paired_sequence_bounds

    low, high = paired_sequence_bounds(only_a, only_b, n, ALPHA)
    code = np.where(low > 0, 1, np.where(high < 0, -1, 0))
    if delta is not None:
        code = np.where((code == 0) & (low > -delta) & (high < delta), 2, code)
    return code


def fixed_power(pa: float, pb: float, n: int, rng: np.random.Generator, sims: int) -> float:
    """Power of exact McNemar at n pairs (two-sided, deciding A > B), by simulation."""
    p10, p01 = pa * (1 - pb), pb * (1 - pa)
    d = rng.binomial(n, p10 + p01, size=sims)
    b = rng.binomial(d, p10 / (p10 + p01))
    return float(((mcnemar_p(b, d - b) < ALPHA) & (b > d - b)).mean())


def fixed_n_for(power: float, pa: float, pb: float, rng: np.random.Generator) -> int:
    """The smallest n (to 1%) at which exact McNemar reaches ``power``."""
    low, high = 1, 2
    while fixed_power(pa, pb, high, rng, 20_000) < power:
        low, high = high, high * 2
    while high - low > max(1, low // 100):
        mid = (low + high) // 2
        low, high = (low, mid) if fixed_power(pa, pb, mid, rng, 20_000) >= power else (mid, high)
    return high


def null_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for p in (0.1, 0.3, 0.5, 0.7, 0.9):
        rng = np.random.default_rng(int(1000 * p))
        a, b, n = simulate(rng, p, p, args.sequences, args.null_budget, args.round)
        codes = decisions(a, b, n, delta=None)
        peeking = (mcnemar_p(a, b) < ALPHA).any(axis=1).mean()
        rows.append(
            {
                "rate": p,
                "sequential_false": float((np.abs(codes) == 1).any(axis=1).mean()),
                "peeking_mcnemar_false": float(peeking),
                "fixed_mcnemar_false": float((mcnemar_p(a[:, -1], b[:, -1]) < ALPHA).mean()),
            }
        )
    return rows


def alternative_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    pb = 0.5
    for diff in (0.05, 0.10, 0.20, 0.30):
        pa = pb + diff
        rng = np.random.default_rng(int(1000 * diff))
        n80 = fixed_n_for(0.8, pa, pb, rng)
        budget = args.round * max(1, round(3 * n80 / args.round))
        a, b, n = simulate(rng, pa, pb, args.sequences, budget, args.round)
        codes = decisions(a, b, n, delta=None)
        decided = codes != 0
        first = np.where(decided.any(axis=1), decided.argmax(axis=1), -1)
        pairs = np.where(first >= 0, (first + 1) * args.round, budget)
        verdict = np.where(first >= 0, codes[np.arange(len(codes)), first], 0)
        power = float((verdict == 1).mean())
        n_equal = fixed_n_for(power, pa, pb, rng)
        rows.append(
            {
                "difference": diff,
                "rates": [pa, pb],
                "fixed_n_80": n80,
                "budget": budget,
                "power": power,
                "wrong_sign": float((verdict == -1).mean()),
                "median_pairs": float(np.median(pairs)),
                "p90_pairs": float(np.percentile(pairs, 90)),
                "mean_pairs": float(pairs.mean()),
                "fixed_n_equal_power": n_equal,
                "saved_median": 1 - float(np.median(pairs)) / n_equal,
                "saved_mean": 1 - float(pairs.mean()) / n_equal,
            }
        )
    return rows


def live(args: argparse.Namespace) -> dict[str, Any]:
    """MT10, the chunked expert in sync (A) vs sync-realtime at 200 ms (B), until decided."""
    from vlabench.catalog import load_catalog
    from vlabench.execute.choose import make_executor
    from vlabench.execute.rounds import run_until_decided
    from vlabench.execute.runner import Runner
    from vlabench.plan.jobs import plan
    from vlabench.registry import load_registry
    from vlabench.runtime.inference import InferenceConfig
    from vlabench.sequential import StoppingRule
    from vlabench.store import open_store

    catalog, registry = load_catalog(), load_registry()
    suite = registry.suites[args.suite]
    registry.suites[args.suite] = suite.model_copy(update={"env_options": {"cameras": []}})

    def configs(inference: Any) -> list[Any]:
        (pair,) = plan(
            ["metaworld-expert-chunked"], [args.suite], registry, catalog,
            episodes=args.budget, inference=inference,
        )
        assert pair.runnable, pair.reason
        return pair.runs

    a = configs(InferenceConfig("sync"))
    b = configs(InferenceConfig("sync-realtime", "200"))
    rule = StoppingRule("until-decided", delta=args.delta, round=args.round)
    started = time.monotonic()
    with open_store(args.db) as store:
        executor = make_executor("processes", catalog, workers=args.workers)
        runner = Runner(store, catalog, executor=executor)
        state = run_until_decided(runner, a, b, rule, say=print)
        from vlabench.report.compare import compare

        fixed = compare(store, "metaworld-expert-chunked",
                        "metaworld-expert-chunked [sync-realtime 200ms]", suite=[args.suite])
    return {
        "suite": args.suite,
        "tasks": len(a),
        "decision": state.stopped,
        "looks": state.looks,
        "episodes_per_task": state.look,
        "budget_per_task": args.budget,
        "pairs": state.table.n,
        "rate_a": state.table.rate_a,
        "rate_b": state.table.rate_b,
        "difference_interval": [state.low, state.high],
        "mcnemar_p_on_the_same_pairs": fixed.p_value,
        "episodes_saved": 1 - state.look / args.budget,
        "wall_s": time.monotonic() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=2000)
    parser.add_argument("--round", type=int, default=10, help="pairs between looks")
    parser.add_argument("--null-budget", type=int, default=1000, help="pairs under the null")
    parser.add_argument("--live", action="store_true", help="the Meta-World run instead")
    parser.add_argument("--db", default="sqlite:///sequential_live.db")
    parser.add_argument("--suite", default="metaworld_mt10")
    parser.add_argument("--budget", type=int, default=50, help="live: episodes per task")
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    if args.live:
        result = live(args)
        print(json.dumps(result, indent=None if args.json else 2))
        return
    null, alt = null_rows(args), alternative_rows(args)
    if args.json:
        for row in [*null, *alt]:
            print(json.dumps(row))
        return
    print(f"alpha {ALPHA}, {args.sequences} sequences, a look every {args.round} pairs")
    print(f"null, {args.null_budget} pairs: false-decision rate (any look)")
    print(f"{'rate':>5} {'sequential':>11} {'McNemar peeking':>16} {'McNemar at end':>15}")
    for r in null:
        print(f"{r['rate']:>5.1f} {r['sequential_false']:>11.4f} "
              f"{r['peeking_mcnemar_false']:>16.4f} {r['fixed_mcnemar_false']:>15.4f}")
    print("alternatives (B 50%): pairs to a decision vs fixed n of equal power")
    print(f"{'diff':>5} {'budget':>7} {'power':>6} {'median':>7} {'p90':>6} {'mean':>7} "
          f"{'fixed n':>8} {'saved med':>10} {'saved mean':>11}")
    for r in alt:
        print(f"{100 * r['difference']:>5.0f} {r['budget']:>7} {r['power']:>6.3f} "
              f"{r['median_pairs']:>7.0f} {r['p90_pairs']:>6.0f} {r['mean_pairs']:>7.0f} "
              f"{r['fixed_n_equal_power']:>8} {100 * r['saved_median']:>9.0f}% "
              f"{100 * r['saved_mean']:>10.0f}%")


if __name__ == "__main__":
    main()
