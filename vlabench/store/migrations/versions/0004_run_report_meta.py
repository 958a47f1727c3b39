"""What boards need, stored with each run: ``runs.report_meta`` (JSON).

The leaderboard and the latency report read only the store: the inference label, the
config hash of the same run in ``sync`` mode, the env's metric columns (with their
direction) and the task groups are written with the run (see ``Run.report_meta``).

Existing rows are filled here with the rules of the code that wrote them, copied below
(a migration must not import application code, which may change):

* ``inference_label`` and ``sync_config_hash`` from the stored ``inference_mode`` and
  ``config`` (as ``InferenceConfig.label()`` and ``config_hash_of`` computed them);
* ``metrics``: the ``dataset`` env's metric columns (the only env that declared any),
  lower is better; ``[]`` for every other env;
* ``groups``: ``{}``: the registry that applied when they were written is not known, so
  these runs fall in no ``--by group`` column (resuming a run keeps its stored fields).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 00:00:00
"""

import hashlib
import json
import math
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DATASET_ENV = "dataset"
DATASET_METRICS = ("open_loop.mse_norm", "open_loop.l1_norm")
"""``EnvSpec.metric_columns`` of the ``dataset`` env when this revision was written."""

_MODES = ("sync", "sync-realtime", "async")
_OPTIONS = frozenset({"latency", "chunk_threshold", "aggregate", "hold"})
_AGGREGATES = ("latest", "average", "weighted", "conservative")
_AGGREGATE_ALIASES = {"latest_only": "latest", "weighted_average": "weighted"}
_HOLDS = ("last", "noop")
_NUMBER = r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*"
_BATCH = 500


def _latency(spec: Any) -> tuple[str, bool]:
    """A latency model's canonical text and whether it is fixed (``LatencyModel.parse``)."""

    def fixed(ms: float) -> tuple[str, bool]:
        if not math.isfinite(ms) or ms < 0:
            raise ValueError(spec)
        return f"{ms:g}", True

    if spec is None:
        return "measured", False
    if isinstance(spec, int | float):
        return fixed(float(spec))
    text = str(spec).strip().lower().removesuffix("ms").strip()
    if text in ("", "measured"):
        return "measured", False
    if re.fullmatch(_NUMBER, text):
        return fixed(float(text))
    match = re.fullmatch(rf"(normal|uniform|lognormal):{_NUMBER},{_NUMBER}", text)
    if not match:
        raise ValueError(spec)
    kind, a, b = match.group(1), float(match.group(2)), float(match.group(3))
    if kind == "uniform" and b < a:
        raise ValueError(spec)
    return f"{kind}:{a:g},{b:g}", False


def inference_label(mode: Any, config: Any) -> str:
    """``InferenceConfig.from_options(mode, options).label()``; the mode when unreadable."""
    mode = str(mode or "sync")
    if mode == "sync":
        return ""
    options = (config.get("inference_options") if isinstance(config, dict) else None) or {}
    try:
        if mode not in _MODES or not isinstance(options, dict) or set(options) - _OPTIONS:
            raise ValueError(mode)
        latency, is_fixed = _latency(options.get("latency", "measured"))
        aggregate = options.get("aggregate", "weighted")
        aggregate = _AGGREGATE_ALIASES.get(aggregate, aggregate)
        threshold = float(options.get("chunk_threshold", 0.5))
        hold = options.get("hold", "last")
        if aggregate not in _AGGREGATES or not 0.0 <= threshold <= 1.0 or hold not in _HOLDS:
            raise ValueError(mode)
    except (TypeError, ValueError):
        return mode
    parts = [mode, f"{latency}ms" if is_fixed else latency]
    if mode == "async":
        parts += [f"g={threshold:g}", aggregate]
    if hold != "last":
        parts.append(f"hold={hold}")
    return " ".join(parts)


def sync_config_hash(config: Any) -> str | None:
    """``config_hash_of`` of the config in ``sync`` mode without options; None if unhashable."""
    if not isinstance(config, dict) or not config:
        return None
    try:
        data = json.loads(json.dumps(config, default=str))
        data["inference_mode"] = "sync"
        data.pop("inference_options", None)  # empty options are left out of the hash
        data["protocol"].pop("episodes", None)
        data.pop("env_isolation", None)
        data["policy"].pop("isolation", None)
    except (KeyError, TypeError, AttributeError):
        return None
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def report_meta(env: Any, mode: Any, config: Any) -> dict[str, Any]:
    metrics = DATASET_METRICS if env == DATASET_ENV else ()
    return {
        "inference_label": inference_label(mode, config),
        "sync_config_hash": sync_config_hash(config),
        "metrics": [{"name": m, "lower_is_better": True} for m in metrics],
        "groups": {},
    }


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("report_meta", sa.JSON(), nullable=True))
    if op.get_context().as_sql:  # offline (SQL script) mode: no rows to read
        return
    runs = sa.table(
        "runs",
        sa.column("id", sa.Integer()),
        sa.column("env", sa.String()),
        sa.column("inference_mode", sa.String()),
        sa.column("config", sa.JSON()),
        sa.column("report_meta", sa.JSON()),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(runs.c.id, runs.c.env, runs.c.inference_mode, runs.c.config).order_by(
            runs.c.id
        )
    ).all()
    statement = (
        runs.update()
        .where(runs.c.id == sa.bindparam("run_id"))
        .values(report_meta=sa.bindparam("meta", type_=sa.JSON()))
    )
    for start in range(0, len(rows), _BATCH):
        params = [
            {"run_id": run_id, "meta": report_meta(env, mode, config)}
            for run_id, env, mode, config in rows[start : start + _BATCH]
        ]
        conn.execute(statement, params)


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("report_meta")
