"""BENCHMARKS.md sections of the policy service, the start-up phases and the same-work gap.

Each ``*_section`` turns the JSON line of its script (``policy_service.py``, ``startup.py``,
``episode_overhead.py``) into one ``## `` section; :func:`splice` puts sections into an
existing note in place of the ones of the same heading (``report.py --only``).
"""

from __future__ import annotations

from typing import Any

SERVICE = "## One policy, many env workers: the shared policy service"
STARTUP = "## Start-up of a short run, by phase"
OVERHEAD = "## Where the same-work gap goes (PushT, state only)"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _command(name: str, args: list[str]) -> str:
    return f"`benchmarks/{name}.py {' '.join(args)}`".replace(" `", "`")


def _batches(row: dict[str, Any]) -> str:
    """``1 (26), 2 (147); mean 1.85`` (``-`` without a service)."""
    calls = row.get("rows_per_call") or {}
    if not calls:
        return "-"
    text = ", ".join(f"{rows} ({n})" for rows, n in calls.items())
    mean = row.get("mean_rows_per_call")
    return text if mean is None or len(calls) == 1 else f"{text}; mean {mean:.2f}"


def _one_worker(rows: list[dict[str, Any]]) -> str:
    """A note on a 1-worker gain, which batching cannot explain (one request at a time)."""
    one = [r for r in rows if r["workers"] == 1 and r["policy"] == "one service"]
    if not one or one[0]["ratio_vs_per_worker"] < 1.5:
        return ""
    return (
        f" The 1-worker row ({one[0]['ratio_vs_per_worker']:.2f}x) is not a batching effect: "
        "its service gets one request at a time. In the same process as PushT the policy's "
        "forward pass ran several times slower than in a process of its own on this machine "
        "(as in earlier runs of the script); the service takes it out of the env's process."
    )


def service_section(rows: list[dict[str, Any]], args: list[str]) -> str:
    """The service vs per-worker policies: episodes/s, RSS, batch sizes."""
    workers = sorted({r["workers"] for r in rows})
    multi = [r for r in rows if r["policy"] == "one service" and r["workers"] >= 2]
    best = max(multi, key=lambda r: r["ratio_vs_per_worker"]) if multi else None
    out = [
        SERVICE,
        "",
        f"{_command('policy_service', args)} (one run, all rows from it): a random-weight ACT "
        "on PushT (96x96 camera + agent position), asking for a new chunk every step "
        "(`n_action_steps: 1`) so that the policy call is the bottleneck (`--small`: the "
        "tests' shrunk ACT; else LeRobot's real size, ResNet-18 backbone, no pretrained "
        "weights). The processes executor runs the same episodes with a policy loaded in every "
        "worker (*per worker*) and with `--policy-service` (*one service*). *ep/s* is over the "
        "rollouts (the store's span from the first episode's start to the last episode's "
        "write: process start-up and LeRobot's import left out); *x*: ep/s against per-worker "
        "policies at the same worker count; *wall*: the whole matrix, start-up included; "
        "*RSS*: peak of the summed resident memory of every process the run started (workers "
        "and service); *rows per call*: the service's batches (rows: calls).",
        "",
        table(
            [
                "workers",
                "policy",
                "ep/s",
                "x",
                "rollouts s",
                "wall s",
                "RSS MB",
                "rows per call (calls)",
            ],
            [
                [
                    str(r["workers"]),
                    r["policy"],
                    f"{r['episodes_per_s']:.2f}",
                    (
                        f"**{r['ratio_vs_per_worker']:.2f}**"
                        if r["policy"] == "one service" and r["workers"] >= 2
                        else f"{r['ratio_vs_per_worker']:.2f}"
                    ),
                    f"{r['rollout_s']:.1f}",
                    f"{r['wall_s']:.1f}",
                    f"{r['rss_mb']:.0f}",
                    _batches(r),
                ]
                for r in rows
            ],
        ),
        "",
    ]
    if best is not None:
        per_worker = next(
            r for r in rows if r["workers"] == best["workers"] and r["policy"] == "per worker"
        )
        out += [
            f"Reading (workers {', '.join(map(str, workers))}): the largest gain of the service "
            f"at 2+ env workers is **{best['ratio_vs_per_worker']:.2f}x** the episodes/s of "
            f"per-worker policies ({best['workers']} workers; target >= 1.5x), with "
            f"{best['rss_mb']:.0f} MB for all processes against {per_worker['rss_mb']:.0f} MB "
            "(one model in memory instead of one per worker). The batches hold up to as many "
            "rows as there are workers. `--policy-service` stays opt-in: it pays when the "
            "policy call is the bottleneck (a step-every-chunk ACT here, a VLA on a GPU), not "
            "for a scripted policy, and many short checkpoint runs pay one LeRobot import per "
            "service (see the README). A preset's `max_batch` and `batch_wait_ms` set its "
            "service's batching." + _one_worker(rows),
            "",
        ]
    out += [
        "GPU (`benchmarks/gpu_throughput.py`): LIBERO-Spatial with a random-weight SmolVLA at "
        "its real size (SmolVLM2-500M's architecture) through the service, 16 env workers by "
        "default, reporting episodes/s, GPU utilisation and memory (`nvidia-smi`) and batch "
        "sizes; `MUJOCO_GL=egl .venv/bin/python benchmarks/gpu_throughput.py --workers 16 "
        "--episodes 5`. **Unmeasured**: no GPU machine was lent for this run. The script runs "
        "on a CPU at toy sizes (`--tiny`: a tiny SmolVLA, 32 px cameras), as "
        "`tests/test_policy_service_gpu_script.py` does; that is the number to put here, "
        "beside vla-eval's 2,000 LIBERO episodes in 18 minutes on one H100, once a GPU is "
        "lent.",
        "",
    ]
    return "\n".join(out)


