"""The one decoder of contracts off the wire: features, interfaces and policy requests.

Both ends encode with :func:`vlabench.isolation.worker.plain` (dataclasses as plain maps);
everything that turns such a map back into a :mod:`vlabench.api` object is here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vlabench import api


def feature_from(data: Mapping[str, Any]) -> api.Feature:
    """A Feature from its wire form (lists back to tuples)."""
    fields = dict(data)
    for key in ("shape", "low", "high"):
        if fields.get(key) is not None:
            fields[key] = tuple(fields[key])
    return api.Feature(**fields)


def policy_interface_from(data: Mapping[str, Any]) -> api.PolicyInterface:
    """A PolicyInterface from its wire form."""
    return api.PolicyInterface(
        inputs=tuple(feature_from(f) for f in data.get("inputs") or ()),
        action=feature_from(data["action"]),
        n_obs_steps=int(data.get("n_obs_steps", 1)),
        chunk_size=int(data.get("chunk_size", 1)),
        n_action_steps=int(data.get("n_action_steps", 1)),
    )


def env_interface_from(data: Mapping[str, Any]) -> api.EnvInterface:
    """An EnvInterface from its wire form."""
    noop = data.get("noop_action")
    return api.EnvInterface(
        observation=tuple(feature_from(f) for f in data["observation"]),
        action=feature_from(data["action"]),
        fps=float(data["fps"]),
        noop_action=tuple(noop) if noop is not None else None,
    )


def policy_request_from(data: Mapping[str, Any]) -> api.PolicyRequest:
    """A PolicyRequest from its wire form."""
    return api.PolicyRequest(
        type=data["type"],
        checkpoint=data.get("checkpoint"),
        options=data.get("options") or {},
        env=env_interface_from(data["env"]),
        device=data.get("device", "cpu"),
        threads=data.get("threads"),
    )
