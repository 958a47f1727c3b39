"""Open-loop action errors of one episode: pure numpy, no dataset, no policy.

Two accumulations, both against the recorded actions:

* **executed**: the action the runner sent to ``step`` at frame ``t`` vs the recorded action of
  frame ``t`` (for a chunked policy that is the chunk's action for ``t``, predicted from an
  earlier frame's observation);
* **horizon**: every chunk the policy predicted at frame ``t`` (``observe_chunk``), its action
  ``k`` vs the recorded action of frame ``t + k`` (actions past the episode's end are not
  scored). A policy that predicts no chunks counts as chunks of one executed action.

Errors are reported in raw units (the dataset's) and in normalised units: divided by the
dataset's action ``std`` per dimension (``meta/stats.json``; the mean cancels in a difference),
as LeRobot's ``MEAN_STD`` normalisation does; a dimension with ``std < 1e-8`` keeps raw units.

Keys of :meth:`OpenLoopErrors.summary` (``P = open_loop``):

* ``P.mse``, ``P.l1``, ``P.mse_norm``, ``P.l1_norm``: executed errors, mean over frames and dims;
* ``P.mse.d{j}``, ``P.l1.d{j}``, ``P.mse_norm.d{j}``, ``P.l1_norm.d{j}``: per action dimension;
* ``P.mse_norm.k{k}``, ``P.l1_norm.k{k}``, ``P.mse.k{k}``: horizon ``k`` (``k = 0`` is the
  action predicted for the frame it was predicted at), mean over chunks and dims;
* ``P.frames`` (frames scored) and ``P.chunks`` (chunks scored).
"""

from __future__ import annotations

import numpy as np

PREFIX = "open_loop"
COLUMNS = (f"{PREFIX}.mse_norm", f"{PREFIX}.l1_norm")
"""The leaderboard columns (lower is better)."""
MIN_STD = 1e-8


def scale(std: np.ndarray) -> np.ndarray:
    """Per-dimension divisor for normalised units: ``std``, or 1 where it is ~0."""
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    return np.where(std < MIN_STD, 1.0, std)


class OpenLoopErrors:
    """Accumulates squared and absolute errors of one episode (float64 sums)."""

    def __init__(self, std: np.ndarray) -> None:
        self.scale = scale(std)
        dim = self.scale.shape[0]
        self.frames = 0
        self.sq = np.zeros(dim)
        self.abs = np.zeros(dim)
        self.chunks = 0
        self.k_count: list[int] = []
        self.k_sq: list[float] = []
        self.k_sq_norm: list[float] = []
        self.k_abs_norm: list[float] = []

    def _check(self, predicted: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = np.asarray(predicted, dtype=np.float64)
        t = np.asarray(target, dtype=np.float64)
        if p.shape != t.shape or p.shape[-1] != self.scale.shape[0]:
            raise ValueError(
                f"open-loop error: predicted actions of shape {p.shape} do not match the "
                f"recorded {t.shape} (action dimension {self.scale.shape[0]})"
            )
        return p, t

    def add_executed(self, action: np.ndarray, target: np.ndarray) -> None:
        """One executed action ``(A,)`` against the recorded one."""
        p, t = self._check(np.reshape(action, -1), np.reshape(target, -1))
        diff = p - t
        self.sq += diff**2
        self.abs += np.abs(diff)
        self.frames += 1

    def add_chunk(self, chunk: np.ndarray, targets: np.ndarray) -> None:
        """A chunk ``(H, A)`` predicted at frame ``t`` against recorded ``(h <= H, A)`` from t."""
        targets = np.asarray(targets)
        n = min(len(chunk), len(targets))
        if n == 0:
            return
        p, t = self._check(np.asarray(chunk)[:n], targets[:n])
        diff = p - t
        norm = diff / self.scale
        while len(self.k_count) < n:
            for acc in (self.k_count, self.k_sq, self.k_sq_norm, self.k_abs_norm):
                acc.append(0)
        for k in range(n):
            self.k_count[k] += 1
            self.k_sq[k] += float(np.mean(diff[k] ** 2))
            self.k_sq_norm[k] += float(np.mean(norm[k] ** 2))
            self.k_abs_norm[k] += float(np.mean(np.abs(norm[k])))
        self.chunks += 1

    def summary(self) -> dict[str, float]:
        """The episode's metrics (keys in the module docstring); empty when nothing was scored."""
        out: dict[str, float] = {f"{PREFIX}.frames": float(self.frames)}
        out[f"{PREFIX}.chunks"] = float(self.chunks)
        if self.frames:
            mse = self.sq / self.frames
            l1 = self.abs / self.frames
            mse_norm = mse / self.scale**2
            l1_norm = l1 / self.scale
            for name, values in (
                ("mse", mse), ("l1", l1), ("mse_norm", mse_norm), ("l1_norm", l1_norm)
            ):
                out[f"{PREFIX}.{name}"] = float(np.mean(values))
                for j, value in enumerate(values):
                    out[f"{PREFIX}.{name}.d{j}"] = float(value)
        for k, count in enumerate(self.k_count):
            if count:
                out[f"{PREFIX}.mse_norm.k{k}"] = self.k_sq_norm[k] / count
                out[f"{PREFIX}.l1_norm.k{k}"] = self.k_abs_norm[k] / count
                out[f"{PREFIX}.mse.k{k}"] = self.k_sq[k] / count
        return out
