"""Envs and policies in worker processes: another venv, crashes, restarts, the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vlabench import api
from vlabench.isolation.proxies import WorkerDied, isolated_describe, isolated_env, isolated_policy
from vlabench.runtime.rollout import Rollout, RolloutSettings, episode_specs

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "wire_env"
sys.path.insert(0, str(FIXTURE))

import toy_env  # noqa: E402
import toy_spec  # noqa: E402

UV = Path(sys.executable).parent / "uv"


@pytest.fixture(scope="session")
def old_numpy_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A bare venv with numpy 1.26 and msgpack only (no vlabench, pydantic, ...)."""
    venv = tmp_path_factory.mktemp("worker-venv") / "venv"
    subprocess.run(
        [str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)],
        check=True,
        capture_output=True,
    )
    python = str(venv / "bin" / "python")
    subprocess.run(
        [str(UV), "pip", "install", "--quiet", "--python", python, "numpy==1.26.4", "msgpack"],
        check=True,
        capture_output=True,
    )
    return python


def greedy_policy() -> toy_env.GreedyPolicy:
    return toy_env.load(None)  # describe() ignores the request


def rollout(make_env, policy, episodes, batch_size=1) -> list[api.EpisodeRecord]:
    records: list[api.EpisodeRecord] = []
    settings = RolloutSettings(
        max_steps=12,
        action_low=np.full(2, -0.25, np.float32),
        action_high=np.full(2, 0.25, np.float32),
        action_dim=2,
        batch_size=batch_size,
    )
    Rollout(make_env, policy, settings, records.append).run(episodes)
    return sorted(records, key=lambda r: r.episode_index)


def outcome(records: list[api.EpisodeRecord]) -> list[tuple]:
    return [(r.episode_index, r.success, r.steps, r.reward_sum, r.failure_reason) for r in records]


def test_env_in_a_venv_with_another_numpy_matches_in_process(old_numpy_python: str) -> None:
    episodes = episode_specs("reach", range(4), seed=1000, n_init_states=None)
    local = rollout(lambda: toy_env.make("reach", {}), greedy_policy(), episodes)
    make = isolated_env("toy_env:make", old_numpy_python, path=(str(FIXTURE),))
    envs = []

    def make_env():
        envs.append(make("reach", {}))
        return envs[-1]

    remote = rollout(make_env, greedy_policy(), episodes, batch_size=2)
    assert envs[0].channel.info["numpy"].startswith("1.26.")
    assert envs[0].channel.info["executable"].startswith(str(Path(old_numpy_python).parent))
    assert outcome(remote) == outcome(local)
    assert any(r.success for r in local) and all(r.failure_reason is None for r in remote)
    # Observations are bit-identical, images included.
    env = make("reach", {})
    obs, _ = env.reset(seed=7)
    ref, _ = toy_env.make("reach", {}).reset(seed=7)
    assert obs["observation.images.top"].dtype == np.uint8
    for key in ("observation.state", "observation.images.top"):
        np.testing.assert_array_equal(obs[key], ref[key])
    env.close()
    assert not env.channel.alive


@pytest.mark.parametrize(
    ("how", "cause"), [("segfault", "SIGSEGV"), ("exit", "exited with code 3")]
)
def test_a_crash_in_an_isolated_env_fails_only_its_episode(how: str, cause: str) -> None:
    make = isolated_env("toy_env:make", path=(str(FIXTURE),))
    crash = {"crash": {"seed": 1001, "step": 2, "how": how}}
    pids = []

    def make_env():
        env = make("reach", crash)
        pids.append(env.channel.proc.pid)
        return env

    records = rollout(make_env, greedy_policy(), episode_specs("reach", range(3), 1000, None))
    specs = episode_specs("reach", [0, 2], 1000, None)
    local = rollout(lambda: toy_env.make("reach", {}), greedy_policy(), specs)
    assert [r.episode_index for r in records] == [0, 1, 2]
    assert records[1].failure_reason is not None and cause in records[1].failure_reason
    assert "env step raised WorkerDied" in records[1].failure_reason
    assert outcome([records[0], records[2]]) == outcome(local)
    assert len(set(pids)) == 2  # the episode after the crash got a fresh worker


