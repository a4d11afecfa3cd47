"""Gain against training size across finished studies of one task and model (each study is one size): a table of
means, the paired comparisons with Holm over every (size, method) row, and the two plots the question needs.

    python benchmarks/reports/size_report.py docs/results/nlp_spam_k4 docs/results/nlp_spam_k16 \\
        docs/results/nlp_spam_k64 --out docs/results/nlp_spam_sizes

Reads each folder's ``results.csv`` (the runs the study reported are its ``selected`` rows: the configuration picked
on validation, the reported seeds), so the comparisons are the studies' own, pooled for one Holm correction.
``--pool A B`` (repeatable) reports one size from a study and its confirmations on other seeds: the methods every
folder reports, each at the same configuration in all of them, on disjoint seeds (as ``seed_pool.py`` pools).
``--union A B C`` (repeatable) reports one size from folders that ran different methods of it: each method's runs
from every folder that reports it, at one configuration; a run two folders share (one reused the other's) counts
once, and two different results for one seed and method are refused. Each method is compared with the baseline on
the seeds both ran.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
import pandas as pd

# this folder's script (Python puts a script's folder on sys.path)
from seed_pool import pooled_runs, read_results

from modelbalance.experiments.plots import plot_error_vs_fraction, plot_relative_gain
from modelbalance.experiments.report import (
    comparison_frame,
    comparison_table,
    mean_std_table,
    reported,
    subset_labels,
)


def combined(
    studies: list[list[Path]], unions: list[list[Path]] = (), metric: str = "accuracy"
) -> pd.DataFrame:
    """Every study's runs with a ``study`` column; a study of several folders is their seeds pooled
    (:func:`seed_pool.pooled_runs`), a union's folders are merged method by method (:func:`union_runs`)."""
    frames = []
    for folders in studies:
        runs = pooled_runs(folders).drop(columns="batch") if len(folders) > 1 else read_results(folders[0])
        frames.append(runs.assign(study=study_name(folders)))
    for folders in unions:
        frames.append(union_runs(folders, metric).assign(study=study_name(folders)))
    frame = pd.concat(frames, ignore_index=True)
    for column in ("task", "model"):
        if frame[column].nunique() != 1:
            raise SystemExit(f"the studies mix {column}s ({', '.join(map(str, frame[column].unique()))})")
    if frame[frame["selected"].astype(bool)].groupby("fraction")["study"].nunique().max() > 1:
        raise SystemExit(
            "two studies report the same training size: give each size once (--pool to pool seeds)"
        )
    return frame


def union_runs(folders: list[Path], metric: str = "accuracy") -> pd.DataFrame:
    """The reported runs of ``folders`` (one cell) merged: each (seed, method) once, each method at one configuration.

    A run that two folders both report (one study reused the other's) must be the same run, the same configuration
    and the same ``metric``; anything else is refused, as is a method at two configurations.
    """
    batches = [reported(read_results(folder)).assign(folder=folder.name) for folder in folders]
    runs = pd.concat(batches, ignore_index=True)
    for column in ("task", "model", "n_train"):
        if runs[column].nunique() != 1:
            raise SystemExit(f"--union {study_name(folders)}: the folders report more than one {column}")
    points = runs.groupby("method")["point"].unique()
    mixed = {method: sorted(p) for method, p in points.items() if len(p) > 1}
    if mixed:
        raise SystemExit(f"--union {study_name(folders)}: a method at more than one configuration: {mixed}")
    for (seed, method), same in runs.groupby(["seed", "method"]):
        values = same[metric].to_numpy(dtype=float)
        if len(same) > 1 and not np.allclose(values, values[0], rtol=0, atol=1e-12, equal_nan=True):
            raise SystemExit(
                f"--union {study_name(folders)}: seed {seed} of {method} has different results in "
                f"{', '.join(same['folder'])} ({', '.join(f'{v:g}' for v in values)}): not the same run"
            )
    return runs.drop_duplicates(["seed", "method"]).drop(columns="folder").reset_index(drop=True)


