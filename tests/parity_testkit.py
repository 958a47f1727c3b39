"""Both sides of a parity check against ``lerobot-eval``: the two commands (real
subprocesses, run concurrently) and the per-episode (success, reward sum) each one stored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-6


def lerobot_eval(ckpt: Path, out: Path, env_args: list[str], episodes: int, batch: int,
                 rename: dict[str, str]) -> list[str]:  # fmt: skip
    return [
        str(BIN / "lerobot-eval"), f"--policy.path={ckpt}", "--policy.device=cpu", *env_args,
        f"--eval.n_episodes={episodes}", f"--eval.batch_size={batch}",
        "--eval.use_async_envs=false", "--seed=1000", f"--output_dir={out}",
        f"--rename_map={json.dumps(rename)}",
    ]  # fmt: skip


def vlabench_run(db: Path, policy: str, suite: str, episodes: int, batch: int, steps: int,
                 extra: list[str]) -> list[str]:  # fmt: skip
    return [
        str(BIN / "vlabench"), "--db", f"sqlite:///{db}", "-q", "run", "--policy", policy,
        "--suite", suite, "-n", str(episodes), "--max-steps", str(steps),
        "--batch-size", str(batch), "--executor", "inline", *extra,
    ]  # fmt: skip


def run_both(cmds: list[list[str]], env: dict[str, str]) -> None:
    """Run the commands concurrently (each a fresh process); fail with the stderr of any."""
    procs = [
        subprocess.Popen(
            c, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for c in cmds
    ]
    for cmd, proc in zip(cmds, procs, strict=True):
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"{Path(cmd[0]).name} failed:\n{(out + err)[-4000:]}"


def lerobot_episodes(out: Path) -> list[tuple[bool, float]]:
    info = json.loads(next(out.rglob("eval_info.json")).read_text())
    [task] = info["per_task"]
    m = task["metrics"]
    return [(bool(s), float(r)) for s, r in zip(m["successes"], m["sum_rewards"], strict=True)]


def vlabench_episodes(db: Path) -> list[tuple[bool, float]]:
    from vlabench.store import open_store

    with open_store(f"sqlite:///{db}") as store:
        [run] = store.runs()
        episodes = sorted(store.episodes(run["id"]), key=lambda e: e["episode_index"])
    assert all(e["failure_reason"] is None for e in episodes), episodes
    return [(bool(e["success"]), float(e["reward_sum"])) for e in episodes]


def assert_parity(ours: list[tuple[bool, float]], theirs: list[tuple[bool, float]]) -> None:
    assert len(ours) == len(theirs)
    assert [s for s, _ in ours] == [s for s, _ in theirs]
    diffs = [abs(a - b) for (_, a), (_, b) in zip(ours, theirs, strict=True)]
    assert max(diffs) <= TOL, f"reward sums differ by up to {max(diffs):.3g}: {ours} vs {theirs}"
    # the comparison carries information: rewards were earned and episodes are not all alike
    assert all(r > 0 for _, r in theirs) or len({round(r, 9) for _, r in theirs}) > 1, theirs
