"""registry.yaml loading, merging, validation errors, and config hashing."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlabench.catalog import load_catalog
from vlabench.plan.resolve import resolve_policy, resolve_suite
from vlabench.registry import RegistryError, SuiteConfig, load_file, load_registry


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_default_registry_is_valid_and_has_the_default_matrix() -> None:
    reg = load_registry()
    assert {"pusht", "pusht_quick"} <= set(reg.suites)
    default = reg.matrix("default")  # the demo: policies that really differ (tests/test_demo.py)
    assert default.suites == ["metaworld_mt10"]
    assert {"metaworld-expert", "random", "noop"} <= set(default.policies)


def test_user_files_merge_later_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLABENCH_REGISTRY", raising=False)
    a = write(tmp_path, "a.yaml", "suites:\n  pusht:\n    env: pusht\n    episodes: 7\n")
    b = write(
        tmp_path,
        "b.yaml",
        "suites:\n  pusht:\n    env: pusht\n    episodes: 9\n"
        "adapters:\n  - {env: pusht, steps: [{type: set_space, feature: a, space: b}]}\n",
    )
    reg = load_registry([a, b])
    assert reg.suite("pusht").episodes == 9
    assert reg.files[-2:] == [a, b]
    assert reg.adapter_steps(["anything"], "pusht")[0]["type"] == "set_space"
    assert reg.adapter_steps(["anything"], "other_env") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("suites: [1, 2", "not valid YAML"),
        ("- just a list", "expected a mapping at the top level"),
        ("policies:\n  p:\n    kind: noop\n", ":3: policies.p.kind: unknown key"),
        ("policies:\n  p:\n    options: {}\n", "policies.p.type: Field required"),
        ("adapters:\n  - env: pusht\n    steps: [{low: 1}]\n", "step 0 needs a 'type'"),
        ("suites:\n  s:\n    env: pusht\n    success: sometimes\n", ":4: suites.s.success"),
        ("version: 2\n", "version"),
    ],
)
def test_invalid_files_say_where_and_why(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(RegistryError) as err:
        load_file(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_entries_know_their_file_and_with_suite_copies(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "suites:\n  mine:\n    env: pusht\n    episodes: 3\n")
    reg = load_registry([path])
    assert reg.where("suites", "mine", "episodes") == f"{path}:4"
    assert reg.where("suites", "pusht") is not None and reg.where("suites", "nope") is None
    bare = reg.with_suite("mine", SuiteConfig(env="metaworld"))
    assert bare.suite("mine").env == "metaworld" and bare.where("suites", "mine") is None
    assert reg.suite("mine").env == "pusht" and reg.where("suites", "mine") == f"{path}:3"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read registry file"):
        load_file(tmp_path / "nope.yaml")


def test_config_hash_ignores_episode_count_but_not_protocol() -> None:
    reg, cat = load_registry(), load_catalog()
    policy = resolve_policy("noop", reg, cat)
    [a] = resolve_suite("pusht", policy, reg, cat, episodes=2)
    [b] = resolve_suite("pusht", policy, reg, cat, episodes=20)
    [c] = resolve_suite("pusht", policy, reg, cat, max_steps=50)
    assert a.config_hash() == b.config_hash() and a.protocol_hash() == b.protocol_hash()
    assert a.config_hash() != c.config_hash() and a.protocol_hash() != c.protocol_hash()
    other = resolve_policy("random", reg, cat)
    [d] = resolve_suite("pusht", other, reg, cat)
    assert d.protocol_hash() == a.protocol_hash() and d.config_hash() != a.config_hash()


def test_unknown_task_and_plugin_mismatch(tmp_path: Path) -> None:
    reg, cat = load_registry(), load_catalog()
    policy = resolve_policy("noop", reg, cat)
    with pytest.raises(RegistryError, match="has no task 'stack'"):
        resolve_suite("pusht", policy, reg, cat, tasks=["stack"])
    extra = write(tmp_path, "x.yaml", "policies:\n  n2: {type: noop, plugin: lerobot}\n")
    with pytest.raises(RegistryError, match="comes from plugin 'scripted'"):
        resolve_policy("n2", load_registry([extra]), cat)
