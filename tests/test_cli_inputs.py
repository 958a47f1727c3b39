"""What users type and name, through the real CLI: numeric flags are range-checked up front
with one line (exit code 2), and names that look like rich markup (``[/oops]``,
``[bold]x[/bold]``) print as they are in every command that prints names (issue 20, 4 and 9)."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from conftest import CLI

# -- 4: numeric flags ----------------------------------------------------------------------

RUN = ("run", "--policy", "noop", "--suite", "pusht_quick")
MATRIX = ("matrix", "--policy", "noop", "--suite", "pusht_quick")
INTERLEAVE = ("interleave", "--policy", "noop", "--policy", "random", "--suite", "pusht_quick")

BAD_FLAGS = [  # each ends with the flag and its bad value
    (*RUN, "--episodes", "0"),
    (*RUN, "-n", "-1"),
    (*MATRIX, "--episodes", "0"),
    (*INTERLEAVE, "-n", "0"),
    (*RUN, "--max-steps", "0"),
    (*MATRIX, "--max-steps", "-5"),
    (*INTERLEAVE, "--max-steps", "-5"),
    (*RUN, "--batch-size", "0"),
    (*MATRIX, "-b", "-4"),
    (*RUN, "--workers", "0"),
    (*MATRIX, "-j", "-3"),
    (*RUN, "--retries", "-1"),
    (*MATRIX, "--retries", "-1"),
    (*RUN, "--record-video", "-1"),
    (*MATRIX, "--record-video", "-1"),
    (*RUN, "--torch-threads", "0"),
    (*MATRIX, "--torch-threads", "-2"),
    (*RUN, "--chunk-threshold", "1.5"),
    (*MATRIX, "--chunk-threshold", "-0.1"),
    (*RUN, "--chunk-threshold", "nan"),
    (*RUN, "--inference", "async", "--latency-ms", "-5"),
    (*MATRIX, "--inference", "async", "--latency-ms", "uniform:50,10"),
    (*INTERLEAVE, "--order", "random", "--seed", "-1"),
    ("leaderboard", "--confidence", "1"),
    ("leaderboard", "--confidence", "nan"),
    ("compare", "noop", "random", "--confidence", "0"),
    ("serve", "policy", "noop", "--port", "70000"),
    ("serve", "env", "pusht", "--port", "-1"),
    ("serve", "policy", "noop", "--batch-wait-ms", "-1"),
    ("serve", "policy", "noop", "--batch-wait-ms", "inf"),
]
_LONG = {"-n": "--episodes", "-b": "--batch-size", "-j": "--workers"}


@pytest.mark.parametrize("args", BAD_FLAGS, ids=lambda a: " ".join((a[0], *a[-2:])))
def test_an_out_of_range_flag_is_one_line_exit_2_before_anything_runs(
    cli: CLI, args: tuple[str, ...]
) -> None:
    flag = _LONG.get(args[-2], args[-2])
    out = cli(*args, ok=False, timeout=60)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: {flag}") and args[-1] in lines[0], lines[0]
    assert out.stdout == ""
    assert not cli.db_path.exists()  # refused while parsing: no store, no run, no column


def test_the_range_messages_say_what_is_accepted(cli: CLI) -> None:
    said = {
        args: cli(*args, ok=False, timeout=60).stderr.strip()
        for args in (
            (*RUN, "--episodes", "0"),
            (*RUN, "--retries", "-1"),
            (*RUN, "--chunk-threshold", "1.5"),
            ("leaderboard", "--confidence", "1"),
            ("serve", "env", "pusht", "--port", "70000"),
            ("serve", "policy", "noop", "--batch-wait-ms", "inf"),
        )
    }
    assert list(said.values()) == [
        "error: --episodes must be >= 1, got 0",
        "error: --retries must be >= 0, got -1",
        "error: --chunk-threshold must be in [0, 1], got 1.5",
        "error: --confidence must be in (0, 1), got 1.0",
        "error: --port must be in [0, 65535], got 70000",
        "error: --batch-wait-ms must be a finite number >= 0, got inf",
    ]


def test_an_unknown_env_option_is_one_line_naming_the_env_options(cli: CLI) -> None:
    for args in (RUN, INTERLEAVE):
        out = cli(*args, "-n", "1", "-E", "bogus_option=1", ok=False, timeout=120)
        assert out.returncode == 2, out.stderr
        [line] = out.stderr.strip().splitlines()
        assert "bogus_option" in line and "image_size, render, reset_to_state" in line, line
    with cli.store() as store:
        assert store.runs() == []


def test_show_prints_the_env_options_that_make_two_protocols(cli: CLI) -> None:
    base = (*RUN, "-n", "1", "--max-steps", "2", "--executor", "inline")
    cli(*base)
    cli(*base, "-E", "image_size=64")
    with cli.store() as store:
        runs = sorted(store.runs(), key=lambda r: r["id"])
    assert len({r["protocol_hash"] for r in runs}) == 2
    assert runs[0]["protocol"] == runs[1]["protocol"]  # same JSON: the options make the difference
    shown = [cli("show", str(r["id"]), "--no-episodes").stdout for r in runs]
    options = [
        json.loads(re.search(r"env options \(part of the protocol, env pusht\): (.*)", s)[1])
        for s in shown
    ]
    assert [o["image_size"] for o in options] == [96, 64]


# -- 9: names that look like rich markup ----------------------------------------------------

P1, P2 = "[/oops]", "[bold]x[/bold]"  # two policy presets
SUITE = "[/oops]suite[bold]x[/bold]"  # a suite with a task list
GROUP = "[bold]x[/bold]group"  # a task group of SUITE (another suite with a task list)
MATRIX_NAME = "[/oops]matrix"
TYPE, ENV, ASSETS = "[/oops]type", "[bold]x[/bold]env", "[/oops]assets"
WIDE, CRASH = "[/oops]wide", "[bold]x[/bold]crash"  # incompatible; fails at load
PLUGIN = "hostile[/oops]"
CRASH_ERROR = "load failed [/oops] [bold]x[/bold]"

HOSTILE_PLUGIN = f'''
"""A plugin whose every name and message is rich markup."""

from dataclasses import replace

from vlabench import api, hookimpl
from vlabench_plugins.pusht import SPEC as PUSHT
from vlabench_plugins.scripted import noop


def _wide(request):
    action = replace(request.env.action, shape=(7,), space="[/oops]space", low=None, high=None)
    return api.PolicyInterface(inputs=(), action=action)


def _crash(request):
    raise RuntimeError({CRASH_ERROR!r})


@hookimpl
def vlabench_policies():
    return [
        replace(noop.SPEC, name={TYPE!r}, description="[bold]x[/bold] policy"),
        replace(noop.SPEC, name={WIDE!r}, description="[/oops]", describe=_wide),
        replace(noop.SPEC, name={CRASH!r}, description="[/oops]", load=_crash),
    ]


@hookimpl
def vlabench_envs():
    return [replace(PUSHT, name={ENV!r}, description="[/oops] env")]


def _status(location):
    return api.AssetStatus(False, "/tmp/[/oops]dir", ("[bold]x[/bold]file",), "[/oops] hint")


@hookimpl
def vlabench_assets():
    return [api.AssetSpec({ASSETS!r}, "[bold]x[/bold] data", _status, _status)]
'''

REGISTRY = {
    "suites": {
        SUITE: {
            "env": "pusht",
            "description": "[/oops] suite",
            "tasks": ["push_t"],
            "episodes": 1,
            "max_steps": 3,
            "protocol": "[/oops]protocol",
            "env_options": {"render": False},
            "groups": [GROUP],
        },
        GROUP: {"env": "pusht", "tasks": ["push_t"], "episodes": 1, "max_steps": 3},
    },
    "policies": {
        P1: {"type": "noop", "description": "[bold]x[/bold] preset"},
        P2: {"type": "random", "description": "[/oops] preset"},
    },
    "matrices": {MATRIX_NAME: {"policies": [P1, P2, WIDE, CRASH], "suites": [SUITE]}},
}


def _install_hostile_plugin(target: Path) -> Path:
    """A module and its dist-info on PYTHONPATH: found through its entry point as pip's would."""
    target.mkdir()
    (target / "vlabench_hostile.py").write_text(textwrap.dedent(HOSTILE_PLUGIN))
    info = target / "vlabench_hostile-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vlabench-hostile\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[vlabench]\n{PLUGIN} = vlabench_hostile\n")
    return target


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> CLI:
    """A store with runs of markup-named policies on a markup-named suite (one matrix)."""
    base = tmp_path_factory.mktemp("hostile")
    cli = CLI(base).with_plugins(_install_hostile_plugin(base / "plugin"))
    cli.env["COLUMNS"] = "400"  # no cell cut short: the names are asserted whole
    cli.registry(json.dumps(REGISTRY), "hostile.yaml")  # given as --registry hostile.yaml
    real = {"task_sets": {"hostile": {"suites": [SUITE], "tasks": {"push_t": {P1: 0.5, P2: 0.2}}}}}
    (base / "real.yaml").write_text(json.dumps(real))
    cli.matrix = cli(  # type: ignore[attr-defined]
        "--registry", "hostile.yaml", "matrix", "--name", MATRIX_NAME, "--executor", "inline"
    )
    return cli


