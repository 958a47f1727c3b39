"""Typed env options: validated, defaults filled in before hashing; old hashes still resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlabench import api
from vlabench.catalog import load_catalog
from vlabench.plan.configs import config_hash_of
from vlabench.plan.jobs import plan, stored_hash
from vlabench.plan.options import complete_options
from vlabench.plan.resolve import resolve_policy, resolve_suite
from vlabench.registry import Registry, RegistryError, SuiteConfig, load_registry

GOLDEN = Path(__file__).parent / "golden" / "matrix_episodes.json"


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def _pusht(cat, **options) -> object:
    reg = Registry(suites={"s": SuiteConfig(env="pusht", env_options=options)})
    [config] = resolve_suite("s", resolve_policy("noop", reg, cat), reg, cat)
    return config


def test_legacy_hash_of_the_golden_matrix_is_the_recorded_one(cat) -> None:
    """Runs stored by the old core (options hashed as given) are found again."""
    golden = json.loads(GOLDEN.read_text())
    pairs = plan(
        ["noop", "random", "metaworld-expert"],
        ["pusht_quick", "metaworld_mt1_reach-v3"],
        load_registry(),
        cat,
        episodes=3,
    )
    configs = {(p.policy.name, c.suite, c.task): c for p in pairs for c in p.runs}
    assert len(configs) == len(golden["runs"]) == 6
    for run in golden["runs"]:
        config = configs[(run["policy"], run["suite"], run["task"])]
        assert config_hash_of(run["config"]) == run["config_hash"]  # the hashing is unchanged
        assert config.legacy_config_hash() == run["config_hash"], run["suite"]
        assert config.config_hashes()[-1] == run["config_hash"]
        if run["suite"] == "pusht_quick":  # given {}: now hashed with PushT's defaults
            assert run["config"]["env_options"] == {}
            assert config.env_options == {"image_size": 96, "render": True}
            assert config.config_hash() != run["config_hash"]
        else:  # Meta-World suites spell every default out: the hash did not move
            assert config.config_hash() == run["config_hash"]


def test_defaults_spelled_out_are_one_protocol(cat) -> None:
    empty, spelled = _pusht(cat), _pusht(cat, image_size=96, render=True)
    assert empty.protocol_hash() == spelled.protocol_hash()
    assert empty.config_hash() == spelled.config_hash()
    assert empty.legacy_config_hash() != spelled.legacy_config_hash()  # as the old core did
    other = _pusht(cat, image_size=64)
    assert other.protocol_hash() != empty.protocol_hash()
    assert other.env_options == {"image_size": 64, "render": True}
    # None defaults are "absent"; the runner's own options are never validated nor stored
    pinned = _pusht(cat, reset_to_state=[1, 2, 3, 4, 5])
    assert pinned.env_options["reset_to_state"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    runner_set = _pusht(cat, **{api.REQUESTED_FEATURES_OPTION: ["observation.state"]})
    assert runner_set.config_hash() == empty.config_hash()


def test_unknown_or_mistyped_option_in_a_registry_file_names_file_and_line(
    cat, tmp_path: Path
) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "suites:\n  mine:\n    env: pusht\n    env_options:\n      image_size: 64\n"
        "      imagesize: 32\n  typed:\n    env: pusht\n    env_options:\n"
        "      render: maybe\n"
    )
    reg = load_registry([path])
    noop = resolve_policy("noop", reg, cat)
    with pytest.raises(RegistryError) as err:
        resolve_suite("mine", noop, reg, cat)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:6: suite 'mine': env_options.imagesize: unknown option")
    assert "options: image_size, render, reset_to_state" in message
    with pytest.raises(RegistryError, match=r":10: suite 'typed': env_options.render: .*boolean"):
        resolve_suite("typed", noop, reg, cat)
    assert reg.suites["mine"].env_options == {"image_size": 64, "imagesize": 32}  # untouched


def test_unknown_option_from_the_cli_names_the_flag(cat) -> None:
    reg = load_registry()
    with pytest.raises(RegistryError) as err:
        plan(["noop"], ["pusht_quick"], reg, cat, env_overrides={"imagesize": 3})
    assert str(err.value).startswith("-E imagesize: unknown option of env 'pusht'")
    with pytest.raises(RegistryError, match=r"^-E image_size: .*integer, got '3'$"):
        plan(["noop"], ["pusht_quick"], reg, cat, env_overrides={"image_size": "3"})
    [pair] = plan(["noop"], ["pusht_quick"], reg, cat, env_overrides={"image_size": 64})
    assert pair.runs[0].env_options["image_size"] == 64
    assert reg.suites["pusht_quick"].env_options == {}  # the registry is not patched


def test_runner_keeps_using_a_run_stored_under_the_legacy_hash(cat, tmp_path: Path) -> None:
    from vlabench.execute.runner import Runner
    from vlabench.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'old.db'}")
    [pair] = plan(["noop"], ["pusht_quick"], load_registry(), cat, episodes=2)
    config = pair.runs[0]
    legacy = config.legacy_config_hash()
    assert legacy != config.config_hash()
    runner = Runner(store, cat)
    old_id, _ = store.get_or_create_run(legacy, **runner.run_fields(config, "finished", None))
    assert stored_hash(store, config) == legacy
    jobs, [result] = runner.plan_jobs([pair])
    assert result.run_id == old_id and {j.run_id for j in jobs} == {old_id}
    assert store.find_run(config.config_hash()) is None  # no second run was created
    fresh = open_store(f"sqlite:///{tmp_path / 'new.db'}")
    assert stored_hash(fresh, config) == config.config_hash()


def test_an_old_store_shows_one_column_per_protocol(cat, tmp_path: Path) -> None:
    """A run stored with the options as given (legacy protocol hash) and a new run of another
    policy on the same suite land in one leaderboard column."""
    from vlabench.execute.runner import Runner
    from vlabench.report.board import board_from_store
    from vlabench.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'old.db'}")
    reg = load_registry()
    [old] = plan(["noop"], ["pusht_quick"], reg, cat, episodes=1)
    config = old.runs[0]
    assert config.legacy_protocol_hash() != config.protocol_hash()
    runner = Runner(store, cat)
    fields = runner.run_fields(config, "finished", None)
    fields["protocol_hash"] = config.legacy_protocol_hash()  # as the old core stored it
    store.get_or_create_run(config.legacy_config_hash(), **fields)
    [new] = plan(["random"], ["pusht_quick"], reg, cat, episodes=1)
    runner.plan_jobs([new])
    hashes = {r["protocol_hash"] for r in store.runs()}
    assert hashes == {config.protocol_hash()}
    assert [c.label for c in board_from_store(store).columns] == ["pusht_quick"]


@pytest.mark.parametrize("env", ["pusht", "metaworld", "libero", "simpler", "parol6"])
def test_each_builtin_env_accepts_its_completed_defaults(cat, env: str) -> None:
    """The model's defaults are the plugin's: its own parsing reads them as it reads ``{}``."""
    spec = cat.env(env)
    assert spec.options is not None
    assert spec.options.model_config.get("extra") == "forbid"
    complete = complete_options(spec.options, {})
    assert spec.interface(complete) == spec.interface({})
    with pytest.raises(ValueError):
        complete_options(spec.options, {"no_such_option": 1})


def test_parol6_model_describes_every_option_parse_options_knows() -> None:
    from dataclasses import fields

    from vlabench_plugins.parol6.options import Parol6EnvOptions, Parol6Options, parse_options
    from vlabench_plugins.parol6.safety import SafetyConfig

    known = ({f.name for f in fields(Parol6Options)} - {"safety"}) | {
        f.name for f in fields(SafetyConfig)
    }
    assert set(Parol6EnvOptions.model_fields) == known
    assert parse_options(complete_options(Parol6EnvOptions, {})) == parse_options({})
    given = {"operator_script": ["n", 30, "slipped"], "control_hz": 50, "image_size": [96, 128]}
    assert parse_options(complete_options(Parol6EnvOptions, given)) == parse_options(given)


def test_dataset_needs_its_dataset_option(cat) -> None:
    reg = Registry(suites={"d": SuiteConfig(env="dataset", env_options={"split": [1]})})
    noop = resolve_policy("noop", reg, cat)
    with pytest.raises(RegistryError, match=r"env_options\.dataset: env 'dataset' needs this"):
        resolve_suite("d", noop, reg, cat)
