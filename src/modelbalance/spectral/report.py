"""SpectralReport: the per-layer results of :func:`modelbalance.analyze` as a table, files and plots.

Example
-------
>>> import torch.nn as nn, modelbalance
>>> report = modelbalance.analyze(nn.Sequential(nn.Linear(128, 64), nn.Linear(64, 32)), progress=False)
>>> sorted(report.alphas) == ["0", "1"]
True
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .analyze import LayerSpectrum

# Columns shown by str(report) / the CLI table, in order.
TABLE_COLUMNS = (
    "name",
    "module_type",
    "matrix_shape",
    "num_eigs",
    "alpha",
    "alpha_relative",
    "ks_distance",
    "log_spectral_norm",
    "stable_rank",
    "status",
)


# How text output shows the model's own weight (a bare nn.Linear, a state dict's "weight"): its name is empty.
ROOT_NAME = "(root)"


def display_name(layer: LayerSpectrum) -> str:
    return layer.name or ROOT_NAME


def _extremes(fitted: list[LayerSpectrum]) -> str:
    """The heaviest- and lightest-tailed layers, ranked by alpha_relative where every one has it: raw alpha is
    mostly a function of the layer's shape."""
    if all(math.isfinite(layer.alpha_relative) for layer in fitted):
        key, how, fmt = "alpha_relative", "by alpha_relative (shape-corrected)", "+.3f"
    else:
        key, how, fmt = "alpha", "by raw alpha (no shape-corrected alpha_relative)", ".3f"
    ranked = sorted(fitted, key=lambda layer: getattr(layer, key))
    first, last = ranked[0], ranked[-1]
    return (
        f"heaviest tail (best trained), {how}: {display_name(first)} ({key} {getattr(first, key):{fmt}}); "
        f"lightest (least trained): {display_name(last)} ({key} {getattr(last, key):{fmt}})"
    )


class SpectralReport:
    """Per-layer spectra. ``layers`` holds :class:`LayerSpectrum` records in network order."""

    def __init__(self, layers: list[LayerSpectrum], settings: dict | None = None):
        self.layers = list(layers)
        self.settings = dict(settings or {})

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __getitem__(self, name: str) -> LayerSpectrum:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(
            f"no layer named {name!r}; layers are: {', '.join(self.names[:10])}"
            + (" ..." if len(self.names) > 10 else "")
        )

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    @property
    def alphas(self) -> dict[str, float]:
        return {layer.name: layer.alpha for layer in self.layers}

    def records(self) -> list[dict]:
        return [layer.as_record() for layer in self.layers]

    def to_frame(self):
        """A pandas DataFrame, one row per layer (columns: name, alpha, alpha_relative, ..., status)."""
        import pandas as pd

        return pd.DataFrame.from_records(self.records())

    def to_csv(self, path: str | Path | None = None) -> str | None:
        """Write the table as CSV to ``path``, or return it as a string."""
        return self.to_frame().to_csv(path, index=False)

    def to_json(self, path: str | Path | None = None) -> str | None:
        """JSON with ``settings``, ``summary`` and ``layers`` (NaN written as null)."""

        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, (np.floating, np.integer)):
                return clean(v.item())
            return v

        doc = {
            "settings": self.settings,
            "summary": {k: clean(v) for k, v in self.summary_stats().items()},
            "layers": [{k: clean(v) for k, v in r.items()} for r in self.records()],
        }
        text = json.dumps(doc, indent=2)
        if path is None:
            return text
        Path(path).write_text(text)
        return None

    def summary_stats(self) -> dict:
        alphas = np.array([layer.alpha for layer in self.layers], dtype=float)
        ok = np.isfinite(alphas)
        stats = {"layers": len(self.layers), "fitted": int(ok.sum()), "unfitted": int((~ok).sum())}
        if ok.any():
            stats.update(
                alpha_mean=float(alphas[ok].mean()),
                alpha_median=float(np.median(alphas[ok])),
                alpha_min=float(alphas[ok].min()),
                alpha_max=float(alphas[ok].max()),
            )
            rel = np.array([layer.alpha_relative for layer in self.layers], dtype=float)
            if np.isfinite(rel).any():
                stats["alpha_relative_mean"] = float(np.nanmean(rel))
            weighted = np.array([layer.alpha_weighted for layer in self.layers], dtype=float)
            stats["alpha_weighted_mean"] = (
                float(np.nanmean(weighted)) if np.isfinite(weighted).any() else math.nan
            )
        return stats

    def summary(self) -> str:
        """A few lines: layer counts, alpha range, the most and least trained layers, why layers were not fit."""
        s = self.summary_stats()
        lines = [f"{s['layers']} layers, {s['fitted']} fitted"]
        if s["fitted"]:
            lines.append(
                f"alpha: mean {s['alpha_mean']:.3f}, median {s['alpha_median']:.3f}, "
                f"range [{s['alpha_min']:.3f}, {s['alpha_max']:.3f}]"
            )
            if "alpha_relative_mean" in s:
                lines.append(
                    f"alpha - random-matrix alpha of the same shape: mean {s['alpha_relative_mean']:+.3f}"
                    " (negative = heavier tail than random)"
                )
            lines.append(_extremes([layer for layer in self.layers if math.isfinite(layer.alpha)]))
        reasons: dict[str, list[str]] = {}
        for layer in self.layers:
            if layer.status != "ok":
                reasons.setdefault(layer.status, []).append(display_name(layer))
        for reason, names in reasons.items():
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            lines.append(
                f"not fitted ({len(names)}): {reason} (layer{'s' if len(names) > 1 else ''}: {shown})"
            )
        return "\n".join(lines)

    def table(self, max_rows: int | None = None) -> str:
        """A fixed-width text table of the main columns."""
        rows = self.records()[:max_rows] if max_rows else self.records()

        def fmt(v):
            if isinstance(v, float):
                return "nan" if not math.isfinite(v) else f"{v:.3f}"
            return str(v)

        cells = [[fmt(r[c]) for c in TABLE_COLUMNS] for r in rows]
        for row in cells:
            row[0] = row[0] or ROOT_NAME
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(TABLE_COLUMNS)]
        widths[-1] = len(TABLE_COLUMNS[-1])  # status is last and free-width
        line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
        out = [line(TABLE_COLUMNS), line(["-" * w for w in widths])] + [line(row) for row in cells]
        if max_rows and len(self.layers) > max_rows:
            out.append(f"... {len(self.layers) - max_rows} more layers")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        s = self.summary_stats()
        return f"SpectralReport({s['layers']} layers, {s['fitted']} fitted)"

    def plot_esd(self, name: str | None = None, ax=None, path: str | Path | None = None):
        """Log-log ESD of one layer (default: the first fitted one) with the fitted power law and xmin marked."""
        from .plots import plot_esd

        return plot_esd(self, name, ax=ax, path=path)

    def plot_alphas(self, ax=None, path: str | Path | None = None, blocks=None, column: str = "alpha"):
        """Alpha per layer in network order, coloured by block (``blocks``: callable name -> block label)."""
        from .plots import plot_alphas

        return plot_alphas(self, ax=ax, path=path, blocks=blocks, column=column)
