"""Read-only queries for reports: runs with episode counts under filters, episodes in bulk.

Kept apart from :mod:`vlabench.store.store` (which owns every write) so that reports
never take a write lock. Each function opens one read transaction on ``store.engine``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vlabench.store.models import Episode

if TYPE_CHECKING:
    from vlabench.store.store import Filter, Store

EPISODE_FIELDS = (
    "run_id",
    "episode_index",
    "task",
    "seed",
    "init_state_id",
    "success",
    "steps",
    "reward_sum",
    "wall_time_s",
    "latency_p50_ms",
    "failure_reason",
    "video_path",
    "labels",
)


def _values(value: Filter) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else [v for v in value if v]


def protocol_matches(run: dict[str, Any], wanted: Iterable[str]) -> bool:
    """True when the run's protocol name equals, or its protocol hash starts with, a value."""
    name = str((run.get("protocol") or {}).get("name") or "")
    return any(w == name or run["protocol_hash"].startswith(w) for w in wanted)


def run_counts(
    store: Store,
    *,
    policy: Filter = None,
    suite: Filter = None,
    env: Filter = None,
    protocol: Filter = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Runs (all columns, datetimes as ISO strings) with ``n``, ``successes`` and ``errors``.

    ``protocol`` matches a protocol name or a protocol-hash prefix; ``since``/``until``
    bound the run's creation time (naive datetimes are UTC; ``until`` is exclusive).
    """
    out = store.run_counts(
        policy=_values(policy), suite=_values(suite), env=_values(env), since=since, until=until
    )
    wanted = _values(protocol)
    return [r for r in out if protocol_matches(r, wanted)] if wanted else out


def episode_rows(store: Store, run_ids: Iterable[int], columns: Sequence[Any]) -> Iterator[Any]:
    """``columns`` of the episodes of the given runs, by run then episode index.

    Runs are read 500 at a time, to stay below SQLite's bound-parameter limit.
    """
    ids = sorted(set(run_ids))
    with Session(store.engine) as session:
        for start in range(0, len(ids), 500):
            query = (
                select(*columns)
                .where(Episode.run_id.in_(ids[start : start + 500]))
                .order_by(Episode.run_id, Episode.episode_index)
            )
            yield from session.execute(query)


def episodes_by_run(store: Store, run_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """The episodes of the given runs (fields :data:`EPISODE_FIELDS`), by index."""
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    columns = [getattr(Episode, f) for f in EPISODE_FIELDS]
    for row in episode_rows(store, run_ids, columns):
        record = dict(zip(EPISODE_FIELDS, row, strict=True))
        record["success"] = bool(record["success"])
        record["labels"] = record["labels"] or {}  # NULL before migration 0002
        out[record["run_id"]].append(record)
    return dict(out)


def episode_metrics(
    store: Store, run_ids: Iterable[int], keys: Iterable[str]
) -> dict[int, dict[str, list[float]]]:
    """Per run, the values of the episode metrics ``keys`` (episodes lacking a key skip it)."""
    wanted = list(keys)
    out: dict[int, dict[str, list[float]]] = {}
    if not wanted:
        return out
    for run_id, metrics in episode_rows(store, run_ids, [Episode.run_id, Episode.metrics]):
        per_run = out.setdefault(int(run_id), {k: [] for k in wanted})
        for key in wanted:
            value = (metrics or {}).get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                per_run[key].append(float(value))
    return out
