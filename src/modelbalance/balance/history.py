"""What the balancer reports per recompute: history records, the log line, CSV and TensorBoard output.

Example
-------
>>> rows = [{"step": 0, "unit": "a", "alpha": 2.5, "factor": 0.8, "lr": 8e-4}]
>>> recompute_log_line(0, rows, refit=3, skipped=1)
'TempBalance step 0: 1 units, alpha 2.5..2.5, factor 0.80..0.80, 0 without alpha, layers refit 3, skipped 1'
"""

from __future__ import annotations

import csv
import logging
import math
import os
import warnings

import numpy as np

__all__ = ["HistoryWriters", "recompute_log_line", "shape_driven"]

logger = logging.getLogger("modelbalance.balance")

FIELDS = (
    "recompute",
    "step",
    "measured_step",
    "unit",
    "family",
    "alpha",
    "alpha_measured",
    "alpha_stderr",
    "factor",
    "lr",
    "weight_decay",
    "layers_refit",
)


def recompute_log_line(step: int, rows: list[dict], refit: int, skipped: int) -> str:
    """One concise line summarising a recompute."""
    alphas = np.array([r["alpha"] for r in rows], dtype=float)
    factors = np.array([r["factor"] for r in rows], dtype=float)
    finite = np.isfinite(alphas)
    alpha_part = (
        f"alpha {alphas[finite].min():.3g}..{alphas[finite].max():.3g}" if finite.any() else "alpha n/a"
    )
    nan_units = int((~finite).sum())
    return (
        f"TempBalance step {step}: {len(rows)} units, {alpha_part}, factor "
        f"{factors.min():.2f}..{factors.max():.2f}, {nan_units} without alpha, layers refit {refit}, skipped"
        f" {skipped}"
    )


def shape_driven(
    factors: np.ndarray,
    first_factors: np.ndarray,
    log_aspect: np.ndarray,
    corr_threshold: float = 0.9,
    change_threshold: float = 0.05,
) -> float | None:
    """The correlation of log factor with log aspect ratio when factors look like a fixed function of shape.

    Returns the correlation when ``|corr| > corr_threshold`` and the mean |log10| change of the factors since
    the first recompute is below ``change_threshold``; otherwise None. Needs at least three units with varying
    shape.
    """
    ok = np.isfinite(factors) & np.isfinite(first_factors) & np.isfinite(log_aspect)
    f, f0, q = np.log10(factors[ok]), np.log10(first_factors[ok]), log_aspect[ok]
    if f.size < 3 or np.ptp(q) <= 1e-9 or np.ptp(f) <= 1e-9:
        return None
    corr = float(np.corrcoef(f, q)[0, 1])
    change = float(np.mean(np.abs(f - f0)))
    return corr if abs(corr) > corr_threshold and change < change_threshold else None


class HistoryWriters:
    """Optional CSV file and TensorBoard writer fed with each recompute's rows."""

    def __init__(self, csv_path: str | None = None, tensorboard_dir: str | None = None, summary_writer=None):
        self.csv_path = csv_path
        self.writer = summary_writer
        self._owns_writer = False
        if self.writer is None and tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                warnings.warn(
                    "tensorboard_dir is set but tensorboard is not installed; not writing TensorBoard logs"
                )
            else:
                self.writer = SummaryWriter(tensorboard_dir)
                self._owns_writer = True

    def write(self, rows: list[dict]) -> None:
        if self.csv_path is not None and rows:
            new = not os.path.exists(self.csv_path) or os.path.getsize(self.csv_path) == 0
            with open(self.csv_path, "a", newline="") as handle:
                out = csv.DictWriter(handle, fieldnames=FIELDS, extrasaction="ignore")
                if new:
                    out.writeheader()
                out.writerows(rows)
        if self.writer is not None:
            for row in rows:
                for key in ("alpha", "factor", "lr"):
                    value = row.get(key)
                    if value is not None and math.isfinite(value):
                        self.writer.add_scalar(f"tempbalance/{key}/{row['unit']}", value, row["step"])

    def close(self) -> None:
        if self._owns_writer:
            self.writer.close()
        elif self.writer is not None and hasattr(self.writer, "flush"):
            self.writer.flush()
