"""Initial schema: runs and episodes.

Revision ID: 0001
Revises:
Create Date: 2026-01-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.String(length=255), nullable=False),
        sa.Column("policy_type", sa.String(length=255), nullable=False),
        sa.Column("policy_plugin", sa.String(length=255), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        sa.Column("checkpoint_hash", sa.String(length=128), nullable=True),
        sa.Column("policy_options", sa.JSON(), nullable=False),
        sa.Column("env", sa.String(length=255), nullable=False),
        sa.Column("env_plugin", sa.String(length=255), nullable=False),
        sa.Column("suite", sa.String(length=255), nullable=False),
        sa.Column("task", sa.String(length=255), nullable=False),
        sa.Column("protocol", sa.JSON(), nullable=False),
        sa.Column("protocol_hash", sa.String(length=64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("inference_mode", sa.String(length=32), server_default="sync", nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("git_sha", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=32), server_default="pending", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("n_episodes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index(op.f("ix_runs_config_hash"), "runs", ["config_hash"], unique=True)
    op.create_index(op.f("ix_runs_protocol_hash"), "runs", ["protocol_hash"], unique=False)
    op.create_index(op.f("ix_runs_suite"), "runs", ["suite"], unique=False)

    op.create_table(
        "episodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("episode_index", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=255), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("init_state_id", sa.Integer(), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("reward_sum", sa.Float(), nullable=False),
        sa.Column("wall_time_s", sa.Float(), nullable=False),
        sa.Column("latency_p50_ms", sa.Float(), nullable=True),
        sa.Column("latency_p95_ms", sa.Float(), nullable=True),
        sa.Column("env_step_ms", sa.Float(), nullable=True),
        sa.Column("clipped_actions", sa.Integer(), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("video_path", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_episodes_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_episodes")),
        sa.UniqueConstraint(
            "run_id", "episode_index", name=op.f("uq_episodes_run_id_episode_index")
        ),
    )
    op.create_index(op.f("ix_episodes_run_id"), "episodes", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_episodes_run_id"), table_name="episodes")
    op.drop_table("episodes")
    op.drop_index(op.f("ix_runs_suite"), table_name="runs")
    op.drop_index(op.f("ix_runs_protocol_hash"), table_name="runs")
    op.drop_index(op.f("ix_runs_config_hash"), table_name="runs")
    op.drop_table("runs")
