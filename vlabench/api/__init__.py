"""The contracts between the core and its plugins.

Everything a plugin returns from a hook is built from the classes in this module; the core
never sees anything else. Conventions follow LeRobot so that its policies plug straight in:

* an observation is a dict with ``observation.state`` (float32, ``(D,)``),
  ``observation.images.<camera>`` (uint8, ``H x W x 3``) and ``task`` (the instruction);
* a batch is the same dict with a leading batch axis (``task`` becomes a list of str), plus
  ``episode.index`` and ``episode.step`` (int64, ``(B,)``) so that stateless policies can
  replay or schedule; with ``n_obs_steps > 1`` arrays gain a time axis: ``(B, T, ...)``;
* an action is a float32 array ``(B, A)``; a chunk is ``(B, H, A)``.

This module imports neither simulators nor models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from pydantic import BaseModel

FeatureKind = Literal["state", "image", "language", "action"]
SuccessSemantics = Literal["ever", "at_end", "human"]

STATE_KEY = "observation.state"
IMAGE_PREFIX = "observation.images."
TASK_KEY = "task"
ACTION_KEY = "action"
EPISODE_INDEX_KEY = "episode.index"
EPISODE_STEP_KEY = "episode.step"
EPISODE_LABELS_KEY = "episode.labels"
"""``info[EPISODE_LABELS_KEY]`` of an episode's last step: a dict of strings (who labelled it,
a failure tag, firmware versions...) stored as the episode's ``labels`` (values ``str()``-ed)."""
EPISODE_METRICS_KEY = "episode.metrics"
"""``info[EPISODE_METRICS_KEY]`` of an episode's last step: a dict of numbers the env computed
over the episode (e.g. open-loop action errors), merged into the episode's ``metrics``."""
CHUNK_OBSERVER = "observe_chunk"
"""An env may define ``observe_chunk(actions)``: the runner calls it with every chunk the policy
predicts for that env (float32 ``(H, A)`` in the env's action space, after adapters, before
clipping, all ``H`` predicted actions) before the chunk's first action is executed. Open-loop
evaluation uses it to score the error at ``t + k`` of a chunk predicted at ``t``."""

ANY_SPACE = "any"

REQUESTED_FEATURES_OPTION = "requested_features"
"""Env option set by the runner (never by suites): the env feature names the policy reads.

Envs may skip rendering cameras that are not in it; it is not part of the run config (it
changes cost, not results). Absent means "everything"."""
"""Space tag of a feature that takes whatever the other side declares (reference policies)."""

VARIANT_MARK = "@"
"""Joins a suite and its perturbation in a variant's name: ``libero_spatial@camera_shift:2``."""
ARMED_OPTION = "armed"
"""Env option set by the runner only (``True`` when the run was started with ``--armed``): a
hardware env may move only when it is present. Never set by suites (the planner rejects it in
a suite's ``env_options`` and the runner overwrites it), never part of the run config or its
hash (it changes permission, not results); absent means "not armed". A hardware env still asks
a human to confirm at the terminal."""

Observation = dict[str, Any]
Batch = dict[str, Any]


class RegistryError(ValueError):
    """A registry entry, preset option or checkpoint cannot be used; the message says where
    and why. The CLI prints it as one line: plugins raise it (or a subclass) for bad presets."""


@dataclass(frozen=True)
class Feature:
    """One named input or output, with what its numbers mean.

    ``space`` is a tag such as ``pixel_xy_512`` or ``ee_delta_xyz_rpy_gripper``: two features
    are compatible only when their shapes *and* space tags agree (or an adapter bridges them).
    ``shape=None`` together with ``space="any"`` means "whatever the env declares".
    """

    name: str
    kind: FeatureKind
    shape: tuple[int, ...] | None
    dtype: str = "float32"
    space: str = ""
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    description: str = ""

    @property
    def is_image(self) -> bool:
        return self.kind == "image"

    def describe(self) -> str:
        """Short human form: ``action (2,) float32 [pixel_xy_512]``."""
        shape = "any shape" if self.shape is None else str(tuple(self.shape))
        space = f" [{self.space}]" if self.space else ""
        return f"{self.name} {shape} {self.dtype}{space}"


@dataclass(frozen=True)
class TaskInfo:
    """A task of an environment: its name, language instruction and fixed init states."""

    name: str
    instruction: str = ""
    n_init_states: int | None = None


