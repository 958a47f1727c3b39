"""The store: real SQLite files and a real PostgreSQL, real Alembic migrations, concurrent writers.

Every test taking ``db_url`` or ``store`` runs on both backends (the PostgreSQL cluster is
started once per session by ``tests/pg.py``).
"""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import store_writers
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pg import postgres  # noqa: F401 (the session fixture)
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from vlabench.api import EpisodeRecord
from vlabench.store import Store, default_url, migrate, open_store, reads
from vlabench.store.engine import alembic_config
from vlabench.store.models import Base


def run_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "policy": "diffusion_pusht",
        "policy_type": "diffusion",
        "policy_plugin": "lerobot",
        "checkpoint": "lerobot/diffusion_pusht",
        "policy_options": {"n_action_steps": 8},
        "env": "pusht",
        "env_plugin": "pusht",
        "suite": "pusht",
        "task": "push_t",
        "protocol": {"name": "default", "episodes": 10, "max_steps": 300, "seed": 0},
        "protocol_hash": "proto1",
        "config": {"suite": "pusht"},
        "versions": {"vlabench": "0.1.0"},
        "n_episodes": 10,
    }
    fields.update(overrides)
    return fields


def record(index: int, success: bool = True, **overrides: Any) -> EpisodeRecord:
    data: dict[str, Any] = {
        "task": "push_t",
        "episode_index": index,
        "seed": 1000 + index,
        "init_state_id": None,
        "success": success,
        "steps": 42,
        "reward_sum": 0.5,
        "wall_time_s": 1.25,
    }
    data.update(overrides)
    return EpisodeRecord(**data)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres").create_database()
    return f"sqlite:///{tmp_path / 'bench.db'}"


@pytest.fixture
def store(db_url: str) -> Store:
    with open_store(db_url) as s:
        yield s


def test_schema_is_at_head_and_matches_the_models(store: Store) -> None:
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert set(context.get_current_heads()) == heads == {"0004"}
        assert compare_metadata(context, Base.metadata) == []
    tables = set(inspect(store.engine).get_table_names())
    assert tables == {"alembic_version", "runs", "episodes"}


def test_reopening_an_up_to_date_store_does_not_migrate(db_url: str) -> None:
    with open_store(db_url) as first:
        assert migrate(first.engine) is False


def test_without_upgrade_nothing_is_created(db_url: str) -> None:
    with open_store(db_url, upgrade=False) as s:
        assert inspect(s.engine).get_table_names() == []
        assert migrate(s.engine) is True
        assert "runs" in inspect(s.engine).get_table_names()


def test_a_store_from_a_newer_version_is_refused(db_url: str) -> None:
    with open_store(db_url) as s, s.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(RuntimeError, match="revision 9999, unknown to this vlabench"):
        open_store(db_url)


def test_default_url_and_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLABENCH_DB", raising=False)
    assert default_url() == "sqlite:///benchmarks.db"
    monkeypatch.chdir(tmp_path)
    with open_store() as s:
        s.get_or_create_run("h", **run_fields())
    assert (tmp_path / "benchmarks.db").is_file()

    other = tmp_path / "nested" / "other.db"
    monkeypatch.setenv("VLABENCH_DB", f"sqlite:///{other}")
    assert default_url() == f"sqlite:///{other}"
    with open_store() as s:
        assert s.runs() == []
    assert other.is_file()


def test_sqlite_pragmas_are_set_on_every_connection(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'p.db'}") as store, store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30_000


def test_get_or_create_run_is_idempotent_and_keeps_the_larger_episode_count(
    store: Store,
) -> None:
    run_id, created = store.get_or_create_run("abc", **run_fields(n_episodes=10))
    assert created is True
    again, created = store.get_or_create_run("abc", **run_fields(n_episodes=5, host="other"))
    assert (again, created) == (run_id, False)
    run = store.get_run(run_id)
    assert run is not None
    assert run["n_episodes"] == 10
    assert run["host"] != "other"  # an existing run keeps its fields

    store.get_or_create_run("abc", n_episodes=25)
    run = store.get_run(run_id)
    assert run is not None and run["n_episodes"] == 25
    assert run["policy"] == "diffusion_pusht"
    assert run["protocol"]["max_steps"] == 300
    assert run["inference_mode"] == "sync" and run["status"] == "pending"
    assert datetime.fromisoformat(run["created_at"]).tzinfo is not None
    assert len(store.runs()) == 1


def test_get_or_create_run_rejects_bad_fields(store: Store) -> None:
    with pytest.raises(TypeError, match="unknown run fields"):
        store.get_or_create_run("x", **run_fields(colour="red"))
    with pytest.raises(TypeError, match="needs fields"):
        store.get_or_create_run("x", policy="p", n_episodes=1)
    assert store.runs() == []


