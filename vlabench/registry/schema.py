"""The registry's schema: one pydantic model per kind of entry, and the merged :class:`Registry`.

The registry is data, not code. Unknown keys are errors (``extra="forbid"``); lookups of an
unknown name say what is known (:func:`unknown`).
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vlabench.api import VARIANT_MARK, RegistryError
from vlabench.registry.lines import locate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_ISOLATION_KEYS = {
    "python", "factory", "describe", "path", "env", "start_timeout_s", "call_timeout_s"
}


def _isolation(value: Any) -> Any:
    if isinstance(value, dict) and not set(value) <= _ISOLATION_KEYS:
        unknown = sorted(set(value) - _ISOLATION_KEYS)
        raise ValueError(f"unknown isolation key(s) {unknown}; allowed: {sorted(_ISOLATION_KEYS)}")
    return value


class SuiteConfig(_Strict):
    """A suite: an env, its tasks and the protocol every policy is evaluated under."""

    env: str
    description: str = ""
    tasks: list[str] | None = None
    """Task names; ``None`` means every task the env lists."""
    episodes: int = Field(50, gt=0)
    """Episodes per task."""
    max_steps: int | None = Field(None, gt=0)
    """Defaults to the env's ``max_episode_steps``."""
    seed: int = 1000
    """Episode ``i`` of every task is reset with seed ``seed + i``, for every policy."""
    success: Literal["ever", "at_end", "human"] | None = None
    stop_on_success: bool | None = None
    """Defaults to true for ``success: ever``."""
    settle_steps: int = Field(0, ge=0)
    """No-op steps after each reset (the env's ``noop_action``), not counted as steps."""
    protocol: str = "standard"
    groups: list[str] = Field(default_factory=list)
    """Suites of the same env whose tasks are groups of this suite's (``leaderboard --by
    group``), in the order the board shows them; stored with each run they contain."""
    env_options: dict[str, Any] = Field(default_factory=dict)
    isolation: str | dict[str, Any] | None = None
    """Build the env in a worker: a python path, or {python, factory, path, env} (isolation.py)."""
    call_timeout_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    """Longest env reset or step, in seconds (default: vlabench.runtime.deadlines); a call
    past it fails its episode. Not part of the protocol; ``--call-timeout`` overrides it."""

    _check_isolation = field_validator("isolation")(lambda v: _isolation(v))


class PolicyPreset(_Strict):
    """A named policy: a plugin's policy type with a checkpoint and options."""

    type: str
    plugin: str | None = None
    checkpoint: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    device: str = "cpu"
    description: str = ""
    isolation: str | dict[str, Any] | None = None
    """Load the policy in a worker: a python path, or {python, factory, path, env}."""
    call_timeout_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    """Longest policy call, in seconds (default: vlabench.runtime.deadlines); a call past it
    fails its episodes. Not part of the run's identity; ``--call-timeout`` overrides it."""
    resources: dict[str, float] = Field(default_factory=dict)
    """What one worker of this policy needs on a Ray node (``{num_gpus: 1}``, a node's custom
    resource ``{lab_gpu_a100: 1}``); not part of the run's identity."""
    max_batch: int | None = Field(None, ge=1)
    """The most episodes one batched call of this policy's service gets (``--policy-service``;
    default: the run's ``service_max_batch``); not part of the run's identity."""
    batch_wait_ms: float | None = Field(None, ge=0, allow_inf_nan=False)
    """How long this policy's service waits to fill a batch (default: the run's
    ``service_wait_ms``); not part of the run's identity."""

    _check_isolation = field_validator("isolation")(lambda v: _isolation(v))