@dataclass(frozen=True)
class EnvInterface:
    """What a built env exposes to policies: observation features and the action feature."""

    observation: tuple[Feature, ...]
    action: Feature
    fps: float
    noop_action: tuple[float, ...] | None = None

    def feature(self, name: str) -> Feature | None:
        return next((f for f in self.observation if f.name == name), None)


@dataclass(frozen=True)
class EnvSpec:
    """An environment a plugin offers.

    ``make(task, options)`` returns a gymnasium-style env whose observations follow the
    conventions above and whose ``info["is_success"]`` reports success. The env must accept
    ``reset(seed=..., options={"init_state_id": k})`` when its tasks have init states.
    ``interface(options)`` describes observations and action without building a simulator.
    """

    name: str
    description: str
    make: Callable[[str, Mapping[str, Any]], Any]
    interface: Callable[[Mapping[str, Any]], EnvInterface]
    tasks: Callable[[Mapping[str, Any]], Sequence[TaskInfo]]
    max_episode_steps: int
    success: SuccessSemantics = "ever"
    requires: tuple[str, ...] = ()
    """Import names that must be importable for the env to run (checked without importing)."""
    install_hint: str = ""
    packages: tuple[str, ...] = ()
    """Distributions whose versions are recorded with every run (the simulator stack)."""
    preflight: Callable[[str, Mapping[str, Any]], str | None] | None = None
    """Optional cheap check of ``(task, options)`` before a job runs (e.g. simulator assets
    present, nothing built): a one-line reason when the job cannot run, else None. The job is
    then recorded as failed with that reason instead of failing every episode."""
    metric_columns: tuple[str, ...] = ()
    """When set, this env's episodes are judged by these per-episode metrics (lower is better,
    e.g. open-loop action errors), shown in their own leaderboard columns; its suites get no
    success-rate column (its episodes' ``success`` is meaningless)."""
    options: type[BaseModel] | None = None
    """Optional typed options: a pydantic model (``extra="forbid"``) with defaults. The plan
    validates a suite's ``env_options`` (and ``-E`` overrides) with it and fills in the
    defaults before hashing, so ``{}`` and the defaults spelled out are one protocol; unknown
    keys and wrong types are errors that name the file and line (or the flag).
    ``make``/``interface``/``tasks`` then get the complete options (plus the runner's
    :data:`REQUESTED_FEATURES_OPTION`, which the model need not declare)."""


@dataclass(frozen=True)
class PolicyInterface:
    """The features a loaded (or described) policy reads and writes."""

    inputs: tuple[Feature, ...]
    action: Feature
    n_obs_steps: int = 1
    chunk_size: int = 1
    n_action_steps: int = 1
    """How many actions of each chunk are executed before the next inference."""


@dataclass(frozen=True)
class PolicyRequest:
    """Everything a policy factory needs: the preset's checkpoint and options, and the env."""

    type: str
    checkpoint: str | None
    options: Mapping[str, Any]
    env: EnvInterface
    device: str = "cpu"
    threads: int | None = None
    """Torch (or other) intra-op threads the policy may use, set by the runner from
    ``--torch-threads``; None: the library's default. Changes speed, not results: not part of
    the run config."""


@runtime_checkable
class Policy(Protocol):
    """A loaded policy. The core owns observation history and chunk queues per episode.

    ``select_action`` returns ``(B, A)``; a policy that predicts chunks also has
    ``predict_action_chunk`` returning ``(B, H, A)``, and the core executes the first
    ``interface.n_action_steps`` actions of each chunk before asking again.
    """

    interface: PolicyInterface

    def reset(self) -> None: ...

    def select_action(self, batch: Batch) -> np.ndarray: ...


@dataclass(frozen=True)
class PolicySpec:
    """A policy type a plugin offers.

    ``describe(request)`` must be cheap (read a config, never load weights): it feeds the
    compatibility check. ``load(request)`` returns a :class:`Policy`.
    """

    name: str
    description: str
    load: Callable[[PolicyRequest], Policy]
    describe: Callable[[PolicyRequest], PolicyInterface]
    requires: tuple[str, ...] = ()
    install_hint: str = ""
    packages: tuple[str, ...] = ()
    fingerprint: Callable[[PolicyRequest], str | None] | None = None
    """Optional content hash of the checkpoint, stored with each run."""


