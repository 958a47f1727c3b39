"""The board reads only the store: ``runs.report_meta`` is written with each run, filled for
old rows by migration 0004 with the rules of the code that wrote them, and ``vlabench.report``
imports nothing that depends on the installed plugins or the registry.

(The same board printed with and without plugins: ``tests/test_dataset_plugin.py``.)
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from pg import postgres  # noqa: F401 (the session fixture)

from vlabench.plan.configs import EvalProtocol, PolicyChoice, RunConfig
from vlabench.runtime.inference import InferenceConfig
from vlabench.store import open_store
from vlabench.store.engine import MIGRATIONS, alembic_config

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = EvalProtocol("quick", 3, 100, 1000, "ever", True, 0)
PUSHT = RunConfig(PolicyChoice("noop", "noop", "scripted"), "pusht_quick", "pusht", "pusht", {},
                  "push_t", PROTOCOL, [])  # fmt: skip
ASYNC = replace(
    PUSHT, inference_mode="async", inference_options=InferenceConfig("async", "120").options()
)
DATASET = RunConfig(
    PolicyChoice("recorded", "replay", "scripted"), "so100", "dataset", "dataset",
    {"dataset": "/data/so100"}, "tiny", replace(PROTOCOL, name="open_loop"), [],
)  # fmt: skip


def migration_0004() -> ModuleType:
    (path,) = (MIGRATIONS / "versions").glob("0004_*.py")
    spec = importlib.util.spec_from_file_location("migration_0004", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def old_label(mode: str, options: Any) -> str:
    """How the board labelled a run before 0004 (``report.board.inference_label``)."""
    if mode == "sync":
        return ""
    try:
        return InferenceConfig.from_options(mode, options).label()
    except (TypeError, ValueError):
        return mode


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("sync", {}),
        ("async", InferenceConfig("async", "120").options()),
        ("async", {"latency": "normal:120,30", "chunk_threshold": 0.25, "aggregate": "latest"}),
        ("async", {"latency": "lognormal:100,.3", "aggregate": "weighted_average", "hold": "noop"}),
        ("sync-realtime", {"latency": "measured", "hold": "last"}),
        ("sync-realtime", {"latency": "uniform:50,350", "hold": "noop"}),
        ("sync-realtime", {"latency": 200}),
        ("sync-realtime", {"latency": "200ms"}),
        ("sync-realtime", {}),
        # unreadable: the bare mode, as before
        ("async", {"latency": "fast"}),
        ("async", {"bogus": 1}),
        ("async", {"chunk_threshold": 2}),
        ("async", {"aggregate": "nope"}),
        ("async", {"hold": "x"}),
        ("sync-realtime", {"latency": "uniform:5,1"}),
        ("turbo", {}),
    ],
)
def test_migration_labels_like_the_inference_config(mode: str, options: dict) -> None:
    config = {"inference_options": options}
    assert migration_0004().inference_label(mode, config) == old_label(mode, options)


def test_migration_and_runner_hash_the_sync_reference_like_the_config() -> None:
    sync_hash = migration_0004().sync_config_hash
    isolated = replace(ASYNC, env_isolation="/venv/bin/python",
                       policy=replace(ASYNC.policy, isolation="/other/python"))  # fmt: skip
    assert sync_hash(ASYNC.as_dict()) == sync_hash(isolated.as_dict()) == PUSHT.config_hash()
    assert sync_hash(PUSHT.as_dict()) == PUSHT.config_hash() != ASYNC.config_hash()
    assert sync_hash({}) is None and sync_hash({"suite": "s"}) is None  # hand-written rows


def test_runner_stores_what_the_board_needs(tmp_path: Path) -> None:
    from vlabench.execute.runner import Runner

    envs = {
        "pusht": SimpleNamespace(metric_columns=()),
        "dataset": SimpleNamespace(metric_columns=("open_loop.mse_norm", "open_loop.l1_norm")),
    }
    catalog = SimpleNamespace(envs=envs, env=envs.__getitem__)
    groups = {  # suite -> its declared groups, in order
        PUSHT.suite: [("b", ["other"]), ("a", ["push_t"])],
        DATASET.suite: [("c", ["tiny"])],
    }
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    runner = Runner(store, catalog, task_groups=groups)  # type: ignore[arg-type]
    assert runner.report_meta(ASYNC) == {
        "inference_label": "async 120ms g=0.5 weighted",
        "sync_config_hash": PUSHT.config_hash(),
        "metrics": [],
        "groups": {"a": ["push_t"]},  # declared for its suite, with its task
        "group_order": ["b", "a"],
    }
    meta = runner.report_meta(DATASET)
    assert meta["inference_label"] == "" and meta["sync_config_hash"] == DATASET.config_hash()
    assert meta["metrics"] == [
        {"name": "open_loop.mse_norm", "lower_is_better": True},
        {"name": "open_loop.l1_norm", "lower_is_better": True},
    ]
    assert meta["groups"] == {"c": ["tiny"]}




def test_the_sync_reference_of_an_old_store_is_its_legacy_hashed_run(tmp_path: Path) -> None:
    """A sync run stored before env options were typed keeps its legacy hash; an async run of
    the same config written now points at that run."""
    from vlabench.execute.runner import Runner

    typed = {"image_size": 96, "render": True}
    sync = replace(PUSHT, env_options=typed, env_options_given={})
    assert sync.legacy_config_hash() != sync.config_hash()
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    envs = {"pusht": SimpleNamespace(metric_columns=())}
    runner = Runner(store, SimpleNamespace(envs=envs, env=envs.__getitem__))  # type: ignore[arg-type]
    fields = {
        "policy": "noop", "policy_type": "noop", "policy_plugin": "scripted", "env": "pusht",
        "env_plugin": "pusht", "suite": "pusht_quick", "task": "push_t", "protocol": {},
        "protocol_hash": "p", "config": {}, "versions": {}, "host": "h", "policy_options": {},
        "n_episodes": 1,
    }  # fmt: skip
    store.get_or_create_run(sync.legacy_config_hash(), **fields)
    meta = runner.report_meta(replace(ASYNC, env_options=typed, env_options_given={}))
    assert meta["sync_config_hash"] == sync.legacy_config_hash()

def test_migration_knows_the_dataset_envs_metric_columns() -> None:
    from vlabench_plugins.dataset import SPEC

    assert SPEC.metric_columns == migration_0004().DATASET_METRICS
    assert SPEC.name == migration_0004().DATASET_ENV


# -- an old store --------------------------------------------------------------------------
OLD_RUNS = sa.table(  # the runs table at revision 0003
    "runs",
    *(sa.column(name) for name in (
        "config_hash", "policy", "policy_type", "policy_plugin", "env", "env_plugin", "suite",
        "task", "protocol_hash", "inference_mode", "host", "status", "n_episodes",
    )),
    sa.column("created_at", sa.DateTime(timezone=True)),
    *(sa.column(name, sa.JSON()) for name in ("policy_options", "protocol", "config", "versions")),
    sa.column("id"),
)  # fmt: skip
OLD_EPISODES = sa.table(
    "episodes",
    *(sa.column(name) for name in (
        "run_id", "episode_index", "task", "seed", "success", "steps", "reward_sum",
        "wall_time_s", "clipped_actions",
    )),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("metrics", sa.JSON()),
)  # fmt: skip
NOW = datetime(2026, 1, 2, tzinfo=UTC)


def insert_old_run(conn: sa.Connection, config: RunConfig | None, successes: str) -> int:
    """A run as the code before 0004 wrote it (``config=None``: a hand-written row)."""
    c = config or PUSHT
    row = conn.execute(
        OLD_RUNS.insert().returning(OLD_RUNS.c.id),
        dict(
            config_hash=c.config_hash() if config else "by-hand", policy=c.policy.name,
            policy_type=c.policy.type, policy_plugin=c.policy.plugin, env=c.env,
            env_plugin=c.env_plugin, suite=c.suite, task=c.task, protocol_hash=c.protocol_hash(),
            inference_mode=c.inference_mode, host="old", status="finished",
            n_episodes=len(successes), created_at=NOW, policy_options={},
            protocol=c.protocol.key() | {"episodes": c.protocol.episodes},
            config=c.as_dict() if config else {"suite": c.suite}, versions={},
        ),
    ).one()  # fmt: skip
    for i, outcome in enumerate(successes):
        metrics = {"open_loop.mse_norm": 0.1 * (i + 1), "open_loop.l1_norm": 0.2} if (
            c.env == "dataset"
        ) else {}
        conn.execute(OLD_EPISODES.insert(), dict(
            run_id=row.id, episode_index=i, task=c.task, seed=1000 + i, success=outcome == "s",
            steps=5, reward_sum=0.0, wall_time_s=0.1, clipped_actions=0, created_at=NOW,
            metrics=metrics,
        ))  # fmt: skip
    return int(row.id)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgres").create_database()
    return f"sqlite:///{tmp_path / 'old.db'}"


def test_an_old_store_upgrades_and_shows_the_same_board(db_url: str) -> None:
    from alembic import command

    from vlabench.report import board_from_store
    from vlabench.report.latency import latency_costs

    with open_store(db_url, upgrade=False) as old:
        with old.engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0003")
        with old.engine.begin() as conn:
            ids = {
                "sync": insert_old_run(conn, PUSHT, "sfs"),
                "async": insert_old_run(conn, ASYNC, "sff"),
                "dataset": insert_old_run(conn, DATASET, "ff"),
                "by hand": insert_old_run(conn, None, "s"),
            }
    with open_store(db_url) as store:
        meta = {name: store.get_run(i)["report_meta"] for name, i in ids.items()}  # type: ignore[index]
        assert meta["sync"] == {
            "inference_label": "", "sync_config_hash": PUSHT.config_hash(), "metrics": [],
            "groups": {},
        }  # fmt: skip
        assert meta["async"]["inference_label"] == "async 120ms g=0.5 weighted"
        assert meta["async"]["sync_config_hash"] == PUSHT.config_hash()
        assert meta["dataset"]["metrics"] == [
            {"name": "open_loop.mse_norm", "lower_is_better": True},
            {"name": "open_loop.l1_norm", "lower_is_better": True},
        ]
        assert meta["by hand"]["sync_config_hash"] is None
        assert all(m["groups"] == {} for m in meta.values())  # not known for old rows

        board = board_from_store(store)
        assert [c.label for c in board.columns] == [
            "pusht_quick", "so100 mse_norm", "so100 l1_norm"
        ]
        assert {r.policy for r in board.rows} == {
            "noop", "noop [async 120ms g=0.5 weighted]", "recorded"
        }
        sync_cell = board.cell("noop", "pusht_quick")  # the hand-written row pools in: sync
        assert sync_cell is not None and (sync_cell.n, sync_cell.successes) == (4, 3)
        mse = board.cell("recorded", "so100 mse_norm")
        assert mse is not None and mse.value == pytest.approx(0.15) and mse.column.lower_is_better
        (cost,) = latency_costs(store, [ids["async"]])
        assert cost.sync is not None and cost.sync.n == 3 and cost.sync.success_rate == 2 / 3
        assert cost.realtime.success_rate == 1 / 3
        assert board_from_store(store, by="group").columns == ()


# -- vlabench.report depends on the store alone ---------------------------------------------
ALLOWED = (
    "vlabench.api", "vlabench.stats", "vlabench.sequential", "vlabench.store", "vlabench.report"
)


def test_report_imports_neither_plugins_nor_plan_nor_registry() -> None:
    bad = []
    for path in sorted((ROOT / "vlabench" / "report").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "vlabench":
                names = [a.name for a in node.names]
                bad += [f"{path.name}: vlabench.{n}" for n in names
                        if n not in ("api", "stats", "sequential", "hookimpl")]  # fmt: skip
                continue
            modules = (
                [node.module or ""] if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names] if isinstance(node, ast.Import) else []
            )  # fmt: skip
            bad += [
                f"{path.name}: {m}" for m in modules
                if m.startswith("vlabench") and not m.startswith(ALLOWED)
            ]  # fmt: skip
    assert bad == []
