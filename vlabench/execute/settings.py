"""Execution settings: how jobs run, never what they measure.

:class:`ExecutionSettings` is made by the CLI (``--record-video``, ``--video-dir``,
``--armed``, ``--torch-threads``, ``--call-timeout``), given to the executor
(``make_executor(..., settings=)``), carried to worker processes and Ray actors on
:class:`~vlabench.execute.executor.WorkerSetup` and given to each
:class:`~vlabench.execute.local.JobWorker`, which hands them on through the contracts: videos
as :class:`~vlabench.runtime.rollout.RolloutSettings`, arming as the runner-set env option
:data:`vlabench.api.ARMED_OPTION`, torch threads as :attr:`vlabench.api.PolicyRequest.threads`,
call limits to the :class:`~vlabench.runtime.deadlines.CallClock`. No setting travels through
environment variables.

They are not part of any run's config (nor its hash): they change cost or permission, not
results, so a run recorded with videos or by an armed robot resumes the same run. A call limit
decides only when a hung call is given up (its episode fails either way, or hangs forever), so
it is not part of the run either, like the presets' and suites' ``call_timeout_s``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlabench import api


@dataclass(frozen=True)
class ExecutionSettings:
    """What a worker needs besides the jobs (frozen and picklable)."""

    record_video: int = 0
    """Record the first N episodes of every task as mp4 (0: none)."""
    video_dir: str | None = None
    """Absolute base directory of the videos: each run writes under ``<video_dir>/<hash>/``."""
    armed: bool = False
    """The run was started with ``--armed``: hardware envs may move (after their own
    confirmation at the terminal). Reaches envs only as :data:`vlabench.api.ARMED_OPTION`."""
    torch_threads: int | None = None
    """Torch intra-op threads of each policy (None: torch's default)."""
    call_timeout_s: float | None = None
    """``--call-timeout``: the limit of every policy and env call, over the presets' and
    suites' (0: no limit; None: theirs, else the defaults of :mod:`vlabench.runtime.deadlines`)."""
    policy_service: bool = False
    """``--policy-service``: each policy loaded once, in its own process, answering every
    worker's calls in batches (:mod:`vlabench.execute.service`; the processes executor)."""
    service_max_batch: int = 64
    """The most episodes one batched call of a policy service gets."""
    service_wait_ms: float = 5.0
    """How long a policy service waits for the other workers' requests to fill a batch."""

    def __post_init__(self) -> None:
        if isinstance(self.record_video, bool) or not isinstance(self.record_video, int):
            raise TypeError(f"record_video must be an int, got {self.record_video!r}")
        if self.record_video < 0:
            raise ValueError(
                f"--record-video expects a number of episodes >= 0, got {self.record_video}"
            )
        if self.record_video and not self.video_dir:
            raise ValueError("--record-video needs a video directory")
        if self.torch_threads is not None and (
            isinstance(self.torch_threads, bool)
            or not isinstance(self.torch_threads, int)
            or self.torch_threads < 1
        ):
            raise ValueError(f"--torch-threads expects an int >= 1, got {self.torch_threads!r}")
        if isinstance(self.service_max_batch, bool) or not (
            isinstance(self.service_max_batch, int) and self.service_max_batch >= 1
        ):
            raise ValueError(
                f"service_max_batch expects an int >= 1, got {self.service_max_batch!r}"
            )
        if not 0 <= self.service_wait_ms < float("inf"):
            raise ValueError(f"service_wait_ms expects ms >= 0, got {self.service_wait_ms!r}")
        if self.call_timeout_s is not None and (
            isinstance(self.call_timeout_s, bool)
            or not isinstance(self.call_timeout_s, int | float)
            or not 0 <= self.call_timeout_s < float("inf")
        ):
            raise ValueError(
                f"--call-timeout expects seconds >= 0 (0: no limit), got {self.call_timeout_s!r}"
            )

    @classmethod
    def create(
        cls,
        *,
        record_video: int = 0,
        video_dir: str | Path | None = None,
        armed: bool = False,
        torch_threads: int | None = None,
        call_timeout_s: float | None = None,
        policy_service: bool = False,
    ) -> ExecutionSettings:
        """Settings with ``video_dir`` made absolute (workers may run in another directory);
        no directory is kept when nothing is recorded."""
        directory = None
        if record_video and video_dir is not None:
            directory = str(Path(video_dir).expanduser().resolve())
        return cls(record_video, directory, armed, torch_threads, call_timeout_s, policy_service)

    def video_run_dir(self, config_hash: str) -> str | None:
        """Where the videos of one run go, or None when videos are not recorded."""
        if not self.record_video or not self.video_dir:
            return None
        return str(Path(self.video_dir) / config_hash)

    def env_options(self, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``options`` with the runner's own env options set over them: ``ARMED_OPTION`` is
        present (True) exactly when the run is armed, whatever ``options`` held."""
        merged = {k: v for k, v in (options or {}).items() if k != api.ARMED_OPTION}
        if self.armed:
            merged[api.ARMED_OPTION] = True
        return merged
