"""The leaderboard query reads per-run counts from indexes (migration 0003), not the table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.dialects import sqlite

from vlabench.api import EpisodeRecord
from vlabench.store import open_store
from vlabench.store.store import _filtered, runs_with_counts

FIELDS = dict(
    policy="p", policy_type="x", policy_plugin="x", env="e", env_plugin="x", task="t",
    protocol={"name": "std"}, protocol_hash="h", n_episodes=3,
)  # fmt: skip


def _plan(path: Path, **filters: str) -> list[str]:
    query = _filtered(runs_with_counts(), **filters)
    sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    with sqlite3.connect(path) as con:
        return [row[-1] for row in con.execute(f"EXPLAIN QUERY PLAN {sql}")]


def test_leaderboard_query_uses_the_covering_and_partial_indexes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with open_store(f"sqlite:///{path}") as store:
        run_a, _ = store.get_or_create_run("a", suite="s1", **FIELDS)
        store.get_or_create_run("b", suite="s2", **FIELDS)  # a run without episodes
        store.add_episodes(
            run_a,
            [
                EpisodeRecord("t", 0, 0, None, True, 5, 0.0, 0.1),
                EpisodeRecord("t", 1, 1, None, False, 5, 0.0, 0.1, failure_reason="boom"),
                EpisodeRecord("t", 2, 2, None, False, 5, 0.0, 0.1),
            ],
        )
        counts = [(r["config_hash"], r["n"], r["successes"], r["errors"]) for r in
                  store.run_counts()]  # fmt: skip
        assert counts == [("a", 3, 1, 1), ("b", 0, 0, 0)]
        assert [r["config_hash"] for r in store.run_counts(suite="s2")] == ["b"]
    plan = " | ".join(_plan(path))
    assert "SCAN episodes" not in plan, plan  # no full pass over the episodes table
    assert "COVERING INDEX ix_episodes_run_id_success" in plan, plan
    assert "INDEX ix_episodes_run_id_failed" in plan, plan
    assert "SEARCH runs USING INDEX ix_runs_suite" in " | ".join(_plan(path, suite="s1"))
