"""Regenerate BENCHMARKS.md: run every headline benchmark once, in turn, and write the note.

    .venv/bin/python -m benchmarks.report            # ~20 minutes on 2 cores
    .venv/bin/python -m benchmarks.report --quick    # ~8 minutes, smaller work
    .venv/bin/python -m benchmarks.report --only startup episode_overhead

``--only NAME ...`` runs those benchmarks alone and puts their sections into the existing
note in place of the ones of the same heading (the sections of :mod:`report_sections`).

Each benchmark script runs in its own subprocess (one at a time, so they do not compete for
the cores) and ends its output with one JSON line, which is read back here. The note keeps
the method text below and replaces every number.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import report_sections  # noqa: E402

FULL = {
    "rollout_overhead": ["--episodes", "10", "--max-steps", "300", "--repeats", "7",
                         "--mw-episodes", "4", "--mw-max-steps", "500", "--mw-render-steps", "20"],
    "vs_lerobot_eval": ["--episodes", "8", "--batch-size", "4", "--max-steps", "100",
                        "--repeats", "3", "--smolvla"],
    "matrix_scaling": ["--episodes", "10", "--max-steps", "150", "--repeats", "1", "--no-ray"],
    "store_throughput": ["--episodes", "2000", "--no-postgres"],
    "store_scale": ["--repeats", "5"],
    "profile_rollout": ["--case", "pusht-noop", "--case", "pusht-random", "--case",
                        "metaworld-expert", "--case", "pusht-act", "--episodes", "4",
                        "--max-steps", "150", "--top", "8"],
    "loop_cost": ["--steps", "5000", "--repeats", "5"],
    "env_wrapper_cost": ["--steps", "300", "--repeats", "30"],
    "policy_service": ["--episodes", "8", "--max-steps", "20", "--workers", "1", "2", "4"],
    "startup": ["--repeats", "3", "--act"],
    "episode_overhead": ["--episodes", "20", "--steps", "600", "--repeats", "7", "--before",
                         "--timer-check"],
}  # fmt: skip
QUICK = {
    "rollout_overhead": ["--episodes", "3", "--max-steps", "100", "--repeats", "3",
                         "--mw-episodes", "1", "--mw-max-steps", "200", "--mw-render-steps", "8"],
    "vs_lerobot_eval": ["--episodes", "4", "--batch-size", "2", "--max-steps", "50",
                        "--repeats", "1"],
    "matrix_scaling": ["--episodes", "4", "--max-steps", "100", "--repeats", "1", "--no-ray"],
    "store_throughput": ["--episodes", "500", "--no-postgres"],
    "store_scale": ["--policies", "20", "--tasks", "50", "--episodes", "1000", "--repeats", "3"],
    "profile_rollout": ["--case", "pusht-noop", "--case", "metaworld-expert", "--episodes", "2",
                        "--max-steps", "100", "--top", "8"],
    "loop_cost": ["--steps", "2000", "--repeats", "3"],
    "env_wrapper_cost": ["--steps", "300", "--repeats", "10"],
    "policy_service": ["--episodes", "4", "--max-steps", "10", "--workers", "1", "2",
                       "--small"],
    "startup": ["--repeats", "2"],
    "episode_overhead": ["--episodes", "10", "--steps", "300", "--repeats", "3", "--before"],
}  # fmt: skip
SECTIONS = {
    "policy_service": report_sections.service_section,
    "startup": report_sections.startup_section,
    "episode_overhead": report_sections.overhead_section,
}
"""The benchmarks whose sections :mod:`report_sections` writes (and ``--only`` splices)."""


def run_script(name: str, args: list[str]) -> tuple[Any, float]:
    """Run ``benchmarks/NAME.py ARGS``; its last JSON line and the wall time."""
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(HERE / f"{name}.py"), *args],
        capture_output=True, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    last = [line for line in done.stdout.splitlines() if line.startswith(("[", "{"))][-1]
    return json.loads(last), elapsed


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render(results: dict[str, Any], machine: dict[str, Any], args: list[str], quick: bool) -> str:
    """The whole BENCHMARKS.md text."""
    ro, le, ms = results["rollout_overhead"], results["vs_lerobot_eval"], results["matrix_scaling"]
    wrap, jit = results["env_wrapper_cost"], results["_jitter"]
    st, sc, pr = results["store_throughput"], results["store_scale"], results["profile_rollout"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    out = [
        "# Benchmarks",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by "
        f"`.venv/bin/python -m benchmarks.report{' --quick' if quick else ''}` "
        f"({sum(results['_seconds'].values()):.0f} s). Regenerate with the same command "
        "(`--quick` for smaller work); each script in `benchmarks/` also runs alone.",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GiB RAM, "
        f"{machine['os']}, Python {machine['python']}, torch threads {machine['torch_threads']}"
        f" (no GPU used). Versions: {versions}.",
        "",
        "Machine noise: one fixed pure-Python loop, timed 20 times before the runs, took "
        f"{jit['min']:.1f} ms at best, {jit['median']:.1f} median, {jit['max']:.1f} at worst.",
        "",
        "Method: every comparison runs the same work on both sides (same env, episodes, seeds "
        "1000.., actions, max steps, batch size) in one process tree, round robin (a, b, a, "
        "b, ...) after one warm-up, and reports medians; a ratio is vlabench time / reference "
        "time (below 1 = vlabench faster). Numbers from a shared machine drift by several "
        "per cent between runs: compare the ratios, not the absolute times.",
        "",
        "## Framework overhead: vlabench runner (noop policy) vs a raw gymnasium loop",
        "",
        "`benchmarks/rollout_overhead.py`. The vlabench side is `vlabench run` in-process "
        "(plan, pair check, run rows, env build, rollout, one SQLite write per finished "
        "episode); the raw side builds the env and steps it. *same work (render)*: the runner "
        "is told the policy reads every feature, so the env renders its camera as the raw "
        "loop does; *same work (state)*: neither renders; *what a user gets*: the raw loop "
        "renders, vlabench renders only what the policy reads (the noop policy reads no "
        "image). Target for *same work*: ratio <= 1.03. *ratio* compares medians; *fastest* "
        "compares each side's least disturbed run.",
        "",
        _table(
            ["env", "comparison", "steps", "raw s", "vlabench s", "ratio", "fastest"],
            [[r["env"], r["comparison"], str(r["steps"]), f"{r['raw_s']:.3f}",
              f"{r['vlabench_s']:.3f}", f"**{r['ratio']:.3f}**", f"{r['ratio_fastest']:.3f}"]
             for r in ro],
        ),
        "",
        "Reading the state-only rows: identical runs of a state-only step (PushT ~0.8 ms of "
        "pure-Python pymunk + shapely, Meta-World ~0.7 ms) spread by tens of per cent on this "
        "shared machine (see *Machine noise*), so their ratios move by several per cent from "
        "one report to the next. The per-step parts are therefore also measured apart: each "
        "env plugin against its simulator, the two stepped in lockstep so that they share the "
        "machine's state (`benchmarks/env_wrapper_cost.py`), and the loop, below.",
        "",
        _table(
            ["env", "steps", "simulator us/step", "plugin us/step", "added us", "ratio"],
            [[w["env"], f"{w['repeats']} x {w['steps']}", f"{w['raw_us']:.0f}",
              f"{w['plugin_us']:.0f}", f"**{w['added_us']:+.1f}**", f"{w['ratio']:.3f}"]
             for w in wrap],
        ),
        "",
        "The loop's own cost (`benchmarks/loop_cost.py`: `Rollout` on a null env that "
        "returns a ready observation, so every microsecond is the loop's; compare with "
        "~800 us for a PushT step):",
        "",
        _table(
            ["batch size", "observation", "us per env step"],
            [[str(r["batch_size"]), "state + 96x96 image" if r["image"] else "state",
              f"{r['us_per_step']:.1f}"] for r in results["loop_cost"]],
        ),
        "",
        "## vs `lerobot-eval` (same checkpoint, env, episodes, seeds, batch size)",
        "",
        "`benchmarks/vs_lerobot_eval.py`: random-weight checkpoints saved with "
        "`save_pretrained`; every side a fresh subprocess (start-up included). lerobot-eval "
        "always writes videos of the first 10 episodes (not switchable from its CLI); "
        "vlabench writes none unless `--record-video`. Seeds map 1:1 (episode i: 1000 + i).",
        "",
    ]
    for row in le:
        out.append(
            f"**{row['policy']}**, {row['episodes']} episodes x {row['max_steps']} steps, batch "
            f"{row['batch_size']}, median of {row['repeats']}. *whole*: the subprocess, start-up "
            "included; *rollouts*: lerobot-eval's own `eval_s` and, for vlabench, the span "
            "from the first episode's start to the last episode's write in the store (both "
            "without start-up, imports and policy loading)."
        )
        out.append("")
        in_run = {"lerobot-eval": row["lerobot_eval_s_internal"], **row["vlabench_run_s"]}
        out.append(
            _table(
                ["side", "whole s", "ratio", "rollouts s", "ratio"],
                [[k, f"{v:.2f}", f"**{row['ratio_vs_lerobot_eval'][k]:.3f}**",
                  f"{in_run[k]:.2f}", f"**{in_run[k] / in_run['lerobot-eval']:.3f}**"]
                 for k, v in row["seconds"].items()],
            )
        )
        out.append("")
    base = next(r["seconds"] for r in ms if r["executor"] == "processes" and r["workers"] == 1)
    out += [
        "## Matrix scaling (noop + random on PushT, camera rendered)",
        "",
        "`benchmarks/matrix_scaling.py`: the same matrix into a fresh store per executor, end "
        "to end (worker start-up included).",
        "",
        _table(
            ["executor", "workers", "seconds", "episodes/s", "speed-up vs 1 process"],
            [[r["executor"], str(r["workers"]), f"{r['seconds']:.2f}",
              f"{r['episodes_per_s']:.2f}", f"**{base / r['seconds']:.2f}**"] for r in ms],
        ),
        "",
        "## Store",
        "",
        "`benchmarks/store_throughput.py` (SQLite, WAL): episodes/s written.",
        "",
        _table(
            ["backend", "pattern", "seconds", "episodes/s"],
            [[r["backend"], r["pattern"], f"{r['seconds']:.2f}", f"{r['episodes_per_s']:.0f}"]
             for r in st],
        ),
        "",
        f"`benchmarks/store_scale.py`: leaderboard on a SQLite store of {sc['episodes']:,} "
        f"episode rows in {sc['runs']} runs (20 policies x 50 tasks x 1000 episodes, 5 "
        f"suites), bulk-loaded; median of the timed calls. Target: main query < 0.5 s.",
        "",
        _table(
            ["query", "ms"],
            [
                ["`Store.run_counts` before (0002 indexes, GROUP BY query)",
                 f"{1000 * sc['run_counts_before_s']:.0f}"],
                ["`Store.run_counts` (main query)", f"**{1000 * sc['run_counts_s']:.0f}**"],
                ["`board_from_store` (whole board)", f"{1000 * sc['board_s']:.0f}"],
                ["`board_from_store(suite=...)`", f"{1000 * sc['board_one_suite_s']:.0f}"],
            ],
        ),
        "",
        "Query plan: " + "; ".join(f"`{p}`" for p in sc["plan"]) + ". Migration 0003 adds "
        "the covering index `(run_id, success)` and a partial index of failed episodes; the "
        "counts are correlated subqueries per run, each an index range (before: one GROUP BY "
        "over all episodes reading the table rows; results asserted equal).",
        "",
        "## Profile of the rollout loop (pyinstrument, self time)",
        "",
        "`benchmarks/profile_rollout.py`: the vlabench side of one run under pyinstrument; "
        "shares of self time by group (builtins count with their caller) and the top "
        "functions; the raw numbers are in `benchmarks/latest.json`.",
        "",
    ]
    for case, prof in pr.items():
        shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in prof["groups"].items())
        out.append(f"**{case}** ({prof['total_s']:.2f} s; {shares})")
        out.append("")
        out.append(
            _table(
                ["share", "group", "function", "file"],
                [[f"{100 * t['share']:.1f}%", t["group"], f"`{t['function']}`", t["file"]]
                 for t in prof["top"]],
            )
        )
        out.append("")
    plan = QUICK if quick else FULL
    out += [SECTIONS[name](results[name], plan[name]) for name in SECTIONS if name in results]
    out += ["## Arguments used", "", "```"]
    out += [f"{name}.py {' '.join(a)}" for name, a in (QUICK if quick else FULL).items()]
    out += ["```", ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller work (~8 minutes)")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=sorted(SECTIONS),
        metavar="NAME",
        help=f"run these alone, splice their sections ({', '.join(SECTIONS)})",
    )
    args = parser.parse_args()
    from common import cpu_jitter, machine

    plan = QUICK if args.quick else FULL
    if args.only:
        sections = []
        for name in args.only:
            print(f"running {name} ...", flush=True)
            found, seconds = run_script(name, plan[name])
            print(f"  {seconds:.0f} s", flush=True)
            sections.append(SECTIONS[name](found, plan[name]))
        note = args.out.read_text() if args.out.exists() else "# Benchmarks\n\n"
        args.out.write_text(report_sections.splice(note, sections))
        print(f"wrote {args.out}")
        return
    results: dict[str, Any] = {"_seconds": {}, "_jitter": cpu_jitter()}
    for name, script_args in plan.items():
        print(f"running {name} ...", flush=True)
        results[name], results["_seconds"][name] = run_script(name, script_args)
        print(f"  {results['_seconds'][name]:.0f} s", flush=True)
    text = render(results, machine(), sys.argv[1:], args.quick)
    if args.out.exists():  # sections other scripts measured stay
        text = report_sections.keep_others(text, args.out.read_text())
    args.out.write_text(text)
    (HERE / "latest.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
