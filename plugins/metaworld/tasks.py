"""Meta-World task facts: the v3 task list, MT10, difficulty groups and instructions.

The task list and MT10 come from the installed ``metaworld``; the language instructions and
the easy / medium / hard / very_hard split come from the installed LeRobot package
(``lerobot/envs/metaworld_config.json``), read at run time so that checkpoints fine-tuned on
LeRobot's Meta-World data see exactly the instructions they were trained on. Nothing here is
copied from either package.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from functools import cache
from pathlib import Path
from typing import Any

from .features import headless_gl

LEROBOT_CONFIG = ("envs", "metaworld_config.json")
DIFFICULTIES = ("easy", "medium", "hard", "very_hard")


@cache
def task_names() -> tuple[str, ...]:
    """Every v3 task of the installed metaworld, in its own order (imports metaworld)."""
    headless_gl()
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return tuple(ALL_V3_ENVIRONMENTS)


@cache
def mt10_tasks() -> tuple[str, ...]:
    """The MT10 tasks of the installed metaworld."""
    headless_gl()
    from metaworld.env_dict import MT10_V3

    return tuple(MT10_V3)


def lerobot_config_path() -> Path | None:
    """Where LeRobot keeps its Meta-World config, without importing LeRobot; None if absent."""
    spec = importlib.util.find_spec("lerobot")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root).joinpath(*LEROBOT_CONFIG)
        if path.is_file():
            return path
    return None


@cache
def _lerobot_config() -> dict[str, Any]:
    path = lerobot_config_path()
    if path is None:
        warnings.warn(
            "metaworld: LeRobot's metaworld_config.json was not found (is lerobot installed?); "
            "tasks get empty instructions and no difficulty groups",
            RuntimeWarning,
            stacklevel=3,
        )
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"metaworld: cannot read LeRobot's task config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"metaworld: {path}: expected a JSON object, got {type(data).__name__}")
    return data


@cache
def instructions() -> dict[str, str]:
    """Task name -> LeRobot's instruction (``{}`` when LeRobot is not installed)."""
    found = _lerobot_config().get("TASK_DESCRIPTIONS", {})
    if not isinstance(found, dict):
        raise ValueError("metaworld: LeRobot's TASK_DESCRIPTIONS is not a mapping")
    return {str(k): str(v) for k, v in found.items()}


@cache
def difficulty_groups() -> dict[str, tuple[str, ...]]:
    """LeRobot's (and the SmolVLA paper's) difficulty split: group -> task names."""
    found = _lerobot_config().get("DIFFICULTY_TO_TASKS", {})
    if not isinstance(found, dict):
        raise ValueError("metaworld: LeRobot's DIFFICULTY_TO_TASKS is not a mapping")
    return {str(k): tuple(v) for k, v in found.items()}


def instruction(task: str) -> str:
    """The instruction of ``task`` (empty when LeRobot has none for it)."""
    return instructions().get(task, "")


def check_task(task: str) -> str:
    """``task`` if it is a v3 task, else a ValueError listing close names."""
    names = task_names()
    if task in names:
        return task
    import difflib

    close = difflib.get_close_matches(task, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"metaworld has no v3 task {task!r}{hint} ({len(names)} tasks)")
