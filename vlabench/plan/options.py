"""Typed env options: validated with the env's model, defaults filled in, before any hashing.

An env may declare its options as a pydantic model (:attr:`vlabench.api.EnvSpec.options`). The
plan validates a suite's ``env_options`` merged with ``-E`` overrides with it and stores the
complete options (every default spelled out) in the run config, so ``{}`` and
``{image_size: <the default>}`` are one protocol. A default of None means "absent" and is left
out, so adding an optional option to a model keeps every hash. Options the runner sets
(:data:`RUNNER_OPTIONS`) are never validated nor stored. An env without a model keeps its options
as given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from vlabench import api

RUNNER_OPTIONS = (api.REQUESTED_FEATURES_OPTION, api.ARMED_OPTION)
"""Set by the runner for one execution, never by suites: not part of a run's config."""


def plain(value: Any) -> Any:
    """Mappings as dicts and tuples as lists, recursively (what a YAML file or JSON gives)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def complete_options(model: type[BaseModel] | None, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` validated with ``model``, every default filled in (JSON-plain values).

    Raises pydantic's ``ValidationError`` (see :func:`describe_errors`). Without a model the
    options are returned as given (less the runner's).
    """
    data = {k: v for k, v in plain(given).items() if k not in RUNNER_OPTIONS}
    if model is None:
        return data
    values = model.model_validate(data).model_dump(mode="json")
    fields = model.model_fields
    return {k: v for k, v in values.items() if not (v is None and fields[k].default is None)}


def describe_errors(
    exc: ValidationError,
    model: type[BaseModel],
    env: str,
    given: Mapping[str, Any],
    where: Callable[[str], str],
) -> str:
    """One line naming each bad option (``where(key)``: file and line, or the flag), what is
    wrong and what was given."""
    problems: dict[str, list[str]] = {}
    for err in exc.errors():
        key = str(err["loc"][0]) if err["loc"] else ""
        messages = problems.setdefault(key, [])
        if err["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields) or "none"
            problems[key] = [f"unknown option of env {env!r} (options: {known})"]
        elif err["type"] == "missing":
            problems[key] = [f"env {env!r} needs this option"]
        elif err["msg"] not in messages:
            messages.append(err["msg"])
    parts = []
    for key, messages in problems.items():
        shown = key in given and not messages[0].startswith("unknown option")
        got = f", got {given[key]!r}" if shown else ""
        parts.append(f"{where(key)}: {' or '.join(messages)}{got}")
    return "; ".join(parts)
