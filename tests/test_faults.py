"""Honest scores under faults (issue 20, points 1-3 and the fault-injection matrix).

Every episode that was attempted counts in n: one whose worker died in it (``os._exit``, more
often than ``--retries`` allows) or whose call passed its deadline is stored as a failed
episode with the cause, like a policy exception; an inline command that a policy ends is
settled by the next command. SIGTERM and SIGHUP stop a matrix as Ctrl-C does (143 / 129), and
no worker outlives the command, not even after kill -9. Real CLI subprocesses, real signals,
real SQLite stores and the faulty fixture plugin installed into a temp target.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import CLI

from vlabench import api
from vlabench.execute.owner import InFlight, Owner
from vlabench.runtime.deadlines import (
    SIZE,
    CallClock,
    CallTimeouts,
    alarms,
)
from vlabench.runtime.rollout import Rollout, RolloutSettings, episode_specs

MARK = "VLABENCH_TEST_MARK"


# -- helpers -----------------------------------------------------------------------------------
def _marked(cli: CLI) -> list[str]:
    """The live processes started by this test's commands (they carry its mark): pid and
    command line. Zombies have no environment and are not listed."""
    mark = f"{MARK}={cli.env[MARK]}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if mark in (proc / "environ").read_bytes().split(b"\0"):
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{proc.name} {cmd[:150]}")
        except OSError:
            continue
    return found


def _none_left(cli: CLI, within_s: float = 5.0) -> float:
    """Wait until no process of this test is left; the seconds it took."""
    start = time.monotonic()
    while _marked(cli):
        if time.monotonic() - start > within_s:
            raise AssertionError(f"processes left behind: {_marked(cli)}")
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture
def faulty(cli: CLI, plugin_dirs: dict[str, Path]) -> CLI:
    cli.with_plugins(plugin_dirs["faulty"])
    cli.env[MARK] = uuid.uuid4().hex
    return cli


def _start(cli: CLI, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        cli.command(*args),
        cwd=cli.cwd,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _episodes(cli: CLI) -> dict[tuple[str, str], dict[int, str | None]]:
    """(policy, suite) -> episode index -> failure reason."""
    if not cli.db_path.exists():
        return {}
    with cli.store() as store:
        return {
            (r["policy"], r["suite"]): {
                e["episode_index"]: e["failure_reason"] for e in store.episodes(r["id"])
            }
            for r in store.runs()
        }


def _wait_for(cli: CLI, proc: subprocess.Popen, ok: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok(_episodes(cli)):
            return
        if proc.poll() is not None:
            raise AssertionError(f"the command ended first: {proc.communicate()[0]}")
        time.sleep(0.05)
    raise AssertionError(f"not reached in {timeout} s: {_episodes(cli)}")


def _statuses(cli: CLI) -> dict[str, tuple[str, str | None]]:
    with cli.store() as store:
        return {r["policy"]: (r["status"], r["error"]) for r in store.runs()}


# -- 1. an episode that kills its worker is a failure in n -----------------------------------
def test_an_episode_that_kills_its_worker_counts_in_n_as_a_failure(faulty: CLI) -> None:
    out = faulty("matrix", "--policy", "exits", "--policy", "noop", "--suite", "pusht_quick",
                 "-n", "3", "--max-steps", "5", "--retries", "1", "--workers", "2").stdout
    assert "retrying: worker process exited with code 1 in policy.predict while running " \
        "episode 1 (attempt 1 of 2)" in out
    assert "2 run(s), 6 new episode(s) stored, 0 failed" in out
    reasons = _episodes(faulty)[("exits", "pusht_quick")]
    assert sorted(reasons) == [0, 1, 2]
    assert reasons[1] == "worker process exited with code 1 in policy.predict (attempt 2 of 2)"
    assert reasons[0] is None and reasons[2] is None
    with faulty.store() as store:
        [run] = [r for r in store.runs() if r["policy"] == "exits"]
        [episode] = [e for e in store.episodes(run["id"]) if e["episode_index"] == 1]
        assert (episode["seed"], episode["success"], episode["steps"]) == (1001, False, 2)
        assert run["status"] == "finished"
    faulty.env["COLUMNS"] = "200"  # a cell on one line
    board = faulty("leaderboard").stdout
    assert re.search(r"exits\s+│\s+0 \[0,56\] n=3, 1 err\b", board), board
    assert _none_left(faulty) < 5


def test_inline_a_policy_that_ends_the_command_is_a_failure_on_the_next_command(
    faulty: CLI,
) -> None:
    args = ("matrix", "--policy", "exits", "--suite", "pusht_quick", "-n", "3", "--max-steps",
            "5", "--executor", "inline")  # fmt: skip
    first = faulty(*args, ok=False)
    assert first.returncode == 1  # the policy's os._exit(1): nothing of vlabench ran after it
    [(status, note)] = _statuses(faulty).values()
    assert status == "running"  # left so by the dead process, which its note names
    assert note is not None and "in flight: episode 1 (seed 1001, init state none)" in note
    assert _episodes(faulty)[("exits", "pusht_quick")] == {0: None}

    second = faulty(*args)  # any command that runs settles it, then resumes the run
    assert re.search(r"its vlabench process \(pid \d+\) died; episode\(s\) 1 it was running "
                     r"stored as failed", second.stdout), second.stdout
    reasons = _episodes(faulty)[("exits", "pusht_quick")]
    assert sorted(reasons) == [0, 1, 2] and reasons[0] is None and reasons[2] is None
    assert re.fullmatch(r"the vlabench process \(pid \d+\) died during this episode "
                        r"\(inline executor\)", reasons[1] or "")
    assert _statuses(faulty)["exits"] == ("finished", None)
    assert "n=3, 1 err" in faulty("leaderboard").stdout


def test_a_run_of_a_live_process_or_another_host_is_not_settled() -> None:
    me = Owner.me("inline", (InFlight(1, 1001, None), InFlight(2, 1002, 3)))
    parsed = Owner.parse(me.note())
    assert parsed == me and parsed.alive() is True
    assert Owner.parse("interrupted by the user") is None
    other_host = Owner(os.getpid(), "elsewhere", me.token, "inline")
    assert other_host.alive() is None
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert Owner(child.pid, me.host, me.token, "inline").alive() is False


# -- 2. a hung call is bounded ---------------------------------------------------------------
HUNG = """
policies:
  hung:
    type: hangs
    call_timeout_s: 1
    options: {episodes: [1]}
