"""Speed of the KS xmin scan, ``fit_power_law(x, xmin="ks")``, against the ``powerlaw`` package on general data.

    python benchmarks/bench_powerlaw.py [--threads 1] [--sizes 1e2 1e3 1e4 1e5 1e6] [--powerlaw-max-distinct 20000]
                                        [--repeat 3] [--out benchmarks/results/powerlaw_ks.json]

Three families of data, each from 1e2 to 1e6 values (one process, BLAS/OpenMP pools pinned by threadpoolctl):
- ``pareto``: continuous Pareto, density ~ x^-2.5, no ties (every value is a candidate xmin);
- ``rounded``: a lognormal bulk under a Pareto tail (density ~ x^-2.2), rounded to 0.01: heavy ties, as in
  measurements; plus the case of the issue, 2e5 values with about 3,500 distinct ones;
- ``words``: word frequencies of a text grown by Simon's model (a new word with probability 0.1, otherwise a copy
  of a random earlier word), the classic source of Zipf's law: integers, mostly tiny and tied, tail ~ x^-2.1.

Compared: ``powerlaw.Fit(x, discrete=False)`` (its defaults; ``fit.power_law.alpha``) and modelbalance with the
default KS distance (powerlaw's: the ECDF just below each distinct value), which must give the same xmin and
alpha, and with ``ks_steps="both"`` (the exact supremum over both sides of each ECDF step). powerlaw tries every
distinct value, each at O(n) in Python, so it runs only where a data set has at most ``--powerlaw-max-distinct``
distinct values (about a minute there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np


def pareto(n: int, rng) -> np.ndarray:
    return (1.0 - rng.random(n)) ** (-1.0 / 1.5)


def rounded(n: int, rng) -> np.ndarray:
    bulk = np.exp(rng.normal(0.0, 0.5, n // 2))
    tail = 2.0 * (1.0 - rng.random(n - n // 2)) ** (-1.0 / 1.2)
    return np.round(np.concatenate([bulk, tail]), 2)


def issue_case(rng) -> np.ndarray:
    """2e5 values with about 3,500 distinct ones (the size of the data set in the issue)."""
    return np.round(pareto(200_000, rng), 2)


def words(n: int, rng, p_new: float = 0.1) -> np.ndarray:
    """Frequencies of n distinct words in a text of about n / p_new tokens grown by Simon's model."""
    tokens = int(n / p_new)
    new = rng.random(tokens) < p_new
    new[0] = True
    # Token t copies token floor(u * t); following the copies back ends at the word's first token.
    parent = np.where(new, np.arange(tokens), (rng.random(tokens) * np.arange(tokens)).astype(np.int64))
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            break
        parent = grand
    counts = np.bincount(parent, minlength=tokens)[new]
    return counts.astype(np.float64)


def time_call(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def run_powerlaw(x):
    import powerlaw

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = powerlaw.Fit(x, discrete=False, verbose=False)
        return float(fit.xmin), float(fit.power_law.alpha)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e2, 1e3, 1e4, 1e5, 1e6])
    ap.add_argument("--families", nargs="+", default=["pareto", "rounded", "words"])
    ap.add_argument("--powerlaw-max-distinct", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/powerlaw_ks.json")
    args = ap.parse_args()

    import powerlaw
    from threadpoolctl import threadpool_limits

    from modelbalance import fit_power_law

    makers = {"pareto": pareto, "rounded": rounded, "words": words}
    cases = [(family, int(n)) for family in args.families for n in sorted(args.sizes)]
    if "rounded" in args.families:  # the issue's case, among the rounded ones by size
        at = max(i for i, (f, n) in enumerate(cases) if f == "rounded" and n <= 200_000) + 1
        cases.insert(at, ("rounded_issue", 200_000))
    rows = []
    header = (
        f"{'data':14s} {'n':>8s} {'distinct':>8s} {'powerlaw s':>11s} {'ours s':>9s} {'ratio':>7s}"
        f" {'both s':>9s} {'ratio':>7s}  {'same xmin, alpha':16s} xmin with 'both' (vs powerlaw)"
    )
    print(header)
    with threadpool_limits(args.threads):
        for i, (family, n) in enumerate(cases):
            rng = np.random.default_rng(1000 + i)
            x = issue_case(rng) if family == "rounded_issue" else makers[family](n, rng)
            distinct = int(np.unique(x).size)
            repeat = args.repeat if x.size < 500_000 else 1
            t_ours, ours = time_call(lambda x=x: fit_power_law(x, xmin="ks"), repeat)
            t_both, both = time_call(lambda x=x: fit_power_law(x, xmin="ks", ks_steps="both"), repeat)
            row = {
                "data": family,
                "n": int(x.size),
                "distinct": distinct,
                "modelbalance_s": t_ours,
                "modelbalance_both_s": t_both,
                "xmin": ours.xmin,
                "alpha": ours.alpha,
                "xmin_both": both.xmin,
                "alpha_both": both.alpha,
                "powerlaw_s": None,
            }
            if distinct <= args.powerlaw_max_distinct:
                t_pl, (xmin_pl, alpha_pl) = time_call(lambda x=x: run_powerlaw(x), 1)
                row.update(
                    powerlaw_s=t_pl,
                    powerlaw_xmin=xmin_pl,
                    powerlaw_alpha=alpha_pl,
                    speedup=t_pl / t_ours,
                    speedup_both=t_pl / t_both,
                    same_xmin_alpha=bool(ours.xmin == xmin_pl and abs(ours.alpha / alpha_pl - 1.0) < 1e-6),
                    same_xmin_both=bool(both.xmin == xmin_pl),
                )
            rows.append(row)
            if row["powerlaw_s"] is None:
                pl_cols = f"{'(skipped)':>11s} {t_ours:9.3f} {'':>7s} {t_both:9.3f} {'':>7s}  {'':16s}"
                tail = f"{both.xmin:.6g}"
            else:
                pl_cols = (
                    f"{row['powerlaw_s']:11.3f} {t_ours:9.3f} {row['speedup']:6.0f}x {t_both:9.3f}"
                    f" {row['speedup_both']:6.0f}x  {'yes' if row['same_xmin_alpha'] else 'NO':16s}"
                )
                tail = f"{both.xmin:.6g} ({row['powerlaw_xmin']:.6g})"
            print(f"{family:14s} {x.size:8d} {distinct:8d} {pl_cols} {tail}", flush=True)

    compared = [r for r in rows if r["powerlaw_s"] is not None]
    result = {
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "powerlaw": powerlaw.__version__,
        "powerlaw_max_distinct": args.powerlaw_max_distinct,
        "all_same_xmin_alpha": all(r["same_xmin_alpha"] for r in compared),
        "min_speedup": min((r["speedup"] for r in compared), default=None),
        "rows": rows,
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\nratio = powerlaw time / ours (1 thread). Same xmin and alpha with the default KS distance on every "
        f"compared data set: {result['all_same_xmin_alpha']}. Slowest ratio: {result['min_speedup']:.0f}x."
    )


if __name__ == "__main__":
    main()
