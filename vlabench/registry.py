"""registry.yaml (and user files) -> validated suites, policy presets, pair adapters, matrices.

The registry is data, not code. Files are merged in order, later wins per name; adapters
accumulate. Unknown keys are errors, and every error names the file, line and key.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_VAR = "VLABENCH_REGISTRY"


class RegistryError(ValueError):
    """A registry file could not be read or is invalid; the message says where and why."""


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
    env_options: dict[str, Any] = Field(default_factory=dict)
    isolation: str | dict[str, Any] | None = None
    """Build the env in a worker: a python path, or {python, factory, path, env} (isolation.py)."""

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


@dataclass
class Registry:
    """The merged registry, with the file each entry came from."""

    suites: dict[str, SuiteConfig] = field(default_factory=dict)
    policies: dict[str, PolicyPreset] = field(default_factory=dict)
    adapters: list[PairAdapter] = field(default_factory=list)
    matrices: dict[str, MatrixConfig] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def suite(self, name: str) -> SuiteConfig:
        if name not in self.suites:
            raise RegistryError(_unknown("suite", name, self.suites))
        return self.suites[name]

    def matrix(self, name: str) -> MatrixConfig:
        if name not in self.matrices:
            raise RegistryError(_unknown("matrix", name, self.matrices))
        return self.matrices[name]

    def adapter_steps(self, policy_names: list[str], env: str) -> list[dict[str, Any]]:
        """Steps of the last pair entry matching the policy (preset or type) and env."""
        for entry in reversed(self.adapters):
            if fnmatch.fnmatchcase(env, entry.env) and any(
                fnmatch.fnmatchcase(p, entry.policy) for p in policy_names
            ):
                return [dict(s) for s in entry.steps]
        return []


def _unknown(kind: str, name: str, known: dict[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    listing = ", ".join(sorted(known)) or "none"
    return f"unknown {kind} {name!r}{hint} (known: {listing})"


def default_registry_path() -> Path:
    """registry.yaml at the root of the vlabench checkout."""
    return Path(__file__).resolve().parent.parent / "registry.yaml"


def registry_paths(extra: list[str | Path] | None = None) -> list[Path]:
    """The default file, then ``VLABENCH_REGISTRY`` (``:``-separated), then ``extra``."""
    paths = [default_registry_path()]
    paths += [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    paths += [Path(p) for p in extra or []]
    return paths


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(key)), None)
            if match is None:
                key_node = next((k for k, _ in node.value if k.value == str(key)), None)
                return key_node.start_mark.line + 1 if key_node else line
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                return line
            node = node.value[key]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def _format_errors(path: Path, node: yaml.Node | None, exc: ValidationError) -> str:
    lines = [f"{path}: invalid registry ({exc.error_count()} problem(s))"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        where = _line_of(node, loc)
        prefix = f"{path}:{where}" if where else str(path)
        if err["type"] == "extra_forbidden":
            message = "unknown key (not one of the allowed keys; check the spelling)"
        else:
            message = f"{err['msg']}, got {err.get('input')!r}"
        lines.append(f"  {prefix}: {key}: {message}")
    return "\n".join(lines)


def load_file(path: Path) -> RegistryFile:
    """Parse and validate one registry file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read registry file: {exc.strerror}") from exc
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~5x faster
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RegistryError(
            f"{path}: expected a mapping at the top level, got {type(data).__name__}"
        )
    try:
        return RegistryFile.model_validate(data)
    except ValidationError as exc:  # line numbers only when they are needed
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raise RegistryError(_format_errors(path, node, exc)) from None


def load_registry(extra: list[str | Path] | None = None) -> Registry:
    """Load and merge the default registry, ``VLABENCH_REGISTRY`` files and ``extra`` files."""
    reg = Registry()
    for i, path in enumerate(registry_paths(extra)):
        if i == 0 and not path.exists():
            continue  # installed without the checkout: user files only
        parsed = load_file(path)
        reg.suites.update(parsed.suites)
        reg.policies.update(parsed.policies)
        reg.adapters.extend(parsed.adapters)
        reg.matrices.update(parsed.matrices)
        reg.files.append(path)
    return reg