def study_name(folders: list[Path]) -> str:
    return " + ".join(folder.name for folder in folders)


def tuning_notes(
    studies: list[list[Path]], frame: pd.DataFrame, labels: dict, unions: frozenset[str] = frozenset()
) -> list[str]:
    """Per study: its size and how each folder's configurations were chosen (tuned grid or one fixed point);
    ``unions``: the names of the studies merged by :func:`union_runs`."""
    lines = []
    smallest = frame.groupby("study")["fraction"].min()
    for folders in sorted(studies, key=lambda folders: smallest[study_name(folders)]):
        at = frame[frame["study"] == study_name(folders)]
        sizes = sorted(at["fraction"].unique())
        shown = ", ".join(labels.get(f, f"{f:g}") for f in sizes)
        lines += [f"- `{folder.name}` ({shown}): {_how_tuned(folder)}" for folder in folders]
        if len(folders) > 1:
            seeds = at.groupby("method")["seed"].nunique()
            how = (
                "each method from every folder that reports it, a shared run counted once"
                if study_name(folders) in unions
                else "the methods every folder reports, at the same configuration in each"
            )
            lines.append(
                f"  - pooled at {shown}: {', '.join(f'{m} {n} seeds' for m, n in seeds.items())} ({how})"
            )
    return lines


@functools.cache
def _folder_config(folder: Path):
    """A study folder's ``ExperimentConfig``, or why it has none (a sentence); read once per folder."""
    from modelbalance.experiments.config import ExperimentConfig, read_config_file

    if not (folder / "config.json").is_file():
        return "no config.json, so how it was tuned is not known here"
    try:
        return ExperimentConfig.from_dict(read_config_file(folder / "config.json"))
    except (ValueError, TypeError) as err:  # an older or foreign config.json
        return f"its config.json could not be read ({err})"


def _how_tuned(folder: Path) -> str:
    from modelbalance.experiments.plan import point_label

    config = _folder_config(folder)
    if isinstance(config, str):
        return config
    budgets = {m: len(config.grid_points(m)) for m in config.methods}
    if max(budgets.values()) > 1:
        on = config.task_params.get("primary_metric")  # a text study may tune on another metric than accuracy
        how = (
            f"tuned on validation{f' {on}' if on else ''}, "
            + ", ".join(f"{m} {n}" for m, n in budgets.items())
            + " configurations"
        )
    else:
        points = {point_label(config.grid_points(m)[0]) for m in config.methods}
        how = f"one fixed configuration ({'; '.join(sorted(points))}), not tuned"
    return f"{how}, seeds {list(config.seeds)}"


def subset_axis(folders: list[Path]) -> str:
    """``"sizes"`` when every folder's study gave absolute training sizes (its subsets are then named ``n=225``, not
    by their fraction of this project's pool), else ``"fractions"`` (k-shot subsets are named by their shots)."""
    configs = [_folder_config(folder) for folder in folders]
    # a folder without a readable config.json: name subsets by fraction
    axes = {"fractions" if isinstance(config, str) else config.subset_axis for config in configs}
    return "sizes" if axes == {"sizes"} else "fractions"


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
    parser.add_argument(
        "--union",
        nargs="+",
        type=Path,
        action="append",
        default=[],
        metavar="FOLDER",
        help="folders that ran different methods of one size, merged method by method (repeatable)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metric", default="accuracy")
    parser.add_argument("--direction", default="max", choices=["max", "min"])
    args = parser.parse_args()
    studies = [[folder] for folder in args.folders] + args.pool
    if not studies and not args.union:
        parser.error("give study folders, --pool or --union groups")
    frame = combined(studies, args.union, args.metric)
    unions = frozenset(study_name(folders) for folders in args.union)
    studies += args.union
    frame["selected"] = frame["selected"].astype(bool)
    methods = list(dict.fromkeys(frame["method"]))
    labels = subset_labels(frame[frame["selected"]], subset_axis([f for folders in studies for f in folders]))
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
        *tuning_notes(studies, frame, labels, unions),
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
