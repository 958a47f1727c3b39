"""What latency cost: a run in a realtime inference mode next to the same run in ``sync``.

The reference is the stored run whose config equals the realtime run's except for the
inference mode (same policy, checkpoint, suite, task and protocol): its config hash was
stored with the realtime run (``report_meta["sync_config_hash"]``). Only episodes that both
runs have (same index, so same seed and init state) are compared.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlabench.report.identity import inference_label, policy_identity, policy_labels, report_meta
from vlabench.store import reads
from vlabench.store.models import Episode

if TYPE_CHECKING:
    from vlabench.store import Store


@dataclass(frozen=True)
class ModeSummary:
    """Episode means of one side: success rate and the latency metrics."""

    n: int
    success_rate: float
    time_to_success_s: float | None
    """Mean over the successful episodes (simulated seconds: steps / fps)."""
    inference_calls: float | None
    idle_steps: float | None
    latency_ms: float | None
    discontinuity: float | None
    stale_chunks: float | None = None
    """``async``: mean chunks per episode that arrived entirely too late (latency >= chunk)."""


@dataclass(frozen=True)
class LatencyCost:
    """One policy on one suite in one realtime mode, and the same episodes in ``sync``."""

    policy: str
    """The leaderboard's row label (with the mode)."""
    name: str
    """The preset name it was run under."""
    suite: str
    mode: str
    tasks: int
    realtime: ModeSummary
    sync: ModeSummary | None
    """None when no sync run of the same config is stored."""


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(episodes: Sequence[tuple[bool, dict[str, Any]]]) -> ModeSummary:
    """``(success, metrics)`` pairs as a :class:`ModeSummary`."""

    def metric(key: str, only_success: bool = False) -> float | None:
        values = [
            float(m[key]) for ok, m in episodes if key in m and (ok or not only_success)
        ]
        return _mean(values)

    n = len(episodes)
    return ModeSummary(
        n=n,
        success_rate=sum(ok for ok, _ in episodes) / n if n else 0.0,
        time_to_success_s=metric("time_to_success_s", only_success=True),
        inference_calls=metric("inference.calls"),
        idle_steps=metric("inference.idle_steps"),
        latency_ms=metric("inference.latency_ms"),
        discontinuity=metric("chunk.discontinuity"),
        stale_chunks=metric("inference.stale_chunks"),
    )


def _episodes(store: Store, run_ids: Iterable[int]) -> dict[int, dict[int, tuple[bool, dict]]]:
    out: dict[int, dict[int, tuple[bool, dict]]] = defaultdict(dict)
    columns = [Episode.run_id, Episode.episode_index, Episode.success, Episode.metrics]
    for run_id, index, success, metrics in reads.episode_rows(store, run_ids, columns):
        out[run_id][index] = (bool(success), dict(metrics or {}))
    return out


def sync_reference(store: Store, run: dict[str, Any]) -> int | None:
    """The id of the stored ``sync`` run with the same config as ``run``, if any."""
    config_hash = report_meta(run).get("sync_config_hash")
    return store.find_run(str(config_hash)) if config_hash else None


def latency_costs(store: Store, run_ids: Sequence[int]) -> list[LatencyCost]:
    """One entry per (policy, suite, realtime mode) among ``run_ids`` (sync runs are skipped)."""
    runs = [r for r in (store.get_run(i) for i in run_ids) if r and inference_label(r)]
    if not runs:
        return []
    references = {r["id"]: sync_reference(store, r) for r in runs}
    episodes = _episodes(store, [*references, *(i for i in references.values() if i)])
    labels = policy_labels(runs)
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        identity = policy_identity(run)
        groups[(identity[0], str(run["suite"]), identity[5])].append(run)
    costs = []
    for (name, suite, mode), members in groups.items():
        paired = all(references[r["id"]] is not None for r in members)
        realtime: list[tuple[bool, dict]] = []
        sync: list[tuple[bool, dict]] = []
        for run in members:
            mine = episodes.get(run["id"], {})
            if not paired:
                realtime += mine.values()
                continue
            theirs = episodes.get(references[run["id"]], {})  # type: ignore[arg-type]
            shared = sorted(set(mine) & set(theirs))
            realtime += [mine[i] for i in shared]
            sync += [theirs[i] for i in shared]
        costs.append(
            LatencyCost(
                policy=labels[policy_identity(members[0])],
                name=name,
                suite=suite,
                mode=mode,
                tasks=len({r["task"] for r in members}),
                realtime=summarize(realtime),
                sync=summarize(sync) if paired else None,
            )
        )
    return costs
