"""The store's tables: one row per run (policy x suite x task under a protocol), one per episode.

Types stay portable (SQLite and PostgreSQL): JSON through ``sqlalchemy.JSON``, datetimes
timezone-aware UTC on the way in and out whatever the backend keeps. The schema itself is
created only by the Alembic migrations in ``vlabench/store/migrations``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

RUN_STATUSES = ("pending", "running", "finished", "failed", "incompatible", "interrupted")
FINAL_STATUSES = frozenset({"finished", "failed", "incompatible", "interrupted"})

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored as UTC and always read back timezone-aware (SQLite drops tzinfo)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads this class attribute)
        dict[str, Any]: JSON,
        datetime: UTCDateTime,
        str: String(255),
    }


class Run(Base):
    """One (policy, suite, task) under one protocol, identified by its config hash."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    config_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    policy: Mapped[str]
    policy_type: Mapped[str]
    policy_plugin: Mapped[str]
    checkpoint: Mapped[str | None] = mapped_column(Text)
    checkpoint_hash: Mapped[str | None] = mapped_column(String(128))
    policy_options: Mapped[dict[str, Any]]
    env: Mapped[str]
    env_plugin: Mapped[str]
    suite: Mapped[str] = mapped_column(index=True)
    task: Mapped[str]
    protocol: Mapped[dict[str, Any]]
    protocol_hash: Mapped[str] = mapped_column(String(64), index=True)
    config: Mapped[dict[str, Any]]
    inference_mode: Mapped[str] = mapped_column(String(32), default="sync", server_default="sync")
    versions: Mapped[dict[str, Any]]
    host: Mapped[str]
    git_sha: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default="pending", server_default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    n_episodes: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    report_meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """What boards need, fixed when the run is written (so a store prints the same board on
    any machine, with or without the plugins and registry that wrote it); migration 0004:

    * ``inference_label``: the inference mode's label (``async 120ms g=0.5 weighted``), ``""``
      for ``sync``;
    * ``sync_config_hash``: the config hash of the same run in ``sync`` mode (no inference
      options), the latency report's reference run; None when the config has no hashable
      form (rows written by hand);
    * ``metrics``: the env's metric columns in declaration order, each
      ``{"name": ..., "lower_is_better": ...}``; ``[]`` for success-rate envs;
    * ``groups``: task groups for ``leaderboard --by group``: registry suites of the run's env
      with an explicit task list that contains the run's task, ``name -> tasks``.

    Rows from before 0004 get the first three computed from ``config``/``env``, and no
    ``groups``. NULL only in rows written without it (reports then read it as ``{}``)."""

    episodes: Mapped[list[Episode]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )


class Episode(Base):
    """The outcome of one episode of a run (mirrors :class:`vlabench.api.EpisodeRecord`)."""

    __tablename__ = "episodes"
    __table_args__ = (
        UniqueConstraint("run_id", "episode_index"),
        # the leaderboard's per-run counts come from these two (migration 0003)
        Index("ix_episodes_run_id_success", "run_id", "success"),
        Index(
            "ix_episodes_run_id_failed",
            "run_id",
            sqlite_where=text("failure_reason IS NOT NULL"),
            postgresql_where=text("failure_reason IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    episode_index: Mapped[int]
    task: Mapped[str]
    seed: Mapped[int] = mapped_column(BigInteger)
    init_state_id: Mapped[int | None]
    success: Mapped[bool]
    steps: Mapped[int]
    reward_sum: Mapped[float] = mapped_column(Float)
    wall_time_s: Mapped[float] = mapped_column(Float)
    latency_p50_ms: Mapped[float | None] = mapped_column(Float)
    latency_p95_ms: Mapped[float | None] = mapped_column(Float)
    env_step_ms: Mapped[float | None] = mapped_column(Float)
    clipped_actions: Mapped[int] = mapped_column(default=0)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]]
    video_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    labels: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """Per-episode strings (labeller, failure tag, firmware...); NULL in rows written before
    migration 0002, read back as ``{}``."""

    run: Mapped[Run] = relationship(back_populates="episodes")
