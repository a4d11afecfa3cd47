"""The derived files of a results folder: results.csv/json, grid.csv, summary.md and the plots.

Everything here is computed from the run records, so it can be regenerated at any time (a resumed sweep does)::

    from modelbalance.experiments.report import results_frame, comparison_frame
    frame = results_frame(outcome.records, outcome.picked, seeds=(0, 1, 2))
    comparison_frame(frame, metric="nrmse", direction="min")
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelbalance.experiments.plan import point_label, record_point
from modelbalance.experiments.stats import holm, mean_std, paired_comparison
from modelbalance.experiments.store import to_json

# The columns every results table starts with (the task's metrics and their validation twins follow).
LEAD_COLUMNS = ["task", "model", "fraction", "n_train", "seed", "method", "lr", "point", "selected"]
TAIL_COLUMNS = [
    "train_time_s",
    "status",
    "error",
    "final_train_loss",
    "steps",
    "n_params",
    "tb_recomputes",
    "device",
    "run_hash",
]
_NESTED = (
    "epoch_losses",
    "layers",
    "tb_history",
    "tb_factors",
    "traceback",
    "key",
    "started_at",
    "finished_at",
    "modelbalance_version",
    "wall_time_s",
    "tb_units",
    "layers_error",
    "warnings",
    "params",
    "layers_before",
)


def results_frame(
    records: list[dict],
    picked: dict[tuple[float, str], Any],
    *,
    seeds: tuple[int, ...] | None = None,
    metrics: list[str] | None = None,
) -> pd.DataFrame:
    """One row per run. ``selected`` marks the reported runs: the picked grid point, one of ``seeds``.

    ``picked`` maps (fraction, method) to the chosen grid point (a tuple of (name, value) pairs) or to a
    learning rate alone. ``metrics`` orders the task's metric columns first (default: as found in the records).
    """
    rows = []
    for record in records:
        row = {k: v for k, v in record.items() if k not in _NESTED}
        row.setdefault("point", f"lr={record['lr']:g}")
        choice = picked.get((record["fraction"], record["method"]))
        if isinstance(choice, tuple):
            matches = record_point(record) == choice
        else:
            matches = choice is not None and record["lr"] == choice
        row["selected"] = bool(matches and (seeds is None or record["seed"] in seeds))
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=LEAD_COLUMNS + TAIL_COLUMNS)
    if metrics is None:
        metrics = [c for c in frame.columns if f"val_{c}" in frame.columns]
    metric_columns = list(metrics) + [f"val_{m}" for m in metrics]
    for column in LEAD_COLUMNS + metric_columns + TAIL_COLUMNS:
        if column not in frame:
            frame[column] = np.nan
    rest = [c for c in frame.columns if c not in LEAD_COLUMNS + metric_columns + TAIL_COLUMNS]
    frame["error"] = frame["error"].fillna("")
    return frame[LEAD_COLUMNS + metric_columns + TAIL_COLUMNS + rest]


def reported(frame: pd.DataFrame) -> pd.DataFrame:
    """The selected, successful runs (the ones tables and tests use)."""
    if frame.empty:
        return frame
    return frame[frame["selected"].astype(bool) & (frame["status"] == "ok")]


def reference_method(methods: list[str]) -> str:
    """What the other methods are compared with: ``baseline`` if present, else the first method."""
    return "baseline" if "baseline" in methods else methods[0]


def comparison_frame(
    frame: pd.DataFrame,
    *,
    metric: str,
    direction: str,
    methods: list[str] | None = None,
    n_boot: int = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired comparison of every method with the reference, per fraction, over the seeds both completed.

    Columns: fraction, method, reference, n, the :class:`~modelbalance.experiments.stats.PairedComparison`
    fields, and ``p_ttest_holm`` (Holm over all rows).
    """
    runs = reported(frame)
    if methods is None:
        methods = list(dict.fromkeys(frame["method"])) if not frame.empty else []
    if not methods:
        return pd.DataFrame()
    reference = reference_method(methods)
    rows = []
    for fraction in sorted(runs["fraction"].unique()):
        at = runs[runs["fraction"] == fraction]
        base = at[at["method"] == reference].set_index("seed")[metric]
        for method in methods:
            if method == reference:
                continue
            other = at[at["method"] == method].set_index("seed")[metric]
            common = sorted(set(base.dropna().index) & set(other.dropna().index))
            if not common:
                continue
            result = paired_comparison(
                base.loc[common].to_numpy(),
                other.loc[common].to_numpy(),
                direction=direction,
                n_boot=n_boot,
                seed=seed,
            )
            rows.append({"fraction": fraction, "method": method, "reference": reference, **result.as_dict()})
    table = pd.DataFrame(rows)
    if not table.empty:
        table["p_ttest_holm"] = holm(table["p_ttest"].to_numpy())
    return table