def test_isolated_policy_restarts_after_kill_9() -> None:
    load = isolated_policy("toy_env:load", path=(str(FIXTURE),))
    policy = load(api.PolicyRequest("greedy", None, {}, toy_spec.INTERFACE))
    assert policy.interface.action.shape == (2,)
    batch = {
        "observation.state": np.array([[0, 0, 1, 0.5]], np.float32),
        api.EPISODE_INDEX_KEY: np.array([3]),
    }
    np.testing.assert_allclose(policy.select_action(batch), [[0.5, 0.25]])
    first = policy.channel.proc.pid
    os.kill(first, signal.SIGKILL)
    with pytest.raises(WorkerDied, match="SIGKILL"):
        policy.select_action(batch)
    np.testing.assert_allclose(policy.select_action(batch), [[0.5, 0.25]])
    assert policy.channel.proc.pid != first
    assert len(policy.timings[3]) == 2  # the failed call is not counted
    policy.close()


def test_kill_9_mid_episode_in_a_matrix_run_is_recorded_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    from vlabench.catalog import load_catalog
    from vlabench.execute.runner import Runner
    from vlabench.plan.jobs import plan
    from vlabench.registry import Registry, SuiteConfig
    from vlabench.store import open_store

    catalog = load_catalog(allow={"scripted"})
    catalog.envs["toy"] = toy_spec.env_spec()
    catalog.policies["greedy"] = toy_spec.policy_spec()
    isolation = {"factory": "toy_env:make", "path": [str(FIXTURE)]}  # one line in a registry
    crash = {"seed": 1002, "step": 3, "how": "kill"}
    registry = Registry(
        suites={
            "toy": SuiteConfig(
                env="toy", episodes=5, max_steps=12, env_options={"crash": crash},
                isolation=isolation,
            )
        }
    )
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    pairs = plan(["greedy"], ["toy"], registry, catalog)
    assert pairs[0].runnable, pairs[0].reason
    [result] = Runner(store, catalog).run_pairs(pairs)
    assert result.status == "finished" and result.new_episodes == 5
    episodes = store.episodes(result.run_id)
    assert [e["episode_index"] for e in episodes] == [0, 1, 2, 3, 4]
    failed = [e for e in episodes if e["failure_reason"]]
    assert [e["episode_index"] for e in failed] == [2]
    assert "SIGKILL" in failed[0]["failure_reason"]
    ok = [e for e in episodes if not e["failure_reason"]]
    assert all(e["metrics"]["env_ms_p50"] >= 0 and "env_wire_ms_p50" in e["metrics"] for e in ok)
    # The config hash does not depend on where the env ran: the in-process run resumes it.
    plain = Registry(suites={"toy": SuiteConfig(env="toy", episodes=5, max_steps=12,
                                                env_options={"crash": crash})})
    again = plan(["greedy"], ["toy"], plain, catalog)
    assert again[0].runs[0].config_hash() == pairs[0].runs[0].config_hash()
    [rerun] = Runner(store, catalog).run_pairs(again)
    assert rerun.run_id == result.run_id and rerun.new_episodes == 0
    assert len(store.episodes(result.run_id)) == 5


