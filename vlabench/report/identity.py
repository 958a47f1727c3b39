"""Rows: a policy's identity as it was run, and a unique row label for each (see the rows rule
in :mod:`vlabench.report.board`)."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any


def policy_identity(run: Mapping[str, Any]) -> tuple[str, str, str, str, str, str]:
    """What makes a row: (name, type, checkpoint, checkpoint hash, options as JSON, inference).

    ``inference`` is the mode's label (empty for ``sync``).
    """
    options = json.dumps(run.get("policy_options") or {}, sort_keys=True, default=str)
    return (
        str(run["policy"]),
        str(run.get("policy_type") or ""),
        str(run.get("checkpoint") or ""),
        str(run.get("checkpoint_hash") or ""),
        options,
        inference_label(run),
    )


def report_meta(run: Mapping[str, Any]) -> Mapping[str, Any]:
    """What the run stored for boards (``Run.report_meta``); ``{}`` where nothing was."""
    meta = run.get("report_meta")
    return meta if isinstance(meta, Mapping) else {}


def inference_label(run: Mapping[str, Any]) -> str:
    """The run's stored inference label; empty for ``sync``.

    A run stored without one (written by hand) shows its bare mode name.
    """
    meta = report_meta(run)
    if "inference_label" in meta:
        return str(meta["inference_label"] or "")
    mode = str(run.get("inference_mode") or "sync")
    return "" if mode == "sync" else mode


def _short_hash(identity: tuple[str, ...]) -> str:
    return hashlib.sha256("\x1f".join(identity).encode()).hexdigest()[:8]


def policy_labels(runs: Iterable[Mapping[str, Any]]) -> dict[tuple[str, ...], str]:
    """A unique row label per policy identity: the name, or ``name@hash`` when ambiguous."""
    by_name: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for run in runs:
        identity = policy_identity(run)
        name = f"{identity[0]} [{identity[5]}]" if identity[5] else identity[0]
        by_name[name].add(identity)
    labels = {}
    for name, identities in by_name.items():
        if len(identities) == 1:
            labels[next(iter(identities))] = name
            continue
        for identity in identities:
            ckpt_hash = identity[3]
            same_hash = sum(1 for i in identities if i[3] == ckpt_hash)
            suffix = ckpt_hash[:8] if ckpt_hash and same_hash == 1 else _short_hash(identity)
            labels[identity] = f"{name}@{suffix}"
    return labels
