"""A whole study at a glance: every cell (task, model, fine-tuning, size) where TempBalance met an equally tuned
baseline, with TB's gain and its controls' (shuffled placebo, frozen factors, LLRD), in one table and one forest plot.

    python benchmarks/reports/overview.py --cells benchmarks/nlp_study/overview.toml --out docs/results/nlp_overview
    python benchmarks/reports/overview.py --cells benchmarks/pde_study/overview.toml --out docs/results/cfd1d_overview

The cells and the published folders each comparison pools are declared in a TOML file (each study's
``overview.toml``); its optional ``[overview]`` table sets the title, the metric and its direction, the columns that
tell cells apart, the arms shown and the plot's range (the defaults are the NLP study's). Every number is computed
here from those folders' ``results.csv``, the reported runs only. Gains are against the baseline (> 0: better), with
95% bootstrap CIs over seed pairs and paired t-tests; the Holm column adjusts the TB rows over all cells at once, a
stricter family than any one study used.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# this folder's script (Python puts a script's folder on sys.path)
from seed_pool import format_p, pooled

from modelbalance.experiments.config import read_config_file
from modelbalance.experiments.stats import holm, paired_comparison

HERE = Path(__file__).resolve().parent
# comparison key in a cells file -> (method, label in the table and plot, colour in the plot)
ARMS = {
    "tb": ("tb", "TB", "tab:blue"),
    "placebo": ("tb_shuffle", "placebo", "tab:gray"),
    "frozen": ("tb_frozen", "frozen", "tab:green"),
    "llrd": ("llrd", "LLRD", "tab:orange"),
}
# column headers of the cell keys that need one; the others are shown as they are named
HEADERS = {"finetune": "fine-tuning", "per_class": "per class"}


@dataclass(frozen=True)
class Layout:
    """The ``[overview]`` table of a cells file: what the study measures and how its cells are told apart."""

    title: str = "The NLP study at a glance"
    metric: str = "accuracy"
    direction: str = "max"
    # what tells two cells apart, the size and the rate last (the plot rules off groups by the keys before them);
    # "rate" is "tuned" (each method its validation pick) or the one rate all arms ran at
    keys: tuple[str, ...] = ("task", "model", "finetune", "per_class", "rate")
    arms: tuple[str, ...] = ("tb", "placebo", "llrd")  # the table's columns, in order; "tb" first
    value_format: str = ".3f"  # the baseline's mean and std
    limit: float = 6.0  # the plot's gain axis ends at +-limit %; larger gains are drawn at the edge, labelled

    @property
    def labels(self) -> list[str]:
        return [ARMS[arm][1] for arm in self.arms]


def read_cells(path: Path) -> tuple[Layout, list[dict]]:
    config = read_config_file(path)
    try:
        layout = Layout(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in config.get("overview", {}).items()}
        )
    except TypeError as err:
        raise SystemExit(f"{path}: [overview]: {err}") from None
    if layout.direction not in ("min", "max") or layout.arms[:1] != ("tb",) or set(layout.arms) - set(ARMS):
        raise SystemExit(
            f"{path}: [overview]: direction must be min or max and arms start with tb, from {sorted(ARMS)}"
        )
    cells = config.get("cell", [])
    if not cells:
        raise SystemExit(f"{path}: no [[cell]] tables")
    allowed = {*layout.keys, "note", *layout.arms}
    for i, cell in enumerate(cells):
        unknown = set(cell) - allowed
        missing = {*layout.keys, "tb"} - {"rate"} - set(cell)
        if unknown or missing:
            raise SystemExit(
                f"{path}: cell {i + 1}: unknown keys {sorted(unknown)}, missing {sorted(missing)}"
            )
    return layout, cells


def compare(folders: list[Path], method: str, layout: Layout) -> dict:
    """``method`` against the baseline on the pooled seeds of ``folders``."""
    table = pooled(folders, layout.metric, {method, "baseline"})[[method, "baseline"]].dropna()
    result = paired_comparison(table["baseline"], table[method], direction=layout.direction)
    return {
        "n": result.n,
        "gain": result.gain,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "wins": result.wins,
        "p": result.p_ttest,
        "baseline_mean": float(table["baseline"].mean()),
        "baseline_std": float(table["baseline"].std(ddof=1)) if len(table) > 1 else np.nan,
    }


def overview(layout: Layout, cells: list[dict], results: Path) -> pd.DataFrame:
    """One row per (cell, arm) that ran: the comparison against the baseline."""
    rows = []
    for cell in cells:
        for key in layout.arms:
            if key not in cell:
                continue
            method, label, _ = ARMS[key]
            folders = [results / name for name in cell[key]]
            missing = [str(f) for f in folders if not f.is_dir()]
            if missing:
                raise SystemExit(f"folder(s) not found: {', '.join(missing)}")
            row = compare(folders, method, layout)
            identity = {k: str(cell.get("rate", "tuned")) if k == "rate" else cell[k] for k in layout.keys}
            rows.append(
                {
                    **identity,
                    "arm": label,
                    "folders": " + ".join(cell[key]),
                    "note": cell.get("note", ""),
                    **row,
                }
            )
    frame = pd.DataFrame(rows)
    is_tb = frame["arm"] == "TB"
    frame["p_holm_tb"] = np.nan
    frame.loc[is_tb, "p_holm_tb"] = holm(frame.loc[is_tb, "p"].tolist())
    return frame


def _gain(row) -> str:
    interval = f"[{row.ci_low:+.1%}, {row.ci_high:+.1%}]"
    return f"{row.gain:+.1%} {interval}, {row.wins}/{row.n}, p {format_p(row.p)}"


def markdown(frame: pd.DataFrame, layout: Layout) -> str:
    controls = layout.labels[1:]
    header = [
        *(HEADERS.get(k, k.replace("_", " ")) for k in layout.keys),
        "seeds",
        f"baseline {layout.metric}",
        "TB vs baseline",
        "Holm (TB, all cells)",
        *(f"{label} vs baseline" for label in controls),
        "note",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    f = layout.value_format
    for _, group in frame.groupby(list(layout.keys), sort=False):
        arms = {row.arm: row for row in group.itertuples()}
        tb = arms["TB"]
        cells = [
            *(str(getattr(tb, k)) for k in layout.keys),
            str(tb.n),
            f"{tb.baseline_mean:{f}} ± {tb.baseline_std:{f}}",
            _gain(tb),
            format_p(tb.p_holm_tb),
            *(_gain(arms[label]) if label in arms else "not run" for label in controls),
            tb.note,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell_name(layout: Layout, cell: tuple) -> str:
    """A cell on the plot's axis: ``spam · MiniLM-L6 · full · 4/class``, with `` · lr 3e-4`` at a fixed rate."""
    parts = []
    for key, value in zip(layout.keys, cell):
        if key == "rate":  # "tuned" goes without saying; "tuned with s" is said; a number is the fixed rate
            parts += [] if value == "tuned" else [value if value.startswith("tuned") else f"lr {value}"]
        else:
            parts.append({"per_class": f"{value}/class", "samples": f"{value} samples"}.get(key, str(value)))
    return " · ".join(parts)


