"""Models served elsewhere, against the real peers, each in its own venv made here from PyPI:

* the real ``openpi-client`` (numpy<2, so never in vlabench's venv) drives
  ``vlabench serve --protocol openpi``;
* ``openpi://`` drives an openpi-style server (openpi's server is not on PyPI: the fixture
  follows its message order and error behaviour, on the real ``openpi_client`` packer);
* ``vlaeval://`` drives a real vla-eval ``PredictModelServer`` subclass;
* ``vla-eval run`` (its orchestrator, client and runner) drives
  ``vlabench serve --protocol vlaeval``, whose store then holds the episodes as a run.

Each compares actions or per-episode results with the in-process policy, and checks that a
server error or a dropped connection costs only its episode. The venvs are cached in
pytest's cache directory (``uv`` makes them in a few seconds).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from vlabench import api

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "served"
UV = Path(sys.executable).parent / "uv"
BIN = Path(sys.executable).parent

from served_testkit import Chunky, chunky_io, outcomes  # noqa: E402  (tests/ is on sys.path)


def _peer_venv(request: pytest.FixtureRequest, name: str, packages: list[str],
               probe: str) -> Path:
    root = Path(request.config.cache.mkdir(f"served-peer-{name}"))
    python = root / "venv" / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", probe],
                                          capture_output=True).returncode == 0:
        return python
    subprocess.run([UV, "venv", "--quiet", "--clear", "--python", sys.executable,
                    root / "venv"], check=True, capture_output=True)
    subprocess.run([UV, "pip", "install", "--quiet", "--python", python, *packages],
                   check=True, capture_output=True)
    return python


@pytest.fixture(scope="module")
def openpi_python(request) -> Path:
    # openpi-client imports typing_extensions without declaring it
    return _peer_venv(request, "openpi", ["openpi-client", "typing-extensions"],
                      "import openpi_client.websocket_client_policy")


@pytest.fixture(scope="module")
def vlaeval_python(request) -> Path:
    return _peer_venv(request, "vlaeval", ["vla-eval"], "import vla_eval.model_servers.serve")


@pytest.fixture(scope="module")
def catalog():
    from vlabench.catalog import load_catalog

    cat = load_catalog()
    cat.policies["chunky"] = api.PolicySpec("chunky", "chunked (tests)", Chunky, chunky_io)
    cat.policies["chunky4"] = api.PolicySpec("chunky4", "chunked (tests)", Chunky4, _describe4)
    return cat


def _describe4(request: api.PolicyRequest) -> api.PolicyInterface:
    return api.PolicyInterface(chunky_io(request).inputs, request.env.action, chunk_size=4,
                               n_action_steps=4)


class Chunky4(Chunky):
    """The same chunks, all 4 executed: what vla-eval's server does with ``chunk_size=4``."""

    def __init__(self, request: api.PolicyRequest) -> None:
        self.interface = _describe4(request)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"no answer from {url}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _serve_cli(tmp_path: Path, *args: str,
               registry: Path | None = None) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    env = {**os.environ, "VLABENCH_DB": f"sqlite:///{tmp_path / 'served.db'}"}
    extra = ["--registry", str(registry)] if registry else []
    proc = subprocess.Popen([BIN / "vlabench", *extra, "serve", "policy", *args, "--port",
                             str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    return proc, port


def _registry(tmp_path: Path, text: str):
    from vlabench.registry import load_registry

    path = tmp_path / "served.yaml"
    path.write_text(text)
    return load_registry([path]), path


def test_openpi_client_drives_vlabench_serve(tmp_path, openpi_python, catalog):
    """The real WebsocketClientPolicy against `vlabench serve --protocol openpi`: metadata
    first, the expert's actions on the same observations, an error costs one request."""
    rng = np.random.default_rng(0)
    n = 6
    obs = {f"state_{i}": rng.uniform(-0.5, 0.5, 39).astype(np.float32) for i in range(n)}
    obs |= {f"task_{i}": np.array(["reach-v3", "push-v3"][i % 2]) for i in range(n)}
    np.savez(tmp_path / "obs.npz", **obs)
    proc, port = _serve_cli(tmp_path, "metaworld-expert", "--protocol", "openpi", "--suite",
                            "metaworld_mt10", "--token", "s3cret")
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        drive = [openpi_python, FIXTURES / "openpi_client_drive.py", "--port", str(port),
                 "--obs", tmp_path / "obs.npz", "--out", tmp_path / "out.json"]
        refused = subprocess.run(drive, capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "401" in refused.stderr  # no key, no session
        done = subprocess.run([*drive, "--bad", "2", "--api-key", "s3cret"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    finally:
        _stop(proc)
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["metadata"]["vlabench"]["name"] == "metaworld-expert"
    [error] = out["errors"]
    assert "Error in inference server" in error and "observation lacks state" in error
    assert all(t == ["infer_ms"] or t == ["infer_ms", "prev_total_ms"] for t in out["timing"])
    env = catalog.env("metaworld").interface({})
    expert = catalog.policy("metaworld-expert").load(
        api.PolicyRequest("metaworld-expert", None, {}, env))
    for i, chunk in enumerate(out["actions"]):
        if i == 2:
            assert chunk is None
            continue
        batch = {"observation.environment_state": obs[f"state_{i}"][None],
                 "task_name": np.array([str(obs[f"task_{i}"])]), "task": [""],
                 api.EPISODE_INDEX_KEY: np.array([0]), api.EPISODE_STEP_KEY: np.array([0])}
        np.testing.assert_allclose(chunk, expert.select_action(batch), rtol=0, atol=1e-6)


def test_openpi_scheme_against_an_openpi_style_server(tmp_path, openpi_python, catalog):
    """`openpi://` on PushT with a preset mapping the keys: results equal in-process; the
    server's traceback fails one episode; a dropped connection is reopened once."""
    server = subprocess.Popen([openpi_python, FIXTURES / "openpi_style_server.py",
                               "--fail", "20", "--drop", "35"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        port = int(server.stdout.readline().split()[1])
        _wait_http(f"http://127.0.0.1:{port}/healthz", server)
        registry, _ = _registry(tmp_path, f"""
version: 1
policies:
  served_chunky:
    type: openpi
    options:
      url: openpi://127.0.0.1:{port}
      state: {{observation/state: observation.state}}
      prompt: prompt
      chunk_size: 4
      n_action_steps: 2
      action_space: pixel_xy_512
""")
        served = outcomes(tmp_path / "s", "served_chunky", "pusht", registry, catalog, episodes=3,
                      max_steps=30)
    finally:
        _stop(server)
    local = outcomes(tmp_path / "l", "chunky", "pusht", registry, catalog, episodes=3,
                 max_steps=30)
    failed = [e for e in served if e[5]]
    assert [e[1] for e in failed] == [1]  # request 20 is in episode 1 (15 per episode)
    assert "server error: ValueError: boom on request 20" in failed[0][5]
    assert [e for e in served if not e[5]] == [e for e in local if e[1] != 1]  # 2 reconnected


def _vlaeval_server(python: Path, *args: str) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    server = subprocess.Popen([python, FIXTURES / "vlaeval_model_server.py", "--port",
                               str(port), *args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    _wait_http(f"http://127.0.0.1:{port}/health", server)
    return server, port


PRESET = """
version: 1
policies:
  served_chunky:
    type: vlaeval
    options:
      url: vlaeval://127.0.0.1:{port}
      state: {{states: observation.state}}
      prompt: task_description
      action_space: pixel_xy_512
"""


def test_vlaeval_scheme_against_a_real_predict_model_server(tmp_path, vlaeval_python,
                                                            catalog):
    """`vlaeval://` against vla-eval's own server: one action per observation from its chunk
    buffer equals the in-process policy executing whole chunks; its ERROR fails one episode,
    a dropped connection is reopened once (the episode restarted on the server)."""
    server, port = _vlaeval_server(vlaeval_python, "--fail", "1", "--drop", "2")
    try:
        registry, _ = _registry(tmp_path, PRESET.format(port=port))
        served = outcomes(tmp_path / "s", "served_chunky", "pusht", registry, catalog, episodes=3,
                      max_steps=30)
    finally:
        _stop(server)
    local = outcomes(tmp_path / "l", "chunky4", "pusht", registry, catalog, episodes=3,
                 max_steps=30)
    failed = [e for e in served if e[5]]
    assert [e[1] for e in failed] == [1]
    assert "server error: observation_failed: ValueError: boom in episode 1" in failed[0][5]
    assert [e for e in served if not e[5]] == [e for e in local if e[1] != 1]


def test_check_uses_what_a_vlaeval_server_announces(tmp_path, vlaeval_python):
    """A camera the server's HELLO asks for and the preset does not send is named by
    `vlabench check` (and the pair is refused) before any episode."""
    server, port = _vlaeval_server(vlaeval_python, "--wrist")
    try:
        _, path = _registry(tmp_path, PRESET.format(port=port))
        env = {**os.environ, "VLABENCH_DB": f"sqlite:///{tmp_path / 'c.db'}"}
        check = subprocess.run([BIN / "vlabench", "--registry", path, "check", "served_chunky",
                                "pusht"], capture_output=True, text=True, env=env, timeout=60)
    finally:
        _stop(server)
    assert check.returncode == 1, check.stdout + check.stderr
    text = " ".join(check.stdout.split())
    assert "missing camera wrist (vla-eval camera, not in the preset)" in text


def test_vlaeval_run_drives_vlabench_serve_and_is_stored(tmp_path, vlaeval_python, catalog):
    """`vla-eval run` (orchestrator, client, sync runner) against `vlabench serve --protocol
    vlaeval`: the actions are the in-process policy's on the observations it sent; its
    episodes are a run in vlabench's store (suite named after the benchmark), the errored
    one failed with the server's message; `vlabench leaderboard` shows the run."""
    (tmp_path / "reg.yaml").write_text("""
version: 1
policies:
  toy_vlaeval:
    type: vlaeval
    options:
      url: vlaeval://127.0.0.1:1
      state: {states: observation.state}
      prompt: task_description
""")
    proc, port = _serve_cli(tmp_path, "noop", "--protocol", "vlaeval", "--suite", "pusht",
                            "--convention", "toy_vlaeval", registry=tmp_path / "reg.yaml")
    env = {**os.environ, "VLABENCH_DB": f"sqlite:///{tmp_path / 'served.db'}"}
    log = tmp_path / "actions.jsonl"
    (tmp_path / "eval.yaml").write_text(f"""
server:
  url: ws://127.0.0.1:{port}
output_dir: {tmp_path / "out"}
benchmarks:
  - benchmark: toy_bench:ToyBench
    episodes_per_task: 3
    params: {{log: {log}, bad_episode: 1}}
""")
    try:
        _wait_http(f"http://127.0.0.1:{port}/health", proc)
        ran = subprocess.run([vlaeval_python.parent / "vla-eval", "run", "--no-docker", "-y",
                              "-c", tmp_path / "eval.yaml"], cwd=tmp_path, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(FIXTURES)},
                             capture_output=True, text=True)
        assert "66.7% (2/3)" in ran.stdout + ran.stderr, ran.stdout + ran.stderr
    finally:
        _stop(proc)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 9  # 4 + 1 (then the bad observation) + 4
    env_iface = catalog.env("pusht").interface({})
    noop = catalog.policy("noop").load(api.PolicyRequest("noop", None, {}, env_iface))
    for row in rows:
        batch = {api.STATE_KEY: np.array([row["obs"]], np.float32), "task": ["drift"],
                 api.EPISODE_INDEX_KEY: np.array([0]), api.EPISODE_STEP_KEY: np.array([0])}
        assert noop.select_action(batch)[0].tolist() == row["action"]
    from vlabench.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'served.db'}", read_only=True)
    [run] = store.runs()
    assert (run["suite"], run["task"], run["policy"], run["env"]) == (
        "vlaeval_toybench_toy", "drift", "noop", "vla-eval")
    assert run["protocol"]["benchmark"] == "toy_bench:ToyBench"
    assert run["status"] == "finished"
    episodes = {e["episode_index"]: e for e in store.episodes(run["id"])}
    assert sorted(episodes) == [0, 1, 2]
    assert episodes[0]["success"] and episodes[2]["success"] and episodes[0]["steps"] == 4
    assert not episodes[1]["success"]
    assert "observation lacks state 'states'" in episodes[1]["failure_reason"]
    board = subprocess.run([BIN / "vlabench", "leaderboard"], capture_output=True, text=True,
                           env=env, cwd=tmp_path, timeout=60)
    assert board.returncode == 0 and "vlaeval_toybench_toy" in board.stdout
    assert "67" in board.stdout and "n=3" in board.stdout
