"""What HT-SR predicts, measured on a finished NLP study folder: per-block alpha of the pretrained model, whether
fine-tuning (with and without TempBalance) changes it, and whether the blocks TB speeds up are those whose alpha
moves. Prints markdown.

    python benchmarks/nlp_study/alpha_report.py /tmp/nlp_study/spam_k4 [--methods baseline,tb,tb_shuffle]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from modelbalance.experiments.plots import block_alpha_frame, block_of


def load(folder: Path, methods: list[str] | None) -> list[dict]:
    config = json.loads((folder / "config.json").read_text())
    seeds = set(config["seeds"])
    records = [json.loads(p.read_text()) for p in sorted((folder / "runs").glob("*.json"))]
    records = [r for r in records if r["status"] == "ok" and r["seed"] in seeds]
    if methods:
        records = [r for r in records if r["method"] in methods]
    return records


def reported(records: list[dict], folder: Path) -> list[dict]:
    """Keep each (fraction, method, seed) at the configuration picked on validation (grid.csv)."""
    grid_path = folder / "grid.csv"
    if not grid_path.is_file():
        return records
    grid = pd.read_csv(grid_path)
    picked = {(round(r.fraction, 12), r.method): r.point for r in grid[grid["selected"]].itertuples()}
    return [r for r in records if picked.get((round(r["fraction"], 12), r["method"])) == r.get("point")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--methods", default=None)
    args = parser.parse_args()
    records = reported(load(args.folder, args.methods.split(",") if args.methods else None), args.folder)
    table = block_alpha_frame(records)
    if table.empty:
        print("no runs with per-layer alphas before and after training")
        return
    print(
        "| method | n_train | runs | spread before (std over blocks) | spread after | mean change of alpha |"
    )
    print("|---|---|---|---|---|---|")
    for (method, fraction), part in table.groupby(["method", "fraction"]):
        per_run = part.groupby("seed")
        before = per_run["before"].std().mean()
        after = per_run["after"].std().mean()
        n_train = next(r["n_train"] for r in records if r["fraction"] == fraction)
        print(
            f"| {method} | {n_train} | {per_run.ngroups} | {before:.3f} | {after:.3f} | "
            f"{part['change'].mean():+.4f} ± {part['change'].std():.4f} |"
        )
    print()
    before = table.groupby("block")["before"].mean()
    print(
        "Pretrained per-block alpha (mean over the block's layers): "
        + ", ".join(f"{b}: {a:.2f}" for b, a in before.items())
    )
    # TB's factors vs how far each block's alpha moved
    rows = []
    for r in records:
        if not r.get("tb_history") or not r.get("layers") or not r.get("layers_before"):
            continue
        history = pd.DataFrame(r["tb_history"])
        factor = history.groupby("unit")["factor"].mean()
        # a block's factor: its own (block units) or the mean over its layers' (layer units)
        factor.index = [block_of(u + ".x") for u in factor.index]
        factor = factor[factor.index.notna()].groupby(level=0).mean()
        moved = table[
            (table["method"] == r["method"])
            & (table["seed"] == r["seed"])
            & (table["fraction"] == r["fraction"])
        ]
        moved = moved.set_index(moved["block"].astype(str))["change"]
        common = [b for b in factor.index if b in moved.index]
        if len(common) >= 3:
            rho = stats.spearmanr(factor[common].to_numpy(), np.abs(moved[common].to_numpy())).statistic
            rows.append({"method": r["method"], "fraction": r["fraction"], "seed": r["seed"], "rho": rho})
    if rows:
        frame = pd.DataFrame(rows)
        print()
        print(
            "Spearman correlation, per run, between a block's mean TB factor and |alpha change| of that block:"
        )
        for method, part in frame.groupby("method"):
            rho = part["rho"].dropna()
            p = stats.wilcoxon(rho).pvalue if len(rho) >= 5 and np.any(rho != 0) else float("nan")
            print(f"- {method}: mean rho {rho.mean():+.2f} over {len(rho)} runs (Wilcoxon p vs 0: {p:.3f})")


if __name__ == "__main__":
    main()
