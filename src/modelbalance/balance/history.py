"""What the balancer reports per recompute: history records, the log line, CSV and TensorBoard output.

Example
-------
>>> rows = [{"step": 0, "unit": "a", "metric": "alpha_relative", "alpha_relative": -0.13, "factor": 0.8}]
>>> recompute_log_line(0, rows, refit=3, skipped=1)[:64]
'TempBalance step 0: 1 units, alpha_relative -0.13..-0.13, factor'

Everything names the metric that drives the factors (``alpha``, ``alpha_relative`` or ``alpha_farms``): the
record keys and frame columns ``<metric>``, ``<metric>_measured`` (before smoothing), ``<metric>_stderr``, the
TensorBoard tags ``tempbalance/<metric>/<unit>`` and the log line. Each record also keeps ``"metric"`` (the
name) and a plain ``"alpha"`` key holding the same value as ``<metric>``, for code written before the names.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import warnings

import numpy as np

__all__ = ["HistoryWriters", "fields", "record", "recompute_log_line", "shape_driven", "upgrade_record"]

logger = logging.getLogger("modelbalance.balance")


def fields(metric: str = "alpha") -> tuple[str, ...]:
    """Columns of the history frame and the CSV when ``metric`` drives the factors."""
    return (
        "recompute",
        "step",
        "measured_step",
        "unit",
        "family",
        "metric",
        metric,
        f"{metric}_measured",
        f"{metric}_stderr",
        "factor",
        "lr",
        "weight_decay",
        "layers_refit",
    )


FIELDS = fields("alpha")
"""The columns with the raw Hill alpha as metric."""


def record(metric: str, value: float, measured: float, stderr: float, **columns) -> dict:
    """One history record: ``columns`` plus the metric under its own name (and as ``"alpha"``)."""
    row = {
        key: columns[key]
        for key in ("recompute", "step", "measured_step", "unit", "family")
        if key in columns
    }
    row.update({"metric": metric, metric: value, f"{metric}_measured": measured, f"{metric}_stderr": stderr})
    row["alpha"] = value  # the value of whichever metric is used: readers written before metric names
    row.update({k: v for k, v in columns.items() if k not in row})
    return row


def upgrade_record(row: dict, metric: str) -> dict:
    """A record saved before metric names (``alpha``, ``alpha_measured``, ``alpha_stderr`` holding ``metric``)
    in today's form; records that name their metric are returned unchanged."""
    if "metric" in row:
        return dict(row)
    old = dict(row)
    measured, stderr = old.pop("alpha_measured", math.nan), old.pop("alpha_stderr", math.nan)
    value = old.pop("alpha", math.nan)
    return record(metric, value, measured, stderr, **old)


def recompute_log_line(step: int, rows: list[dict], refit: int, skipped: int, reused: int = 0) -> str:
    """One concise line summarising a recompute, naming the metric of the rows."""
    metric = rows[0].get("metric", "alpha") if rows else "alpha"
    values = np.array([r.get(metric, r.get("alpha")) for r in rows], dtype=float)
    factors = np.array([r["factor"] for r in rows], dtype=float)
    finite = np.isfinite(values)
    value_part = (
        f"{metric} {values[finite].min():.3g}..{values[finite].max():.3g}"
        if finite.any()
        else f"{metric} n/a"
    )
    nan_units = int((~finite).sum())
    return (
        f"TempBalance step {step}: {len(rows)} units, {value_part}, factor "
        f"{factors.min():.2f}..{factors.max():.2f}, {nan_units} without {metric}, layers refit {refit}, "
        f"skipped {skipped}" + (f", frozen reused {reused}" if reused else "")
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
    """Optional CSV file and TensorBoard writer fed with each recompute's rows (``metric`` names the columns).

    Appending to a CSV written before metric names keeps that file's header (``alpha``, ``alpha_measured``,
    ``alpha_stderr`` then hold the metric's values).
    """

    def __init__(
        self,
        csv_path: str | None = None,
        tensorboard_dir: str | None = None,
        summary_writer=None,
        metric: str = "alpha",
    ):
        self.csv_path = csv_path
        self.metric = metric
        self._csv_fields: tuple[str, ...] | None = None
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

    def _fields_of_csv(self, new: bool) -> tuple[str, ...]:
        if self._csv_fields is None:
            self._csv_fields = fields(self.metric)
            if not new:
                with open(self.csv_path, newline="") as handle:
                    header = next(csv.reader(handle), None)
                if header:
                    self._csv_fields = tuple(header)
        return self._csv_fields

    def write(self, rows: list[dict]) -> None:
        if self.csv_path is not None and rows:
            new = not os.path.exists(self.csv_path) or os.path.getsize(self.csv_path) == 0
            names = self._fields_of_csv(new)
            m = self.metric
            with open(self.csv_path, "a", newline="") as handle:
                out = csv.DictWriter(handle, fieldnames=names, extrasaction="ignore")
                if new:
                    out.writeheader()
                for row in rows:
                    legacy = {
                        "alpha_measured": row.get(f"{m}_measured"),
                        "alpha_stderr": row.get(f"{m}_stderr"),
                    }
                    out.writerow({**legacy, **row})
        if self.writer is not None:
            for row in rows:
                for key in (self.metric, "factor", "lr"):
                    value = row.get(key)
                    if value is not None and math.isfinite(value):
                        self.writer.add_scalar(f"tempbalance/{key}/{row['unit']}", value, row["step"])

    def close(self) -> None:
        if self._owns_writer:
            self.writer.close()
        elif self.writer is not None and hasattr(self.writer, "flush"):
            self.writer.flush()