def grid_frame(grid, metric: str) -> pd.DataFrame:
    """The learning-rate grid: validation metric per (fraction, method, lr) and which lr was picked."""
    return pd.DataFrame([point.as_row(metric) for point in grid])


# ---------------------------------------------------------------------------------------------------- markdown
def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{value:.{digits}g}"


def _p(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def subset_labels(frame: pd.DataFrame, axis: str = "fractions") -> dict[float, str]:
    """How each training subset is named in tables: ``16/class`` (k-shot), ``n=225`` when the study gave absolute
    sizes (``axis="sizes"``: a fraction of this project's pool would read like the paper's fraction of its own),
    else the fraction of the pool."""
    labels = {}
    if frame.empty:
        return labels
    for fraction, part in frame.groupby("fraction"):
        shots = part["shots"].dropna() if "shots" in part else ()
        if len(shots):
            labels[fraction] = f"{int(shots.iloc[0])}/class"
        elif axis == "sizes":
            labels[fraction] = f"n={int(part['n_train'].iloc[0])}"
        else:
            labels[fraction] = _fmt(fraction)
    return labels


def _subset(fraction: float, labels: dict[float, str] | None) -> str:
    return (labels or {}).get(fraction, _fmt(fraction))


def _subset_header(labels: dict[float, str] | None) -> str:
    """The first column's name: ``shots`` when every subset is k-shot (``16/class``), ``size`` when every one is an
    absolute size (``n=225``), else ``fraction``."""
    if labels and all(str(v).endswith("/class") for v in labels.values()):
        return "shots"
    if labels and all(str(v).startswith("n=") for v in labels.values()):
        return "size"
    return "fraction"


def mean_std_table(
    frame: pd.DataFrame,
    metric: str,
    direction: str,
    methods: list[str],
    labels: dict[float, str] | None = None,
) -> str:
    """Markdown: fraction rows x method columns of ``mean ± std (n)``; the best mean per row in bold."""
    runs = reported(frame)
    labels = subset_labels(frame) if labels is None else labels
    fractions = sorted(frame["fraction"].unique()) if not frame.empty else []
    rows = []
    for fraction in fractions:
        at = runs[runs["fraction"] == fraction]
        n_train = frame.loc[frame["fraction"] == fraction, "n_train"].iloc[0]
        stats = {m: mean_std(at.loc[at["method"] == m, metric]) for m in methods}
        means = {m: s[0] for m, s in stats.items() if math.isfinite(s[0])}
        best = (min if direction == "min" else max)(means, key=means.get) if len(means) > 1 else None
        if best is not None and [_fmt(m) for m in means.values()].count(_fmt(means[best])) > 1:
            best = None  # a tie for the best mean as printed: no method is bold
        cells = []
        for method in methods:
            mean, std, n = stats[method]
            text = "–" if n == 0 else f"{_fmt(mean)} ± {_fmt(std, 2)} ({n})"
            cells.append(f"**{text}**" if method == best else text)
        rows.append([_subset(fraction, labels), str(int(n_train)), *cells])
    return _markdown_table([_subset_header(labels), "n_train", *methods], rows)


def comparison_table(comparisons: pd.DataFrame, metric: str, labels: dict[float, str] | None = None) -> str:
    if comparisons.empty:
        return "_No paired comparison: a method and the reference need runs with the same seeds._"
    rows = []
    for row in comparisons.itertuples():
        ci = "–" if not math.isfinite(row.ci_low) else f"[{row.ci_low:+.1%}, {row.ci_high:+.1%}]"
        rows.append(
            [
                _subset(row.fraction, labels),
                row.method,
                f"{row.gain:+.1%}",
                ci,
                f"{row.wins}/{row.n}" + (f", {row.ties} tied" if getattr(row, "ties", 0) else ""),
                _p(row.p_ttest),
                _p(row.p_wilcoxon),
                _p(row.p_sign),
                _p(row.p_ttest_holm),
            ]
        )
    header = [
        _subset_header(labels),
        "method",
        f"gain ({metric})",
        "95% CI",
        "wins",
        "t-test p",
        "Wilcoxon p",
        "sign p",
        "Holm p (t)",
    ]
    return _markdown_table(header, rows)


def grid_table(grid: pd.DataFrame, metric: str, labels: dict[float, str] | None = None) -> str:
    """Markdown of the tuning grids: one row per (fraction, method); columns are the grid points when every
    method shares them (an lr grid), else each row lists its method's points."""
    column = f"val_{metric}_mean"
    if "point" not in grid:
        grid = grid.assign(point=[f"lr={lr:g}" for lr in grid["lr"]])
    by_method = {m: tuple(part["point"]) for (f, m), part in grid.groupby(["fraction", "method"], sort=False)}
    shared = len(set(by_method.values())) == 1

    def cell(row) -> str:
        text = _fmt(row[column]) + (f" ({row['n_failed']} failed)" if row["n_failed"] else "")
        return f"**{text}**" if row["selected"] else text

    rows = []
    for (fraction, method), part in grid.groupby(["fraction", "method"], sort=False):
        picked = part.loc[part["selected"].astype(bool), "point"]
        choice = picked.iloc[0] if len(picked) else "none"
        if shared:
            rows.append([_subset(fraction, labels), method, *[cell(r) for _, r in part.iterrows()], choice])
        else:
            listed = "; ".join(f"{r['point']}: {cell(r)}" for _, r in part.iterrows())
            rows.append([_subset(fraction, labels), method, listed, choice])
    if shared:
        points = next(iter(by_method.values()))
        return _markdown_table([_subset_header(labels), "method", *points, "picked"], rows)
    return _markdown_table([_subset_header(labels), "method", "grid (validation mean)", "picked"], rows)


def grid_description(config) -> list[str]:
    """One line per method: its tuning grid and the number of configurations (the tuning budget)."""
    lines = []
    for method in config.methods:
        grid = config.grid(method)
        axes = " × ".join(
            f"{name} ∈ {{{', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in values)}}}"
            for name, values in grid.items()
        )
        lines.append(f"  - {method}: {axes} ({len(config.grid_points(method))} configurations)")
    return lines


def run_notes(records: list[dict]) -> list[str]:
    """Distinct warnings the runs logged (numbers masked when grouping), each with how many runs of which
    methods logged it and the first run's wording."""
    seen: dict[str, tuple[str, dict[str, int]]] = {}
    for record in records:
        for note in record.get("warnings") or []:
            first, by_method = seen.setdefault(re.sub(r"\d+(\.\d+)?", "#", note), (note, {}))
            by_method[record["method"]] = by_method.get(record["method"], 0) + 1
    return [
        f"{sum(counts.values())} run(s) ({', '.join(f'{m}: {n}' for m, n in counts.items())}): {first}"
        for first, counts in seen.values()
    ]


def summary_markdown(
    prepared,
    frame: pd.DataFrame,
    comparisons: pd.DataFrame,
    grid: pd.DataFrame,
    plot_paths: list[Path],
    out: Path,
    records: list[dict] = (),
    edge_picks: list[str] = (),
    signal_free_picks: list[str] = (),
) -> str:
    """The summary.md text; ``edge_picks`` lists the picks that lie at an edge of their grid,
    ``signal_free_picks`` those whose tuning runs all have validation MCC 0."""
    config, task = prepared.config, prepared.task
    metric, direction = task.primary_metric, task.direction
    better = "lower" if direction == "min" else "higher"
    methods = list(config.methods)
    labels = subset_labels(frame, config.subset_axis)  # "16/class", "n=225" or the fraction
    metrics = [c for c in frame.columns if f"val_{c}" in frame.columns] if not frame.empty else [metric]
    lines = [
        f"# Experiment: {config.task} / {config.model}",
        "",
        f"- Task: {task.describe()}; {len(prepared.train_pool)} pool / {len(prepared.val)} validation / "
        f"{len(prepared.data.test)} test samples.",
        f"- Model: {config.model} ({prepared.n_params:,} parameters), {config.model_params or 'default options'}.",
        f"- Training: {f'{config.steps} steps' if config.steps else f'{config.epochs} epochs'} per run, "
        f"batch {config.batch_size}, {config.optimizer} (weight decay "
        f"{config.weight_decay:g}), {config.scheduler} schedule"
        + (f" with {config.warmup:.0%} warm-up" if config.warmup else "")
        + f", on {prepared.device}.",
        f"- Methods: {', '.join(methods)}; FNO spectral convolutions balanced: {config.spectral_conv}."
        + "".join(
            f" {name} = {base} with {options}." if options or base != name else ""
            for name, (base, options) in ((m, config.method_spec(m)) for m in methods)
        ),
        "- Tuning: "
        + (
            f"each method's configuration is picked per training size from its grid on the validation {metric} "
            f"(mean over seeds {list(config.effective_tune_seeds())}); the test split is never used for choices. "
            "Grids (the tuning budget):\n" + "\n".join(grid_description(config))
            if any(len(config.grid_points(m)) > 1 for m in methods)
            else "one configuration per method (no tuning): "
            + "; ".join(f"{m} {point_label(config.grid_points(m)[0])}" for m in methods)
            + "."
        ),
        f"- Seeds: {list(config.seeds)} (a seed fixes the training subset, the initialisation and the batch "
        "order, the same for every method).",
        "",
        f"## Test {metric} (mean ± std over seeds, {better} is better)",
        "",
        mean_std_table(frame, metric, direction, methods, labels),
        "",
        f"## Paired comparison with {reference_method(methods)}",
        "",
        f"gain: relative change of the mean test {metric}, positive = better than "
        f"{reference_method(methods)}. 95% CI: bootstrap over seed pairs. p-values are two-sided; Holm "
        "adjusts the t-test p-values for the number of rows.",
        "",
        comparison_table(comparisons, metric, labels),
    ]
    for other in [m for m in metrics if m != metric]:
        lines += [
            "",
            f"## Test {other} (mean ± std)",
            "",
            mean_std_table(frame, other, direction, methods, labels),
        ]
    if not grid.empty:
        lines += [
            "",
            f"## Tuning grid (validation {metric}, mean over tuning seeds; picked in bold)",
            "",
            grid_table(grid, metric, labels),
        ]
    if edge_picks:
        lines += [
            "",
            "**Grid too narrow**: these picks lie at an edge of their grid, or tie on validation with an edge "
            "value that lost only by the tie rule (`tied`), so the best setting may lie outside it; widen the grid "
            "before reading the comparison as tuned.",
            "",
        ] + [f"- {line}" for line in edge_picks]
    if signal_free_picks:
        lines += [
            "",
            "**Picks without signal**: every tuning run of these picks has validation MCC 0: its predictions carry "
            "nothing about the labels (a model that predicts one class for every example does this) and won on "
            f"{metric} alone. Compare the methods at a fixed rate, or tune on macro_f1 or mcc.",
            "",
        ] + [f"- {line}" for line in signal_free_picks]
    lines += _signal_free_runs(frame, labels)
    failed = frame[frame["status"] != "ok"] if not frame.empty else frame
    if len(failed):
        lines += ["", f"## Failed runs ({len(failed)})", ""]
        lines += [
            f"- {r.method} fraction={_fmt(r.fraction)} seed={r.seed} {r.point}: {r.error}"
            for r in failed.itertuples()
        ]
    notes = run_notes(list(records))
    if notes:
        lines += ["", "## Warnings logged during the runs", ""] + [f"- {note}" for note in notes]
    if plot_paths:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in plot_paths]
    return "\n".join(lines) + "\n"


