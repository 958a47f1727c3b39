"""``vlabench assets so100``: fetch the public SO-100 datasets of the registry's suites.

``status`` only looks in LeRobot's caches (``$HF_LEROBOT_HOME/<repo_id>`` and its hub
snapshot cache ``$HF_LEROBOT_HOME/hub``); ``fetch`` lets LeRobot download what is missing
(metadata, parquet and videos), after which the ``so100_*`` suites run offline.
"""

from __future__ import annotations

import os
from pathlib import Path

from vlabench import api

SO100 = (
    "lerobot/svla_so100_pickplace",
    "lerobot/svla_so100_stacking",
    "lerobot/svla_so100_sorting",
)
COMMAND = "vlabench assets so100"


def _home(location: str | None) -> Path:
    if location:
        return Path(location).expanduser()
    default = Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "lerobot"
    return Path(os.environ.get("HF_LEROBOT_HOME", default)).expanduser()


def _cached(home: Path, repo_id: str) -> bool:
    if (home / repo_id / "meta" / "info.json").is_file():
        return True
    snapshots = home / "hub" / f"datasets--{repo_id.replace('/', '--')}" / "snapshots"
    return any(snapshots.glob("*/meta/info.json"))


def status(location: str | None = None) -> api.AssetStatus:
    """Which SO-100 datasets are in LeRobot's cache (nothing is imported or downloaded)."""
    home = _home(location)
    missing = tuple(r for r in SO100 if not _cached(home, r))
    hint = f"run `{COMMAND}` (downloads with LeRobot)" if missing else ""
    return api.AssetStatus(not missing, str(home), missing, hint)


def fetch(location: str | None = None) -> api.AssetStatus:
    """Download the missing datasets with LeRobot; one-line RuntimeError when that fails."""
    if location:
        os.environ["HF_LEROBOT_HOME"] = str(_home(location))
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    for repo_id in status(location).missing:
        try:
            LeRobotDataset(repo_id, video_backend="pyav")
        except Exception as exc:
            raise RuntimeError(
                f"cannot download {repo_id}: {type(exc).__name__}: {' '.join(str(exc).split())}"
            ) from None
    return status(location)


SPEC = api.AssetSpec(
    name="so100",
    description="The public SO-100 LeRobotDatasets of the so100_* suites (" + ", ".join(SO100)
    + ")",
    status=status,
    fetch=fetch,
)