"""


def test_a_hung_policy_call_fails_its_episode_and_its_worker_is_replaced(faulty: CLI) -> None:
    extra = faulty.registry(HUNG)  # the preset's call_timeout_s: 1 (no --call-timeout)
    out = faulty("--registry", str(extra), "matrix", "--policy", "hung", "--suite",
                 "pusht_quick", "-n", "3", "--max-steps", "5", "--workers", "1",
                 "--no-leaderboard").stdout  # fmt: skip
    # which job is slow, which call, for how long; then the deadline
    assert re.search(r"hung × pusht_quick/push_t: slow: policy\.predict of episode 1 has run "
                     r"for [\d.]+ s \(timeout 1 s\)", out), out
    assert re.search(r"timed out after 1 s in policy\.predict: its worker \(pid \d+\) killed",
                     out), out
    assert "retrying: timed out after 1 s in policy.predict while running episode 1 " \
        "(stored as failed)" in out
    reasons = _episodes(faulty)[("hung", "pusht_quick")]
    assert reasons == {0: None, 1: "timed out after 1 s in policy.predict", 2: None}
    assert _none_left(faulty) < 5


def test_time_from_a_deadline_to_the_failed_episode_and_a_new_worker(
    plugin_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Measured: the deadline of a hung policy call -> its episode stored as failed -> the
    replacement worker starting the job's next episode."""
    from vlabench.catalog import load_catalog
    from vlabench.execute.choose import make_executor
    from vlabench.execute.runner import Runner
    from vlabench.execute.settings import ExecutionSettings
    from vlabench.plan.jobs import plan
    from vlabench.registry import load_registry
    from vlabench.store import open_store

    monkeypatch.syspath_prepend(str(plugin_dirs["faulty"]))
    monkeypatch.setenv("PYTHONPATH", str(plugin_dirs["faulty"]))
    catalog = load_catalog()
    pairs = plan(["hangs"], ["pusht_quick"], load_registry(), catalog, episodes=4, max_steps=5)
    times: dict[str, float] = {}

    class Timed(Runner):
        def episodes_unfinished(self, job, episodes):
            super().episodes_unfinished(job, episodes)
            if "stored" not in times:  # the first one
                times["stored"] = time.monotonic()
                times["deadline"] = episodes[0].deadline

        def episode_started(self, job, index):
            super().episode_started(job, index)
            if index == 2:
                times["new worker"] = time.monotonic()

    settings = ExecutionSettings(call_timeout_s=1.0)
    executor = make_executor("processes", catalog, workers=1, retries=0, settings=settings)
    with open_store(f"sqlite:///{tmp_path / 'timed.db'}") as store:
        # episodes 1 and 3 hang: the first kills a worker, the second its replacement
        [result] = Timed(store, catalog, executor=executor).run_pairs(pairs)
        reasons = {e["episode_index"]: e["failure_reason"] for e in store.episodes(result.run_id)}
    assert reasons == {0: None, 1: "timed out after 1 s in policy.predict", 2: None,
                       3: "timed out after 1 s in policy.predict"}
    to_stored = times["stored"] - times["deadline"]
    to_worker = times["new worker"] - times["deadline"]
    print(f"\ndeadline -> failed episode stored: {to_stored:.3f} s; "
          f"-> new worker running the next episode: {to_worker:.3f} s")
    assert 0 <= to_stored < 1.0
    assert to_stored < to_worker < 15


