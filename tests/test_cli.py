"""End to end through the real CLI, the real PushT simulator and real SQLite files."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from conftest import CLI

GOAL_REGISTRY = """
suites:
  pusht_goal:
    env: pusht
    description: PushT started one step from success (ANCHORS.md)
    episodes: 3
    max_steps: 20
    env_options:
      reset_to_state: [100, 100, 224.1802, 242.8198, 0.7853981633974483]
      render: false
policies:
  hold_still_at_100:
    type: replay
    options: {actions: [[100, 100]]}
"""


def board(cli: CLI, *args: str) -> dict:
    return json.loads(cli("leaderboard", "--format", "json", *args).stdout)


def test_run_then_leaderboard_json_as_documented(cli: CLI) -> None:
    cli("run", "--policy", "noop", "--suite", "pusht", "--episodes", "2")
    data = board(cli)
    [cell] = data["cells"]
    assert (cell["policy"], cell["suite"], cell["n"], cell["status"]) == ("noop", "pusht", 2, "ok")
    assert 0.0 <= cell["ci_low"] <= cell["success_rate"] <= cell["ci_high"] <= 1.0
    with cli.store() as store:
        [run] = store.runs()
        assert run["protocol"]["max_steps"] == 300 and run["status"] == "finished"
        assert run["versions"]["packages"]["gym-pusht"] == "0.1.8"
        episodes = store.episodes(run["id"])
    assert [e["seed"] for e in episodes] == [1000, 1001]
    assert all(e["steps"] == 300 and e["failure_reason"] is None for e in episodes)


def test_success_path_end_to_end(cli: CLI) -> None:
    """A known start state one push from the goal: every episode succeeds after one step."""
    extra = cli.registry(GOAL_REGISTRY)
    cli("--registry", str(extra), "run", "--policy", "hold_still_at_100", "--suite", "pusht_goal")
    [cell] = board(cli)["cells"]
    assert (cell["n"], cell["successes"]) == (3, 3)
    with cli.store() as store:
        [run] = store.runs()
        assert {e["steps"] for e in store.episodes(run["id"])} == {1}


def test_rerun_resumes_without_duplicates(cli: CLI) -> None:
    cli("run", "--policy", "noop", "--suite", "pusht_quick", "--episodes", "2")
    again = cli("run", "--policy", "noop", "--suite", "pusht_quick", "--episodes", "3")
    assert "1 new episode(s) stored" in again.stdout
    with cli.store() as store:
        [run] = store.runs()
        assert sorted(store.finished_episode_indices(run["id"])) == [0, 1, 2]


def test_kill_midway_then_resume_exact(cli: CLI) -> None:
    # 24 episodes of 300 steps: seconds of work, so the poll below sees the run midway
    episodes = 24
    args = ("run", "--policy", "noop", "--suite", "pusht", "--episodes", str(episodes))
    proc = subprocess.Popen(
        cli.command(*args),
        cwd=cli.cwd,
        env=cli.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stored = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if cli.db_path.exists():
            with cli.store() as store:
                runs = store.runs()
                stored = len(store.finished_episode_indices(runs[0]["id"])) if runs else 0
            if stored >= 2:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with cli.store() as store:
        [run] = store.runs()
        before = len(store.finished_episode_indices(run["id"]))
    assert 2 <= before < episodes
    resumed = cli(*args)
    assert f"{episodes - before} new episode(s) stored" in resumed.stdout
    with cli.store() as store:
        rows = store.episodes(run["id"])
    assert sorted(e["episode_index"] for e in rows) == list(range(episodes))


def test_batched_rollout_matches_sequential(cli: CLI) -> None:
    """Seeds and per-episode results do not depend on how many episodes run at once."""
    for batch_size in ("1", "4"):
        db = f"sqlite:///{cli.cwd / f'b{batch_size}.db'}"
        run = ("run", "--policy", "random", "--suite", "pusht_quick", "-n", "5")
        cli("--db", db, *run, "--max-steps", "30", "--batch-size", batch_size)
    from vlabench.store import open_store

    results = []
    for name in ("b1.db", "b4.db"):
        with open_store(f"sqlite:///{cli.cwd / name}") as store:
            [run] = store.runs()
            results.append(
                [
                    (e["episode_index"], e["seed"], e["steps"], round(e["reward_sum"], 9))
                    for e in store.episodes(run["id"])
                ]
            )
    assert results[0] == results[1]
    assert len({r[3] for r in results[0]}) > 1  # episodes differ from each other


def test_invalid_registry_names_file_line_and_key(cli: CLI) -> None:
    bad = cli.registry(
        "suites:\n  mine:\n    env: pusht\n    max_step: 10\n    episodes: lots\n", "bad.yaml"
    )
    proc = cli("--registry", str(bad), "list", "suites", ok=False)
    assert proc.returncode == 2
    assert f"{bad}:4: suites.mine.max_step: unknown key" in proc.stderr
    assert f"{bad}:5: suites.mine.episodes:" in proc.stderr and "'lots'" in proc.stderr


def test_bad_env_option_is_one_line_naming_the_flag_or_the_file(cli: CLI) -> None:
    proc = cli("run", "--policy", "noop", "--suite", "pusht_quick", "-E", "imagesize=3", ok=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: -E imagesize: unknown option of env 'pusht' "
        "(options: image_size, render, reset_to_state)"
    ]
    bad = cli.registry("suites:\n  mine:\n    env: pusht\n    env_options: {render: 3}\n")
    proc = cli("--registry", str(bad), "run", "--policy", "noop", "--suite", "mine", ok=False)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert f"{bad}:4: suite 'mine': env_options.render: " in proc.stderr and "got 3" in proc.stderr
    assert not cli.db_path.exists()


def test_defaults_given_with_env_option_resume_the_same_run(cli: CLI) -> None:
    cli("run", "--policy", "noop", "--suite", "pusht", "-n", "1", "--max-steps", "3")
    out = cli("run", "--policy", "noop", "--env", "pusht", "-E", "image_size=96", "-n", "1",
              "--max-steps", "3")
    assert "1 run(s), 0 new episode(s) stored" in out.stdout
    assert "compatible" in cli("check", "noop", "pusht").stdout
    with cli.store() as store:
        [run] = store.runs()
    assert run["config"]["env_options"] == {"image_size": 96, "render": True}


def test_unknown_names_are_clear_errors(cli: CLI) -> None:
    proc = cli("run", "--policy", "nop", "--suite", "pusht", ok=False)
    assert proc.returncode == 2 and "unknown policy 'nop'; did you mean noop" in proc.stderr
    proc = cli("run", "--policy", "noop", "--suite", "push", ok=False)
    assert "unknown suite 'push'" in proc.stderr
    assert not cli.db_path.exists()  # nothing was written for a typo


def test_help_is_lazy() -> None:
    """`vlabench --help` and `plugins` import no simulator, model or database library."""
    import subprocess
    import sys

    code = (
        "import sys; from typer.testing import CliRunner; from vlabench.cli import app;"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output;"
        "r = CliRunner().invoke(app, ['plugins']); assert r.exit_code == 0, r.output;"
        "heavy = {'torch', 'gym_pusht', 'pygame', 'pymunk', 'sqlalchemy', 'lerobot', 'cv2'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
