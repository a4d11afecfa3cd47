"""Plots of a SpectralReport: one layer's ESD with its power-law fit, and alpha per layer in network order.

Example
-------
>>> import torch.nn as nn, modelbalance
>>> report = modelbalance.analyze(nn.Sequential(nn.Linear(256, 128), nn.Linear(128, 64)), progress=False)
>>> fig = report.plot_alphas()
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from .report import display_name


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        try:
            matplotlib.use("Agg")
        except Exception:  # an interactive backend is already active: keep it
            pass
    import matplotlib.pyplot as plt

    return plt


def default_block(name: str) -> str:
    """Colour key for a layer: its path up to the first numbered component ("encoder.layer.3"), else the top
    module. Colouring only; the balancer has its own, stricter block detection."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return parts[0] if len(parts) > 1 else "(top)"


def _finish(fig, path):
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=130)
    return fig


def plot_esd(report, name: str | None = None, ax=None, path=None):
    plt = _pyplot()
    if name is None:
        fitted = [
            layer for layer in report.layers if math.isfinite(layer.alpha) and layer.eigenvalues is not None
        ]
        if not fitted:
            raise ValueError("no fitted layer with eigenvalues to plot")
        layer = fitted[0]
    else:
        layer = report[name]
    eigs = layer.eigenvalues
    if eigs is None:
        raise ValueError(f"layer {layer.name!r} has no stored eigenvalues (analyze keeps them by default)")
    eigs = eigs[eigs > 0]
    if eigs.size < 2:
        raise ValueError(f"layer {layer.name!r} has fewer than 2 positive eigenvalues: {layer.status}")
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4.2))
    bins = np.logspace(np.log10(eigs.min()), np.log10(eigs.max()), max(10, min(80, eigs.size // 8)))
    ax.hist(
        eigs, bins=bins, density=True, color="#4C72B0", alpha=0.75, label=f"ESD ({eigs.size} eigenvalues)"
    )
    if math.isfinite(layer.alpha):
        # A power law p(x) = C x^-alpha on [xmin, inf) holding the tail's share of the mass.
        share = layer.num_tail / eigs.size
        x = np.logspace(np.log10(layer.xmin), np.log10(eigs.max()), 50)
        c = share * (layer.alpha - 1) * layer.xmin ** (layer.alpha - 1)
        ax.plot(
            x,
            c * x ** (-layer.alpha),
            color="#C44E52",
            lw=2,
            label=f"power law, alpha = {layer.alpha:.2f} +- {layer.alpha_stderr:.2f}",
        )
        ax.axvline(layer.xmin, color="#555555", ls="--", lw=1, label=f"xmin = {layer.xmin:.3g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue of $W^T W$")
    ax.set_ylabel("density")
    ax.set_title(
        f"{display_name(layer)}  ({layer.module_type}, {layer.matrix_shape[0]}x{layer.matrix_shape[1]}"
        + (f" x{layer.num_matrices}" if layer.num_matrices > 1 else "")
        + ")",
        fontsize=10,
    )
    ax.legend(fontsize=8, frameon=False)
    ax.grid(True, which="major", alpha=0.3)
    return _finish(fig, path)


def plot_alphas(report, ax=None, path=None, blocks=None, column: str = "alpha"):
    plt = _pyplot()
    block_of = blocks or default_block
    layers = report.layers
    values = np.array([getattr(layer, column) for layer in layers], dtype=float)
    labels = [block_of(layer.name) for layer in layers]
    order = list(dict.fromkeys(labels))
    cmap = plt.get_cmap("tab10" if len(order) <= 10 else "tab20")
    colours = {b: cmap(i % cmap.N) for i, b in enumerate(order)}
    width = min(16, max(6, 0.12 * len(layers) + 3))
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(width, 4.2))
    x = np.arange(len(layers))
    ok = np.isfinite(values)
    ax.scatter(x[ok], values[ok], c=[colours[labels[i]] for i in np.flatnonzero(ok)], s=28, zorder=3)
    if column == "alpha":
        null = np.array([layer.alpha_null for layer in layers], dtype=float)
        if np.isfinite(null).any():
            ax.plot(x, null, ls="none", marker="_", ms=10, color="#888888", label="same-shape random matrix")
        err = np.array([layer.alpha_stderr for layer in layers], dtype=float)
        ax.errorbar(x[ok], values[ok], yerr=err[ok], fmt="none", ecolor="#999999", lw=0.8, zorder=2)
    if (~ok).any():
        ax.scatter(
            x[~ok],
            np.full((~ok).sum(), np.nanmin(values) if ok.any() else 0),
            marker="x",
            color="#aaaaaa",
            label="not fitted",
        )
    for b in order:  # legend entry per block, few enough to read
        if len(order) <= 14:
            ax.scatter([], [], color=colours[b], label=b)
    ax.set_xlabel("layer (network order)")
    ax.set_ylabel(column)
    ax.set_title(
        f"{column} per layer" + ("  (lower = heavier tail = better trained)" if column == "alpha" else ""),
        fontsize=10,
    )
    if len(layers) <= 40:
        ax.set_xticks(x)
        ax.set_xticklabels(
            [re.sub(r"^(.{28}).+$", r"\1…", display_name(layer)) for layer in layers],
            rotation=75,
            fontsize=6,
            ha="right",
        )
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, frameon=False, ncol=2 if len(order) > 7 else 1, loc="best")
    return _finish(fig, path)