NAMED = [  # (command, exit code, literal strings its output must hold)
    (("plugins",), 0, [PLUGIN, f"policy:{TYPE}", f"env:{ENV}", f"assets:{ASSETS}"]),
    (("list", "policies"), 0, [P1, P2, TYPE, "[bold]x[/bold] preset", "[bold]x[/bold] policy"]),
    (("list", "envs"), 0, [ENV, "[/oops] env", PLUGIN]),
    (("list", "suites"), 0, [SUITE, GROUP, "[/oops]protocol"]),
    (("list", "matrices"), 0, [MATRIX_NAME, f"{P1}, {P2}", SUITE]),
    (("check", P1, SUITE), 0, [f"compatible: {P1} on {SUITE}"]),
    (("check", WIDE, SUITE), 1, [f"incompatible: {WIDE} on {SUITE}", "[/oops]space"]),
    (("matrix", "--name", MATRIX_NAME, "--dry-run"), 0, [f"{P1} × {SUITE}", f"{WIDE} × {SUITE}"]),
    (
        ("matrix", "--name", MATRIX_NAME, "--executor", "inline"),
        0,
        [f"{P2} × {SUITE}/push_t", f"{WIDE} × {SUITE}: incompatible:", CRASH_ERROR, SUITE],
    ),
    (
        ("run", "--policy", CRASH, "--suite", SUITE, "--executor", "inline"),
        1,
        [f"failed {CRASH} × {SUITE}/push_t", CRASH_ERROR],
    ),
    (
        ("interleave", "--policy", P1, "--policy", P2, "--suite", SUITE, "--max-steps", "2"),
        0,
        [f"{P1} × {SUITE}/push_t episode 0", f"{P2} × {SUITE}/push_t episode 0"],
    ),
    (("leaderboard",), 0, [P1, P2, SUITE, CRASH_ERROR, "[/oops]space"]),
    (("leaderboard", "--suite", SUITE, "--policy", P2), 0, [f"suite={SUITE}", f"policy={P2}"]),
    (("leaderboard", "--by", "group"), 0, [P1, P2, f"{SUITE}:{GROUP}"]),
    (("compare", P1, P2), 0, [f"A = {P1} vs B = {P2}", SUITE]),
    (("show", "1"), 0, [f"run 1: {P1} × {SUITE}/push_t", "[/oops]protocol"]),
    (("show", P2), 0, [f"runs of {P2}", SUITE, "[/oops]protocol"]),
    (("show", P1, "--task", "push_t"), 0, [f"run 1: {SUITE}/push_t"]),
    (("assets",), 0, [ASSETS, "/tmp/[/oops]dir", "[bold]x[/bold]file", "[bold]x[/bold] data"]),
    (("assets", ASSETS, "--check"), 1, [ASSETS, "[bold]x[/bold]file", "[/oops] hint"]),
    (("sim-real", "--real", "real.yaml"), 0, [P1, P2, SUITE]),
]


@pytest.mark.parametrize(
    ("args", "code", "expected"), NAMED, ids=[f"{i}-{' '.join(a[:2])}" for i, (a, *_) in
                                              enumerate(NAMED)]
)
def test_markup_in_names_prints_literally(
    hostile: CLI, args: tuple[str, ...], code: int, expected: list[str]
) -> None:
    out = hostile("--registry", "hostile.yaml", *args, ok=False, timeout=240)
    said = out.stdout + out.stderr
    assert out.returncode == code and "Traceback" not in said, said
    missing = [text for text in expected if text not in said]
    assert not missing, f"{missing} not printed by vlabench {' '.join(args)}:\n{said}"


def test_the_matrix_of_markup_names_printed_its_results_and_board(hostile: CLI) -> None:
    out = hostile.matrix  # type: ignore[attr-defined]
    said = out.stdout + out.stderr
    assert "Traceback" not in said
    for text in (f"{WIDE} × {SUITE}: incompatible:", f"failed {CRASH} × {SUITE}/push_t",
                 CRASH_ERROR, "policy=", P1, P2, WIDE, CRASH, SUITE):  # the title wraps
        assert text in said, said