PHASE_NAMES = {
    "process": "whole process",
    "store open": "store open (a new store: created and migrated)",
}


def startup_section(rows: list[dict[str, Any]], args: list[str]) -> str:
    """Start-up phases of a one-step run, per policy, and what the alembic import cost."""
    policies = [r for r in rows if "policy" in r]
    alembic = next((r["alembic_import_s"] for r in rows if "alembic_import_s" in r), None)
    names = list(dict.fromkeys(n for r in policies for n in r["seconds"]))
    label = {"noop": "noop, s", "bench_act": "ACT checkpoint, s"}
    not_own = ("interpreter and imports", "policy load", "other", "process")
    own = [n for n in names if n not in not_own]
    own_s = sum(policies[0]["seconds"].get(n, 0.0) for n in own)
    out = [
        STARTUP,
        "",
        f"{_command('startup', args)}: a fresh `vlabench -v run --suite pusht -n 1 "
        "--max-steps 1 --executor inline` process into a fresh store, median of "
        f"{policies[0]['repeats']} (round robin); `-v` prints the same table for any `run` or "
        "`matrix`. *other* is the rest of the process: the command's own imports (SQLAlchemy, "
        "the runner), the one-step episode, the exit.",
        "",
        table(
            ["phase", *(label.get(r["policy"], f"{r['policy']}, s") for r in policies)],
            [
                [PHASE_NAMES.get(n, n), *(f"{r['seconds'].get(n, 0.0):.3f}" for r in policies)]
                for n in names
            ],
        ),
        "",
        f"vlabench's own phases ({', '.join(own)}) add up to **{own_s:.2f} s** for "
        f"{policies[0]['policy']}; a LeRobot checkpoint's start-up is its policy load, i.e. "
        "LeRobot's import graph (transformers, diffusers, pandas, torchvision) and "
        "`from_pretrained`. Opening a store that is already at the newest "
        "schema (every run after the first on a store) does not import alembic: the migration "
        "heads are read from the migration scripts' text and the store's version with one SQL "
        "query."
        + (
            f" What that import cost, in a fresh process after SQLAlchemy, measured in the "
            f"same run: **{alembic:.3f} s** per command."
            if alembic is not None
            else ""
        )
        + " Many checkpoints: one `vlabench matrix` over all of them pays LeRobot's import "
        "once per worker, not once per checkpoint (README, *Scale, isolation and remote "
        "policies*).",
        "",
    ]
    return "\n".join(out)


