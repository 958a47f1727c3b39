"""Indexes for the leaderboard query: per-run counts read from indexes, not from the table.

``ix_episodes_run_id_success`` (run_id, success) covers ``count`` and ``sum(success)`` per run;
the partial ``ix_episodes_run_id_failed`` (run_id) holds only episodes with a failure reason,
so counting errors per run is one short index range. The old ``ix_episodes_run_id`` is the
prefix of the new index (and of the (run_id, episode_index) unique constraint) and goes.
The failure reason itself is not indexed: a long message would overflow PostgreSQL's index
row size.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FAILED = sa.text("failure_reason IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_episodes_run_id_success", "episodes", ["run_id", "success"])
    op.create_index(
        "ix_episodes_run_id_failed",
        "episodes",
        ["run_id"],
        sqlite_where=FAILED,
        postgresql_where=FAILED,
    )
    op.drop_index("ix_episodes_run_id", table_name="episodes")


def downgrade() -> None:
    op.create_index("ix_episodes_run_id", "episodes", ["run_id"], unique=False)
    op.drop_index("ix_episodes_run_id_failed", table_name="episodes")
    op.drop_index("ix_episodes_run_id_success", table_name="episodes")