def test_duplicate_episode_is_ignored(store: Store) -> None:
    run_id, _ = store.get_or_create_run("abc", **run_fields())
    assert store.add_episode(run_id, record(0, success=True)) is True
    assert store.add_episode(run_id, record(0, success=False)) is False
    assert store.add_episode(run_id, record(1, success=False)) is True
    episodes = store.episodes(run_id)
    assert [(e["episode_index"], e["success"]) for e in episodes] == [(0, True), (1, False)]
    assert store.finished_episode_indices(run_id) == {0, 1}


def test_episode_for_a_missing_run_is_an_error(store: Store) -> None:
    with pytest.raises(IntegrityError):
        store.add_episode(12345, record(0))


def test_episode_fields_round_trip_including_numpy_scalars(store: Store) -> None:
    run_id, _ = store.get_or_create_run("abc", **run_fields())
    rec = record(
        np.int64(3),
        success=np.bool_(True),
        seed=np.int64(2**40),
        init_state_id=np.int32(7),
        steps=np.int64(120),
        reward_sum=np.float32(2.5),
        latency_p50_ms=12.5,
        latency_p95_ms=20.0,
        env_step_ms=1.5,
        clipped_actions=4,
        metrics={"coverage": np.float64(0.75)},
        video_path="videos/3.mp4",
        labels={"labeller": "alice", "failure_tag": "dropped", "firmware": np.int64(5)},
    )
    assert store.add_episode(run_id, rec)
    (row,) = store.episodes(run_id)
    assert row["episode_index"] == 3 and row["seed"] == 2**40 and row["init_state_id"] == 7
    assert row["success"] is True and row["steps"] == 120 and row["reward_sum"] == 2.5
    assert row["metrics"] == {"coverage": 0.75} and row["video_path"] == "videos/3.mp4"
    assert (row["latency_p50_ms"], row["latency_p95_ms"], row["env_step_ms"]) == (12.5, 20.0, 1.5)
    assert row["clipped_actions"] == 4 and row["failure_reason"] is None
    assert row["labels"] == {"labeller": "alice", "failure_tag": "dropped", "firmware": "5"}
    assert store.add_episode(run_id, record(4))  # no labels: stored and read back as {}
    assert store.episodes(run_id)[1]["labels"] == {}
    loaded = reads.episodes_by_run(store, [run_id])[run_id]
    assert [e["labels"] for e in loaded] == [row["labels"], {}]


def test_a_store_at_0001_upgrades_and_keeps_its_episodes(db_url: str) -> None:
    from alembic import command

    with open_store(db_url, upgrade=False) as old:  # a store written before labels existed
        with old.engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0001")
        with old.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO runs (config_hash, policy, policy_type, policy_plugin, "
                    "policy_options, env, env_plugin, suite, task, protocol, protocol_hash, "
                    "config, inference_mode, versions, host, status, n_episodes, created_at) "
                    "VALUES ('old', 'p', 'p', 'p', '{}', 'e', 'e', 's', 't', '{}', 'h', '{}', "
                    "'sync', '{}', 'host', 'finished', 2, CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO episodes (run_id, episode_index, task, seed, success, steps, "
                    "reward_sum, wall_time_s, clipped_actions, metrics, created_at) "
                    "SELECT id, 0, 't', 1, true, 3, 0.0, 0.1, 0, '{}', CURRENT_TIMESTAMP "
                    "FROM runs WHERE config_hash = 'old'"
                )
            )
        assert "labels" not in {c["name"] for c in inspect(old.engine).get_columns("episodes")}
    with open_store(db_url) as store:
        with store.engine.connect() as conn:
            heads = ScriptDirectory.from_config(alembic_config()).get_heads()
            assert MigrationContext.configure(conn).get_current_heads() == tuple(heads)
        run_id = store.find_run("old")
        assert run_id is not None
        (old_row,) = store.episodes(run_id)
        assert old_row["steps"] == 3 and old_row["labels"] == {}
        assert reads.episodes_by_run(store, [run_id])[run_id][0]["labels"] == {}
        assert store.add_episode(run_id, record(1, labels={"labeller": "bob"}))
        assert store.episodes(run_id)[1]["labels"] == {"labeller": "bob"}


def test_run_status_stamps_times(store: Store) -> None:
    run_id, _ = store.get_or_create_run("abc", **run_fields())
    store.set_run_status(run_id, "running")
    run = store.get_run(run_id)
    assert run is not None and run["status"] == "running" and run["finished_at"] is None
    started = datetime.fromisoformat(run["started_at"])
    assert started.tzinfo is not None and started.utcoffset() == UTC.utcoffset(None)

    store.set_run_status(run_id, "failed", error="CUDA out of memory")
    run = store.get_run(run_id)
    assert run is not None and run["error"] == "CUDA out of memory"
    assert run["finished_at"] is not None

    store.set_run_status(run_id, "running")  # resumed: first start kept, error cleared
    run = store.get_run(run_id)
    assert run is not None and datetime.fromisoformat(run["started_at"]) == started
    assert run["finished_at"] is None and run["error"] is None

    with pytest.raises(ValueError, match="run status"):
        store.set_run_status(run_id, "done")
    with pytest.raises(LookupError):
        store.set_run_status(999, "running")


