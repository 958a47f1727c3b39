"""Remote policies and envs over WebSocket: `vlabench serve`, tokens, batching, /health."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from vlabench import api
from vlabench.isolation import wire
from vlabench.isolation.remote import WsChannel, remote_env_spec
from vlabench.isolation.serve import PolicyService, Server, check_bind

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "wire_env"
sys.path.insert(0, str(FIXTURE))

import toy_env  # noqa: E402
import toy_spec  # noqa: E402
from conftest import CLI  # noqa: E402


def health(url: str) -> dict:
    http = url.replace("ws://", "http://") + "/health"
    with urllib.request.urlopen(http, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def policy_server():
    service = PolicyService(toy_spec.policy_spec(), None, {}, batch_wait_ms=1.0)
    server = Server(service, port=0).start_in_thread()
    yield server
    server.stop()


@pytest.fixture
def env_server():
    server = Server(toy_spec.env_spec(), port=0).start_in_thread()
    yield server
    server.stop()


def _catalog():
    from vlabench.catalog import load_catalog

    catalog = load_catalog(allow={"scripted"})
    catalog.envs["toy"] = toy_spec.env_spec()
    catalog.policies["greedy"] = toy_spec.policy_spec()
    return catalog


def _run(tmp_path: Path, policy: str, suite: str, registry, catalog, **kw):
    from vlabench.execute.runner import Runner
    from vlabench.plan.jobs import plan
    from vlabench.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    pairs = plan([policy], [suite], registry, catalog, **kw)
    assert pairs[0].runnable, pairs[0].reason
    [result] = Runner(store, catalog).run_pairs(pairs)
    assert result.status == "finished", result.error
    return store.episodes(result.run_id)


def _outcome(episodes):
    return [(e["episode_index"], e["success"], e["steps"], e["reward_sum"]) for e in episodes]


def test_remote_policy_and_remote_env_match_in_process(tmp_path, policy_server, env_server):
    from vlabench.registry import Registry, SuiteConfig

    catalog = _catalog()
    registry = Registry(suites={"toy": SuiteConfig(env="toy", episodes=4, max_steps=12)})
    listed = (dict(catalog.policies), dict(catalog.envs), dict(catalog.owner))
    local = _run(tmp_path / "a", "greedy", "toy", registry, catalog)
    remote_policy = _run(tmp_path / "b", f"remote://127.0.0.1:{policy_server.port}", "toy",
                         registry, catalog)
    remote_env = _run(tmp_path / "c", "greedy", f"remote://127.0.0.1:{env_server.port}",
                      Registry(), catalog, episodes=4, max_steps=12)
    assert any(e["success"] for e in local)
    assert _outcome(remote_policy) == _outcome(local)
    assert _outcome(remote_env) == _outcome(local)
    for e in remote_policy:  # time inside the policy and on the wire, separately
        assert e["metrics"]["policy_ms_p50"] >= 0 and e["metrics"]["wire_ms_p50"] > 0
    assert all(e["metrics"]["env_wire_ms_p50"] > 0 for e in remote_env)
    assert health(policy_server.url)["stats"]["calls"] > 0
    # Resolution is pure: remote:// is answered by a default plugin's hook, nothing is added
    assert (dict(catalog.policies), dict(catalog.envs), dict(catalog.owner)) == listed
    assert list(registry.suites) == ["toy"]
    assert catalog.plugin_of("policy", "remote") == "vlabench.isolation.remote"
    # What the server serves is part of the run's config: another policy, another run.
    from vlabench.plan.resolve import resolve_policy

    choice = resolve_policy(f"remote://127.0.0.1:{policy_server.port}", registry, catalog)
    assert choice.type == "remote" and choice.options["served"]["type"] == "greedy"
    assert choice.plugin == "vlabench.isolation.remote"
    with pytest.raises(Exception, match="serves 'env', not a policy"):
        resolve_policy(f"remote://127.0.0.1:{env_server.port}", registry, catalog)


def test_remote_runs_keep_their_pre_default_plugin_hash(policy_server, env_server):
    """Runs stored when remote:// was patched into the catalog as plugin 'vlabench' resume."""
    from dataclasses import replace

    from vlabench.plan.resolve import resolve_policy, resolve_suite
    from vlabench.registry import Registry

    catalog, registry = _catalog(), Registry()
    policy = resolve_policy("greedy", registry, catalog)
    [config] = resolve_suite(f"remote://127.0.0.1:{env_server.port}", policy, registry, catalog)
    assert config.env_plugin == "vlabench.isolation.remote" and config.env_options == {}
    old = replace(config, env_plugin="vlabench")  # what the old core stored
    assert config.legacy_config_hash() == old.config_hash() != config.config_hash()
    remote = resolve_policy(f"remote://127.0.0.1:{policy_server.port}", registry, catalog)
    [config] = resolve_suite(f"remote://127.0.0.1:{env_server.port}", remote, registry, catalog)
    old = replace(config, policy=replace(remote, plugin="vlabench"), env_plugin="vlabench")
    assert config.legacy_config_hash() == old.config_hash()


