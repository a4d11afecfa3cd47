"""Pool the seeds of studies that ran the same cell (same task, model, size and rate) on different seeds, e.g. a
study and its confirmation on new seeds, and compare methods pair by pair on every seed at once; it also tests
whether the batches disagree (Welch's t on the per-seed differences of each batch against the other).

    python benchmarks/reports/seed_pool.py docs/results/nlp_wordnet_k8_controls \\
        docs/results/nlp_wordnet_k8_confirm --pairs tb:baseline tb_shuffle:baseline tb:tb_shuffle

Each pair ``a:b`` reads "a against b" (gain > 0: a is better); Holm adjusts the t-test p-values over the pairs
listed, so list the pairs that were declared, not every pair that could be. Markdown goes to stdout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from modelbalance.experiments.report import reported
from modelbalance.experiments.stats import holm, paired_comparison


def read_results(folder: Path) -> pd.DataFrame:
    """A finished study folder's ``results.csv``: every run, reported or not."""
    path = folder / "results.csv"
    if not path.is_file():
        raise SystemExit(f"{path} not found: is {folder} a finished study folder?")
    return pd.read_csv(path)


def pooled_runs(folders: list[Path], methods: set[str] | None = None) -> pd.DataFrame:
    """The reported runs of ``folders`` as one table, with a ``batch`` column naming each run's folder.

    The folders must have run one cell (task, model, size), each method at one configuration, on disjoint seeds.
    ``methods``: only these are read (a confirmation may add a method that its parent ran in another folder); the
    methods every folder reports when None.
    """
    batches = {folder.name: reported(read_results(folder)) for folder in folders}
    if len(batches) < len(folders):
        raise SystemExit("two folders have the same name: pool each study once")
    if methods is None:
        methods = set.intersection(*(set(runs["method"]) for runs in batches.values()))
    cells = {}
    for name, runs in batches.items():
        runs = runs[runs["method"].isin(methods)]
        for column in ("task", "model", "n_train"):
            if runs[column].nunique() != 1:
                raise SystemExit(f"{name} reports more than one {column}: pool one cell at a time")
        # the cell and each method's configuration: pooling is only sound where every folder ran the same ones
        rates = runs.groupby("method")["point"].agg(lambda points: "/".join(sorted(set(points))))
        task, model, n_train = runs[["task", "model", "n_train"]].iloc[0]
        cells[name] = (task, model, f"{int(n_train)} examples", *sorted(rates.items()))
        batches[name] = runs.assign(batch=name)
    if len(set(cells.values())) > 1:
        listed = "; ".join(f"{name}: {cell}" for name, cell in cells.items())
        raise SystemExit(f"the folders ran different cells or configurations: {listed}")
    frame = pd.concat(batches.values(), ignore_index=True)
    shared = frame.groupby("seed")["batch"].nunique()
    if (shared > 1).any():
        raise SystemExit(
            f"seeds {sorted(shared.index[shared > 1])} appear in two folders: pool disjoint seed sets only"
        )
    return frame


def pooled(folders: list[Path], metric: str, methods: set[str] | None = None) -> pd.DataFrame:
    """seed x method table of ``metric`` over the folders' reported runs (:func:`pooled_runs`), with each seed's
    folder in the column ``batch``."""
    runs = pooled_runs(folders, methods)
    table = runs.pivot_table(index="seed", columns="method", values=metric)
    table = table.assign(batch=runs.groupby("seed")["batch"].first())
    order = {name: i for i, name in enumerate(dict.fromkeys(runs["batch"]))}  # the folders' order, as given
    return table.sort_values("batch", key=lambda batch: batch.map(order), kind="stable")


def report(frame: pd.DataFrame, pairs: list[tuple[str, str]], metric: str, direction: str) -> str:
    batches = list(dict.fromkeys(frame["batch"]))
    lines = [
        f"Pooled seeds: {len(frame)} ({', '.join(f'{b}: {sorted(frame.index[frame.batch == b])}' for b in batches)})",
        "",
        f"| {metric}: a vs b | seeds | gain | 95% CI | wins | t-test p | Holm p (t) | Wilcoxon p | per batch "
        "| batches differ (Welch p) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    sign = 1.0 if direction == "max" else -1.0
    for a, b in pairs:
        missing = [m for m in (a, b) if m not in frame]
        if missing:
            raise SystemExit(
                f"method(s) {missing} not in every folder; present: {sorted(set(frame) - {'batch'})}"
            )
        both = frame[[a, b, "batch"]].dropna()
        result = paired_comparison(both[b], both[a], direction=direction)
        per_batch, differences = [], []
        for batch in batches:
            part = both[both["batch"] == batch]
            gain = paired_comparison(part[b], part[a], direction=direction).gain
            per_batch.append(f"{gain:+.1%} ({len(part)})")
            differences.append(sign * (part[a] - part[b]).to_numpy())
        welch = (
            scipy_stats.ttest_ind(*differences[:2], equal_var=False).pvalue if len(batches) == 2 else np.nan
        )
        rows.append((a, b, result, per_batch, welch))
    # over the pairs asked for, as one family
    adjusted = holm([result.p_ttest for _, _, result, _, _ in rows])
    for (a, b, result, per_batch, welch), p_holm in zip(rows, adjusted):
        lines.append(
            f"| {a} vs {b} | {result.n} | {result.gain:+.1%} | [{result.ci_low:+.1%}, {result.ci_high:+.1%}] "
            f"| {result.wins}/{result.n} | {format_p(result.p_ttest)} | {format_p(p_holm)} "
            f"| {format_p(result.p_wilcoxon)} "
            f"| {'; '.join(per_batch)} | {format_p(welch)} |"
        )
    return "\n".join(lines)


def format_p(value: float) -> str:
    if not np.isfinite(value):  # one batch: nothing to test the batches against
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.2g}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--pairs", nargs="+", required=True, help="a:b, a against b")
    parser.add_argument("--metric", default="accuracy")
    parser.add_argument("--direction", choices=("min", "max"), default="max")
    args = parser.parse_args(argv)
    pairs = []
    for pair in args.pairs:
        a, sep, b = pair.partition(":")
        if not sep or not a or not b:
            raise SystemExit(f"--pairs {pair!r}: expected METHOD:METHOD")
        pairs.append((a, b))
    methods = {method for pair in pairs for method in pair}
    print(report(pooled(args.folders, args.metric, methods), pairs, args.metric, args.direction))


if __name__ == "__main__":
    main()
