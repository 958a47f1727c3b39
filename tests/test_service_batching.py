"""A policy preset's ``max_batch`` / ``batch_wait_ms`` reach its policy service."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlabench.catalog import load_catalog
from vlabench.execute.service import batching
from vlabench.plan.configs import EvalProtocol, RunConfig
from vlabench.plan.resolve import resolve_policy
from vlabench.registry import load_registry


def _registry(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "extra.yaml"
    path.write_text(body)
    return path


def test_preset_batching_overrides_the_runs(tmp_path: Path) -> None:
    path = _registry(
        tmp_path,
        "policies:\n"
        "  small_batches: {type: random, max_batch: 4, batch_wait_ms: 0.5}\n"
        "  run_defaults: {type: random}\n",
    )
    catalog, registry = load_catalog(), load_registry([path])
    small = resolve_policy("small_batches", registry, catalog)
    plain = resolve_policy("run_defaults", registry, catalog)
    assert batching(small, 64, 5.0) == (4, 0.5)
    assert batching(plain, 64, 5.0) == (64, 5.0)


def test_batching_is_not_part_of_the_run_identity(tmp_path: Path) -> None:
    body = "policies:\n  random: {type: random, options: {seed: 0}, max_batch: 2}\n"
    path = _registry(tmp_path, body)
    catalog = load_catalog()
    batched = resolve_policy("random", load_registry([path]), catalog)
    default = resolve_policy("random", load_registry(), catalog)
    assert batched.max_batch == 2 and default.max_batch is None
    assert batched == default
    protocol = EvalProtocol("p", 5, 100, 0, "ever", True, 0)
    configs = [
        RunConfig(choice, "s", "pusht", "pusht", {}, "push_t", protocol, [])
        for choice in (batched, default)
    ]
    assert configs[0].config_hash() == configs[1].config_hash()  # stored runs resume
    assert "max_batch" not in configs[0].as_dict()["policy"]


@pytest.mark.parametrize("bad", ["max_batch: 0", "max_batch: 1.5", "batch_wait_ms: -1"])
def test_bad_batching_is_an_error_naming_the_key(tmp_path: Path, bad: str) -> None:
    path = _registry(tmp_path, f"policies:\n  p: {{type: random, {bad}}}\n")
    with pytest.raises(Exception, match=bad.split(":")[0]):
        load_registry([path])