def test_unreachable_remote_and_bare_remote_type_are_clear_errors(tmp_path):
    from vlabench.plan.jobs import plan
    from vlabench.plan.resolve import resolve_policy
    from vlabench.registry import Registry, RegistryError, SuiteConfig

    catalog = _catalog()
    registry = Registry(suites={"toy": SuiteConfig(env="toy")})
    with pytest.raises(RegistryError, match=r"policy 'remote://127\.0\.0\.1:9': cannot connect"):
        resolve_policy("remote://127.0.0.1:9", registry, catalog)
    with pytest.raises(RegistryError, match=r"env 'remote://127\.0\.0\.1:9': cannot connect"):
        plan(["greedy"], ["remote://127.0.0.1:9"], registry, catalog)
    [pair] = plan(["remote"], ["toy"], registry, catalog)  # the type alone names no server
    assert not pair.runnable and "needs a server" in pair.reason


def test_remote_env_spec_describes_the_served_env(env_server):
    spec = remote_env_spec(f"remote://127.0.0.1:{env_server.port}")
    assert spec.max_episode_steps == 30 and spec.success == "ever"
    assert [t.name for t in spec.tasks({})] == ["reach"]
    assert spec.interface({}) == toy_spec.INTERFACE
    env = spec.make("reach", {})
    obs, _ = env.reset(seed=3)
    ref, _ = toy_env.make("reach", {}).reset(seed=3)
    np.testing.assert_array_equal(obs["observation.images.top"], ref["observation.images.top"])
    np.testing.assert_array_equal(env.render(), ref["observation.images.top"])  # for videos
    env.close()


