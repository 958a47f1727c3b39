"""PAROL6 safety deadlines on the built-in fake arm: how long from the event to the e-stop.

Measured at the fake server (the time its socket received the first ESTOP datagram after the
event, on the same monotonic clock): a stalled policy (``policy_timeout_ms``), a silent arm
(``status_timeout_ms``), SIGTERM / SIGHUP / SIGINT sent to a real subprocess running an
episode, and a lost e-stop (ESTOP datagrams dropped on purpose) resent until the server
confirms it, or given up after the bound. Medians and maxima of ``--repeats``.

    .venv/bin/python benchmarks/parol6_deadlines.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np
from vlabench_plugins.parol6 import protocol as p
from vlabench_plugins.parol6 import safety
from vlabench_plugins.parol6.driver import Parol6Client
from vlabench_plugins.parol6.env import Parol6Env
from vlabench_plugins.parol6.fake import FakeArmServer
from vlabench_plugins.parol6.options import parse_options
from vlabench_plugins.parol6.safety import STANDBY_DEG, Arming

CHILD = f"""
import sys, numpy as np
from vlabench_plugins.parol6.env import Parol6Env
from vlabench_plugins.parol6.operator import ScriptedOperator
from vlabench_plugins.parol6.options import parse_options
o = parse_options({{"fake": False, "port": int(sys.argv[1]), "server_version": "{p.SERVER_RELEASE}",
                   "control_hz": 50, "episode_steps": 10**6, "camera": "none"}})
env = Parol6Env("pick_place", o, operator=ScriptedOperator(["ARM"]), armed=True)
env.reset(seed=0)
print("READY", flush=True)
while True:
    env.step(np.array({list(STANDBY_DEG)!r}))
"""


def first_estop_after(server: FakeArmServer, t0: float, wait_s: float = 2.0) -> float:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for data, at in zip(list(server.received), list(server.received_at), strict=False):
            if at > t0 and p.decode_command(data).code is p.Cmd.ESTOP:
                return at - t0
        time.sleep(0.002)
    raise RuntimeError("no e-stop reached the fake arm")


def watchdog(kind: str) -> float:
    opts = {"control_hz": 50, "episode_steps": 10**6, "camera": "none"}
    if kind == "policy":
        opts.update(policy_timeout_ms=150)
    else:
        opts.update(status_timeout_ms=150, reply_timeout_ms=50, policy_timeout_ms=5000)
    env = Parol6Env("pick_place", parse_options(opts))
    server = env.server
    assert server is not None
    try:
        env.reset(seed=0)
        env.step(np.array(STANDBY_DEG))
        if kind == "silent":
            server.silent = True
        t0 = time.monotonic()
        return first_estop_after(server, t0)
    finally:
        env.close()


def on_signal(sig: signal.Signals) -> float:
    server = FakeArmServer()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(server.port)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "READY"
        time.sleep(0.2)
        t0 = time.monotonic()
        child.send_signal(sig)
        child.wait(timeout=10)
        return first_estop_after(server, t0)
    finally:
        if child.poll() is None:
            child.kill()
        server.close()


def lost_estop(dropped: int) -> tuple[float, int, bool]:
    server = FakeArmServer()
    client = Parol6Client(server.host, server.port, Arming(True, False, lambda *a: False),
                          safety.EStopLatch())
    try:
        server.drop_estops = dropped
        t0 = time.monotonic()
        ok = client.estop()
        return time.monotonic() - t0, client.estop_sends, ok
    finally:
        client.close()
        server.close()


def summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": 1000 * statistics.median(values), "max_ms": 1000 * max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n = args.repeats
    out: dict[str, Any] = {
        "stalled policy (deadline 150 ms)": summary([watchdog("policy") for _ in range(n)]),
        "silent arm (deadline 150 ms)": summary([watchdog("silent") for _ in range(n)]),
    }
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        out[f"{sig.name} to e-stop"] = summary([on_signal(sig) for _ in range(n)])
    for dropped in (1, 3, 10):
        runs = [lost_estop(dropped) for _ in range(n)]
        assert all(ok for _, _, ok in runs)
        out[f"{dropped} ESTOP lost: confirmed"] = {
            **summary([t for t, _, _ in runs]), "sends": runs[0][1]}
    runs = [lost_estop(10**6) for _ in range(n)]
    out["all ESTOP lost: gave up + alert"] = {
        **summary([t for t, _, _ in runs]), "sends": runs[0][1]}
    width = max(len(k) for k in out)
    for key, row in out.items():
        extra = f"  ({row['sends']} sent)" if "sends" in row else ""
        print(f"{key:<{width}}  median {row['median_ms']:7.1f} ms  "
              f"max {row['max_ms']:7.1f} ms{extra}")
    print(json.dumps({"parol6_deadlines": out}))


if __name__ == "__main__":
    main()