def _signal_free_runs(frame: pd.DataFrame, labels: dict) -> list[str]:
    """Summary lines counting the reported runs whose test MCC is 0 (collapsed classifiers), per cell and method."""
    runs = reported(frame)
    if runs.empty or "mcc" not in runs.columns:
        return []
    counts = [
        f"- {_subset(fraction, labels)}, {method}: {int((group['mcc'] == 0.0).sum())} of {len(group)}"
        for (fraction, method), group in runs.groupby(["fraction", "method"], sort=False)
        if (group["mcc"] == 0.0).any()
    ]
    if not counts:
        return []
    return [
        "",
        "**Runs without signal**: reported runs whose test MCC is 0 (their predictions carry nothing about the "
        "labels, as a model that predicts one class for every example); they count in every mean above.",
        "",
        *counts,
    ]


def write_reports(prepared, folder, outcome, *, plots: bool = True) -> None:
    """Write results.csv/json, grid.csv, summary.md and the plots; fills the outcome's paths."""
    config = prepared.config
    metric, direction = prepared.metric, prepared.direction
    frame = results_frame(outcome.records, outcome.picked, seeds=config.seeds)
    comparisons = comparison_frame(frame, metric=metric, direction=direction, methods=list(config.methods))
    grid = grid_frame(outcome.grid, metric)
    edges = outcome.grid_edges
    folder.write_text("results.csv", frame.to_csv(index=False))
    folder.write_text(
        "results.json",
        to_json(
            {
                "config": config.to_dict(),
                "metric": metric,
                "direction": direction,
                "picked": [
                    {
                        "fraction": f,
                        "method": m,
                        "lr": None if p is None else dict(p)["lr"],
                        "point": None if p is None else dict(p),
                        "grid_edge": edges.get((f, m), []),
                    }
                    for (f, m), p in outcome.picked.items()
                ],
                "comparisons": comparisons.to_dict("records"),
                "runs": frame.to_dict("records"),
            }
        ),
    )
    if not grid.empty:
        folder.write_text("grid.csv", grid.to_csv(index=False))
    plot_paths: list[Path] = []
    if plots:
        from modelbalance.experiments.plots import write_plots

        selected = [r for r, keep in zip(outcome.records, frame["selected"] if len(frame) else []) if keep]
        plot_paths = write_plots(
            folder.plots_dir,
            frame=frame,
            comparisons=comparisons,
            grid=grid,
            selected_records=selected,
            metric=metric,
            direction=direction,
            methods=list(config.methods),
            axis=config.subset_axis,
        )
    edge_picks = [
        f"{m} at {prepared.subset_name(f)}: {point_label(outcome.picked[f, m])} ({', '.join(axes)})"
        for (f, m), axes in edges.items()
    ]
    signal_free = [
        f"{m} at {prepared.subset_name(f)}: {point_label(outcome.picked[f, m])}"
        for f, m in outcome.signal_free_picks
    ]
    text = summary_markdown(
        prepared, frame, comparisons, grid, plot_paths, folder.path, outcome.records, edge_picks, signal_free
    )
    outcome.summary_path = folder.write_text("summary.md", text)
    outcome.summary_markdown = text
    outcome.plot_paths = plot_paths
