"""Execution settings (videos, arming, torch threads) travel explicitly, from the CLI on the
executor's WorkerSetup to each JobWorker and from there through the contracts, never through
environment variables."""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from vlabench import api
from vlabench.catalog import load_catalog
from vlabench.execute import processes
from vlabench.execute.choose import make_executor
from vlabench.execute.executor import WorkerSetup
from vlabench.execute.local import JobWorker
from vlabench.execute.runner import Runner
from vlabench.execute.settings import ExecutionSettings
from vlabench.plan.jobs import plan
from vlabench.plan.resolve import resolve_policy, resolve_suite
from vlabench.registry import RegistryError, load_registry
from vlabench.runtime import video
from vlabench.store import open_store

ROOT = Path(__file__).resolve().parent.parent
OLD_VARIABLES = ("VLABENCH_RECORD_VIDEO", "VLABENCH_VIDEO_DIR", "VLABENCH_ARMED",
                 "VLABENCH_TORCH_THREADS")
SETS_ENVIRON = re.compile(
    r"os\.environ\s*\[[^\]]*\]\s*=(?!=)|os\.environ\.(update|setdefault|pop|clear)\(|os\.putenv\("
)


def test_the_core_never_sets_the_environment() -> None:
    """No module of the core writes os.environ, and the old variables are gone everywhere."""
    offenders = []
    for path in sorted((ROOT / "vlabench").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if SETS_ENVIRON.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
    for folder in ("vlabench", "plugins", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text()
            assert not [v for v in OLD_VARIABLES if v in text], path


def test_settings_are_frozen_picklable_and_checked(tmp_path: Path) -> None:
    settings = ExecutionSettings.create(record_video=2, video_dir=tmp_path / "v", armed=True,
                                        torch_threads=3)
    assert pickle.loads(pickle.dumps(WorkerSetup(settings=settings))).settings == settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.armed = False  # type: ignore[misc]
    assert settings.video_dir == str((tmp_path / "v").resolve())
    assert settings.video_run_dir("abc") == str((tmp_path / "v" / "abc").resolve())
    assert ExecutionSettings.create(video_dir=tmp_path).video_run_dir("abc") is None  # N = 0
    for bad in ({"record_video": -1, "video_dir": "x"}, {"record_video": 1},
                {"torch_threads": 0}):
        with pytest.raises(ValueError):
            ExecutionSettings(**bad)
    # the runner owns api.ARMED_OPTION: present exactly when armed, whatever a config held
    assert settings.env_options({"a": 1}) == {"a": 1, api.ARMED_OPTION: True}
    assert ExecutionSettings().env_options({"a": 1, api.ARMED_OPTION: True}) == {"a": 1}


def test_a_suite_can_never_carry_the_armed_option() -> None:
    catalog, registry = load_catalog(), load_registry()
    suite = registry.suites["parol6_fake"]
    options = {**suite.env_options, api.ARMED_OPTION: True}
    registry.suites["parol6_fake"] = suite.model_copy(update={"env_options": options})
    with pytest.raises(RegistryError, match="set by the runner only"):
        resolve_suite("parol6_fake", resolve_policy("noop", registry, catalog), registry, catalog)


def test_the_job_worker_hands_settings_on_through_the_contracts(tmp_path: Path) -> None:
    """Threads reach the policy on its request, arming the env as the runner's option, videos
    the rollout; a config's own ``armed`` never reaches the env unarmed."""
    catalog, registry = load_catalog(), load_registry()
    requests: list[api.PolicyRequest] = []
    made: list[dict[str, Any]] = []
    noop, pusht = catalog.policies["noop"], catalog.envs["pusht"]

    def load(request: api.PolicyRequest) -> api.Policy:
        requests.append(request)
        return noop.load(request)

    def make(task: str, options: Any) -> Any:
        made.append(dict(options))
        return pusht.make(task, options)

    catalog.policies["noop"] = dataclasses.replace(noop, load=load)
    catalog.envs["pusht"] = dataclasses.replace(pusht, make=make)
    [config] = resolve_suite(
        "pusht_quick", resolve_policy("noop", registry, catalog), registry, catalog, max_steps=3
    )
    records: list[api.EpisodeRecord] = []
    settings = ExecutionSettings.create(
        record_video=1, video_dir=tmp_path, armed=True, torch_threads=2
    )
    JobWorker(catalog, settings=settings).run(config, [0, 1], records.append)
    assert requests[-1].threads == 2
    assert made[-1][api.ARMED_OPTION] is True
    first, second = records
    assert Path(first.video_path or "").parent == tmp_path.resolve() / config.config_hash()
    assert second.video_path is None  # only the first episode of the task
    # unarmed: the option is absent even when a (hand-made) config carries it
    forged = dataclasses.replace(config, env_options={**config.env_options,
                                                      api.ARMED_OPTION: True})
    JobWorker(catalog).run(forged, [0], records.append)
    assert api.ARMED_OPTION not in made[-1] and requests[-1].threads is None


def test_worker_processes_record_videos_without_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A processes-executor matrix with videos: the files exist, while neither this process
    nor any worker's environment got a setting."""
    for name in OLD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    spawned: list[dict[str, str]] = []
    popen = subprocess.Popen

    def spy(command: Any, *args: Any, **kwargs: Any) -> Any:
        if "vlabench.execute.processes" in list(command):  # a worker (not e.g. git)
            spawned.append(dict(kwargs.get("env") or os.environ))
        return popen(command, *args, **kwargs)

    monkeypatch.setattr(processes.subprocess, "Popen", spy)
    catalog, registry = load_catalog(), load_registry()
    videos = tmp_path / "videos"
    settings = ExecutionSettings.create(record_video=1, video_dir=videos)
    executor = make_executor("processes", catalog, workers=2, retries=0, settings=settings)
    pairs = plan(["noop", "random"], ["pusht_quick"], registry, catalog, episodes=2, max_steps=4)
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        results = Runner(store, catalog, executor=executor, block=1).run_pairs(pairs)
        assert [r.status for r in results] == ["finished", "finished"]
        paths = {
            run["config_hash"]: [e["video_path"] for e in store.episodes(run["id"])]
            for run in store.runs()
        }
    assert len(spawned) == 2 and os.environ == before
    for env in spawned:
        assert not [k for k in env if k in OLD_VARIABLES]
        assert {k: v for k, v in env.items() if k.startswith("VLABENCH_")} == {
            k: v for k, v in before.items() if k.startswith("VLABENCH_")
        }
    assert len(paths) == 2
    for config_hash, (first, second) in paths.items():
        assert second is None
        assert Path(first).parent == videos.resolve() / config_hash
        assert video.count_frames(first) == 5  # the reset frame + 4 steps
