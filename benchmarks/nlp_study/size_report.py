"""Gain against training size across finished studies of one task and model (each study is one size): a table of
means, the paired comparisons with Holm over every (size, method) row, and the two plots the question needs.

    python benchmarks/nlp_study/size_report.py docs/results/nlp_spam_k4 docs/results/nlp_spam_k16 \\
        docs/results/nlp_spam_k64 --out docs/results/nlp_spam_sizes

Reads each folder's ``results.csv`` (the runs the study reported are its ``selected`` rows: the configuration picked
on validation, the reported seeds), so the comparisons are the studies' own, pooled for one Holm correction.
``--pool A B`` (repeatable) reports one size from a study and its confirmations on other seeds: the methods every
folder reports, each at the same configuration in all of them, on disjoint seeds (as ``seed_pool.py`` pools).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

# this folder's script (Python puts a script's folder on sys.path)
from seed_pool import pooled_runs, read_results

from modelbalance.experiments.plots import plot_error_vs_fraction, plot_relative_gain
from modelbalance.experiments.report import comparison_frame, comparison_table, mean_std_table, subset_labels


def combined(studies: list[list[Path]]) -> pd.DataFrame:
    """Every study's runs with a ``study`` column; a study of several folders is their seeds pooled."""
    frames = []
    for folders in studies:
        runs = pooled_runs(folders).drop(columns="batch") if len(folders) > 1 else read_results(folders[0])
        frames.append(runs.assign(study=study_name(folders)))
    frame = pd.concat(frames, ignore_index=True)
    for column in ("task", "model"):
        if frame[column].nunique() != 1:
            raise SystemExit(f"the studies mix {column}s ({', '.join(map(str, frame[column].unique()))})")
    if frame[frame["selected"].astype(bool)].groupby("fraction")["study"].nunique().max() > 1:
        raise SystemExit(
            "two studies report the same training size: give each size once (--pool to pool seeds)"
        )
    return frame


def study_name(folders: list[Path]) -> str:
    return " + ".join(folder.name for folder in folders)


def tuning_notes(studies: list[list[Path]], frame: pd.DataFrame, labels: dict) -> list[str]:
    """Per study: its size and how each folder's configurations were chosen (tuned grid or one fixed point)."""
    lines = []
    smallest = frame.groupby("study")["fraction"].min()
    for folders in sorted(studies, key=lambda folders: smallest[study_name(folders)]):
        at = frame[frame["study"] == study_name(folders)]
        sizes = sorted(at["fraction"].unique())
        shown = ", ".join(labels.get(f, f"{f:g}") for f in sizes)
        lines += [f"- `{folder.name}` ({shown}): {_how_tuned(folder)}" for folder in folders]
        if len(folders) > 1:
            seeds = at.groupby("method")["seed"].nunique()
            lines.append(
                f"  - pooled at {shown}: {', '.join(f'{m} {n} seeds' for m, n in seeds.items())} (the methods every"
                " folder reports, at the same configuration in each)"
            )
    return lines


def _how_tuned(folder: Path) -> str:
    from modelbalance.experiments.config import ExperimentConfig
    from modelbalance.experiments.plan import point_label

    if not (folder / "config.json").is_file():
        return "no config.json, so how it was tuned is not known here"
    try:
        config = ExperimentConfig.from_dict(json.loads((folder / "config.json").read_text()))
    except (ValueError, TypeError) as err:  # an older or foreign config.json
        return f"its config.json could not be read ({err})"
    budgets = {m: len(config.grid_points(m)) for m in config.methods}
    if max(budgets.values()) > 1:
        how = "tuned on validation, " + ", ".join(f"{m} {n}" for m, n in budgets.items()) + " configurations"
    else:
        points = {point_label(config.grid_points(m)[0]) for m in config.methods}
        how = f"one fixed configuration ({'; '.join(sorted(points))}), not tuned"
    return f"{how}, seeds {list(config.seeds)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, help="one study per size")
    parser.add_argument(
        "--pool",
        nargs="+",
        type=Path,
        action="append",
        default=[],
        metavar="FOLDER",
        help="folders that ran one size on disjoint seeds, reported as one study (repeatable)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metric", default="accuracy")
    parser.add_argument("--direction", default="max", choices=["max", "min"])
    args = parser.parse_args()
    studies = [[folder] for folder in args.folders] + args.pool
    if not studies:
        parser.error("give study folders, --pool groups, or both")
    frame = combined(studies)
    frame["selected"] = frame["selected"].astype(bool)
    methods = list(dict.fromkeys(frame["method"]))
    labels = subset_labels(frame[frame["selected"]])
    comparisons = comparison_frame(frame, metric=args.metric, direction=args.direction, methods=methods)
    args.out.mkdir(parents=True, exist_ok=True)
    plots = args.out / "plots"
    plot_error_vs_fraction(
        frame, args.metric, args.direction, methods, plots / f"{args.metric}_vs_size.png", labels
    )
    plot_relative_gain(comparisons, args.metric, methods, plots / "gain_vs_size.png", labels)
    comparisons.to_csv(args.out / "comparisons.csv", index=False)
    task, model = frame["task"].iloc[0], frame["model"].iloc[0]
    text = [
        f"# {task} / {model}: test {args.metric} against training size",
        "",
        "Studies (each folder's grid.csv shows its tuning):",
        "",
        *tuning_notes(studies, frame, labels),
        "",
        "mean ± std (seeds):",
        "",
        mean_std_table(frame, args.metric, args.direction, methods, labels),
        "",
        "Paired over seeds against the baseline; Holm over all rows of this table:",
        "",
        comparison_table(comparisons, args.metric, labels),
        "",
        f"![{args.metric} vs size](plots/{args.metric}_vs_size.png) ![gain vs size](plots/gain_vs_size.png)",
        "",
    ]
    (args.out / "summary.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
