"""Per-step overhead of the worker pipe and the WebSocket paths against in-process calls.

The same episodes (toy reach env from tests/fixtures/wire_env, seeds 1000.., a
``--image-size`` RGB camera plus a 4-d state per observation, the greedy policy, no early stop)
run through the rollout loop in five set-ups, alternating, ``--repeats`` times:

* ``in-process``   env and policy in this process (the reference)
* ``env-pipe``     the env in a worker process (``isolated_env``), policy here
* ``env-ws``       the env behind a WebSocket server in another process, policy here
* ``policy-pipe``  the policy in a worker process (``isolated_policy``), env here
* ``policy-ws``    the policy behind a WebSocket server in another process, env here

Prints the median milliseconds per env step, the ratio to in-process, and the added ms per
call; the latency metrics (time inside vs on the wire) come from the proxies themselves.

    .venv/bin/python benchmarks/remote_overhead.py --episodes 4 --steps 100 --image-size 96
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
from vlabench.isolation.proxies import instrument, isolated_env, isolated_policy  # noqa: E402
from vlabench.isolation.remote import WsChannel, remote_env_spec, remote_policy_spec  # noqa: E402
from vlabench.runtime.rollout import Rollout, RolloutSettings, episode_specs  # noqa: E402

SERVER = """
import sys; sys.path.insert(0, {fixture!r})
import toy_spec
from vlabench.isolation.serve import PolicyService, Server
policy = PolicyService(toy_spec.policy_spec(), None, {{}})
target = toy_spec.env_spec() if {kind!r} == "env" else policy
Server(target, port=0).serve_forever(lambda s: print(s.port, flush=True))
"""


def start_server(kind: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(fixture=str(FIXTURE), kind=kind)],
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, f"remote://127.0.0.1:{proc.stdout.readline().strip()}"


def run(make_env, policy, episodes: int, steps: int) -> tuple[float, float, dict[str, float]]:
    """Seconds to build the env, seconds for the episodes, median latency metrics over them.

    The env (and its worker or connection) is built before the clock starts: start-up is
    reported on its own, not spread over the steps.
    """
    records: list[api.EpisodeRecord] = []
    start = time.perf_counter()
    env = make_env()
    startup = time.perf_counter() - start
    make_env = iter([env]).__next__  # the rollout (batch 1) builds its env once
    settings = RolloutSettings(max_steps=steps, stop_on_success=False, action_dim=2)
    make_env, on_episode = instrument(make_env, policy, records.append)
    start = time.perf_counter()
    Rollout(make_env, policy, settings, on_episode).run(
        episode_specs("reach", range(episodes), 1000, None)
    )
    elapsed = time.perf_counter() - start
    assert all(r.failure_reason is None and r.steps == steps for r in records), records
    keys = {k for r in records for k in r.metrics}
    medians = {k: statistics.median(r.metrics[k] for r in records) for k in sorted(keys)}
    return startup, elapsed, medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    options = {"image_size": args.image_size}
    request = api.PolicyRequest("greedy", None, {}, toy_spec.INTERFACE)
    env_proc, env_url = start_server("env")
    pol_proc, pol_url = start_server("policy")
    try:
        local_policy = toy_env.load(request)
        pipe_env = isolated_env("toy_env:make", path=(str(FIXTURE),))
        ws_env = remote_env_spec(env_url).make
        pipe_policy = isolated_policy("toy_env:load", path=(str(FIXTURE),))(request)
        ws_policy = remote_policy_spec().load(
            api.PolicyRequest("remote", None, {"url": pol_url}, toy_spec.INTERFACE)
        )
        setups = {
            "in-process": (lambda: toy_env.make("reach", options), local_policy),
            "env-pipe": (lambda: pipe_env("reach", options), local_policy),
            "env-ws": (lambda: ws_env("reach", options), local_policy),
            "policy-pipe": (lambda: toy_env.make("reach", options), pipe_policy),
            "policy-ws": (lambda: toy_env.make("reach", options), ws_policy),
        }
        times: dict[str, list[float]] = {name: [] for name in setups}
        startups: dict[str, list[float]] = {name: [] for name in setups}
        metrics: dict[str, dict[str, float]] = {}
        for _ in range(args.repeats):
            for name, (make, policy) in setups.items():
                startup, elapsed, metrics[name] = run(make, policy, args.episodes, args.steps)
                times[name].append(elapsed)
                startups[name].append(startup)
        n_steps = args.episodes * args.steps
        base = statistics.median(times["in-process"]) * 1000 / n_steps
        print(
            f"{args.episodes} episodes x {args.steps} steps, {args.image_size}x"
            f"{args.image_size} camera, median of {args.repeats} ({sys.platform})"
        )
        print(
            f"{'set-up':<12} {'ms/step':>8} {'ratio':>6} {'+ms/step':>9} {'env start ms':>12}"
            "  latency metrics (p50 ms)"
        )
        for name in setups:
            ms = statistics.median(times[name]) * 1000 / n_steps
            extra = ", ".join(f"{k}={v:.3f}" for k, v in metrics[name].items() if "p50" in k)
            start_ms = statistics.median(startups[name]) * 1000
            row = f"{name:<12} {ms:8.3f} {ms / base:6.2f} {ms - base:9.3f} {start_ms:12.1f}"
            print(f"{row}  {extra}")
        for proxy in (pipe_policy, ws_policy):
            proxy.close()
        assert isinstance(ws_policy.channel, WsChannel | None)
    finally:
        env_proc.terminate()
        pol_proc.terminate()


if __name__ == "__main__":
    main()
