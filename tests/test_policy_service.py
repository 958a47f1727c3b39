"""A shared policy service for the matrix (``--policy-service``): each policy loaded once in its
own process, every worker's calls batched there. The episodes are exactly those of the inline
executor; rows of several workers really share a call; a service that crashes fails only the
episodes of the call it died in, and its replacement serves the rest. Real worker and service
processes, real signals, real SQLite stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import CLI

from vlabench.catalog import load_catalog
from vlabench.execute.executor import WorkerSetup
from vlabench.execute.inline import InlineExecutor
from vlabench.execute.processes import ProcessExecutor
from vlabench.execute.runner import Runner
from vlabench.execute.settings import ExecutionSettings
from vlabench.plan.jobs import plan
from vlabench.registry import load_registry
from vlabench.store import open_store

FIELDS = ("episode_index", "seed", "success", "steps", "reward_sum", "clipped_actions",
          "failure_reason")


def _episodes(executor: Any, db: Path, policies: list[str], episodes: int, steps: int,
              block: int | None = None) -> dict[str, dict[int, tuple]]:
    catalog = load_catalog()
    pairs = plan(policies, ["pusht_quick"], load_registry(), catalog, episodes=episodes,
                 max_steps=steps)
    with open_store(f"sqlite:///{db}") as store:
        results = Runner(store, catalog, executor=executor, block=block).run_pairs(pairs)
        assert [r.status for r in results] == ["finished"] * len(policies)
        return {
            run["policy"]: {
                e["episode_index"]: tuple(e[k] for k in FIELDS) for e in store.episodes(run["id"])
            }
            for run in store.runs()
        }


def test_a_shared_policy_service_gives_exactly_the_inline_episodes(tmp_path: Path) -> None:
    args = (["random", "noop"], 6, 20)
    inline = _episodes(InlineExecutor(load_catalog()), tmp_path / "inline.db", *args)
    settings = ExecutionSettings(policy_service=True, service_wait_ms=20.0)
    executor = ProcessExecutor(2, retries=0, setup=WorkerSetup(batch_size=2, settings=settings))
    served = _episodes(executor, tmp_path / "served.db", *args, block=2)
    assert served == inline
    assert len(served["random"]) == 6
    assert len({e[4] for e in served["random"].values()}) > 1  # rewards really were compared
    stats = executor.service_stats
    assert set(stats) == {"random", "noop"}
    random = stats["random"]["stats"]
    # two workers of two episodes each: some calls carried both workers' rows
    assert random["max_rows_per_call"] > 2
    assert random["rows"] == sum(int(k) * v for k, v in random["rows_per_call"].items())
    assert random["requests"] > random["calls"]


def test_a_crash_in_the_service_fails_only_the_episodes_of_its_call(
    plugin_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``segfault`` kills its own process at step 2 of the odd-numbered episodes
    monkeypatch.syspath_prepend(str(plugin_dirs["faulty"]))
    monkeypatch.setenv("PYTHONPATH", str(plugin_dirs["faulty"]))
    settings = ExecutionSettings(policy_service=True)
    executor = ProcessExecutor(1, retries=3, setup=WorkerSetup(settings=settings))
    notes: list[str] = []

    class Noted(Runner):
        def job_note(self, job: Any, text: str) -> None:
            notes.append(text)
            super().job_note(job, text)

    catalog = load_catalog()
    pairs = plan(["segfault"], ["pusht_quick"], load_registry(), catalog, episodes=5,
                 max_steps=6)
    with open_store(f"sqlite:///{tmp_path / 'crash.db'}") as store:
        [result] = Noted(store, catalog, executor=executor).run_pairs(pairs)
        assert result.status == "finished"
        episodes = {e["episode_index"]: e for e in store.episodes(result.run_id)}
    assert sorted(episodes) == [0, 1, 2, 3, 4]
    failed = {i: e["failure_reason"] for i, e in episodes.items() if e["failure_reason"]}
    assert sorted(failed) == [1, 3]  # each the only episode of the call that crashed
    for reason in failed.values():
        assert "connection lost" in reason
        assert "ws://127.0.0.1:" in reason
    assert {i: episodes[i]["steps"] for i in (0, 2, 4)} == {0: 6, 2: 6, 4: 6}
    assert {i: episodes[i]["steps"] for i in (1, 3)} == {1: 2, 3: 2}
    # each crash was seen and the service restarted; episodes 2 and 4 ran on the new ones
    restarted = [n for n in notes if "policy service of segfault" in n]
    assert len(restarted) == 2, notes
    assert all("SIGSEGV" in n and "restarted" in n for n in restarted)


def test_the_policy_service_flag_needs_the_processes_executor(cli: CLI) -> None:
    out = cli("matrix", "--policy", "noop", "--suite", "pusht_quick", "--executor", "inline",
              "--policy-service", ok=False)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].endswith(
        "--policy-service needs --executor processes, got inline"
    )
    assert "--policy-service" in cli("matrix", "--help").stdout


def test_verbose_prints_each_start_up_phase_once_with_its_seconds(cli: CLI) -> None:
    out = cli("run", "--policy", "noop", "--suite", "pusht_quick", "-n", "2", "--max-steps",
              "2", "--executor", "inline", "-q", "-v").stdout
    lines = out[out.index("start-up phases"):].splitlines()[1:]
    seconds = {line[:30].strip(): float(line[30:]) for line in lines}
    assert sorted(seconds) == sorted(["interpreter and imports", "plugins", "registry",
                                      "plan (pair checks)", "store open", "policy load",
                                      "env build", "process so far"])
    assert next(iter(seconds)) == "interpreter and imports"
    assert list(seconds)[-1] == "process so far"
    assert all(0 <= s < 120 for s in seconds.values())
    total = seconds.pop("process so far")
    assert sum(seconds.values()) <= total + 0.05  # the phases are parts of the process's time
    quiet = cli("run", "--policy", "noop", "--suite", "pusht_quick", "-n", "3", "--max-steps",
                "2", "--executor", "inline", "-q").stdout
    assert "start-up phases" not in quiet


def test_the_store_reads_its_migration_heads_as_alembic_does_without_importing_it() -> None:
    import subprocess
    import sys

    from alembic.script import ScriptDirectory

    from vlabench.store.engine import alembic_config, head_revisions, known_revisions

    script = ScriptDirectory.from_config(alembic_config())
    assert head_revisions() == frozenset(script.get_heads())
    assert known_revisions() == frozenset(r.revision for r in script.walk_revisions())
    # opening a store at head (the start-up of every writing command) never imports alembic
    code = ("import sys, tempfile\nfrom vlabench.store import open_store\n"
            "d = tempfile.mkdtemp()\nopen_store(f'sqlite:///{d}/s.db').close()\n"
            "assert 'alembic' in sys.modules  # created: migrated\n"
            "for m in [m for m in sys.modules if m.startswith('alembic')]: del sys.modules[m]\n"
            "open_store(f'sqlite:///{d}/s.db').close()\n"
            "print(sorted(m for m in sys.modules if m.startswith('alembic')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