def test_concurrent_requests_are_batched_into_one_policy_call():
    service = PolicyService(toy_spec.policy_spec(), None, {}, batch_wait_ms=300.0)
    server = Server(service, port=0).start_in_thread()
    request = api.PolicyRequest("greedy", None, {}, toy_spec.INTERFACE)
    from vlabench.isolation.proxies import request_to_wire

    clients = [WsChannel(server.url) for _ in range(2)]
    for c in clients:
        c.call("load", request_to_wire(request))
    barrier, results = threading.Barrier(2), {}

    def act(i: int) -> None:
        batch = {
            "observation.state": np.array([[0, 0, i, i]], np.float32),
            api.EPISODE_INDEX_KEY: np.array([i]),
        }
        barrier.wait()
        results[i] = clients[i].call("select_action", batch)[0]

    threads = [threading.Thread(target=act, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    np.testing.assert_allclose(results[0], [[0, 0]])
    np.testing.assert_allclose(results[1], [[0.5, 0.5]])  # each client gets its own rows
    stats = health(server.url)["stats"]
    assert stats["max_requests_per_call"] == 2 and stats["calls"] == 1
    for c in clients:
        c.close()
    server.stop()


def test_wrong_version_and_malformed_frames_get_clear_errors(policy_server):
    from websockets.sync.client import connect

    with connect(policy_server.url) as ws:
        ws.send(wire.pack({"v": 42, "id": 1, "op": "hello"}))
        reply = wire.unpack(ws.recv(timeout=10))
        assert reply["error"]["type"] == "VersionMismatch" and "v42" in reply["error"]["message"]
        ws.send(b"\xc1\xc1")
        reply = wire.unpack(ws.recv(timeout=10))
        assert reply["ok"] is False and "malformed" in reply["error"]["message"]


def test_non_loopback_bind_needs_the_flag_and_a_token():
    check_bind("127.0.0.1", False, None)
    check_bind("::1", False, None)
    with pytest.raises(PermissionError, match="--allow-remote"):
        check_bind("0.0.0.0", False, "secret")
    with pytest.raises(PermissionError, match="needs a shared token"):
        check_bind("0.0.0.0", True, None)
    check_bind("0.0.0.0", True, "secret")


def _start_serve(cli: CLI, *args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        cli.command("serve", *args),
        cwd=cli.cwd,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if not line.startswith("serving"):
        proc.kill()
        raise AssertionError(f"serve did not start: {line}{proc.stderr.read()}")
    return proc, line.split(" on ")[1].split()[0]


def test_vlabench_serve_with_token_two_clients_and_a_remote_run(cli: CLI) -> None:
    proc, url = _start_serve(cli, "policy", "noop", "--port", "0", "--token", "s3cret")
    try:
        assert url.startswith("ws://127.0.0.1:")
        assert health(url)["status"] == "ok"
        with pytest.raises(PermissionError, match="401"):
            WsChannel(url, token="")
        with pytest.raises(PermissionError, match="401"):
            WsChannel(url, token="wrong")
        # Two concurrent clients: two runs of the real CLI against the one server.
        cli.env["VLABENCH_TOKEN"] = "s3cret"
        port = url.rsplit(":", 1)[1]
        args = ("-q", "run", "--policy", f"remote://127.0.0.1:{port}", "--suite", "pusht_quick",
                "-n", "2", "--max-steps", "3", "--executor")
        runs = [  # one in the CLI's process, one in an executor's worker process
            subprocess.Popen(
                cli.command(*args, *executor),
                cwd=cli.cwd,
                env={**cli.env, "VLABENCH_DB": f"sqlite:///{cli.cwd / f'store{i}.db'}"},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i, executor in enumerate([("inline",), ("processes", "-j", "1")])
        ]
        for run in runs:
            out, err = run.communicate(timeout=120)
            assert run.returncode == 0, out + err
            assert "2 new episode(s) stored" in out
        from vlabench.store import open_store

        for i in range(2):
            store = open_store(f"sqlite:///{cli.cwd / f'store{i}.db'}")
            episodes = store.episodes(1)
            assert [e["steps"] for e in episodes] == [3, 3]
            assert all("wire_ms_p50" in e["metrics"] for e in episodes)
        stats = health(url)["stats"]
        assert stats["requests"] >= 12
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_vlabench_serve_refuses_a_non_loopback_bind_without_flag_and_token(cli: CLI) -> None:
    cli.env.pop("VLABENCH_TOKEN", None)
    out = cli("serve", "policy", "noop", "--host", "0.0.0.0", "--port", "0", ok=False)
    assert out.returncode != 0 and "--allow-remote" in out.stderr
    out = cli("serve", "env", "pusht", "--host", "0.0.0.0", "--port", "0", "--allow-remote",
              ok=False)
    assert out.returncode != 0 and "needs a shared token" in out.stderr


def test_env_var_token_is_sent_by_clients(monkeypatch):
    service = PolicyService(toy_spec.policy_spec(), None, {})
    server = Server(service, port=0, token="tok").start_in_thread()
    monkeypatch.setenv("VLABENCH_TOKEN", "tok")
    channel = WsChannel(server.url)
    assert channel.info["protocol"] == wire.PROTOCOL_VERSION
    channel.close()
    monkeypatch.delenv("VLABENCH_TOKEN")
    start = time.perf_counter()
    with pytest.raises(PermissionError, match="missing or wrong token"):
        WsChannel(server.url)
    assert time.perf_counter() - start < 5
    server.stop()
    assert os.environ.get("VLABENCH_TOKEN") is None
