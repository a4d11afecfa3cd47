"""Device checks for a machine with a CUDA GPU: the spectral engine and TempBalance on the weights' own device.

    python benchmarks/gpu_check.py [--out results.json]

Checks (each prints one JSON line; non-zero exit if a check fails):
1. analyze() on a CUDA RoBERTa-base gives the same alphas as on the CPU (|diff| < 1e-3) with both accelerator
   eigensolvers (batched eigvalsh on the GPU; Gram on the GPU + host LAPACK), and their wall times.
2. half-precision (bf16) weights on the GPU are upcast: alphas within 1e-2 of the float32 weights' alphas.
3. complex SpectralConv weights (neuraloperator FNO) on the GPU: the same alphas as on the CPU.
4. TempBalance on a CUDA model for a few steps: factors finite, parameters finite, all tensors stay on the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch


def check(name, ok, **info):
    print(json.dumps({"check": name, "ok": bool(ok), **info}), flush=True)
    return bool(ok)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 2
    import modelbalance

    dev = torch.device("cuda")
    results = []
    from transformers import RobertaConfig, RobertaModel

    torch.manual_seed(0)
    model = RobertaModel(RobertaConfig()).eval()
    t0 = time.perf_counter()
    cpu = modelbalance.analyze(model, progress=False)
    t_cpu = time.perf_counter() - t0
    model = model.to(dev)
    timings = {}
    for solver in ("device", "host", "device", "host"):  # interleaved; the second round is timed
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        gpu = modelbalance.analyze(model, progress=False, eigensolver=solver)
        torch.cuda.synchronize()
        timings[solver] = time.perf_counter() - t0
        diff = max(abs(cpu[n].alpha - gpu[n].alpha) for n in cpu.names)
        results.append(check(f"roberta_gpu_{solver}_vs_cpu", diff < 1e-3, max_alpha_diff=diff))
    results.append(
        check(
            "roberta_gpu_timing",
            True,
            device_eigvalsh_s=timings["device"],
            host_lapack_s=timings["host"],
            cpu_only_s=t_cpu,
            cpu_count=os.cpu_count(),
            torch_threads=torch.get_num_threads(),
            layers=len(gpu),
            device=torch.cuda.get_device_name(),
        )
    )

    half = modelbalance.analyze(model.to(torch.bfloat16), progress=False)
    diff_half = max(abs(cpu[n].alpha - half[n].alpha) for n in cpu.names)
    results.append(check("bf16_upcast", diff_half < 1e-2, max_alpha_diff=diff_half))
    del model

    from neuralop.models import FNO

    torch.manual_seed(0)
    fno = FNO(n_modes=(32, 32), hidden_channels=32, in_channels=1, out_channels=1, n_layers=4)
    a_cpu = modelbalance.analyze(fno, progress=False)
    a_gpu = modelbalance.analyze(fno.to(dev), progress=False)
    diff_fno = max(
        abs(a_cpu[n].alpha - a_gpu[n].alpha) for n in a_cpu.names if a_cpu[n].alpha == a_cpu[n].alpha
    )
    kinds = sorted({layer.kind for layer in a_gpu})
    results.append(
        check(
            "fno_complex_gpu",
            diff_fno < 1e-3 and "spectral_conv" in kinds,
            max_alpha_diff=diff_fno,
            kinds=kinds,
        )
    )

    from modelbalance.balance import TempBalance, param_groups

    torch.manual_seed(0)
    fno = FNO(n_modes=(32,), hidden_channels=64, in_channels=1, out_channels=1, n_layers=4).to(dev)
    opt = torch.optim.AdamW(param_groups(fno, unit="layer"), lr=1e-3)
    tb = TempBalance(fno, opt, unit="layer", interval=2)
    x = torch.randn(8, 1, 256, device=dev)
    for _ in range(6):
        loss = (fno(x) - x).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
    finite = all(torch.isfinite(p).all() for p in fno.parameters())
    factors = list(tb.factors.values())
    results.append(
        check(
            "tempbalance_cuda",
            finite and all(f == f for f in factors) and tb.num_recomputes >= 2,
            recomputes=tb.num_recomputes,
            factor_range=[min(factors), max(factors)],
        )
    )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"all_ok": all(results)}, fh)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