class PairAdapter(_Strict):
    """Adapter steps for every (policy, env) pair matching the glob patterns."""

    policy: str = "*"
    env: str = "*"
    steps: list[dict[str, Any]]

    @field_validator("steps")
    @classmethod
    def _steps_have_type(cls, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, step in enumerate(steps):
            if not isinstance(step.get("type"), str):
                raise ValueError(f"step {i} needs a 'type' naming an adapter, got {step!r}")
        return steps


class PerturbationAxis(_Strict):
    """A robustness axis: a plugin's perturbation at increasing severities.

    ``levels[k-1]`` are the params of severity ``k``; severity 0 is the control (the suite
    itself). ``suite@axis:k`` names the perturbed variant of a suite.
    """

    perturbation: str
    description: str = ""
    levels: list[dict[str, Any]] = Field(min_length=1)


class MatrixConfig(_Strict):
    """A named matrix: policies x suites."""

    policies: list[str]
    suites: list[str]
    episodes: int | None = Field(None, gt=0)


class RegistryFile(_Strict):
    version: Literal[1] = 1
    suites: dict[str, SuiteConfig] = Field(default_factory=dict)
    policies: dict[str, PolicyPreset] = Field(default_factory=dict)
    adapters: list[PairAdapter] = Field(default_factory=list)
    matrices: dict[str, MatrixConfig] = Field(default_factory=dict)
    perturbations: dict[str, PerturbationAxis] = Field(default_factory=dict)


@dataclass
class Registry:
    """The merged registry, with the file each entry came from."""

    suites: dict[str, SuiteConfig] = field(default_factory=dict)
    policies: dict[str, PolicyPreset] = field(default_factory=dict)
    adapters: list[PairAdapter] = field(default_factory=list)
    matrices: dict[str, MatrixConfig] = field(default_factory=dict)
    perturbations: dict[str, PerturbationAxis] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    origins: dict[tuple[str, str], Path] = field(default_factory=dict)
    """(``suites``/``policies``/``matrices``, name) -> the file the entry came from."""

    def with_suite(self, name: str, suite: SuiteConfig) -> Registry:
        """A copy with ``suite`` as ``name`` (defined in no file); this registry is unchanged."""
        origins = {k: v for k, v in self.origins.items() if k != ("suites", name)}
        return replace(self, suites={**self.suites, name: suite}, origins=origins)

    def where(self, kind: str, name: str, *keys: str | int) -> str | None:
        """``file:line`` of an entry (or of a key inside it), None when it is from no file."""
        path = self.origins.get((kind, name))
        if path is None:
            return None
        return locate(path, (kind, name, *keys))

    def check_groups(self) -> None:
        """Every suite's declared ``groups`` name a suite of the same env with a task list;
        else a one-line :class:`RegistryError` with the file and line of the bad entry."""
        for name, suite in self.suites.items():
            for i, group in enumerate(suite.groups):
                other = self.suites.get(group)
                close = difflib.get_close_matches(group, list(self.suites), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                why = (
                    f"names no suite{hint}" if other is None
                    else f"is a suite of env {other.env!r}, not {suite.env!r}"
                    if other.env != suite.env
                    else "has no task list" if not other.tasks else None
                )
                if why:
                    at = self.where("suites", name, "groups", i) or f"suite {name}"
                    raise RegistryError(f"{at}: group {group!r} of suite {name!r} {why}")

    def task_groups(self, suite: str) -> list[tuple[str, list[str]]]:
        """The declared groups of ``suite``, in order: ``(group, tasks)``."""
        config = self.suites.get(suite)
        if config is None:
            return []
        groups = [(g, self.suites.get(g)) for g in config.groups]
        return [(g, list(other.tasks)) for g, other in groups if other and other.tasks]

    def suite(self, name: str) -> SuiteConfig:
        if name not in self.suites:
            raise RegistryError(unknown("suite", name, self.suites))
        return self.suites[name]

    def variant(self, name: str) -> tuple[str, str, int] | None:
        """``(suite, axis, severity)`` of a perturbed suite name ``suite@axis:severity``
        (None for a plain name); a one-line :class:`RegistryError` when it is malformed,
        names an unknown suite or axis, or a severity the axis does not have."""
        if VARIANT_MARK not in name or "://" in name:  # an address may hold user@host
            return None
        base, _, rest = name.partition(VARIANT_MARK)
        axis, colon, level = rest.partition(":")
        if not (base and axis and colon and level.isdigit()):
            raise RegistryError(
                f"perturbed suite {name!r}: expected SUITE@AXIS:SEVERITY, e.g. "
                "metaworld_mt10@state_noise:1"
            )
        self.suite(base)
        if axis not in self.perturbations:
            raise RegistryError(unknown("perturbation axis", axis, self.perturbations))
        levels = len(self.perturbations[axis].levels)
        if int(level) > levels:
            raise RegistryError(
                f"perturbed suite {name!r}: axis {axis!r} has severities 0-{levels}, not {level}"
            )
        return base, axis, int(level)

    def variants(self, suite: str, axes: list[str] | None = None) -> list[str]:
        """The perturbed variants of ``suite``: every severity of each axis (all by default)."""
        names = list(self.perturbations) if axes is None else axes
        for axis in names:
            if axis not in self.perturbations:
                raise RegistryError(unknown("perturbation axis", axis, self.perturbations))
        return [
            f"{suite}{VARIANT_MARK}{axis}:{k}"
            for axis in names
            for k in range(1, len(self.perturbations[axis].levels) + 1)
        ]

    def matrix(self, name: str) -> MatrixConfig:
        if name not in self.matrices:
            raise RegistryError(unknown("matrix", name, self.matrices))
        return self.matrices[name]

    def adapter_steps(self, policy_names: list[str], env: str) -> list[dict[str, Any]]:
        """Steps of the last pair entry matching the policy (preset or type) and env."""
        for entry in reversed(self.adapters):
            if fnmatch.fnmatchcase(env, entry.env) and any(
                fnmatch.fnmatchcase(p, entry.policy) for p in policy_names
            ):
                return [dict(s) for s in entry.steps]
        return []


def unknown(kind: str, name: str, known: Mapping[str, Any]) -> str:
    """``unknown suite 'x'; did you mean y? (known: ...)``: the one message for a missing name."""
    close = difflib.get_close_matches(name, list(known), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    listing = ", ".join(sorted(known)) or "none"
    return f"unknown {kind} {name!r}{hint} (known: {listing})"
