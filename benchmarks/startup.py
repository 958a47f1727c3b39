"""Start-up of a short run, by phase: what `vlabench -v run` prints, median of fresh processes.

Each repeat is a fresh ``vlabench -v run --executor inline -n 1 --max-steps 1`` subprocess into
a fresh SQLite store (so the store is created and migrated each time), for the noop policy
(vlabench's own costs: interpreter and imports, plugins, registry, plan, store, env build) and,
with ``--act``, a random-weight ACT checkpoint (tests/lerobot_testkit.py), whose ``policy
load`` holds LeRobot's import. ``other`` is the rest of the process: the command's own
imports (the store's SQLAlchemy, the runner), the episode, the exit. ``alembic import`` is
what opening a store at head cost before it stopped importing alembic (the migration heads
are read from the scripts' text, the store's version with plain SQL): the import of
``alembic.script`` and ``alembic.runtime.migration`` after SQLAlchemy, in a fresh process.

    .venv/bin/python benchmarks/startup.py --repeats 5 --act
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


def phases_of(stdout: str) -> dict[str, float]:
    """The ``-v`` table: phase -> seconds (``process so far`` included)."""
    lines = stdout[stdout.index("start-up phases") :].splitlines()[1:]
    return {line[:30].strip(): float(line[30:]) for line in lines if not line.startswith("  (")}


def run_once(policy: str, tmp: Path, i: int, env: dict[str, str]) -> dict[str, float]:
    db = tmp / f"s{policy}{i}.db"
    done = subprocess.run(
        [str(BIN / "vlabench"), "--db", f"sqlite:///{db}", "-q", "-v", "run", "--policy", policy,
         "--suite", "pusht", "-n", "1", "--max-steps", "1", "--executor", "inline"],
        capture_output=True, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"vlabench run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    found = phases_of(done.stdout)
    total = found.pop("process so far")
    found["other"] = max(0.0, total - sum(found.values()))
    found["process"] = total
    return found


ALEMBIC = (
    "import time, sqlalchemy, sqlalchemy.orm\n"
    "t = time.perf_counter()\n"
    "import alembic.script, alembic.runtime.migration\n"
    "print(time.perf_counter() - t)\n"
)


def alembic_import_s() -> float:
    """Seconds to import what a store open at head imported before (fresh process)."""
    done = subprocess.run([sys.executable, "-c", ALEMBIC], capture_output=True, text=True,
                          check=True)  # fmt: skip
    return float(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--act", action="store_true", help="also a random-weight ACT")
    args = parser.parse_args()
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "HF_HUB_OFFLINE": "1"}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        policies = ["noop"]
        if args.act:
            from policy_service import checkpoint

            registry = checkpoint(Path(tmp), small=False, action_steps=100)
            env["VLABENCH_REGISTRY"] = str(registry)
            policies.append("bench_act")
        runs: dict[str, list[dict[str, float]]] = {p: [] for p in policies}
        alembic = []
        for i in range(args.repeats):  # round robin
            for policy in policies:
                runs[policy].append(run_once(policy, Path(tmp), i, env))
            alembic.append(alembic_import_s())
    for policy, found in runs.items():
        names = list(dict.fromkeys(n for f in found for n in f))
        rows.append({"policy": policy, "repeats": args.repeats,
                     "seconds": {n: statistics.median(f.get(n, 0.0) for f in found)
                                 for n in names}})  # fmt: skip
    rows.append({"alembic_import_s": statistics.median(alembic), "repeats": args.repeats})
    print(f"`vlabench -v run --suite pusht -n 1 --max-steps 1 --executor inline`, median of "
          f"{args.repeats} fresh processes, seconds")
    for row in rows[:-1]:
        print(f"{row['policy']}:")
        for name, seconds in row["seconds"].items():
            print(f"  {name:<26} {seconds:7.3f}")
    print(f"alembic import (a store open at head, before): {rows[-1]['alembic_import_s']:.3f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
