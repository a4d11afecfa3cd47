"""Figures of a sweep: error vs fraction, gain with CI, per-layer alpha, factors over time, the lr grid.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, so no global backend switch and nothing
opens a window).

Each function draws one figure into a file and returns its path (or None when the data for it is missing)::

    from modelbalance.experiments.plots import plot_error_vs_fraction
    plot_error_vs_fraction(frame, "nrmse", "min", ["baseline", "tb"], "plots/error_vs_fraction.png")
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

_DPI = 150


def _figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **subplot_options):
    """A stand-alone Agg figure and its axes (squeezed like ``pyplot.subplots``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **subplot_options)


def _colours(methods: list[str]) -> dict[str, str]:
    palette = [
        "#4c72b0",
        "#dd8452",
        "#55a868",
        "#c44e52",
        "#8172b3",
        "#937860",
        "#da8bc3",
        "#8c8c8c",
        "#ccb974",
        "#64b5cd",
    ]
    ordered = (["baseline"] if "baseline" in methods else []) + [m for m in methods if m != "baseline"]
    return {m: ("#333333" if m == "baseline" else palette[i % len(palette)]) for i, m in enumerate(ordered)}


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    return path


def _panel_name(fraction: float, labels: dict[float, str] | None) -> str:
    """A panel's subset: its k-shot or size label (``16/class``, ``n=225``), else ``fraction 0.025``."""
    label = (labels or {}).get(fraction, "")
    return label if label.endswith("/class") or label.startswith("n=") else f"fraction {fraction:g}"


def _plain_log_y(ax) -> None:
    """Log y axis with plain number labels (0.2, 0.3) instead of 2x10^-1; over more than about a decade only
    the minor ticks at 2, 3 and 5 are labelled (0.09 beside 0.1 would overlap), over more than two none."""
    from matplotlib.ticker import FuncFormatter

    def minor(value: float, _position) -> str:
        low, high = ax.get_ylim()
        decades = math.log10(high / low) if low > 0 and high > low else 0.0
        mantissa = round(value / 10 ** math.floor(math.log10(value))) if value > 0 else 0
        if decades > 2 or (decades > 0.8 and mantissa not in (2, 3, 5)):
            return ""
        return f"{value:g}"

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))
    ax.tick_params(axis="y", which="minor", labelsize=7)


def _fraction_axis(ax, fractions, labels: dict[float, str] | None = None) -> None:
    """Log x at the subsets, each named by ``labels`` (``4/class``) where given, else by its fraction."""
    ax.set_xscale("log")
    ax.set_xticks(fractions)
    ax.set_xticklabels([(labels or {}).get(f, f"{f:g}") for f in fractions])
    ax.minorticks_off()


def _subset_axis_label(labels: dict[float, str] | None) -> str:
    if labels and all(label.endswith("/class") for label in labels.values()):
        return "training examples per class"
    if labels and all(label.startswith("n=") for label in labels.values()):
        return "training-set size"
    return "training fraction of the pool"


