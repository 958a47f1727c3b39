"""Per-step wire overhead of the served-model protocols against in-process calls.

The same episodes (``--env toy``: the toy reach env from tests/fixtures/wire_env with a
``--image-size`` RGB camera and its greedy policy; ``--env pusht``: PushT, 96x96 camera, the
``noop`` policy holding the agent's position; seeds 1000.., the camera, the state and the task
per observation, one policy call per step, no early stop) run through the rollout loop in
four set-ups,
alternating, ``--repeats`` times; every served set-up sends the camera, the state and the task
each step and its server runs in another process:

* ``in-process``  policy in this process (the reference)
* ``remote``      ``vlabench serve policy`` (vlabench's protocol, ``remote://``)
* ``openpi``      ``vlabench serve policy --protocol openpi`` driven by ``openpi://``
* ``vlaeval``     ``vlabench serve policy --protocol vlaeval`` driven by ``vlaeval://``

Prints the median milliseconds per env step, the ratio to in-process and the added ms/step.

    .venv/bin/python benchmarks/served_overhead.py --episodes 4 --steps 100 --image-size 224
    .venv/bin/python benchmarks/served_overhead.py --env pusht --episodes 4 --steps 100
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "wire_env"
sys.path.insert(0, str(FIXTURE))

import toy_env  # noqa: E402
import toy_spec  # noqa: E402

from vlabench import api  # noqa: E402
from vlabench.isolation.foreign import openpi, vlaeval  # noqa: E402
from vlabench.isolation.remote import remote_policy_spec  # noqa: E402
from vlabench.runtime.rollout import Rollout, RolloutSettings, episode_specs  # noqa: E402

CAMERA = {"toy": "observation.images.top", "pusht": "observation.images.top"}

SERVER = """
import sys; sys.path.insert(0, {fixture!r})
from vlabench import api
from vlabench.isolation.serve import PolicyService, Server
from vlabench.isolation.foreign.convention import Convention
from vlabench.isolation.foreign.servers import ForeignServer, ServedModel
if {env!r} == "toy":
    import toy_env, toy_spec
    spec, interface = toy_spec.policy_spec(), toy_spec.INTERFACE
else:
    from vlabench.catalog import load_catalog
    catalog = load_catalog()
    spec, interface = catalog.policy("noop"), catalog.env("pusht").interface({{}})
if {protocol!r} == "remote":
    Server(PolicyService(spec, None, {{}}), port=0).serve_forever(
        lambda s: print(s.port, flush=True))
else:
    policy = spec.load(api.PolicyRequest(spec.name, None, {{}}, interface))
    model = ServedModel(policy, Convention.from_options({keys!r}, "bench"), {{"name": "p"}})
    ForeignServer(model, {protocol!r}, port=0).serve_forever(lambda s: print(s.port, flush=True))
"""


def keys(env: str) -> dict:
    """Every set-up sends the camera, the state and the task."""
    return {"images": {CAMERA[env]: CAMERA[env]},
            "state": {"observation.state": "observation.state"}, "prompt": "task"}


def start_server(protocol: str, env: str) -> tuple[subprocess.Popen, int]:
    code = SERVER.format(fixture=str(FIXTURE), protocol=protocol, keys=keys(env), env=env)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline().strip())


def client(protocol: str, port: int, env: str, interface: api.EnvInterface) -> api.Policy:
    if protocol == "remote":
        options = {"url": f"remote://127.0.0.1:{port}"}
        return remote_policy_spec().load(api.PolicyRequest("remote", None, options, interface))
    module = openpi if protocol == "openpi" else vlaeval
    options = {"url": f"{module.SCHEME}127.0.0.1:{port}", **keys(env)}
    return module.SPEC.load(api.PolicyRequest(module.TYPE, None, options, interface))


def run(make_env, task: str, policy, episodes: int, steps: int, dim: int) -> float:
    """Seconds for the episodes (the env is built before the clock starts)."""
    records: list[api.EpisodeRecord] = []
    env = make_env()
    settings = RolloutSettings(max_steps=steps, stop_on_success=False, action_dim=dim)
    start = time.perf_counter()
    Rollout(iter([env]).__next__, policy, settings, records.append).run(
        episode_specs(task, range(episodes), 1000, None))
    elapsed = time.perf_counter() - start
    assert all(r.failure_reason is None and r.steps == steps for r in records), records
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=("toy", "pusht"), default="toy")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=224, help="toy env only")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.env == "toy":
        interface, task = toy_spec.INTERFACE, "reach"
        local = toy_env.load(api.PolicyRequest("greedy", None, {}, interface))
        options = {"image_size": args.image_size}
        make = toy_env.make
        camera = f"{args.image_size}x{args.image_size}"
    else:
        from vlabench.catalog import load_catalog

        catalog = load_catalog()
        env_spec = catalog.env("pusht")
        interface, options, task = env_spec.interface({}), {}, env_spec.tasks({})[0].name
        local = catalog.policy("noop").load(api.PolicyRequest("noop", None, {}, interface))
        make = env_spec.make
        camera = "96x96"
    servers = {p: start_server(p, args.env) for p in ("remote", "openpi", "vlaeval")}
    try:
        setups = {"in-process": local, **{p: client(p, port, args.env, interface)
                                           for p, (_, port) in servers.items()}}
        times: dict[str, list[float]] = {name: [] for name in setups}
        dim = int(interface.action.shape[0])
        for _ in range(args.repeats):
            for name, policy in setups.items():
                times[name].append(run(lambda: make(task, options), task, policy,
                                       args.episodes, args.steps, dim))
        n_steps = args.episodes * args.steps
        base = statistics.median(times["in-process"]) * 1000 / n_steps
        print(f"{args.env}: {args.episodes} episodes x {args.steps} steps, {camera} camera "
              f"+ state + task per step, median of {args.repeats}")
        print(f"{'set-up':<11} {'ms/step':>8} {'ratio':>7} {'+ms/step':>9}")
        for name in setups:
            ms = statistics.median(times[name]) * 1000 / n_steps
            print(f"{name:<11} {ms:8.3f} {ms / base:7.2f} {ms - base:9.3f}")
        for policy in setups.values():
            if hasattr(policy, "close"):
                policy.close()
    finally:
        for proc, _ in servers.values():
            proc.terminate()


if __name__ == "__main__":
    main()