def test_policy_in_a_bare_venv_matches_in_process(old_numpy_python: str) -> None:
    request = api.PolicyRequest("greedy", None, {}, toy_spec.INTERFACE)
    proxy = isolated_policy("toy_env:load", old_numpy_python, path=(str(FIXTURE),))(request)
    assert proxy.channel.info["numpy"].startswith("1.26.")
    assert proxy.interface.action.shape == (2,)  # plain data from a venv without vlabench
    episodes = episode_specs("reach", range(3), seed=1000, n_init_states=None)
    make = lambda: toy_env.make("reach", {})  # noqa: E731
    assert outcome(rollout(make, proxy, episodes)) == outcome(
        rollout(make, greedy_policy(), episodes)
    )
    assert sorted(proxy.timings) == [0, 1, 2]
    proxy.close()
    # describe() can run there too, for policies whose config needs the other stack.
    described = isolated_describe(
        "toy_env:load", "toy_env:describe", old_numpy_python, path=(str(FIXTURE),)
    )(request)
    assert described.action.space == "xy_delta" and described.inputs[0].shape == (4,)


def test_a_policy_preset_declares_isolation_in_one_line() -> None:
    from vlabench.isolation.proxies import ProxyPolicy, policy_spec_for
    from vlabench.plan.configs import PolicyChoice

    isolation = {"factory": "toy_env:load", "describe": "toy_env:describe",
                 "path": [str(FIXTURE)]}
    choice = PolicyChoice("greedy", "greedy", "tests", isolation=isolation)
    spec = policy_spec_for(choice, toy_spec.policy_spec())
    request = api.PolicyRequest("greedy", None, {}, toy_spec.INTERFACE)
    assert spec.describe(request) == toy_env.describe(request)
    policy = spec.load(request)
    assert isinstance(policy, ProxyPolicy) and policy.channel.alive
    policy.close()
    assert policy_spec_for(PolicyChoice("g", "greedy", "t"), toy_spec.policy_spec()).load is (
        toy_env.load
    )


def test_worker_over_a_unix_socket(tmp_path: Path) -> None:
    import socket

    from vlabench.isolation import wire, worker

    path = str(tmp_path / "w.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    proc = subprocess.Popen(
        [sys.executable, worker.__file__, "--kind", "env", "--factory", "toy_env:make",
         "--socket", path],
        env={**os.environ, "PYTHONPATH": str(FIXTURE)},
    )
    try:
        server.settimeout(30)
        conn, _ = server.accept()
        reader, writer = conn.makefile("rb"), conn.makefile("wb")

        def call(op, args=None):
            wire.write_frame(writer, wire.pack(wire.request(1, op, args)))
            return wire.result_of(wire.unpack(wire.read_frame(reader)), "test")[0]

        assert call("hello")["kind"] == "env"
        call("make", {"task": "reach", "options": {}})
        obs, _ = call("reset", {"seed": 7})
        ref, _ = toy_env.make("reach", {}).reset(seed=7)
        np.testing.assert_array_equal(obs["observation.state"], ref["observation.state"])
        for stream in (reader, writer, conn):
            stream.close()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        server.close()


def test_registry_declares_isolation_in_one_line(tmp_path: Path) -> None:
    from vlabench.registry import RegistryError, load_file

    good = tmp_path / "good.yaml"
    good.write_text(
        "suites:\n  s:\n    env: toy\n    isolation: {python: /opt/simpler/bin/python}\n"
        "policies:\n  p:\n    type: greedy\n    isolation: /opt/torch-nightly/bin/python\n"
    )
    parsed = load_file(good)
    assert parsed.policies["p"].isolation == "/opt/torch-nightly/bin/python"
    assert parsed.suites["s"].isolation == {"python": "/opt/simpler/bin/python"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("suites:\n  s:\n    env: toy\n    isolation: {pyhton: x}\n")
    with pytest.raises(RegistryError, match=r"bad.yaml:4: suites.s.isolation.*pyhton"):
        load_file(bad)


def test_a_worker_that_cannot_start_says_why(tmp_path: Path) -> None:
    with pytest.raises(WorkerDied, match="cannot start the env worker"):
        isolated_env("toy_env:make", str(tmp_path / "no-such-venv" / "python"))("reach", {})
    with pytest.raises(WorkerDied, match=r"exited with code 1.*No module named 'not_a_module'"):
        isolated_env("not_a_module:make")("reach", {})
