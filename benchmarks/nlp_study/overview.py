"""The whole NLP study at a glance: every cell (task, model, fine-tuning, size) where TempBalance met an equally tuned
baseline, with TB's gain, its shuffled placebo's and LLRD's, in one table and one forest plot.

    python benchmarks/nlp_study/overview.py --out docs/results/nlp_overview

The cells and the published folders each comparison pools are declared in ``overview.toml`` (beside this script);
every number is computed here from those folders' ``results.csv``, the reported runs only. Gains are against the
baseline (> 0: better), with 95% bootstrap CIs over seed pairs and paired t-tests; the Holm column adjusts the TB
rows over all cells at once, a stricter family than any one study used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

# this folder's script (Python puts a script's folder on sys.path)
from seed_pool import format_p, pooled

from modelbalance.experiments.config import read_config_file
from modelbalance.experiments.stats import holm, paired_comparison

HERE = Path(__file__).resolve().parent
# comparison key in overview.toml -> (method, label in the table and plot)
ARMS = {"tb": ("tb", "TB"), "placebo": ("tb_shuffle", "placebo"), "llrd": ("llrd", "LLRD")}
CELL_KEYS = {"task", "model", "finetune", "per_class", "rate", "note", *ARMS}
# what tells two cells apart; "rate" is "tuned" (each method its validation pick) or the one rate every arm ran at
KEY = ["task", "model", "finetune", "per_class", "rate"]


def read_cells(path: Path) -> list[dict]:
    cells = read_config_file(path).get("cell", [])
    if not cells:
        raise SystemExit(f"{path}: no [[cell]] tables")
    for i, cell in enumerate(cells):
        unknown = set(cell) - CELL_KEYS
        missing = {"task", "model", "finetune", "per_class", "tb"} - set(cell)
        if unknown or missing:
            raise SystemExit(
                f"{path}: cell {i + 1}: unknown keys {sorted(unknown)}, missing {sorted(missing)}"
            )
    return cells


def compare(folders: list[Path], method: str) -> dict:
    """``method`` against the baseline on the pooled seeds of ``folders``."""
    table = pooled(folders, "accuracy", {method, "baseline"})[[method, "baseline"]].dropna()
    result = paired_comparison(table["baseline"], table[method], direction="max")
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


def overview(cells: list[dict], results: Path) -> pd.DataFrame:
    """One row per (cell, arm) that ran: the comparison against the baseline."""
    rows = []
    for cell in cells:
        for key, (method, label) in ARMS.items():
            if key not in cell:
                continue
            folders = [results / name for name in cell[key]]
            missing = [str(f) for f in folders if not f.is_dir()]
            if missing:
                raise SystemExit(f"folder(s) not found: {', '.join(missing)}")
            row = compare(folders, method)
            rows.append(
                {
                    "task": cell["task"],
                    "model": cell["model"],
                    "finetune": cell["finetune"],
                    "per_class": cell["per_class"],
                    "rate": str(cell.get("rate", "tuned")),
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


def markdown(frame: pd.DataFrame) -> str:
    lines = [
        "| task | model | fine-tuning | per class | rate | seeds | baseline accuracy | TB vs baseline "
        "| Holm (TB, all cells) | placebo vs baseline | LLRD vs baseline | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, group in frame.groupby(KEY, sort=False):
        arms = {row.arm: row for row in group.itertuples()}
        tb = arms["TB"]
        lines.append(
            f"| {tb.task} | {tb.model} | {tb.finetune} | {tb.per_class} | {tb.rate} | {tb.n} "
            f"| {tb.baseline_mean:.3f} ± {tb.baseline_std:.3f} | {_gain(tb)} | {format_p(tb.p_holm_tb)} "
            f"| {_gain(arms['placebo']) if 'placebo' in arms else 'not run'} "
            f"| {_gain(arms['LLRD']) if 'LLRD' in arms else 'not run'} | {tb.note} |"
        )
    return "\n".join(lines)


def plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = list(frame.groupby(KEY, sort=False).groups)
    colours = {"TB": "tab:blue", "placebo": "tab:gray", "LLRD": "tab:orange"}
    offsets = {"TB": -0.22, "placebo": 0.0, "LLRD": 0.22}
    # TB's gains are about 1%: a scale wide enough for LLRD's collapses would hide them, so the axis stops at
    # +-LIMIT and what lies beyond is drawn at the edge with its value written beside it
    limit = 6.0
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(cells) + 1.4))
    for arm, colour in colours.items():
        part = frame[frame["arm"] == arm]
        y = np.array([cells.index(k) + offsets[arm] for k in zip(*(part[c] for c in KEY))])
        gain, low, high = (100 * part[c].to_numpy() for c in ("gain", "ci_low", "ci_high"))
        shown = np.clip(gain, -limit, limit)
        err = np.vstack([shown - np.clip(low, -limit, limit), np.clip(high, -limit, limit) - shown])
        ax.errorbar(shown, y, xerr=err, fmt="o", color=colour, ms=4, capsize=2, lw=1, label=arm)
        for x, yy, value in zip(shown, y, gain):
            if abs(value) > limit:
                ax.annotate(
                    f"{value:+.0f}%",
                    (x, yy),
                    xytext=(-6 if x > 0 else 6, 6),
                    textcoords="offset points",
                    ha="right" if x > 0 else "left",
                    va="center",
                    fontsize=7,
                    color=colour,
                )
    previous = None
    for i, (task, model, finetune, *_) in enumerate(
        cells
    ):  # a rule between groups of one task, model and mode
        if previous is not None and previous != (task, model, finetune):
            ax.axhline(i - 0.5, color="0.85", lw=0.6)
        previous = (task, model, finetune)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlim(-limit - 0.3, limit + 0.3)
    ax.set_yticks(range(len(cells)))
    ax.set_yticklabels(
        [
            f"{task} · {model} · {finetune} · {k}/class" + ("" if rate == "tuned" else f" · lr {rate}")
            for task, model, finetune, k, rate in cells
        ]
    )
    ax.invert_yaxis()
    ax.set_xlabel("accuracy gain over the baseline (tuned, or at the same rate), %, 95% CI")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=Path, default=HERE / "overview.toml")
    parser.add_argument("--results", type=Path, default=HERE.parents[1] / "docs" / "results")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    frame = overview(read_cells(args.cells), args.results)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "overview.csv", index=False)
    plot(frame, args.out / "plots" / "gains.png")
    text = "\n".join(
        [
            "# The NLP study at a glance",
            "",
            "Every cell where TempBalance met an equally tuned baseline; gain = relative change of mean test accuracy",
            "against the baseline, 95% bootstrap CI over seed pairs, wins = seeds better, paired t-test p. The Holm",
            "column adjusts TB's p-values over every cell at once. The cells and the folders each row pools:",
            "`benchmarks/nlp_study/overview.toml`. Made by `python benchmarks/nlp_study/overview.py "
            f"--out {args.out}`.",
            "",
            markdown(frame),
            "",
            "![gains of TB, its placebo and LLRD over the baseline, every cell](plots/gains.png)",
            "",
        ]
    )
    (args.out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
