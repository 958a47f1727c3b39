"""A preset's ``resources`` on one machine: the processes executor and the policy service.

Ray places jobs by their preset's ``resources`` (tests/test_ray_cluster.py); on one machine the
same presets must not run somewhere they cannot: a Ray node's custom resource fails its jobs
at once with the way out, a GPU count the machine lacks likewise, and a policy service gets
as many GPUs as its preset asks for.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vlabench.catalog import load_catalog
from vlabench.execute.executor import local_placement_error
from vlabench.execute.service import service_gpus
from vlabench.plan.jobs import Job, plan
from vlabench.registry import load_registry

SUITE = "pusht_quick"
PRESETS = (
    "policies:\n"
    "  noop_on_node_b: {type: noop, resources: {node_b: 1}}\n"
    "  noop_two_gpus: {type: noop, resources: {num_gpus: 2}}\n"
)


def _jobs(tmp_path: Path) -> dict[str, Job]:
    (tmp_path / "r.yaml").write_text(PRESETS)
    registry = load_registry([tmp_path / "r.yaml"])
    names = ["noop_on_node_b", "noop_two_gpus", "noop"]
    pairs = plan(names, [SUITE], registry, load_catalog(), episodes=2)
    return {name: Job(pair.runs[0], 1, (0, 1)) for name, pair in zip(names, pairs, strict=True)}


def test_resources_one_machine_cannot_honour_are_named(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    error = local_placement_error(jobs["noop_on_node_b"], ["0", "1"])
    assert error is not None and "node_b" in error and "--executor ray" in error
    error = local_placement_error(jobs["noop_two_gpus"], ["0"])
    assert error is not None and "2 GPU(s)" in error and "shows 1" in error
    assert local_placement_error(jobs["noop_two_gpus"], ["0", "1"]) is None
    assert local_placement_error(jobs["noop"], []) is None


def test_a_service_gets_as_many_gpus_as_its_preset_asks_for(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    two, plain = jobs["noop_two_gpus"].config.policy, jobs["noop"].config.policy
    gpus = ["0", "1", "2", "3"]
    assert service_gpus(two, 0, gpus) == ["0", "1"]
    assert service_gpus(two, 1, gpus) == ["2", "3"]
    assert service_gpus(plain, 0, gpus) == ["0"]
    assert service_gpus(plain, 5, gpus) == ["1"]
    assert service_gpus(two, 0, ["7"]) == ["7"]  # never more than there are


def test_processes_executor_fails_unplaceable_jobs_at_once_and_runs_the_rest(
    tmp_path: Path,
) -> None:
    (tmp_path / "r.yaml").write_text(PRESETS)
    db = tmp_path / "p.db"
    command = [
        sys.executable, "-m", "vlabench.cli", "--db", f"sqlite:///{db}", "--registry",
        str(tmp_path / "r.yaml"), "matrix", "--policy", "noop_on_node_b", "--policy", "noop",
        "--suite", SUITE, "-n", "2", "--executor", "processes", "--workers", "2",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    out = done.stdout + done.stderr
    assert "node_b" in out and "--executor ray" in out, out
    from vlabench.store.store import open_store

    store = open_store(f"sqlite:///{db}", read_only=True)
    runs = {run["policy"]: run for run in store.runs()}
    assert runs["noop_on_node_b"]["status"] == "failed"
    assert "--executor ray" in (runs["noop_on_node_b"]["error"] or "")
    assert runs["noop"]["status"] == "finished"
    assert len(store.episodes(runs["noop"]["id"])) == 2
