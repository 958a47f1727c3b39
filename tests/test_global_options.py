"""Global options work after the command as well as before it (issue 25), and a suite's
declared ``groups`` are checked when the registry loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlabench.cli import app
from vlabench.cli.app import GLOBAL_FLAGS, GLOBAL_VALUE_OPTIONS, hoist_global_options
from vlabench.registry import RegistryError, load_registry


def test_hoist_moves_global_options_with_their_values() -> None:
    args = ["run", "--policy", "noop", "-q", "--db", "sqlite:///x.db", "--registry=r.yaml",
            "-p", "simpler", "-pfoo", "--plugins", "a,b", "--init", "--", "-q"]  # fmt: skip
    assert hoist_global_options(args) == [
        "-q", "--db", "sqlite:///x.db", "--registry=r.yaml", "-p", "simpler", "-pfoo",
        "--plugins", "a,b", "--init", "run", "--policy", "noop", "--", "-q",
    ]
    nested = ["--db", "u", "serve", "policy", "--help", "-q"]
    assert hoist_global_options(nested) == ["--db", "u", "-q", "serve", "policy", "--help"]
    assert hoist_global_options(["-q", "run", "--policy", "x"]) == ["-q", "run", "--policy", "x"]


def _names(command: object) -> set[str]:
    out: set[str] = set()
    for param in getattr(command, "params", ()):
        out.update(getattr(param, "opts", ()))
        out.update(getattr(param, "secondary_opts", ()))
    for sub in getattr(command, "commands", {}).values():
        out |= _names(sub)
    return out


def test_no_command_defines_a_global_option_name() -> None:
    import typer.main

    group = typer.main.get_command(app)
    commands = set()
    for sub in group.commands.values():  # type: ignore[attr-defined]
        commands |= _names(sub)
    assert not commands & (GLOBAL_VALUE_OPTIONS | GLOBAL_FLAGS)


@pytest.mark.parametrize(
    "tail",
    [["-q"], ["--quiet"], ["--init"], ["-p", "simpler"], ["--disable-plugin", "simpler"],
     ["--plugins", "scripted,pusht"]],
)
def test_run_takes_global_options_after_the_command(tmp_path: Path, tail: list[str]) -> None:
    db = f"sqlite:///{tmp_path / 'b.db'}"
    args = ["run", "--policy", "noop", "--suite", "pusht", "-n", "1", "--max-steps", "2",
            "--db", db, *tail]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1 run(s), 1 new episode(s) stored" in result.output
    board = CliRunner().invoke(app, ["leaderboard", "--format", "csv", "--db", db, "-q"])
    assert board.exit_code == 0 and "noop" in board.output, board.output


def test_registry_after_the_command(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text("suites:\n  tiny_push: {env: pusht, tasks: [push_t], episodes: 1}\n")
    db = f"sqlite:///{tmp_path / 'b.db'}"
    args = ["run", "--policy", "noop", "--suite", "tiny_push", "--max-steps", "2",
            "--registry", str(extra), f"--db={db}"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1 run(s), 1 new episode(s) stored" in result.output
    help_ = CliRunner().invoke(app, ["serve", "policy", "--help", "-q", "--db", db])
    assert help_.exit_code == 0, help_.output


@pytest.mark.parametrize(
    ("groups", "why"),
    [
        ("[nope]", "group 'nope' of suite 'mine' names no suite"),
        ("[pusht]", "group 'pusht' of suite 'mine' is a suite of env 'pusht', not 'metaworld'"),
        ("[metaworld_mt50]", "group 'metaworld_mt50' of suite 'mine' has no task list"),
    ],
)
def test_declared_groups_are_checked(tmp_path: Path, groups: str, why: str) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(f"suites:\n  mine:\n    env: metaworld\n    groups: {groups}\n")
    with pytest.raises(RegistryError) as info:
        load_registry([extra])
    message = str(info.value)
    assert "\n" not in message and why in message
    assert message.startswith(f"{extra}:4")  # file:line of the bad group


def test_mt50_declares_the_difficulty_groups_in_order() -> None:
    reg = load_registry()
    groups = [g for g, _ in reg.task_groups("metaworld_mt50")]
    assert groups == ["metaworld_easy", "metaworld_medium", "metaworld_hard",
                      "metaworld_very_hard"]  # fmt: skip
    tasks = [t for _, ts in reg.task_groups("metaworld_mt50") for t in ts]
    assert len(tasks) == len(set(tasks)) == 50