class _HangingEnv:
    """PushT, except that it hangs in ``step`` (or ``reset``) of episode seed ``hang_seed``."""

    def __init__(self, env: Any, where: str, hang_seed: int) -> None:
        self.env, self.where, self.hang_seed, self.seed = env, where, hang_seed, None

    def reset(self, seed=None, options=None):
        self.seed = seed
        if self.where == "reset" and seed == self.hang_seed:
            time.sleep(60)
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        if self.where == "step" and self.seed == self.hang_seed:
            time.sleep(60)
        return self.env.step(action)

    def close(self):
        self.env.close()


@pytest.mark.parametrize("where", ["step", "reset"])
def test_inline_a_hung_env_call_fails_its_episode_by_the_alarm(where: str) -> None:
    from vlabench_plugins.pusht import vlabench_envs

    [spec] = vlabench_envs()
    state = api.Feature(api.STATE_KEY, "state", (2,), space="pixel_xy_512")
    action = api.Feature("action", "action", (2,), space="pixel_xy_512")

    class Hold:
        interface = api.PolicyInterface((state,), action)

        def reset(self) -> None:
            pass

        def select_action(self, batch):
            return batch[api.STATE_KEY]

    records: list[api.EpisodeRecord] = []
    clock = CallClock()
    clock.timeouts = CallTimeouts.resolve(None, None, 0.3)
    settings = RolloutSettings(max_steps=4, action_low=np.zeros(2, np.float32),
                               action_high=np.full(2, 512, np.float32), action_dim=2)
    make = lambda: _HangingEnv(spec.make("push_t", {"render": False}), where, 1001)  # noqa: E731
    start = time.monotonic()
    with alarms(clock):
        Rollout(make, Hold(), settings, records.append, clock=clock).run(
            episode_specs("push_t", [0, 1, 2], 1000, None)
        )
    assert time.monotonic() - start < 5
    reasons = {r.episode_index: r.failure_reason for r in records}
    assert reasons == {0: None, 1: f"timed out after 0.3 s in env.{where}", 2: None}
    assert clock.read() is None


def test_call_clock_is_read_across_processes_and_limits_resolve() -> None:
    import tempfile

    with tempfile.TemporaryFile() as f:
        f.truncate(SIZE)
        writer, reader = CallClock.shared(f.fileno()), CallClock.shared(f.fileno())
        writer.timeouts = CallTimeouts.resolve(2.5, None, None)
        assert reader.read() is None
        writer.start("policy.predict", [(3, 7), (4, 0)])
        call = reader.read()
        assert call is not None and call.kind == "policy.predict" and call.timeout_s == 2.5
        assert call.entries == ((3, 7), (4, 0)) and call.deadline == call.started + 2.5
        assert "policy.predict of episodes 3, 4 has run for" in call.describe(call.started)
        writer.end()
        assert reader.read() is None
        writer.start("policy.load")  # never bounded, reported as slow after a minute
        assert reader.read().deadline == float("inf")
    assert CallTimeouts.resolve(0, 5, 5) == CallTimeouts(None, None, None)  # 0: no limit
    assert CallTimeouts.resolve(None, 7, 9) == CallTimeouts(7, 9, 9)
    assert CallTimeouts.resolve(None, None, None) == CallTimeouts()


def test_the_call_timeout_flag_and_registry_keys_are_checked(faulty: CLI) -> None:
    out = faulty("run", "--policy", "noop", "--suite", "pusht_quick", "--call-timeout", "-1",
                 ok=False)
    assert out.returncode == 2 and "--call-timeout must be >= 0, got -1" in out.stdout + out.stderr
    extra = faulty.registry("policies:\n  bad:\n    type: noop\n    call_timeout_s: 0\n")
    out = faulty("--registry", str(extra), "run", "--policy", "bad", "--suite", "pusht_quick",
                 ok=False)
    assert out.returncode != 0 and "call_timeout_s" in out.stdout + out.stderr


