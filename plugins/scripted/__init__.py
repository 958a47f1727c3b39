"""Reference policies that fit every env: ``noop``, ``random`` and ``replay``.

Each derives its features from the env it is asked about: its action is a copy of the env's
action feature, so the pair is always compatible and the scores are baselines.
"""

from __future__ import annotations

from vlabench import api, hookimpl

from . import noop, random_policy, replay


@hookimpl
def vlabench_policies() -> list[api.PolicySpec]:
    """noop, random, replay."""
    return [noop.SPEC, random_policy.SPEC, replay.SPEC]