def overhead_section(row: dict[str, Any], args: list[str]) -> str:
    """Per run, per episode and per step extra of the runner over a raw loop (and before)."""
    before = row.get("before")
    n, s = row["episodes"], row["steps"]
    header = ["extra of vlabench over the raw loop", "now"]
    header += ["before the cuts"] if before else []
    header += ["the raw loop's own"]

    def line(label: str, key: str, fmt: str, raw: str) -> list[str]:
        cells = [label, f"**{row[key]:{fmt}}**"]
        cells += [f"{before[key]:{fmt}}"] if before else []
        return [*cells, raw]

    out = [
        OVERHEAD,
        "",
        f"{_command('episode_overhead', args)} (one run): vlabench's runner with the noop "
        "policy against gym-pusht stepped directly (the same-work state comparison above), at "
        f"1 x 1, {n} x 1 and 1 x {s} episodes x steps, each shape's sides round robin, solved "
        "for the extra cost per run, per episode and per step (medians). "
        + (
            "*before the cuts* is a third side in the same run: the runner with the code the "
            "script keeps a copy of (the `SIGALRM` timer armed and disarmed around every "
            "policy and env call; the per-episode run-status write through an ORM load; numpy "
            "called once per percentile and per list; the run's config hashed at every "
            "episode)."
            if before
            else ""
        ),
        "",
        table(
            header,
            [
                line("per run (plan, run row, env build), ms", "per_run_ms", ".1f", "-"),
                line(
                    "per episode (reset, record, two store writes), ms",
                    "per_episode_ms",
                    ".2f",
                    f"{row['raw_episode_ms']:.2f}",
                ),
                line(
                    "per step (policy call, action schedule, call clock), us",
                    "per_step_us",
                    ".1f",
                    f"{row['raw_step_us']:.1f}",
                ),
                line(
                    "predicted same-work ratio, 10 x 300 steps", "predicted_ratio_10x300", ".3f", ""
                ),
            ],
        ),
        "",
        "Cut: (1) the inline executor's `SIGALRM` is armed lazily "
        "(`vlabench/runtime/deadlines.py`): a call arms it only when it would fire after that "
        "call's deadline and a returning call leaves it armed, so a stream of quick calls "
        "makes no system call (before: two `setitimer` per policy or env call, four per "
        "step); every call is still cut at its deadline (the handler re-arms for the call in "
        "progress when an earlier call's alarm comes first; `tests/test_deadline_alarm.py`). "
        "(2) The per-episode journal write (the run's note naming the episode in flight, "
        "written before the episode runs, as crash safety needs) is one `UPDATE` instead of "
        "an ORM load and flush (`Store.set_run_status`); each finished episode is still "
        "written, in its own transaction, before it is reported. (3) Per episode, one numpy "
        "call for both latency percentiles and one array per list for the inference metrics "
        "(numpy's fixed cost per call is ~0.1 ms), and the run's config hashed once per job "
        "instead of at every episode. The columns come from one run, round robin, so they "
        "share the machine's state; a few ms per run or tens of us per step are still within "
        "its noise (see *Machine noise*).",
        "",
    ]
    cpu = row.get("pieces_cpu")
    if cpu:
        out += [
            "The cut pieces alone, in CPU time (`time.process_time`, so the machine's other "
            "load stays out; the same run, round robin, medians): what the wall-time columns "
            "above cannot resolve on a shared machine.",
            "",
            table(
                ["piece", "now", "before the cuts"],
                [[k, f"**{v:.2f}**", f"{cpu['before'][k]:.2f}"] for k, v in cpu["now"].items()],
            ),
            "",
        ]
    timer = row.get("timer_check_us_per_step")
    if timer:
        parts = [
            f"{label}: " + ", ".join(f"{k} {v:.0f}" for k, v in timer[stat].items())
            for stat, label in (("seconds", "medians"), ("fastest", "least-disturbed runs"))
        ]
        out += [
            f"Timer check (1 x {s} steps, a side with the inline executor's `SIGALRM` switched "
            "off), extra us per step over the raw loop: " + "; ".join(parts) + ". On this "
            "shared machine the per-step terms carry its load (see *Machine noise*): the "
            "loop's own cost on a null env is in the *loop's own cost* table above.",
            "",
        ]
    return "\n".join(out)


def splice(note: str, sections: list[str]) -> str:
    """``note`` with each section in place of the one of the same heading (or appended
    before ``## Arguments used``)."""
    for section in sections:
        heading = section.splitlines()[0]
        start = note.find(heading + "\n")
        if start < 0:
            start = note.find("## Arguments used")
            start = len(note) if start < 0 else start
            end = start
        else:
            after = note.find("\n## ", start + len(heading))
            end = len(note) if after < 0 else after + 1
        body = section.rstrip("\n") + "\n"
        note = note[:start] + body + ("\n" if end < len(note) else "") + note[end:]
    return note


def sections_of(note: str) -> list[str]:
    """The ``## `` sections of ``note``, each from its heading to the next one."""
    parts = note.split("\n## ")
    return ["## " + part.rstrip("\n") + "\n" for part in parts[1:]]


def keep_others(text: str, old_note: str) -> str:
    """``text`` plus every section of ``old_note`` it does not write itself: those are
    measured by their own scripts (each names its command), so a full report keeps them."""
    headings = {line for line in text.splitlines() if line.startswith("## ")}
    others = [
        s for s in sections_of(old_note)
        if s.splitlines()[0] not in headings and not s.startswith("## Arguments used")
    ]  # fmt: skip
    return splice(text, others)
