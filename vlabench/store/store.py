"""The :class:`Store`: every read and write of runs and episodes, each in its own transaction.

Writes commit immediately, so an interrupted run loses at most the episode in flight and is
resumed by its config hash without duplicating one (``(run_id, episode_index)`` is unique).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Select, case, func, inspect, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, sessionmaker

from vlabench.api import EpisodeRecord
from vlabench.store.engine import IMMEDIATE, default_url, make_store_engine, retrying
from vlabench.store.models import FINAL_STATUSES, RUN_STATUSES, Episode, Run, utcnow
from vlabench.store.opening import open_engine

_RUN_COLUMNS = tuple(c.key for c in inspect(Run).column_attrs)
_EPISODE_COLUMNS = tuple(c.key for c in inspect(Episode).column_attrs)
_RUN_REQUIRED = (
    "policy",
    "policy_type",
    "policy_plugin",
    "env",
    "env_plugin",
    "suite",
    "task",
    "protocol",
    "protocol_hash",
    "n_episodes",
)
_RUN_SETTABLE = frozenset(_RUN_COLUMNS) - {"id", "config_hash"}


Filter = str | Sequence[str] | None
"""A query filter: one value, any of several values, or (None or empty) no filter."""


def runs_with_counts() -> Select[Any]:
    """``(Run, n, successes, errors)`` rows, oldest run first; a run without episodes has n 0.

    Each count is a correlated subquery over one run's episodes, read from an index alone
    (migration 0003): ``n`` and ``successes`` as ranges of (run_id, success), ``errors`` from
    the partial index of failed episodes. So a filtered leaderboard reads only its runs'
    episodes, and no aggregate carries the run's columns through a million rows.
    """

    def per_run(episode: Any, what: Any, *where: Any) -> Any:
        query = select(what).where(episode.run_id == Run.id, *where)
        return query.correlate(Run).scalar_subquery()

    counted, won, failed = aliased(Episode), aliased(Episode), aliased(Episode)
    return select(
        Run,
        per_run(counted, func.count()).label("n"),
        per_run(won, func.count(), won.success).label("successes"),
        per_run(failed, func.count(), failed.failure_reason.is_not(None)).label("errors"),
    ).order_by(Run.id)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _filtered(query: Select[Any], **filters: Filter) -> Select[Any]:
    for key, value in filters.items():
        if not value:
            continue
        column = getattr(Run, key)
        if isinstance(value, str):
            query = query.where(column == value)
        else:
            query = query.where(column.in_(list(value)))
    return query


def _row_dict(obj: Run | Episode, columns: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in columns:
        value = getattr(obj, key)
        out[key] = value.isoformat() if isinstance(value, datetime) else value
    if isinstance(obj, Episode) and out.get("labels") is None:
        out["labels"] = {}  # rows from before migration 0002
    return out


def _episode_values(record: EpisodeRecord) -> dict[str, Any]:
    """Plain Python values (numpy scalars are not bindable) from an :class:`EpisodeRecord`."""
    data = asdict(record)

    def opt(key: str, kind: type) -> Any:
        return None if data[key] is None else kind(data[key])

    return {
        "task": str(data["task"]),
        "episode_index": int(data["episode_index"]),
        "seed": int(data["seed"]),
        "init_state_id": opt("init_state_id", int),
        "success": bool(data["success"]),
        "steps": int(data["steps"]),
        "reward_sum": float(data["reward_sum"]),
        "wall_time_s": float(data["wall_time_s"]),
        "latency_p50_ms": opt("latency_p50_ms", float),
        "latency_p95_ms": opt("latency_p95_ms", float),
        "env_step_ms": opt("env_step_ms", float),
        "clipped_actions": int(data["clipped_actions"]),
        "failure_reason": opt("failure_reason", str),
        "metrics": {str(k): float(v) for k, v in (data["metrics"] or {}).items()},
        "video_path": opt("video_path", str),
        "labels": {str(k): str(v) for k, v in (data.get("labels") or {}).items()},
    }


class Store:
    """Runs and episodes in one database (see :func:`vlabench.store.open_store`).

    ``url`` and ``location`` (the file, or the URL) name it in messages; they default to the
    engine's URL.
    """

    def __init__(self, engine: Engine, url: str | None = None, location: str | None = None) -> None:
        self.engine = engine
        shown = make_url(url) if url is not None else engine.url
        self._url = shown.render_as_string(hide_password=True)
        self.location = location or self._url
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(**{IMMEDIATE: True}), expire_on_commit=False
        )

    @property
    def url(self) -> str:
        """The store's URL as it was given (password hidden)."""
        return self._url

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------------------------

    def get_or_create_run(self, config_hash: str, **fields: Any) -> tuple[int, bool]:
        """The run with ``config_hash`` as ``(run_id, created)``; create it from ``fields``.

        An existing run keeps its fields except ``n_episodes``, raised to the larger of the
        stored and the requested count. Safe when several processes race to create it.
        """
        unknown = set(fields) - _RUN_SETTABLE
        if unknown:
            raise TypeError(f"get_or_create_run: unknown run fields {sorted(unknown)}")
        return self._get_or_create_run(config_hash, fields)

    @retrying
    def _get_or_create_run(self, config_hash: str, fields: dict[str, Any]) -> tuple[int, bool]:
        n_episodes = int(fields.get("n_episodes", 0))
        for _ in range(2):
            run_id = self._bump_run(config_hash, n_episodes)
            if run_id is not None:
                return run_id, False
            missing = [k for k in _RUN_REQUIRED if fields.get(k) is None]
            if missing:
                raise TypeError(f"get_or_create_run: a new run needs fields {missing}")
            values = {"policy_options": {}, "config": {}, "versions": {}, **fields}
            values.setdefault("host", socket.gethostname())
            run = Run(config_hash=config_hash, **values)
            with self._write() as session:
                session.add(run)
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    continue  # created meanwhile by another process: select it
                return run.id, True
        raise RuntimeError(f"could not create or find run with config hash {config_hash!r}")

    def _bump_run(self, config_hash: str, n_episodes: int) -> int | None:
        """The run's id after raising its ``n_episodes`` to at least ``n_episodes``."""
        with self._write() as session:
            run_id = session.scalar(select(Run.id).where(Run.config_hash == config_hash))
            if run_id is not None:
                session.execute(
                    update(Run)
                    .where(Run.id == run_id, Run.n_episodes < n_episodes)
                    .values(n_episodes=n_episodes)
                )
                session.commit()
            return run_id

    def find_run(self, config_hash: str) -> int | None:
        """The id of the run with ``config_hash``, or None (nothing is created)."""
        with self._read() as session:
            return session.scalar(select(Run.id).where(Run.config_hash == config_hash))

    @retrying
    def rekey_protocol(self, old_hash: str, new_hash: str) -> int:
        """Move every run stored under protocol hash ``old_hash`` to ``new_hash`` (one
        leaderboard column); returns how many runs moved."""
        if old_hash == new_hash:
            return 0
        with self._write() as session:
            moved = session.execute(
                update(Run).where(Run.protocol_hash == old_hash).values(protocol_hash=new_hash)
            ).rowcount
            session.commit()
            return int(moved or 0)

    @retrying
    def set_run_status(self, run_id: int, status: str, error: str | None = None) -> None:
        """Set status and error; stamp ``started_at`` (first start) and ``finished_at``."""
        if status not in RUN_STATUSES:
            raise ValueError(f"run status must be one of {RUN_STATUSES}, got {status!r}")
        now = utcnow()
        values: dict[str, Any] = {  # one UPDATE, no ORM load: the runner calls it per episode
            "status": status,
            "error": error,
            "finished_at": now if status in FINAL_STATUSES else None,
        }
        if status == "running":
            values["started_at"] = func.coalesce(Run.started_at, now)
        statement = update(Run).where(Run.id == run_id).values(**values)
        with self._write() as session:
            if not session.connection().execute(statement).rowcount:
                raise LookupError(f"no run with id {run_id}")
            session.commit()

    @retrying
    def update_report_meta(self, run_id: int, **items: Any) -> None:
        """Set keys of the run's ``report_meta`` (e.g. a sequential rule and its looks)."""
        with self._write() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise LookupError(f"no run with id {run_id}")
            run.report_meta = {**(run.report_meta or {}), **items}
            session.commit()

    def get_run(self, run_id: int) -> dict[str, Any] | None:
        """All columns of a run (datetimes as ISO strings), or None."""
        with self._read() as session:
            run = session.get(Run, run_id)
            return None if run is None else _row_dict(run, _RUN_COLUMNS)

    def runs(
        self,
        policy: Filter = None,
        suite: Filter = None,
        env: Filter = None,
        status: Filter = None,
    ) -> list[dict[str, Any]]:
        """Runs matching every given filter, oldest first."""
        query = _filtered(
            select(Run).order_by(Run.id), policy=policy, suite=suite, env=env, status=status
        )
        with self._read() as session:
            return [_row_dict(r, _RUN_COLUMNS) for r in session.scalars(query)]

    def run_counts(
        self,
        policy: Filter = None,
        suite: Filter = None,
        env: Filter = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Like :meth:`runs`, each with its episode counts ``n``, ``successes``, ``errors``.

        ``since``/``until`` bound the run's creation time (naive datetimes are UTC; ``until``
        is exclusive).
        """
        query = _filtered(runs_with_counts(), policy=policy, suite=suite, env=env)
        if since is not None:
            query = query.where(Run.created_at >= _utc(since))
        if until is not None:
            query = query.where(Run.created_at < _utc(until))
        with self._read() as session:
            return [
                {
                    **_row_dict(run, _RUN_COLUMNS),
                    "n": int(n or 0),
                    "successes": int(successes or 0),
                    "errors": int(errors or 0),
                }
                for run, n, successes, errors in session.execute(query)
            ]

    # -- episodes -----------------------------------------------------------------------------

    def add_episode(self, run_id: int, record: EpisodeRecord) -> bool:
        """Store one finished episode; False (and nothing written) when its index exists."""
        return self.add_episodes(run_id, [record]) == 1

    @retrying
    def add_episodes(self, run_id: int, records: Sequence[EpisodeRecord]) -> int:
        """Store finished episodes in one transaction, skipping indices already stored.

        Returns how many were new. A missing run raises :class:`IntegrityError`.
        """
        rows = [{"run_id": run_id, **_episode_values(r)} for r in records]
        if not rows:
            return 0
        with self._write() as session:
            dialect = self.engine.dialect.name
            if dialect in ("sqlite", "postgresql"):
                if dialect == "sqlite":
                    from sqlalchemy.dialects.sqlite import insert
                else:
                    from sqlalchemy.dialects.postgresql import insert
                statement = (  # parameters passed apart: one cached compiled statement
                    insert(Episode)
                    .on_conflict_do_nothing(index_elements=["run_id", "episode_index"])
                    .returning(Episode.episode_index)
                )
                now = utcnow()
                params = [{"created_at": now, **row} for row in rows]
                added = len(session.connection().execute(statement, params).all())
                session.commit()
                return added
            added = 0  # any other database: one savepoint per row
            for row in rows:
                try:
                    with session.begin_nested():
                        session.add(Episode(**row))
                    added += 1
                except IntegrityError:
                    exists = session.scalar(
                        select(Episode.id).where(
                            Episode.run_id == run_id,
                            Episode.episode_index == row["episode_index"],
                        )
                    )
                    if exists is None:  # not a duplicate: e.g. no such run
                        raise
            session.commit()
            return added

    def finished_episode_indices(self, run_id: int) -> set[int]:
        """Indices of the episodes already stored for a run (to resume it)."""
        with self._read() as session:
            query = select(Episode.episode_index).where(Episode.run_id == run_id)
            return set(session.scalars(query))

    def episodes(self, run_id: int) -> list[dict[str, Any]]:
        """All episodes of a run by index, as dicts."""
        query = select(Episode).where(Episode.run_id == run_id).order_by(Episode.episode_index)
        with self._read() as session:
            return [_row_dict(e, _EPISODE_COLUMNS) for e in session.scalars(query)]

    def summary(self, run_id: int) -> dict[str, Any]:
        """``n``, ``successes``, ``errors`` (episodes with a failure reason), ``success_rate``."""
        query = select(
            func.count(Episode.id),
            func.sum(case((Episode.success, 1), else_=0)),
            func.sum(case((Episode.failure_reason.is_not(None), 1), else_=0)),
        ).where(Episode.run_id == run_id)
        with self._read() as session:
            n, successes, errors = session.execute(query).one()
        n, successes, errors = int(n or 0), int(successes or 0), int(errors or 0)
        return {
            "run_id": run_id,
            "n": n,
            "successes": successes,
            "errors": errors,
            "success_rate": successes / n if n else None,
        }


def open_store(
    url: str | None = None,
    *,
    upgrade: bool = True,
    read_only: bool = False,
    init: bool = False,
) -> Store:
    """The store at ``url`` (default: :func:`~vlabench.store.engine.default_url`).

    ``read_only=True``: for reads; nothing is created, migrated or written, and a missing
    store, a file that is not one or a store at another schema revision raises
    :class:`~vlabench.store.opening.StoreError`. Otherwise for writes: created (directories
    too) or upgraded; a database holding other tables and no vlabench schema raises
    :class:`~vlabench.store.opening.NotAStoreError` unless ``init=True``. See
    :mod:`vlabench.store.opening`. ``upgrade=False`` (tools and tests that manage the schema
    themselves): a plain read-write engine, nothing checked, created or migrated beyond
    what the driver does.
    """
    url = url or default_url()
    if not upgrade and not read_only:
        return Store(make_store_engine(url), url)
    engine, location = open_engine(url, read_only=read_only, init=init)
    return Store(engine, url, location)
