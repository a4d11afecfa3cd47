"""Worker for test_distributed.py: trains a small MLP with TempBalance and saves what each rank saw.

    python -m torch.distributed.run --nproc_per_node=2 --standalone dist_worker.py MODE OUT_DIR [async]
    python dist_worker.py single OUT_DIR [async]

MODE is ddp, fsdp2, fsdp1 or single (one process, the whole global batch). Each rank writes
OUT_DIR/MODE_rank<r>.pt with the balancer's history, the layers it fitted itself and the final full
parameters.
"""

import contextlib
import os
import sys
import warnings

import torch
import torch.distributed as dist
import torch.nn as nn

from modelbalance import TempBalance, param_groups
from modelbalance.integrations.distributed import fsdp1_full_params, shard_measurement

warnings.filterwarnings("ignore")
STEPS, GLOBAL_BATCH, WIDTH = 6, 16, 48
OPTIONS = dict(unit="layer", exclude=(), interval=2, mapping="sigmoid", metric="alpha")


def build_model() -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Linear(24, WIDTH), nn.GELU()]
    for _ in range(3):
        layers += [nn.Linear(WIDTH, WIDTH), nn.GELU()]
    return nn.Sequential(*layers, nn.Linear(WIDTH, 4))


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(GLOBAL_BATCH, 24, generator=gen)
    return x, torch.randn(GLOBAL_BATCH, 4, generator=gen)


def main(mode: str, out_dir: str, asynchronous: bool) -> None:
    torch.set_num_threads(1)
    options = dict(OPTIONS, asynchronous=asynchronous)
    rank, world = 0, 1
    if mode != "single":
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    net = build_model()
    model, full_params = net, None
    if mode == "ddp":
        model = nn.parallel.DistributedDataParallel(net)
    elif mode == "fsdp2":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (world,))
        for module in net:
            if isinstance(module, nn.Linear):
                fully_shard(module, mesh=mesh)
        fully_shard(net, mesh=mesh)
    elif mode == "fsdp1":
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        model = FSDP(net, use_orig_params=True, device_id=torch.device("cpu"))
        full_params = fsdp1_full_params(model)
    context = full_params() if full_params is not None else contextlib.nullcontext()
    with context:  # FSDP1: groups and plan need the real weight shapes
        optimizer = torch.optim.AdamW(param_groups(net, weight_decay=0.01, **_unit(options)), lr=1e-2)
        tb = TempBalance(net, optimizer, **options)
    measurer = shard_measurement(tb, full_params=full_params) if mode != "single" else None
    measured = []
    for step in range(STEPS):
        x, y = batch(step)
        per_rank = GLOBAL_BATCH // world
        x, y = x[rank * per_rank : (rank + 1) * per_rank], y[rank * per_rank : (rank + 1) * per_rank]
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        before = tb.num_recomputes
        optimizer.step()
        optimizer.zero_grad()
        if measurer is not None and tb.num_recomputes != before:
            measured.append(list(measurer.measured))
    state = tb.state_dict()  # waits for a background recompute still in flight
    check = {}
    if mode == "ddp":  # sharded fits of the final weights vs. this rank fitting every layer itself
        sharded = measurer.run(measurer.snapshot(tb.plan.layers), {})
        local = measurer.inner.run(measurer.inner.snapshot(tb.plan.layers), {})
        check = {
            "sharded": {n: f.alpha for n, f in sharded.fits.items()},
            "local": {n: f.alpha for n, f in local.fits.items()},
        }
    tb.remove()
    with full_params() if full_params is not None else contextlib.nullcontext():
        params = {
            n: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone()
            for n, p in net.named_parameters()
        }
    torch.save(
        {
            "history": tb.history,
            "factors": tb.factors,
            "alphas": tb.alphas,
            "measured": measured,
            "owners": None if measurer is None else measurer.owners,
            "params": params,
            "step_count": state["step_count"],
            "check": check,
        },
        os.path.join(out_dir, f"{mode}_rank{rank}.pt"),
    )
    if mode != "single":
        dist.destroy_process_group()


def _unit(options: dict) -> dict:
    return {k: options[k] for k in ("unit", "exclude")}


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], len(sys.argv) > 3 and sys.argv[3] == "async")
