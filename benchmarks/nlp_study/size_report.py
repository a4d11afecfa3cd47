"""Gain against training size across finished studies of one task and model (each study is one size): a table of
means, the paired comparisons with Holm over every (size, method) row, and the two plots the question needs.

    python benchmarks/nlp_study/size_report.py docs/results/nlp_spam_k4 docs/results/nlp_spam_k16 \\
        docs/results/nlp_spam_k64 --out docs/results/nlp_spam_sizes

Reads each folder's ``results.csv`` (the runs the study reported are its ``selected`` rows: the configuration picked
on validation, the reported seeds), so the comparisons are the studies' own, pooled for one Holm correction.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from modelbalance.experiments.plots import plot_error_vs_fraction, plot_relative_gain
from modelbalance.experiments.report import comparison_frame, comparison_table, mean_std_table, subset_labels


def combined(folders: list[Path]) -> pd.DataFrame:
    frames = []
    for folder in folders:
        path = folder / "results.csv"
        if not path.is_file():
            raise SystemExit(f"{path} not found: is {folder} a finished study folder?")
        frames.append(pd.read_csv(path).assign(study=folder.name))
    frame = pd.concat(frames, ignore_index=True)
    for column in ("task", "model"):
        if frame[column].nunique() != 1:
            raise SystemExit(f"the studies mix {column}s ({', '.join(map(str, frame[column].unique()))})")
    if frame[frame["selected"]].groupby("fraction")["study"].nunique().max() > 1:
        raise SystemExit("two studies report the same training size: give each size once")
    return frame


def tuning_notes(folders: list[Path], frame: pd.DataFrame, labels: dict) -> list[str]:
    """One line per study: its size and how its configurations were chosen (tuned grid or one fixed point)."""
    from modelbalance.experiments.config import ExperimentConfig
    from modelbalance.experiments.plan import point_label

    lines = []
    for folder in folders:
        sizes = sorted(frame.loc[frame["study"] == folder.name, "fraction"].unique())
        shown = ", ".join(labels.get(f, f"{f:g}") for f in sizes)
        if not (folder / "config.json").is_file():
            lines.append(
                f"- `{folder.name}` ({shown}): no config.json, so how it was tuned is not known here"
            )
            continue
        try:
            config = ExperimentConfig.from_dict(json.loads((folder / "config.json").read_text()))
        except (ValueError, TypeError) as err:  # an older or foreign config.json
            lines.append(f"- `{folder.name}` ({shown}): its config.json could not be read ({err})")
            continue
        budgets = {m: len(config.grid_points(m)) for m in config.methods}
        if max(budgets.values()) > 1:
            how = (
                "tuned on validation, "
                + ", ".join(f"{m} {n}" for m, n in budgets.items())
                + " configurations"
            )
        else:
            points = {point_label(config.grid_points(m)[0]) for m in config.methods}
            how = f"one fixed configuration ({'; '.join(sorted(points))}), not tuned"
        lines.append(f"- `{folder.name}` ({shown}): {how}, seeds {list(config.seeds)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metric", default="accuracy")
    parser.add_argument("--direction", default="max", choices=["max", "min"])
    args = parser.parse_args()
    frame = combined(args.folders)
    frame["selected"] = frame["selected"].astype(bool)
    methods = list(dict.fromkeys(frame["method"]))
    labels = subset_labels(frame[frame["selected"]])
    comparisons = comparison_frame(frame, metric=args.metric, direction=args.direction, methods=methods)
    args.out.mkdir(parents=True, exist_ok=True)
    plots = args.out / "plots"
    plot_error_vs_fraction(
        frame, args.metric, args.direction, methods, plots / "accuracy_vs_size.png", labels
    )
    plot_relative_gain(comparisons, args.metric, methods, plots / "gain_vs_size.png", labels)
    comparisons.to_csv(args.out / "comparisons.csv", index=False)
    task, model = frame["task"].iloc[0], frame["model"].iloc[0]
    text = [
        f"# {task} / {model}: test {args.metric} against training size",
        "",
        "Studies (each folder's grid.csv shows its tuning):",
        "",
        *tuning_notes(args.folders, frame, labels),
        "",
        "mean ± std (seeds):",
        "",
        mean_std_table(frame, args.metric, args.direction, methods, labels),
        "",
        "Paired over seeds against the baseline; Holm over all rows of this table:",
        "",
        comparison_table(comparisons, args.metric, labels),
        "",
        "![accuracy vs size](plots/accuracy_vs_size.png) ![gain vs size](plots/gain_vs_size.png)",
        "",
    ]
    (args.out / "summary.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