@dataclass(frozen=True)
class AdapterSpec:
    """A named adapter step type that may bridge a policy and an env.

    ``build(params)`` returns an :class:`Adapter`. Steps are declared per pair in
    registry.yaml (``adapters:``) and composed in order.
    """

    name: str
    description: str
    build: Callable[[Mapping[str, Any]], Adapter]


class Adapter(Protocol):
    """One small transformation between env and policy spaces (gymnasium-wrapper style).

    ``observation_features`` maps env-side features to what the policy sees;
    ``action_feature`` maps the policy's action feature to what the env receives.
    ``observation``/``action`` apply the same mapping to batched data.
    """

    def observation_features(self, features: tuple[Feature, ...]) -> tuple[Feature, ...]: ...

    def action_feature(self, feature: Feature) -> Feature: ...

    def observation(self, batch: Batch) -> Batch: ...

    def action(self, actions: np.ndarray) -> np.ndarray: ...


PerturbationTarget = Literal["observation", "action", "env"]


@dataclass(frozen=True)
class PerturbationSpec:
    """A kind of perturbation a plugin offers, applied to a suite by a registry axis.

    Exactly one of two ways: ``adapter`` names an :class:`AdapterSpec` whose step perturbs
    what the policy sees or sends (any env); the planner puts it first in the pair's adapters
    with the axis's level params plus ``seed`` (the suite's) and ``axis``, so the step can
    seed itself per episode (``seed + batch["episode.index"]``). Or ``env_options(params,
    options)`` returns env options to set over the suite's (the simulator changes itself;
    it is seeded by each episode's reset seed). ``envs`` limits it to those envs (``()``:
    any). A level whose params leave everything unchanged must equal the control exactly.
    """

    name: str
    description: str
    target: PerturbationTarget
    adapter: str | None = None
    env_options: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]] | None = None
    envs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExporterSpec:
    """A leaderboard export format: ``export(board) -> str | bytes`` (``vlabench.report.Board``).

    Text formats return ``str``; binary ones (images) return ``bytes`` and set
    ``binary=True`` (the CLI then insists on ``--output``). ``episodes=True`` asks for the
    board with every episode loaded (``board.episodes``), e.g. for drill-downs and videos.
    """

    name: str
    description: str
    suffix: str
    export: Callable[[Any], str | bytes]
    binary: bool = False
    episodes: bool = False


@dataclass(frozen=True)
class AssetStatus:
    """Whether a plugin's data files are on disk: where it looked and what is missing."""

    ready: bool
    location: str
    missing: tuple[str, ...] = ()
    hint: str = ""
    """What to do next (e.g. the command that fetches them, or an env var to set)."""


@dataclass(frozen=True)
class AssetSpec:
    """Files a plugin needs that pip does not install (simulator scenes, robot models).

    ``status(location)`` only looks (never downloads); ``fetch(location)`` downloads what is
    missing and returns the new status, or raises with a one-line reason. ``location=None``
    means the plugin's default place (usually from an env var). Shown by ``vlabench assets``.
    """

    name: str
    description: str
    status: Callable[[str | None], AssetStatus]
    fetch: Callable[[str | None], AssetStatus]


@dataclass(frozen=True)
class RecorderSpec:
    """A dataset format that ``vlabench record`` writes rolled-out episodes in.

    ``write(root, episodes, interface, options)`` writes ``episodes`` (each a list of frames:
    ``{feature name: array, "task": str, "action": array}``, observations as the env
    ``interface`` declares them) under ``root`` and returns the dataset's directory;
    ``options`` holds ``fps``, ``repo_id`` and ``robot_type``.
    """

    name: str
    description: str
    write: Callable[
        [str, Sequence[Sequence[Mapping[str, Any]]], EnvInterface, Mapping[str, Any]], str
    ]


@dataclass
class EpisodeRecord:
    """The outcome of one episode, written to the store as soon as it finishes."""

    task: str
    episode_index: int
    seed: int
    init_state_id: int | None
    success: bool
    steps: int
    reward_sum: float
    wall_time_s: float
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    env_step_ms: float | None = None
    clipped_actions: int = 0
    failure_reason: str | None = None
    """Set when the episode was ended by an error (policy, env, NaN, wrong shape)."""
    metrics: dict[str, float] = field(default_factory=dict)
    video_path: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    """Per-episode strings (see :data:`EPISODE_LABELS_KEY`); numbers go in ``metrics``."""
