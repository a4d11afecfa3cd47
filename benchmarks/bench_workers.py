"""Wall clock of a demo sweep with ``--workers 2`` (one thread each) against ``--workers 1`` (two threads), and the
start-up cost of a local Ray cluster.

    python benchmarks/bench_workers.py [--track pde|text] [--steps N] [--out benchmarks/results/workers.json]

Both sweeps run the whole demo config (data preparation, every run, the reports without plots) in fresh results
folders, one after the other; the worker processes' start-up and their own data preparation count in the 2-worker
time. Ray: ``ray.init`` of a local 2-CPU cluster, a first task (a Ray worker process starts, imports torch and
prepares the tiny ``toy`` experiment), the same task again on the warm worker, and ``ray.shutdown``. Not a test:
the numbers depend on the machine and on what else runs on it (the load averages are recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch


def sweep(track: str, out: Path, *, workers: int, threads: int, steps: int | None = None) -> dict:
    from modelbalance.experiments.demo import demo_config
    from modelbalance.experiments.executors import make_executor
    from modelbalance.experiments.runner import prepare, run_experiment

    torch.set_num_threads(threads)  # the driver's runs (sequential); workers set their own
    config = demo_config(track=track, out=str(out), device="cpu")
    if steps is not None:
        config = config.replace(steps=steps, epochs=1) if config.steps else config.replace(epochs=steps)
    start = time.perf_counter()
    prepared = prepare(config)
    with make_executor(workers=workers, threads=threads, device="cpu") as executor:
        outcome = run_experiment(
            config, prepared=prepared, progress=False, plots=False, executor=executor, log=lambda _: None
        )
    wall = time.perf_counter() - start
    metric = prepared.metric
    return {
        "workers": workers,
        "threads_per_run": threads,
        "wall_s": round(wall, 1),
        "runs": outcome.n_new,
        "failed": outcome.n_failed,
        f"mean_test_{metric}": _mean(outcome.records, metric),
    }


def _mean(records, metric) -> float | None:
    values = [r[metric] for r in records if r.get("status") == "ok" and metric in r]
    return round(sum(values) / len(values), 6) if values else None


def ray_startup() -> dict:
    from modelbalance.experiments.config import ExperimentConfig
    from modelbalance.experiments.plan import RunSpec
    from modelbalance.experiments.ray_executor import RayExecutor
    from modelbalance.experiments.runner import prepare

    config = ExperimentConfig(
        task="toy",
        model="mlp",
        fractions=(0.5,),
        seeds=(0,),
        methods=("baseline",),
        epochs=1,
        analyze_layers=False,
        task_params={"n_samples": 32, "n_test": 8, "resolution": 16},
        out=tempfile.mkdtemp(),
        device="cpu",
    )
    prepared = prepare(config)
    spec = RunSpec(0.5, 0, "baseline", (("lr", 1e-3),))
    start = time.perf_counter()
    executor = RayExecutor(num_cpus=2, threads_per_run=1)
    init = time.perf_counter() - start
    times = []
    for _ in range(2):
        start = time.perf_counter()
        executor.run(prepared, [spec], on_record=lambda *_: None)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    executor.close()
    import ray

    return {
        "ray_version": ray.__version__,
        "init_s": round(init, 2),
        "first_run_s": round(times[0], 2),
        "warm_run_s": round(times[1], 3),
        "shutdown_s": round(time.perf_counter() - start, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--track", default="pde", choices=("pde", "text"), help="which demo sweep (default pde)")
    ap.add_argument("--out", default="benchmarks/results/workers.json")
    ap.add_argument(
        "--steps",
        type=int,
        help="shorter runs: optimizer steps per run (pde) or epochs (text) instead of the demo's",
    )
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray start-up measurement")
    args = ap.parse_args()
    result = {
        "machine": {
            "cores_available": len(os.sched_getaffinity(0)),
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
        },
        "track": args.track,
        "steps_override": args.steps,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory() as scratch:
        one = sweep(args.track, Path(scratch, "workers1"), workers=1, threads=2, steps=args.steps)
        print("workers 1 x 2 threads:", one, flush=True)
        two = sweep(args.track, Path(scratch, "workers2"), workers=2, threads=1, steps=args.steps)
        print("workers 2 x 1 thread: ", two, flush=True)
    result["workers1_threads2"], result["workers2_threads1"] = one, two
    result["speedup"] = round(one["wall_s"] / two["wall_s"], 2)
    if not args.no_ray:
        result["ray_local_cluster"] = ray_startup()
        print("ray:", result["ray_local_cluster"])
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"speed-up of --workers 2 (1 thread each) over --workers 1 (2 threads): {result['speedup']}x")


if __name__ == "__main__":
    main()
