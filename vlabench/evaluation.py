"""``vlabench.evaluate``: evaluate a policy or a checkpoint directory on a suite from Python.

For training loops: call it every N steps on the checkpoint just saved; every episode goes
to the store (a temporary one unless ``store`` is given) exactly as ``vlabench run`` writes
it, and the result holds the per-episode records and the success rate with its interval.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlabench.stats import wilson_interval


@dataclass(frozen=True)
class Summary:
    """Success over every episode of the runs: rate, n and the 95% Wilson interval."""

    successes: int
    n: int
    rate: float
    low: float
    high: float
    errored: int = 0

    def __str__(self) -> str:
        return (
            f"{100 * self.rate:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}] n={self.n}"
            + (f", {self.errored} errored" if self.errored else "")
        )


@dataclass
class Evaluation:
    """What :func:`evaluate` returns: episodes (dicts, as the store holds them), the summary
    and the stored runs (one per task: ``id``, ``label``, ``status``)."""

    episodes: list[dict[str, Any]]
    summary: Summary
    runs: list[dict[str, Any]] = field(default_factory=list)
    store: str = ""


def checkpoint_preset(path: str | Path, options: Mapping[str, Any] | None = None) -> Any:
    """A registry preset for a LeRobot checkpoint directory (type from its config.json)."""
    from vlabench.registry.schema import PolicyPreset

    config = Path(path) / "config.json"
    if not config.is_file():
        raise ValueError(f"{path}: no config.json; not a saved checkpoint directory")
    kind = json.loads(config.read_text()).get("type")
    if not kind:
        raise ValueError(f"{config}: no 'type' field")
    return PolicyPreset(
        type=kind, checkpoint=str(Path(path).resolve()), options=dict(options or {})
    )


def default_name(path: Path) -> str:
    """``RUN_STEP`` for ``RUN/checkpoints/STEP/pretrained_model``, else the directory's name
    (its parent's for a bare ``pretrained_model``)."""
    path = path.resolve()
    if path.name == "pretrained_model":
        path = path.parent
        if path.parent.name == "checkpoints":
            return f"{path.parent.parent.name}_{path.name}"
    return path.name


def evaluate(
    policy: str | Path,
    suite: str,
    episodes: int | None = None,
    store: str | None = None,
    *,
    name: str | None = None,
    options: Mapping[str, Any] | None = None,
    max_steps: int | None = None,
    tasks: Sequence[str] | None = None,
    batch_size: int = 1,
    env_options: Mapping[str, Any] | None = None,
    report_meta: Mapping[str, Any] | None = None,
    registry: Sequence[str | Path] | None = None,
) -> Evaluation:
    """Evaluate ``policy`` on ``suite`` in this process and return episodes and summary.

    ``policy``: a registry preset or policy type, or a checkpoint directory (``Path``, or a
    string naming an existing directory) whose ``config.json`` gives the LeRobot type; its
    preset is ``name`` (default: the directory's name) with ``options`` (e.g.
    ``action_space``, ``state_space``, ``rename_map``). ``store``: a SQLAlchemy URL
    (default: a temporary SQLite file). ``report_meta``: extra keys stored with each run
    (e.g. ``{"training_step": 2000}``). Re-running with the same store resumes/extends.
    """
    from vlabench.catalog import catalog as load_catalog
    from vlabench.execute.runner import Runner
    from vlabench.plan.jobs import plan
    from vlabench.registry import load_registry
    from vlabench.store import open_store

    cat = load_catalog()
    reg = load_registry(list(registry or []))
    if isinstance(policy, Path) or Path(str(policy)).is_dir():
        preset = checkpoint_preset(policy, options)
        policy = name or default_name(Path(policy))
        reg = dataclasses.replace(reg, policies={**reg.policies, str(policy): preset})
    url = store or f"sqlite:///{tempfile.mkdtemp(prefix='vlabench-')}/evaluate.db"
    pairs = plan(
        [str(policy)], [suite], reg, cat, episodes=episodes, max_steps=max_steps,
        tasks=list(tasks) if tasks else None, env_overrides=dict(env_options or {}),
    )  # fmt: skip
    for pair in pairs:
        if not pair.runnable:
            raise ValueError(f"{policy} x {suite}: {pair.status}: {pair.reason}")
    with open_store(url) as db:
        runner = Runner(db, cat, batch_size=batch_size)
        results = runner.run_pairs(pairs)
        runs, records = [], []
        for result in results:
            if report_meta:
                db.update_report_meta(result.run_id, **dict(report_meta))
            runs.append({"id": result.run_id, "label": result.label, "status": result.status})
            records += sorted(db.episodes(result.run_id), key=lambda e: e["episode_index"])
    wins = sum(bool(e["success"]) for e in records)
    n = len(records)
    low, high = wilson_interval(wins, n) if n else (0.0, 1.0)
    errored = sum(e.get("failure_reason") is not None for e in records)
    summary = Summary(wins, n, wins / n if n else 0.0, low, high, errored)
    return Evaluation(records, summary, runs, url)
