"""Run configs: what defines one run (policy, suite, task, protocol, adapters, inference), hashed.

A run is one (policy, suite, task) under one protocol. Its config hash covers everything that
changes results except the number of episodes, so asking for more episodes later extends the
same run, and re-running an interrupted one resumes it.

Env options are hashed complete (validated, defaults filled in: :mod:`vlabench.plan.options`).
Runs stored before that were hashed with the options as given, and core-provided specs under
the plugin name ``vlabench``: :meth:`RunConfig.legacy_config_hash` is that hash, so the runner
finds (and keeps using) such a run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from vlabench.catalog import DEFAULT_PLUGINS
from vlabench.runtime.inference import InferenceConfig

LEGACY_CORE_PLUGIN = "vlabench"
"""The plugin name runs recorded for ``remote://`` policies and envs before default plugins."""


def stable_hash(data: Any, length: int = 16) -> str:
    """sha256 of canonical JSON (sorted keys), truncated."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def config_hash_of(config: dict[str, Any]) -> str:
    """The hash of a run config given as a dict (:meth:`RunConfig.as_dict`, or as stored).

    Left out: the episode count (more episodes extend a run), where the run executes
    (isolation), and empty inference options (a ``sync`` run hashes as before inference
    modes existed, so older stores still resume).
    """
    data = json.loads(json.dumps(config, default=str))
    data["protocol"].pop("episodes", None)
    data.pop("env_isolation", None)
    data["policy"].pop("isolation", None)
    if not data.get("inference_options"):
        data.pop("inference_options", None)
    return stable_hash(data)


@dataclass(frozen=True)
class PolicyChoice:
    """A policy as it will be loaded: preset name, plugin type, checkpoint, options."""

    name: str
    type: str
    plugin: str
    checkpoint: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    isolation: str | dict[str, Any] | None = None
    """Where the policy runs (a worker interpreter); not part of the config hash."""
    call_timeout_s: float | None = field(default=None, compare=False, repr=False)
    """The preset's limit of one policy call (None: the default): how the run executes, not
    what it is (neither stored with the config nor hashed)."""
    resources: dict[str, float] = field(default_factory=dict, compare=False, repr=False)
    """The preset's ``resources`` (Ray placement): where the run executes, not what it is."""
    max_batch: int | None = field(default=None, compare=False, repr=False)
    """The preset's ``max_batch`` (its policy service's largest call; None: the run's)."""
    batch_wait_ms: float | None = field(default=None, compare=False, repr=False)
    """The preset's ``batch_wait_ms`` (its policy service's wait; None: the run's)."""


@dataclass(frozen=True)
class EvalProtocol:
    """How episodes are run and judged; stored with every score."""

    name: str
    episodes: int
    max_steps: int
    seed: int
    success: str
    stop_on_success: bool
    settle_steps: int
    perturbation: dict[str, Any] | None = None
    """A perturbed variant's axis, severity, perturbation and params (None: unperturbed;
    then absent from the stored config and the hashes, which stay what they were)."""

    def as_dict(self) -> dict[str, Any]:
        """The protocol as stored (``perturbation`` only when there is one)."""
        data = asdict(self)
        if data["perturbation"] is None:
            data.pop("perturbation")
        return data

    def key(self) -> dict[str, Any]:
        """The protocol without the episode count (which only changes n)."""
        data = self.as_dict()
        data.pop("episodes")
        return data


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run; :meth:`as_dict` is stored as the run's config."""

    policy: PolicyChoice
    suite: str
    env: str
    env_plugin: str
    env_options: dict[str, Any]
    task: str
    protocol: EvalProtocol
    adapters: list[dict[str, Any]]
    inference_mode: str = "sync"
    inference_options: dict[str, Any] = field(default_factory=dict)
    """The mode's parameters (latency model, threshold...): :mod:`vlabench.runtime.inference`."""
    env_isolation: str | dict[str, Any] | None = None
    """Where the env runs (a worker interpreter); not part of the config hash."""
    env_call_timeout_s: float | None = field(default=None, compare=False, repr=False)
    """The suite's limit of one env reset or step (None: the default): neither stored with
    the config nor hashed."""
    env_options_given: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    """The env options as the suite and ``-E`` gave them (before validation and defaults):
    only for :meth:`legacy_config_hash`; not stored, not hashed."""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["protocol"] = self.protocol.as_dict()
        data.pop("env_options_given")
        data.pop("env_call_timeout_s")
        data["policy"].pop("call_timeout_s")
        data["policy"].pop("resources")
        for how in ("max_batch", "batch_wait_ms"):  # how a run executes, not what it is
            data["policy"].pop(how, None)
        return data

    @property
    def label(self) -> str:
        """``policy x suite/task`` (with a multiplication sign), for progress lines."""
        return f"{self.policy.name} × {self.suite}/{self.task}"

    def config_hash(self) -> str:
        return config_hash_of(self.as_dict())

    def legacy_config_hash(self) -> str:
        """The hash this run had before env options were typed: options as given, and what a
        default plugin provides (``remote://``) owned by plugin ``vlabench``."""
        data = self.as_dict()
        if self.env_options_given is not None:
            data["env_options"] = self.env_options_given
        if data["policy"]["plugin"] in DEFAULT_PLUGINS:
            data["policy"]["plugin"] = LEGACY_CORE_PLUGIN
        if data["env_plugin"] in DEFAULT_PLUGINS:
            data["env_plugin"] = LEGACY_CORE_PLUGIN
        return config_hash_of(data)

    def config_hashes(self) -> list[str]:
        """The hashes a stored run of this config may have: current first, then legacy."""
        return list(dict.fromkeys([self.config_hash(), self.legacy_config_hash()]))

    def inference(self) -> InferenceConfig:
        """The run's inference mode with its parameters."""
        return InferenceConfig.from_options(self.inference_mode, self.inference_options)

    def protocol_hash(self) -> str:
        """Identifies the evaluation conditions of the suite: one leaderboard column each."""
        return self._protocol_hash(self.env_options)

    def legacy_protocol_hash(self) -> str:
        """The protocol hash of runs stored before env options were typed (options as given)."""
        given = self.env_options_given
        return self._protocol_hash(self.env_options if given is None else given)

    def _protocol_hash(self, env_options: dict[str, Any]) -> str:
        return stable_hash(
            {"env": self.env, "env_options": env_options, "protocol": self.protocol.key()}
        )