# -- 3. signals, and no process left behind ---------------------------------------------------
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_a_matrix_like_ctrl_c(faulty: CLI, sig: int, code: int) -> None:
    proc = _start(faulty, "matrix", "--policy", "hangs", "--policy", "noop", "--suite",
                  "pusht_quick", "-n", "4", "--max-steps", "5", "--workers", "2",
                  "--call-timeout", "0")  # fmt: skip
    _wait_for(faulty, proc, lambda eps: sum(map(len, eps.values())) >= 2)  # both hang now
    time.sleep(0.3)
    os.kill(proc.pid, sig)  # the parent only, as `kill -TERM PID` does
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == code, out
    assert "interrupted" in out and "Traceback" not in out
    name = signal.Signals(sig).name
    assert {s for s, _ in _statuses(faulty).values()} <= {"interrupted", "pending"}
    assert f"terminated by {name}" in {e for _, e in _statuses(faulty).values()}
    assert _none_left(faulty) < 5


ISOLATED = f"""
policies:
  hangs_isolated:
    type: hangs
    isolation: {{python: {sys.executable}}}
"""


@pytest.mark.parametrize("executor", ["processes", "inline"])
def test_kill_9_of_the_command_leaves_no_worker_behind(faulty: CLI, executor: str) -> None:
    """A hung policy in an isolation worker (itself in a worker process with ``processes``):
    kill -9 of the command, and every process it started ends by itself within seconds."""
    extra = faulty.registry(ISOLATED)
    proc = _start(faulty, "--registry", str(extra), "matrix", "--policy", "hangs_isolated",
                  "--suite", "pusht_quick", "-n", "3", "--max-steps", "5", "--workers", "1",
                  "--executor", executor, "--call-timeout", "0")  # fmt: skip
    _wait_for(faulty, proc, lambda eps: sum(map(len, eps.values())) >= 1)
    deadline = time.monotonic() + 30
    while sum("isolation/worker.py" in p for p in _marked(faulty)) < 1:  # it hangs there
        assert time.monotonic() < deadline, _marked(faulty)
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    took = _none_left(faulty, within_s=5)
    print(f"\n{executor}: every worker gone {took:.2f} s after kill -9 of the command")


def test_an_isolation_worker_hung_in_a_call_exits_when_its_parent_dies(tmp_path: Path) -> None:
    """Without the kernel's help (started from a thread: no PR_SET_PDEATHSIG), the worker's
    parent watch ends it within a second of its parent's kill -9, even hung in a call."""
    (tmp_path / "hang.py").write_text("import time\n\ndef load(request):\n    time.sleep(3600)\n")
    parent = tmp_path / "parent.py"
    parent.write_text(f"""
import threading, time
from vlabench.isolation.proxies import Channel, Isolation

def hang():
    channel = Channel("policy", Isolation(factory="hang:load", path=({str(tmp_path)!r},)), "t")
    print(channel.proc.pid, " ".join(channel.proc.args), flush=True)
    channel.call("load", {{}})

threading.Thread(target=hang, daemon=True).start()
time.sleep(3600)
""")
    proc = subprocess.Popen([sys.executable, str(parent)], stdout=subprocess.PIPE, text=True)
    pid, command = proc.stdout.readline().split(" ", 1)
    assert "--parent-pid" in command and "--pdeathsig" not in command
    time.sleep(0.5)  # in the call now
    proc.kill()
    proc.wait()
    start = time.monotonic()
    while time.monotonic() - start < 5:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except FileNotFoundError:
            break  # gone (and reaped)
        if state == "Z":
            break  # ended; whoever adopted it has not reaped it yet
        time.sleep(0.02)
    took = time.monotonic() - start
    assert took < 2, f"the worker {pid} outlived its parent for {took:.1f} s"


# -- 4. the fault-injection matrix ------------------------------------------------------------
CHAOS = """
suites:
  pusht_other:
    env: pusht
    description: a second cheap PushT protocol (other seeds)
    episodes: 6
    max_steps: 6
    seed: 5000
    protocol: other
policies:
  chaos:
    type: chaos
    options:
      at_step: 2
      plan: {1: raises, 2: nan, 3: hangs, 4: exits}
"""
EXPECTED = {
    1: "policy raised RuntimeError: boom at the chosen step",
    2: "policy returned a non-finite action at step 2",
    3: "timed out after 1.5 s in policy.predict",
    4: "worker process exited with code 1 in policy.predict (attempt 2 of 2)",
}


