"""PAROL6 control loop against the fake server: status round trip and achieved control rate.

Measures, over loopback UDP with the real driver and env code:
* the GET_STATUS round trip (p50 / p95 / max, ms) of :class:`Parol6Client`;
* the control rate the env achieves at each target ``control_hz`` (steps / wall time), with the
  fake camera at 640x480 rendered every step, and the watchdog thread polling.

    .venv/bin/python benchmarks/parol6_loop.py --steps 200 --rates 10 30 100
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def status_round_trip(n: int) -> list[float]:
    from vlabench_plugins.parol6.driver import Parol6Client
    from vlabench_plugins.parol6.fake import FakeArmServer
    from vlabench_plugins.parol6.safety import Arming

    server = FakeArmServer()
    client = Parol6Client(server.host, server.port, Arming(True, False, lambda _: False))
    times = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            client.status()
            times.append(1000 * (time.perf_counter() - start))
    finally:
        client.close()
        server.close()
    return times


def control_rate(hz: float, steps: int) -> float:
    from vlabench_plugins import parol6

    env = parol6.make("pick_place", {"control_hz": hz, "episode_steps": steps + 1})
    try:
        obs, _ = env.reset(seed=0)
        start = time.perf_counter()
        for _ in range(steps):
            obs, *_ = env.step(obs["observation.state"] + 0.1)
        return steps / (time.perf_counter() - start)
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0, 100.0])
    args = parser.parse_args()
    rtt = np.asarray(status_round_trip(max(args.steps, 100)))
    print(
        f"GET_STATUS round trip: p50 {np.percentile(rtt, 50):.3f} ms, "
        f"p95 {np.percentile(rtt, 95):.3f} ms, max {rtt.max():.3f} ms (n={rtt.size})"
    )
    for hz in args.rates:
        steps = min(args.steps, int(hz * 10))
        print(f"control_hz {hz:g}: achieved {control_rate(hz, steps):.2f} Hz over {steps} steps")


if __name__ == "__main__":
    main()
