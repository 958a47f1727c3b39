"""Models served elsewhere, with vlabench at both ends: `vlabench serve --protocol openpi|vlaeval`
driven by `openpi://` / `vlaeval://` gives the in-process per-episode results; a server error
fails only its episode; presets and the CLI say what is wrong in one line.

The same two ends are checked against the real peers (openpi-client, vla-eval) in
tests/test_served_peers.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from served_testkit import Chunky, chunky_io, outcomes

from vlabench import api
from vlabench.isolation.foreign import codec
from vlabench.isolation.foreign.convention import BUILT_IN, Convention, resize_with_pad
from vlabench.isolation.foreign.servers import ForeignServer, ServedModel

PROTOCOLS = ("openpi", "vlaeval")


@pytest.fixture(scope="module")
def catalog():
    from vlabench.catalog import load_catalog

    cat = load_catalog()
    cat.policies["chunky"] = api.PolicySpec("chunky", "chunked hold (tests)", Chunky, chunky_io)
    return cat


@pytest.fixture(scope="module")
def registry():
    from vlabench.registry import load_registry

    return load_registry([])


def _serve(preset: str, suite: str, protocol: str, registry, catalog,
           convention: str | None = None) -> ForeignServer:
    from vlabench.isolation.foreign.loading import load_served

    model = load_served(preset, suite, convention, registry, catalog)
    return ForeignServer(model, protocol, port=0).start_in_thread()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_scripted_policies_served_both_ways_match_in_process(tmp_path, protocol, registry,
                                                             catalog):
    """PushT (an observation-driven hold, and a chunked policy whose schedule the server
    announces) and Meta-World (the scripted expert): same episodes, same results."""
    cases = [("noop", "pusht", {"episodes": 3, "max_steps": 30}),
             ("chunky", "pusht", {"episodes": 3, "max_steps": 30}),
             ("metaworld-expert", "metaworld_mt10",
              {"episodes": 2, "tasks": ["reach-v3", "drawer-close-v3"]})]
    for i, (preset, suite, kw) in enumerate(cases):
        server = _serve(preset, suite, protocol, registry, catalog)
        try:
            served = outcomes(tmp_path / f"s{i}", f"{protocol}://127.0.0.1:{server.port}", suite,
                          registry, catalog, **kw)
        finally:
            server.stop()
        local = outcomes(tmp_path / f"l{i}", preset, suite, registry, catalog, **kw)
        assert served == local, (preset, protocol)
        assert all(e[5] is None for e in local)
        if preset == "metaworld-expert":
            assert all(e[2] for e in local)  # the expert succeeds: a real trajectory matched
        else:
            assert len({e[4] for e in local}) == 3  # rewards differ by episode: real motion


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_server_error_fails_only_its_episode(tmp_path, protocol, registry, catalog):
    server = _serve("chunky", "pusht", protocol, registry, catalog)
    Chunky.calls, Chunky.fail_on = 0, 20  # a call in the middle of the second episode
    try:
        served = outcomes(tmp_path / "s", f"{protocol}://127.0.0.1:{server.port}", "pusht",
                      registry, catalog, episodes=3, max_steps=30)
    finally:
        Chunky.fail_on = None
        server.stop()
    local = outcomes(tmp_path / "l", "chunky", "pusht", registry, catalog, episodes=3, max_steps=30)
    failed = [e for e in served if e[5]]
    assert [e[1] for e in failed] == [1]
    assert "boom on call 20" in failed[0][5]
    assert [e for e in served if not e[5]] == [e for e in local if e[1] != 1]


def test_openpi_codec_matches_openpis_wire_form():
    """Bin keys for arrays and numpy scalars; object arrays refused (openpi's rules)."""
    import msgpack

    data = codec.openpi_pack({"a": np.arange(6, dtype=np.float32).reshape(2, 3),
                              "s": np.float32(2.5)})
    raw = msgpack.unpackb(data, raw=False)
    assert raw["a"][b"__ndarray__"] is True and raw["a"][b"shape"] == [2, 3]
    assert raw["s"][b"__npgeneric__"] is True and raw["s"][b"dtype"] == "<f4"
    back = codec.openpi_unpack(data)
    np.testing.assert_array_equal(back["a"], np.arange(6).reshape(2, 3))
    assert isinstance(back["s"], np.float32) and back["s"] == 2.5
    with pytest.raises(ValueError, match="Unsupported dtype"):
        codec.openpi_pack({"x": np.array([object()])})
    kind, payload, seq = codec.vlaeval_unpack(codec.vlaeval_pack("action", {
        "actions": np.ones(7, np.float32)}, 5))
    assert (kind, seq) == ("action", 5) and payload["actions"].dtype == np.float32
    with pytest.raises(ValueError, match="missing required fields"):
        codec.vlaeval_unpack(msgpack.packb({"type": "observation", "payload": {}}))


def test_conventions_map_both_ways_and_resize_with_pad():
    libero = BUILT_IN["openpi_libero"]
    row = {"observation.images.image": np.full((256, 128, 3), 200, np.uint8),
           "observation.images.image2": np.zeros((224, 224, 3), np.uint8),
           "observation.state": np.arange(8, dtype=np.float32), "task": "pick it"}
    obs = libero.to_server(row)
    assert sorted(obs) == ["observation/image", "observation/state", "observation/wrist_image",
                           "prompt"]
    image = obs["observation/image"]
    assert image.shape == (224, 224, 3)
    assert image[:, :56].max() == 0 and image[:, 56:168].min() == 200  # padded, centred
    back = libero.from_client(obs)
    np.testing.assert_array_equal(back["observation.state"], row["observation.state"])
    droid = BUILT_IN["openpi_droid"]
    state = {"observation.state": np.arange(8, dtype=np.float32), "task": "t",
             "observation.images.exterior_image_1_left": np.zeros((224, 224, 3), np.uint8),
             "observation.images.wrist_image_left": np.zeros((224, 224, 3), np.uint8)}
    sent = droid.to_server(state)
    assert sent["observation/joint_position"].tolist() == list(range(7))
    assert sent["observation/gripper_position"].tolist() == [7.0]
    np.testing.assert_array_equal(droid.from_client(sent)["observation.state"], np.arange(8))
    assert resize_with_pad(np.zeros((10, 20, 3), np.uint8), 8, 8).shape == (8, 8, 3)
    vla = BUILT_IN["vlaeval_libero"]
    assert sorted(vla.to_server(row)["images"]) == ["agentview", "wrist"]
    with pytest.raises(api.RegistryError, match="unknown option"):
        Convention.from_options({"imagez": {}}, "preset x")
    with pytest.raises(api.RegistryError, match="unknown convention 'nope'"):
        Convention.from_options({"convention": "nope"}, "preset x")


def test_check_names_what_a_preset_does_not_send(registry, catalog):
    """openpi's LIBERO convention on PushT: missing cameras, state and action named."""
    from vlabench.plan.compat import check
    from vlabench.plan.resolve import resolve_policy

    choice = resolve_policy("openpi_libero", registry, catalog)
    env = catalog.env("pusht").interface({})
    request = api.PolicyRequest("openpi", None, choice.options, env)
    described = catalog.policy("openpi").describe(request)
    reason = check(described, env).reason()
    assert "missing camera observation.images.image2" in reason
    assert "action space: policy libero_ee_delta, env pixel_xy_512" in reason
    assert described.chunk_size == 10 and described.n_action_steps == 5


def test_serve_cli_refuses_bad_input_in_one_line(cli):
    bad = cli("serve", "policy", "noop", "--protocol", "grpc", ok=False)
    assert bad.returncode == 2 and "--protocol must be one of vlabench, openpi, vlaeval" in (
        bad.stderr + bad.stdout)
    bad = cli("serve", "policy", "noop", "--protocol", "openpi", ok=False)
    assert bad.returncode == 2 and "needs --suite" in bad.stderr + bad.stdout
    bad = cli("serve", "policy", "noop", "--protocol", "openpi", "--suite", "pusht",
              "--convention", "nope", ok=False)
    assert bad.returncode == 2 and "unknown convention 'nope'" in bad.stderr + bad.stdout
    bad = cli("run", "--policy", "openpi://127.0.0.1:1", "--suite", "pusht", ok=False)
    assert bad.returncode == 2 and "cannot connect to ws://127.0.0.1:1" in (
        bad.stderr + bad.stdout)


def test_served_model_keeps_the_policys_chunk_schedule(catalog):
    env = catalog.env("pusht").interface({})
    policy = Chunky(api.PolicyRequest("chunky", None, {}, env))
    model = ServedModel(policy, Convention().for_env(env, policy.interface.inputs))
    announced = model.announced()["convention"]
    assert (announced["chunk_size"], announced["n_action_steps"]) == (4, 2)
    assert announced["state"] == {"observation.state": "observation.state"}
    chunk = model.act({"observation.state": np.array([10, 20], np.float32)}, 0, 0)
    assert chunk.shape == (4, 2) and chunk[0].tolist() == [19.0, 15.5]


def _describe_libero(request: api.PolicyRequest) -> api.PolicyInterface:
    env = request.env
    reads = tuple(f for f in env.observation if f.name in (
        api.STATE_KEY, "observation.images.image", "observation.images.image2"))
    return api.PolicyInterface(reads, env.action, chunk_size=10, n_action_steps=5)


class LiberoWave:
    """LIBERO: chunks of 10 end-effector deltas computed from the 8-d state, 5 executed."""

    def __init__(self, request: api.PolicyRequest) -> None:
        self.interface = _describe_libero(request)

    def reset(self) -> None: ...

    def predict_action_chunk(self, batch: api.Batch) -> np.ndarray:
        state = np.asarray(batch[api.STATE_KEY], np.float32)
        k = np.arange(10, dtype=np.float32)[None, :]
        out = np.zeros((len(state), 10, 7), np.float32)
        out[..., 0] = 0.6 * np.sin(20 * state[:, :1] + k)
        out[..., 1] = 0.6 * np.cos(20 * state[:, 1:2] - k)
        out[..., 2] = 0.3 * np.sin(10 * state[:, 2:3])
        out[..., 6] = np.where(k % 4 < 2, -1.0, 1.0)
        return out

    def select_action(self, batch: api.Batch) -> np.ndarray:
        return self.predict_action_chunk(batch)[:, 0]


_LOCAL: dict[str, list[tuple]] = {}


def test_registry_presets_spell_out_the_built_in_conventions(registry):
    for name in ("openpi_libero", "openpi_droid", "vlaeval_libero"):
        options = dict(registry.policies[name].options)
        assert Convention.from_options(options, name) == BUILT_IN[name], name


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_libero_with_one_preset_matches_in_process(tmp_path, protocol, registry, catalog):
    """openpi's and vla-eval's LIBERO conventions (224 px padded cameras for openpi, both
    cameras, the 8-d state, the prompt) at both ends: same episode as in-process."""
    pytest.importorskip("libero", reason="LIBERO is not installed in this environment")
    from vlabench.registry import load_registry

    catalog.policies["libero_wave"] = api.PolicySpec("libero_wave", "tests", LiberoWave,
                                                     _describe_libero)
    name = f"{protocol}_libero"
    server = _serve("libero_wave", "libero_spatial", protocol, registry, catalog,
                    convention=name)
    (tmp_path / "r.yaml").write_text(
        f"version: 1\npolicies:\n  served:\n    type: {protocol}\n"
        f"    options: {{convention: {name}, url: '{protocol}://127.0.0.1:{server.port}'}}\n")
    served_registry = load_registry([tmp_path / "r.yaml"])
    task = catalog.env("libero").tasks({"suite": "libero_spatial"})[1].name
    kw = {"episodes": 1, "max_steps": 15, "tasks": [task],
          "env_overrides": {"image_size": 128, "render_quality": "fast"}}
    try:
        served = outcomes(tmp_path / "s", "served", "libero_spatial", served_registry,
                          catalog, **kw)
    finally:
        server.stop()
    if "libero" not in _LOCAL:  # the in-process reference, once for both protocols
        _LOCAL["libero"] = outcomes(tmp_path / "l", "libero_wave", "libero_spatial", registry,
                                catalog, **kw)
    local = _LOCAL["libero"]
    assert served == local and local[0][3] == 15 and local[0][5] is None


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_keys_and_tokens(protocol, catalog, monkeypatch):
    """A server with a key refuses a client without it (HTTP 401, named) and serves one
    with it (openpi: ``Api-Key``, vla-eval: ``Bearer``); a non-loopback bind needs both
    --allow-remote and a key."""
    from vlabench.isolation.foreign import openpi, vlaeval

    env = catalog.env("pusht").interface({})
    policy = Chunky(api.PolicyRequest("chunky", None, {}, env))
    model = ServedModel(policy, Convention().for_env(env, policy.interface.inputs))
    with pytest.raises(PermissionError, match="not a loopback address"):
        ForeignServer(model, protocol, host="0.0.0.0", port=0)
    server = ForeignServer(model, protocol, port=0, token="k3y").start_in_thread()
    module = openpi if protocol == "openpi" else vlaeval
    url = f"{module.SCHEME}127.0.0.1:{server.port}"
    try:
        monkeypatch.delenv("VLABENCH_TOKEN", raising=False)
        with pytest.raises(api.RegistryError, match="HTTP 401"):
            _resolve(url)
        monkeypatch.setenv("SERVED_KEY", "k3y")
        options = {"url": url, "token_env": "SERVED_KEY",
                   "state": {"observation.state": "observation.state"}, "chunk_size": 4,
                   "n_action_steps": 2 if protocol == "openpi" else 1}
        served = module.SPEC.load(api.PolicyRequest(module.TYPE, None, options, env))
        batch = {api.STATE_KEY: np.array([[10, 20]], np.float32), "task": [""],
                 api.EPISODE_INDEX_KEY: np.array([0]), api.EPISODE_STEP_KEY: np.array([0])}
        expected = policy.predict_action_chunk(batch)
        got = served.predict_action_chunk(batch)
        np.testing.assert_array_equal(got[:, 0], expected[:, 0])
        served.close()
    finally:
        server.stop()


def _resolve(name: str):
    from vlabench.isolation.foreign import vlabench_resolve_policy

    return vlabench_resolve_policy(name)
