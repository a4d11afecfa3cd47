"""Speed of the default layer-wise analysis on a random-init RoBERTa-base, against WeightWatcher and svdvals.

    python benchmarks/bench_analyze.py --threads 2 [--repeat 3] [--skip-ww] [--out benchmarks/results/analyze.json]

All three run in one process with the same thread count (torch intra-op threads and BLAS/OpenMP pools pinned by
threadpoolctl). Compared:
- modelbalance.analyze(model) with defaults (float32 Gram + LAPACK syevd, Hill alpha at the median, the cached
  same-shape random reference for alpha_relative; progress bar off);
- WeightWatcher 0.7.7 ``analyze()`` with defaults (pip install weightwatcher==0.7.7);
- a per-layer ``torch.linalg.svdvals`` loop in float32 on the same matrices, followed by the same Hill fit.
Accuracy: alphas against a float64 SVD reference with the same fit.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch


def build_model():
    from transformers import RobertaConfig, RobertaModel

    torch.manual_seed(0)
    return RobertaModel(RobertaConfig()).eval()


def time_call(fn, repeat):
    times = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-ww", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    import modelbalance
    from modelbalance.spectral import extract_layers, fit_power_law
    from modelbalance.spectral.reference import _null_alpha

    torch.set_num_threads(args.threads)
    results = {
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    with threadpool_limits(args.threads):
        model = build_model()
        layers = extract_layers(model)
        results["layers"] = len(layers)

        # Cold: an empty cache, so the same-shape random reference is sampled inside the timing.
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["MODELBALANCE_CACHE"] = tmp
            _null_alpha.cache_clear()
            t_cold, _ = time_call(lambda: modelbalance.analyze(model, progress=False), 1)
            # Warm: the reference is cached per shape and fit, as in every later call.
            t_ours, report = time_call(lambda: modelbalance.analyze(model, progress=False), args.repeat)
        results["modelbalance_s"] = t_ours
        results["modelbalance_cold_cache_s"] = t_cold

        def svd_loop():
            out = {}
            for layer in layers:
                s = torch.linalg.svdvals(layer.matrices()).reshape(-1)
                out[layer.name] = fit_power_law(s.double() ** 2).alpha
            return out

        t_svd, svd_alphas = time_call(svd_loop, args.repeat)
        results["svdvals_loop_s"] = t_svd

        ref = {
            layer.name: fit_power_law(torch.linalg.svdvals(layer.matrices().double()).reshape(-1) ** 2).alpha
            for layer in layers
        }
        diffs = np.array([abs(report[name].alpha - a) for name, a in ref.items()])
        results["max_abs_alpha_diff_vs_float64_svd"] = float(diffs.max())
        results["max_abs_alpha_diff_svdvals_fp32"] = float(
            max(abs(svd_alphas[n] - a) for n, a in ref.items())
        )

        if not args.skip_ww:
            import weightwatcher as ww

            logging.getLogger("weightwatcher").setLevel(logging.ERROR)
            warnings.filterwarnings("ignore")
            watcher = ww.WeightWatcher(model=model)
            t_ww, details = time_call(lambda: watcher.analyze(), max(1, args.repeat - 1))
            results["weightwatcher_s"] = t_ww
            results["weightwatcher_layers"] = int(len(details))
            results["speedup_vs_weightwatcher"] = t_ww / t_ours
            results["speedup_vs_weightwatcher_cold_cache"] = t_ww / t_cold
        results["speedup_vs_svdvals_loop"] = t_svd / t_ours

    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