def test_runs_filters_and_summary(store: Store) -> None:
    a, _ = store.get_or_create_run("a", **run_fields())
    b, _ = store.get_or_create_run("b", **run_fields(policy="act", suite="other", env="aloha"))
    store.set_run_status(b, "finished")
    store.add_episode(a, record(0, success=True))
    store.add_episode(a, record(1, success=False, failure_reason="NaN action"))
    store.add_episode(a, record(2, success=True))

    assert [r["id"] for r in store.runs()] == [a, b]
    assert [r["id"] for r in store.runs(policy="act")] == [b]
    assert [r["id"] for r in store.runs(suite="pusht")] == [a]
    assert [r["id"] for r in store.runs(env="aloha", status="finished")] == [b]
    assert store.runs(env="aloha", status="running") == []
    assert [r["id"] for r in store.runs(policy=["act", "diffusion_pusht"], suite=[])] == [a, b]
    assert [r["id"] for r in store.runs(status=("finished", "failed"))] == [b]
    assert store.get_run(999) is None

    assert store.summary(a) == {
        "run_id": a,
        "n": 3,
        "successes": 2,
        "errors": 1,
        "success_rate": pytest.approx(2 / 3),
    }
    assert store.summary(b)["n"] == 0 and store.summary(b)["success_rate"] is None


def test_threads_adding_episodes_all_arrive(store: Store) -> None:
    run_id, _ = store.get_or_create_run("abc", **run_fields(n_episodes=80))
    inserted: list[bool] = []

    def work(offset: int) -> None:
        for i in range(offset, 80, 4):
            inserted.append(store.add_episode(run_id, record(i)))
            inserted.append(store.add_episode(run_id, record(i)))  # duplicate: ignored

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inserted.count(True) == 80 and inserted.count(False) == 80
    assert store.finished_episode_indices(run_id) == set(range(80))


def test_eight_writer_processes_racing_on_a_fresh_store_lose_nothing(db_url: str) -> None:
    n = 8
    ctx = multiprocessing.get_context("forkserver")  # clean, cheap starts (no threads forked)
    ctx.set_forkserver_preload(["store_writers"])
    with ctx.Manager() as manager, ctx.Pool(n) as pool:
        barrier = manager.Barrier(n)
        results = pool.starmap(store_writers.hammer, [(db_url, k, barrier) for k in range(n)])
    assert len({run_id for run_id, _, _ in results}) == 1
    assert sum(created for _, created, _ in results) == 1
    assert sum(inserted for _, _, inserted in results) == 40
    with open_store(db_url) as s:
        runs = {r["config_hash"]: r for r in s.runs()}
        assert len(runs) == n + 1
        shared = runs["shared"]
        assert shared["n_episodes"] == 40 + n - 1
        assert len(s.episodes(shared["id"])) == 40
        assert s.finished_episode_indices(shared["id"]) == set(range(40))
        for k in range(n):
            assert s.finished_episode_indices(runs[f"own-{k}"]["id"]) == set(range(25))


def test_add_episodes_in_one_transaction_skips_stored_indices(store: Store) -> None:
    run_id, _ = store.get_or_create_run("abc", **run_fields())
    assert store.add_episodes(run_id, [record(0), record(1)]) == 2
    assert store.add_episodes(run_id, [record(1), record(2), record(3)]) == 2
    assert store.add_episodes(run_id, []) == 0
    assert store.finished_episode_indices(run_id) == {0, 1, 2, 3}
    assert store.find_run("abc") == run_id and store.find_run("nope") is None
    with pytest.raises(IntegrityError):
        store.add_episodes(run_id + 100, [record(0)])


def test_a_locked_sqlite_write_is_retried_not_failed(tmp_path: Path) -> None:
    """A writer that cannot get the lock within the busy timeout retries the transaction."""
    from vlabench.store import engine as engine_mod

    url = f"sqlite:///{tmp_path / 'locked.db'}"
    with open_store(url) as s:
        run_id, _ = s.get_or_create_run("abc", **run_fields())
        blocker = s.engine.raw_connection()
        blocker.execute("PRAGMA busy_timeout = 0")
        blocker.execute("BEGIN IMMEDIATE")  # hold the write lock
        with s.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        s.engine.pool.dispose()
        original = engine_mod.BUSY_TIMEOUT_MS
        engine_mod.BUSY_TIMEOUT_MS = 50
        try:
            with open_store(url) as impatient:
                timer = threading.Timer(0.5, blocker.rollback)
                timer.start()
                assert impatient.add_episode(run_id, record(0)) is True
                timer.join()
        finally:
            engine_mod.BUSY_TIMEOUT_MS = original
            blocker.close()
        assert s.finished_episode_indices(run_id) == {0}
