"""Report a study from results folders that may hold only part of it (a time-boxed GPU run), on this machine.

    python benchmarks/pde_study/merge.py --config benchmarks/pde_study/darcy_fno.toml \
        --out docs/results/darcy_fno FOLDER [FOLDER ...]

Each folder holds runs of the study's config (all of it, or an interrupted sweep, or a subset of its fractions and
methods). The finished run records (runs/*.json) of this study are copied into --out; the reported seeds are cut to
those that finished in every (fraction, method) cell, so that the paired comparisons stay paired; then the runner
resumes the config in --out, which trains nothing that is already there and writes results.csv, summary.md and the
plots. (Only the cut needs this script: a complete folder reports itself, or through ``--reuse``.)
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from modelbalance.experiments.config import ExperimentConfig, read_config_file
from modelbalance.experiments.plan import record_point
from modelbalance.experiments.runner import run_experiment


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("slices", nargs="+")
    args = ap.parse_args()
    config = ExperimentConfig.from_dict(read_config_file(args.config))
    out = Path(args.out)
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for folder in args.slices:
        for path in sorted(Path(folder).glob("runs/*.json")):
            record = json.loads(path.read_text())
            if record.get("status") != "ok" or not _belongs(record, config):
                continue
            records.append(record)
            shutil.copy(path, runs_dir / path.name)
    tune = set(config.tune_seeds or ())
    complete = set(config.seeds)
    for subset in _subsets(config):
        for method in config.methods:
            seeds = {
                r["seed"]
                for r in records
                if r["method"] == method and _in_subset(r, subset) and r["seed"] not in tune
            }
            complete &= seeds
    seeds = tuple(s for s in config.seeds if s in complete)
    print(f"{len(records)} finished runs; seeds complete in every cell: {list(seeds)}")
    if not seeds:
        raise SystemExit("no seed finished in every (fraction, method) cell")
    merged = config.replace(out=str(out), seeds=seeds, device="cpu")
    (out / "config.json").write_text(json.dumps(merged.to_dict(), indent=1))
    run_experiment(merged, resume=True, progress=False)


_RECORD_FIELD = {
    "fractions": "fraction",
    "sizes": "n_train",
    "shots": "shots",
}  # subset axis -> run record field


def _subsets(config: ExperimentConfig) -> list[tuple[str, float]]:
    """The study's training subsets as (record field, value): by fraction, absolute size or shots per class."""
    axis = config.subset_axis
    return [(_RECORD_FIELD[axis], value) for value in getattr(config, axis)]


def _in_subset(record: dict, subset: tuple[str, float]) -> bool:
    key, value = subset
    return record.get(key) is not None and abs(record[key] - value) < 1e-12


def _belongs(record: dict, config: ExperimentConfig) -> bool:
    """A run of this study (a folder may also hold runs of the studies it reused runs from)."""
    if record["method"] not in config.methods:
        return False
    point = record_point(record)
    return (
        record["task"] == config.task
        and record["model"] == config.model
        and any(_in_subset(record, subset) for subset in _subsets(config))
        and point in config.grid_points(record["method"])
        and record["run_hash"] == config.run_hash(record["method"], {k: v for k, v in point if k != "lr"})
    )


if __name__ == "__main__":
    main()