def plot(frame: pd.DataFrame, layout: Layout, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(layout.keys)
    cells = list(frame.groupby(keys, sort=False).groups)
    colours = {ARMS[arm][1]: ARMS[arm][2] for arm in layout.arms}
    offsets = dict(zip(colours, np.linspace(-0.22, 0.22, len(colours)) if len(colours) > 1 else [0.0]))
    # TB's gains are about 1%: a scale wide enough for LLRD's collapses would hide them, so the axis stops at
    # +-limit and what lies beyond is drawn at the edge with its value written outside it, in a margin that no
    # error bar reaches (bars are cut at +-limit too), so the label cannot land on another arm's bar
    limit = layout.limit
    margin = 1.0 if (100 * frame["gain"].abs() > limit).any() else 0.3
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(cells) + 1.4))
    for arm, colour in colours.items():
        part = frame[frame["arm"] == arm]
        y = np.array([cells.index(k) + offsets[arm] for k in zip(*(part[c] for c in keys))])
        gain, low, high = (100 * part[c].to_numpy() for c in ("gain", "ci_low", "ci_high"))
        shown = np.clip(gain, -limit, limit)
        err = np.vstack([shown - np.clip(low, -limit, limit), np.clip(high, -limit, limit) - shown])
        ax.errorbar(shown, y, xerr=err, fmt="o", color=colour, ms=4, capsize=2, lw=1, label=arm)
        for x, yy, value in zip(shown, y, gain):
            if abs(value) > limit:
                ax.annotate(
                    f"{value:+.0f}%",
                    (x, yy),
                    xytext=(5 if x > 0 else -5, 0),
                    textcoords="offset points",
                    ha="left" if x > 0 else "right",
                    va="center",
                    fontsize=7,
                    color=colour,
                )
    previous = None
    for i, cell in enumerate(cells):  # a rule between groups (all keys but the size and the rate alike)
        group = cell[:-2]
        if previous is not None and previous != group:
            ax.axhline(i - 0.5, color="0.85", lw=0.6)
        previous = group
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlim(-limit - margin, limit + margin)
    ax.set_yticks(range(len(cells)))
    ax.set_yticklabels([_cell_name(layout, cell) for cell in cells])
    ax.invert_yaxis()
    gain = "gain" if layout.direction == "max" else "reduction"
    ax.set_xlabel(f"{layout.metric} {gain} over the baseline (tuned, or at the same rate), %, 95% CI")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=Path, required=True, help="a study's cells file (its overview.toml)")
    parser.add_argument("--results", type=Path, default=HERE.parents[1] / "docs" / "results")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    layout, cells = read_cells(args.cells)
    frame = overview(layout, cells, args.results)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "overview.csv", index=False)
    plot(frame, layout, args.out / "plots" / "gains.png")
    cells_file = _shown(args.cells)
    change = "change" if layout.direction == "max" else "reduction"
    labels = layout.labels
    arms = f"{', '.join(labels[:-1])} and {labels[-1]}" if len(labels) > 1 else labels[0]
    text = "\n".join(
        [
            f"# {layout.title}",
            "",
            f"Every cell where TempBalance met an equally tuned baseline; gain = relative {change} of mean test "
            f"{layout.metric}",
            "against the baseline, 95% bootstrap CI over seed pairs, wins = seeds better, paired t-test p. The Holm",
            "column adjusts TB's p-values over every cell at once. The cells and the folders each row pools:",
            f"`{cells_file}`. Made by `python benchmarks/reports/overview.py --cells {cells_file} --out {args.out}`.",
            "",
            markdown(frame, layout),
            "",
            f"![gains of {arms} over the baseline, every cell](plots/gains.png)",
            "",
        ]
    )
    (args.out / "summary.md").write_text(text)
    print(text)


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it, as the published summary names it."""
    try:
        return str(path.resolve().relative_to(HERE.parents[1]))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    main()