def plot_error_vs_fraction(
    frame: pd.DataFrame,
    metric: str,
    direction: str,
    methods: list[str],
    path: str | Path,
    labels: dict[float, str] | None = None,
) -> Path | None:
    """Test metric vs training fraction (log x), mean ± std over seeds, one line per method; ``labels`` name
    the subsets on the axis (e.g. ``{0.0015: "4/class"}``, :func:`~modelbalance.experiments.report.subset_labels`).
    """
    from modelbalance.experiments.report import reported

    runs = reported(frame)
    if runs.empty:
        return None
    colours = _colours(methods)
    fig, ax = _figure(figsize=(6.4, 4.4))
    fractions = sorted(runs["fraction"].unique())
    for k, method in enumerate(methods):
        stats = runs[runs["method"] == method].groupby("fraction")[metric].agg(["mean", "std", "count"])
        if stats.empty:
            continue
        stats = stats.reindex(fractions)  # a size this method did not run breaks its line, not bridged
        # a small horizontal offset keeps overlapping error bars apart
        shift = 1 + 0.03 * (k - (len(methods) - 1) / 2)
        ax.errorbar(
            stats.index * shift,
            stats["mean"],
            yerr=stats["std"].fillna(0),
            label=method,
            color=colours[method],
            marker="o",
            capsize=3,
            linewidth=1.6,
            markersize=5,
        )
    _fraction_axis(ax, fractions, labels)
    if direction == "min" and (runs[metric] > 0).all():
        _plain_log_y(ax)
    n_train = runs.groupby("fraction")["n_train"].first()
    ax.set_xlabel(f"{_subset_axis_label(labels)} (n_train: " + ", ".join(str(int(n)) for n in n_train) + ")")
    ax.set_ylabel(f"test {metric} ({'lower' if direction == 'min' else 'higher'} is better)")
    ax.set_title(f"Test {metric} vs training data (mean ± std over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(frameon=False)
    return _save(fig, Path(path))


def plot_relative_gain(
    comparisons: pd.DataFrame,
    metric: str,
    methods: list[str],
    path: str | Path,
    labels: dict[float, str] | None = None,
) -> Path | None:
    """Each method's relative gain over the reference per fraction (log x), with the bootstrap 95% CI."""
    if comparisons.empty:
        return None
    colours = _colours(methods)
    fig, ax = _figure(figsize=(6.4, 4.4))
    compared = [m for m in methods if m in set(comparisons["method"])]
    fractions = sorted(comparisons["fraction"].unique())
    for k, method in enumerate(compared):
        part = comparisons[comparisons["method"] == method].set_index("fraction")
        # a size this method was not compared at breaks its line, so no gain is drawn there by interpolation
        part = part.reindex(fractions).reset_index()
        shift = 1 + 0.03 * (k - (len(compared) - 1) / 2)
        gain = 100 * part["gain"].to_numpy()
        low = 100 * part["ci_low"].to_numpy()
        high = 100 * part["ci_high"].to_numpy()
        yerr = np.vstack([np.nan_to_num(gain - low), np.nan_to_num(high - gain)])
        ax.errorbar(
            part["fraction"] * shift,
            gain,
            yerr=yerr,
            label=method,
            color=colours[method],
            marker="o",
            capsize=3,
            linewidth=1.6,
            markersize=5,
        )
    ax.axhline(0, color="#333333", linewidth=1, linestyle="--")
    _fraction_axis(ax, fractions, labels)
    reference = comparisons["reference"].iloc[0]
    ax.set_xlabel(_subset_axis_label(labels))
    ax.set_ylabel(f"gain over {reference} in test {metric} (%)")
    ax.set_title(f"Relative gain over {reference} (95% bootstrap CI; > 0 = better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(frameon=False)
    return _save(fig, Path(path))


def _short_name(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else "…" + name[-(limit - 1) :]


def plot_layer_alphas(
    records: list[dict], methods: list[str], path: str | Path, *, max_panels: int = 3
) -> Path | None:
    """Per-layer alpha after training, mean over seeds (band: min-max), one panel per fraction, one line per
    method: the paper's "balanced layers" picture (balanced training gives a flatter alpha profile)."""
    rows = [
        {
            "fraction": r["fraction"],
            "method": r["method"],
            "seed": r["seed"],
            "layer": layer["name"],
            "alpha": layer.get("alpha"),
        }
        for r in records
        if r.get("status") == "ok"
        for layer in (r.get("layers") or [])
    ]
    frame = pd.DataFrame(rows)
    if frame.empty or frame["alpha"].isna().all():
        return None
    frame["alpha"] = frame["alpha"].astype(float)
    order = list(dict.fromkeys(frame["layer"]))
    fractions = sorted(frame["fraction"].unique())
    if len(fractions) > max_panels:  # smallest, largest and evenly between
        fractions = [fractions[i] for i in np.linspace(0, len(fractions) - 1, max_panels).round().astype(int)]
    colours = _colours(methods)
    width = min(16.0, 4.0 + 0.35 * len(order))
    fig, axes = _figure(len(fractions), 1, figsize=(width, 2.9 * len(fractions)), squeeze=False, sharex=True)
    x = np.arange(len(order))
    for ax, fraction in zip(axes[:, 0], fractions):
        at = frame[frame["fraction"] == fraction]
        for method in methods:
            part = at[at["method"] == method]
            if part.empty:
                continue
            stats = part.groupby("layer")["alpha"].agg(["mean", "min", "max"]).reindex(order)
            ax.plot(
                x,
                stats["mean"],
                marker="o",
                markersize=3.5,
                linewidth=1.4,
                color=colours[method],
                label=f"{method} (spread {np.nanstd(stats['mean']):.2f})",
            )
            ax.fill_between(x, stats["min"], stats["max"], color=colours[method], alpha=0.15, linewidth=0)
        ax.set_ylabel("alpha (PL Hill)")
        ax.set_title(f"fraction {fraction:g}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(frameon=False, fontsize=8, loc="best")
    axes[-1, 0].set_xticks(x)
    axes[-1, 0].set_xticklabels([_short_name(n) for n in order], rotation=60, ha="right", fontsize=7)
    fig.suptitle("Per-layer alpha after training (mean over seeds, band = min-max)", fontsize=11)
    return _save(fig, Path(path))


def plot_factors_over_time(
    records: list[dict], path: str | Path, labels: dict[float, str] | None = None
) -> Path | None:
    """TempBalance factors per unit vs optimizer step, for the first seed at the smallest fraction, one panel
    per balanced method; ``labels`` names the subsets (``16/class``), else the fraction is shown."""
    import matplotlib

    runs = [r for r in records if r.get("status") == "ok" and r.get("tb_history")]
    if not runs:
        return None
    smallest = min(r["fraction"] for r in runs)
    chosen: dict[str, dict] = {}
    for r in sorted(runs, key=lambda r: r["seed"]):
        if r["fraction"] == smallest:
            chosen.setdefault(r["method"], r)
    fig, axes = _figure(1, len(chosen), figsize=(6.2 * len(chosen), 3.8), squeeze=False, sharey=True)
    for ax, (method, record) in zip(axes[0], chosen.items()):
        history = pd.DataFrame(record["tb_history"])
        history["factor"] = history["factor"].astype(float)
        units = list(dict.fromkeys(history["unit"]))
        cmap = matplotlib.colormaps["viridis"].resampled(max(len(units), 2))
        last_step = max(int(record.get("steps") or 0), int(history["step"].max()))
        for i, unit in enumerate(units):
            part = history[history["unit"] == unit].sort_values("step")
            # hold the last factor until the end of training (a frozen run has a single recompute)
            steps = [*part["step"], last_step]
            factors = [*part["factor"], part["factor"].iloc[-1]]
            ax.step(
                steps, factors, where="post", color=cmap(i), linewidth=1.4, label=_short_name(str(unit), 22)
            )
        ax.axhline(1.0, color="#333333", linewidth=0.8, linestyle="--")
        ax.set_xlabel("optimizer step")
        ax.set_title(f"{method}: {_panel_name(smallest, labels)}, seed {record['seed']}", fontsize=10)
        ax.grid(True, alpha=0.3)
        if len(units) <= 12:
            ax.legend(
                frameon=False,
                fontsize=7,
                title="unit",
                title_fontsize=8,
                loc="upper left",
                bbox_to_anchor=(1.0, 1.0),
            )
    axes[0, 0].set_ylabel("learning-rate factor")
    fig.suptitle("TempBalance factors over training", fontsize=11)
    return _save(fig, Path(path))


def plot_lr_grid(
    grid: pd.DataFrame,
    metric: str,
    methods: list[str],
    path: str | Path,
    direction: str = "min",
    labels: dict[float, str] | None = None,
) -> Path | None:
    """Validation metric vs learning rate per method (log x; log y for errors), one panel per fraction, one
    line per method and setting of its other grid axes (shades of the method's colour, light to dark in grid
    order); the picked configuration circled. ``labels`` names the panels (``4/class``). A rate whose error
    diverged (20 times the panel's best, or infinite) is a triangle at the panel's top, labelled with its value."""
    from matplotlib.colors import to_rgb

    if grid.empty or grid["lr"].nunique() < 2 or grid[f"val_{metric}_mean"].notna().sum() == 0:
        return None
    if "point" not in grid:
        grid = grid.assign(point=[f"lr={lr:g}" for lr in grid["lr"]])
    grid = grid.assign(
        rest=[
            ", ".join(p for p in str(point).split(", ") if not p.startswith("lr=")) for point in grid["point"]
        ]
    )
    colours = _colours(methods)
    fractions = sorted(grid["fraction"].unique())
    column = f"val_{metric}_mean"
    fig, axes = _figure(1, len(fractions), figsize=(4.2 * len(fractions), 3.6), squeeze=False)
    for ax, fraction in zip(axes[0], fractions):
        at = grid[grid["fraction"] == fraction]
        ceiling = _error_ceiling(at[column]) if direction == "min" else None
        for method in methods:
            settings = list(at[at["method"] == method].groupby("rest", sort=False))
            styles = iter(["-", "--", ":", "-."] * 8)
            for i, (rest, part) in enumerate(settings):
                part = part.sort_values("lr")
                label = f"{method} ({rest})" if rest else method
                # several settings of one method: shades from light to the method's own colour
                shade = 0.65 * (1 - i / (len(settings) - 1)) if len(settings) > 1 else 0.0
                colour = tuple(c + (1 - c) * shade for c in to_rgb(colours[method]))
                if ceiling is not None:
                    part = _mark_off_scale(ax, part, column, ceiling, colour)
                ax.plot(
                    part["lr"],
                    part[column],
                    marker="o",
                    color=colour,
                    label=label,
                    linewidth=1.4,
                    linestyle=next(styles),
                )
                picked = part[part["selected"].astype(bool)]
                ax.scatter(picked["lr"], picked[column], s=120, facecolors="none", edgecolors=colour)
        ax.set_xscale("log")
        values = at[column].dropna()
        if direction == "min" and len(values) and (values > 0).all():
            _plain_log_y(ax)
        if ceiling is not None:
            ax.set_ylim(top=ceiling * 1.15)
        ax.set_xlabel("learning rate")
        ax.set_title(_panel_name(fraction, labels), fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].set_ylabel(f"validation {metric}")
    if len(axes[0, -1].get_lines()) > 4:  # many settings: the legend beside the panels, not over the curves
        axes[0, -1].legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        fig.set_size_inches(fig.get_size_inches()[0] + 2.4, fig.get_size_inches()[1])
    else:
        axes[0, -1].legend(frameon=False, fontsize=8)
    fig.suptitle("Tuning grid (validation; circle = picked)", fontsize=11)
    return _save(fig, Path(path))


_OFF_SCALE = 20.0  # an error this many times the panel's best is a diverged run, drawn at the panel's top


def _error_ceiling(values: pd.Series) -> float | None:
    """The top of a tuning panel of errors when some rate diverged (an error ``_OFF_SCALE`` times the best or
    infinite), else None: a diverged 1e10 on a log axis would squeeze every usable rate into one sliver."""
    finite = values[np.isfinite(values.to_numpy(dtype=float))]
    if finite.empty or not (finite > 0).all():
        return None
    best = float(finite.min())
    on_scale = finite[finite <= _OFF_SCALE * best]
    if len(on_scale) == values.notna().sum():
        return None
    return float(on_scale.max()) * 1.5


def _mark_off_scale(ax, part: pd.DataFrame, column: str, ceiling: float, colour) -> pd.DataFrame:
    """Draw ``part``'s errors above ``ceiling`` as triangles at the ceiling, labelled with their value; returns
    ``part`` with those errors clipped to the ceiling, so that its line runs up to the top edge."""
    above = part[column] > ceiling
    for lr, value in zip(part.loc[above, "lr"], part.loc[above, column]):
        ax.scatter([lr], [ceiling], marker="^", s=60, color=colour, zorder=3)
        ax.annotate(
            f"{value:.2g}", (lr, ceiling), textcoords="offset points", xytext=(-8, -3), ha="right", va="top",
            fontsize=7, color=colour,
        )  # fmt: skip
    return part.assign(**{column: part[column].where(~above, ceiling)})


def write_plots(
    directory: Path,
    *,
    frame,
    comparisons,
    grid,
    selected_records,
    metric,
    direction,
    methods,
    axis="fractions",
) -> list[Path]:
    """All figures of a sweep into ``directory``, its subsets named as ``axis`` gave them (``"fractions"``,
    ``"sizes"`` or ``"shots"``); returns the paths written."""
    from modelbalance.experiments.report import subset_labels

    labels = subset_labels(frame, axis)
    paths = [
        plot_error_vs_fraction(
            frame, metric, direction, methods, directory / "error_vs_fraction.png", labels
        ),
        plot_relative_gain(comparisons, metric, methods, directory / "relative_gain.png", labels),
        plot_layer_alphas(selected_records, methods, directory / "layer_alphas.png"),
        plot_factors_over_time(selected_records, directory / "factors_over_time.png", labels),
        plot_lr_grid(grid, metric, methods, directory / "lr_grid.png", direction, labels),
        plot_block_alphas(selected_records, methods, directory / "block_alphas.png"),
    ]
    return [p for p in paths if p is not None]


def block_of(layer: str) -> str | None:
    """The transformer block of a layer name (``...layer.3.attention...`` -> ``"3"``), else None."""
    import re

    match = re.search(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)(?:\.|$)", layer)
    return match.group(1) if match else None


def block_alpha_frame(records: list[dict]) -> pd.DataFrame:
    """Mean alpha per (run, block) before and after training: columns method, fraction, seed, block, before,
    after, change (from the runs' ``layers_before`` and ``layers``)."""
    rows = []
    for r in records:
        if r.get("status") != "ok" or not r.get("layers") or not r.get("layers_before"):
            continue
        for when, layers in (("before", r["layers_before"]), ("after", r["layers"])):
            for layer in layers:
                block = block_of(layer["name"])
                if block is not None and layer.get("alpha") is not None:
                    rows.append(
                        {
                            "method": r["method"],
                            "fraction": r["fraction"],
                            "seed": r["seed"],
                            "block": int(block),
                            "when": when,
                            "alpha": float(layer["alpha"]),
                        }
                    )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    table = frame.pivot_table(
        index=["method", "fraction", "seed", "block"], columns="when", values="alpha", aggfunc="mean"
    ).reset_index()
    table["change"] = table["after"] - table["before"]
    return table


def plot_block_alphas(records: list[dict], methods: list[str], path: str | Path) -> Path | None:
    """Per-block alpha of the pretrained model and after fine-tuning per method (mean over seeds), at the
    smallest and the largest training size."""
    table = block_alpha_frame(records)
    if table.empty:
        return None
    colours = _colours(methods)
    fractions = sorted(table["fraction"].unique())
    fractions = [fractions[0], fractions[-1]] if len(fractions) > 1 else fractions
    fig, axes = _figure(1, len(fractions), figsize=(5.6 * len(fractions), 3.8), squeeze=False, sharey=True)
    for ax, fraction in zip(axes[0], fractions):
        at = table[table["fraction"] == fraction]
        before = at.groupby("block")["before"].mean()
        ax.plot(
            before.index,
            before.values,
            color="#999999",
            marker="s",
            linewidth=2.2,
            label="before (pretrained)",
        )
        for method in methods:
            part = at[at["method"] == method]
            if part.empty:
                continue
            after = part.groupby("block")["after"].mean()
            ax.plot(
                after.index,
                after.values,
                color=colours[method],
                marker="o",
                linewidth=1.4,
                label=f"{method} after (spread {np.std(after.values):.2f})",
            )
        ax.set_xlabel("transformer block")
        n_train = int(next(iter(r["n_train"] for r in records if r["fraction"] == fraction)))
        ax.set_title(f"n_train {n_train}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    axes[0, 0].set_ylabel("mean alpha of the block's layers")
    fig.suptitle("Per-block alpha before and after fine-tuning (mean over seeds)", fontsize=11)
    return _save(fig, Path(path))