def test_fault_injection_matrix_counts_every_episode_exactly_once(faulty: CLI) -> None:
    """3 policies x 2 suites, one policy raising, returning NaN, hanging and killing its worker
    on chosen episodes; SIGTERM once mid-way, then the same command again: exactly 6 rows per
    run, every failure with its reason, no process left, n = 6 in every cell."""
    started = time.monotonic()
    extra = faulty.registry(CHAOS)
    args = ("--registry", str(extra), "matrix", "--policy", "chaos", "--policy", "noop",
            "--policy", "random", "--suite", "pusht_quick", "--suite", "pusht_other",
            "-n", "6", "--max-steps", "6", "--workers", "2", "--retries", "1",
            "--call-timeout", "1.5")  # fmt: skip

    proc = _start(faulty, *args)  # SIGTERM while chaos hangs in episode 3 of a suite
    _wait_for(faulty, proc, lambda eps: len(eps.get(("chaos", "pusht_quick"), {})) >= 3)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143, out
    print(f"\nfirst command, SIGTERM after {_episodes(faulty)}:\n{out}")
    assert "running" not in {s for s, _ in _statuses(faulty).values()}
    assert _none_left(faulty) < 5
    before = sum(map(len, _episodes(faulty).values()))
    assert before < 36

    rerun = faulty(*args)
    print(f"the same command again:\n{rerun.stdout}")
    assert f"6 run(s), {36 - before} new episode(s) stored, 0 failed" in rerun.stdout
    episodes = _episodes(faulty)
    assert sorted(episodes) == sorted(
        (p, s) for p in ("chaos", "noop", "random") for s in ("pusht_quick", "pusht_other")
    )
    for (policy, suite), reasons in episodes.items():
        assert sorted(reasons) == list(range(6)), (policy, suite)
        if policy == "chaos":
            assert {i: r for i, r in reasons.items() if r} == EXPECTED, suite
        else:
            assert not any(reasons.values()), (policy, suite)
    with faulty.store() as store:
        assert {r["status"] for r in store.runs()} == {"finished"}
        assert sum(len(store.episodes(r["id"])) for r in store.runs()) == 36
    assert _none_left(faulty) < 5
    faulty.env["COLUMNS"] = "200"  # a cell on one line
    board = faulty("leaderboard").stdout
    cells = re.findall(r"n=(\d+)(, (\d+) err)?", board)
    assert len(cells) == 6 and {n for n, _, _ in cells} == {"6"}, board
    assert sorted(e for _, _, e in cells) == ["", "", "", "", "4", "4"], board
    assert time.monotonic() - started < 60


def test_ray_actors_time_out_and_die_like_worker_processes(
    plugin_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same rules on Ray: a hung call's episode fails, timed out, and its actor is
    replaced; an episode whose actor dies (``os._exit``) more often than retries allow is
    stored as failed with Ray's cause."""
    import ray

    from vlabench.catalog import load_catalog
    from vlabench.execute.choose import make_executor
    from vlabench.execute.runner import Runner
    from vlabench.execute.settings import ExecutionSettings
    from vlabench.plan.jobs import plan
    from vlabench.registry import load_registry
    from vlabench.store import open_store

    monkeypatch.syspath_prepend(str(plugin_dirs["faulty"]))
    monkeypatch.setenv("PYTHONPATH", str(plugin_dirs["faulty"]))
    catalog = load_catalog()
    pairs = plan(["hangs", "exits"], ["pusht_quick"], load_registry(), catalog, episodes=3,
                 max_steps=5)  # fmt: skip
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        executor = make_executor("ray", catalog, workers=2, retries=1,
                                 settings=ExecutionSettings(call_timeout_s=1.0))
        with open_store(f"sqlite:///{tmp_path / 'ray.db'}") as store:
            results = Runner(store, catalog, executor=executor).run_pairs(pairs)
            reasons = {
                r.label.split(" ")[0]: {
                    e["episode_index"]: e["failure_reason"] for e in store.episodes(r.run_id)
                }
                for r in results
            }
    finally:
        ray.shutdown()
    assert [r.status for r in results] == ["finished", "finished"]
    assert reasons["hangs"] == {0: None, 1: "timed out after 1 s in policy.predict", 2: None}
    assert sorted(reasons["exits"]) == [0, 1, 2] and reasons["exits"][0] is None
    assert re.fullmatch(r"Ray actor died \(.+\) \(attempt 2 of 2\)", reasons["exits"][1] or "")
