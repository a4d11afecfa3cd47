"""Distributed TempBalance: layer assignment, sharded measurement, real torchrun runs (DDP, FSDP2, FSDP1)."""

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from modelbalance import TempBalance, param_groups
from modelbalance.integrations.distributed import (
    ShardedMeasurer,
    _cost,
    assign_layers,
    shard_measurement,
    unwrap_model,
)

WORKER = Path(__file__).with_name("dist_worker.py")
HF_WORKER = Path(__file__).with_name("hf_dist_worker.py")
shapes = st.tuples(st.integers(1, 300), st.integers(1, 300), st.integers(1, 9))


@settings(max_examples=60, deadline=None)
@given(st.lists(shapes, max_size=40), st.integers(1, 8), st.sampled_from(["balanced", "round_robin"]))
def test_assignment_covers_every_layer_once_and_balances_cost(specs, world, assignment):
    layers = [SimpleNamespace(matrix_shape=(r, c), num_matrices=k) for r, c, k in specs]
    owners = assign_layers(layers, world, assignment)
    assert len(owners) == len(layers) and all(0 <= o < world for o in owners)
    assert owners == assign_layers(list(layers), world, assignment)  # deterministic: every rank agrees
    if assignment == "round_robin":
        assert owners == [i % world for i in range(len(layers))]
    elif layers:
        load = [
            sum(_cost(layer) for layer, o in zip(layers, owners, strict=True) if o == r) for r in range(world)
        ]
        assert max(load) - min(load) <= max(_cost(layer) for layer in layers) * (
            1 + 1e-12
        )  # greedy LPT bound


def test_assignment_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown assignment"):
        assign_layers([], 2, "random")
    with pytest.raises(ValueError, match="world_size"):
        assign_layers([], 0)


def test_unwrap_model_strips_wrappers():
    net = nn.Linear(3, 3)
    assert unwrap_model(nn.DataParallel(net)) is net
    assert unwrap_model(net) is net


def _balancer():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(24, 48), nn.Tanh(), nn.Linear(48, 48), nn.Tanh(), nn.Linear(48, 48))
    options = dict(unit="layer", exclude=(), interval=1, metric="alpha")
    optimizer = torch.optim.SGD(param_groups(net, unit="layer", exclude=()), lr=0.05)
    return net, optimizer, TempBalance(net, optimizer, **options)


def test_shard_measurement_needs_a_process_group():
    *_, tb = _balancer()
    with pytest.raises(RuntimeError, match="init_process_group"):
        shard_measurement(tb)


def test_single_rank_group_gives_the_plain_measurement(tmp_path):
    """World of one (in-process gloo): the sharded path must reproduce the balancer's own fits exactly."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        net, optimizer, tb = _balancer()
        plain = tb.measurer
        measurer = shard_measurement(tb)
        assert isinstance(tb.measurer, ShardedMeasurer) and set(measurer.owners.values()) == {0}
        for _ in range(3):
            net(torch.randn(8, 24)).pow(2).mean().backward()
            optimizer.step()
            optimizer.zero_grad()
        assert tb.num_recomputes == 3 and measurer.measured == ["0", "2", "4"]
        want = plain.run(plain.snapshot(tb.plan.layers), {})
        got = measurer.run(measurer.snapshot(tb.plan.layers), {})
        assert list(got.fits) == list(want.fits)
        assert all(got.fits[n].alpha == want.fits[n].alpha for n in want.fits)
        assert got.refit == want.refit
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------- torchrun processes
def _load_worker():
    spec = importlib.util.spec_from_file_location("dist_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _torchrun(script: Path, *args: str) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        str(script),
        *args,
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _same(x, y) -> bool:
    return x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))


def _check_run(mode: str, tmp_path: Path, asynchronous: bool) -> dict:
    _torchrun(WORKER, mode, str(tmp_path), *(["async"] if asynchronous else []))
    _load_worker().main("single", str(tmp_path), asynchronous)
    r0, r1 = (torch.load(tmp_path / f"{mode}_rank{r}.pt", weights_only=False) for r in (0, 1))
    single = torch.load(tmp_path / "single_rank0.pt", weights_only=False)

    # Every rank applied the same factors at the same steps and ended with bit-identical parameters.
    assert len(r0["history"]) == len(r1["history"]) == len(single["history"]) == 15  # 3 recomputes x 5 layers
    for a, b in zip(r0["history"], r1["history"], strict=True):
        assert all(_same(a[k], b[k]) for k in a)
    assert all(torch.equal(r0["params"][n], r1["params"][n]) for n in r0["params"])

    # Each layer was fitted by exactly one rank at each recompute.
    assert r0["owners"] == r1["owners"] and set(r0["owners"].values()) == {0, 1}
    for mine, theirs in zip(r0["measured"], r1["measured"], strict=True):
        assert not set(mine) & set(theirs) and set(mine) | set(theirs) == set(r0["owners"])
        assert all(r0["owners"][n] == 0 for n in mine)

    # Same training as one process on the global batch, up to the all-reduce's float rounding.
    assert [row["step"] for row in r0["history"]] == [row["step"] for row in single["history"]]
    for name, value in single["params"].items():
        torch.testing.assert_close(r0["params"][name], value, rtol=1e-4, atol=1e-5)
    for unit, factor in single["factors"].items():
        assert r0["factors"][unit] == pytest.approx(factor, rel=1e-3)
    return r0


@pytest.mark.distributed
def test_torchrun_ddp(tmp_path):
    r0 = _check_run("ddp", tmp_path, asynchronous=False)
    check = r0["check"]  # sharded fits equal what one rank computes alone on the same weights, bit for bit
    assert check["sharded"].keys() == check["local"].keys()
    assert all(_same(check["sharded"][n], check["local"][n]) for n in check["local"])


@pytest.mark.distributed
def test_torchrun_fsdp2_asynchronous(tmp_path):
    _check_run("fsdp2", tmp_path, asynchronous=True)


@pytest.mark.distributed
def test_torchrun_fsdp1(tmp_path):
    _check_run("fsdp1", tmp_path, asynchronous=False)


@pytest.mark.distributed
def test_torchrun_hf_trainer_shards_measurement_automatically(tmp_path):
    pytest.importorskip("transformers")
    _torchrun(HF_WORKER, str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"hf_rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["world_size"] == 2 and r0["measurer"] == r1["measurer"] == "ShardedMeasurer"
    assert r0["step_count"] == r1["step_count"] == 6
    assert r0["measured"] and r1["measured"] and not set(r0["measured"]) & set(r1["measured"])
    for a, b in zip(r0["history"], r1["history"], strict=True):
        assert all(_same(a[k], b[k]) for k in a)
    assert all(torch.equal(r0["params"][n], r1["params"][n]) for n in r0["params"])


@pytest.mark.distributed
def test_torchrun_hf_trainer_with_lora_reuses_frozen_fits_on_every_rank(tmp_path):
    pytest.importorskip("peft")
    _torchrun(HF_WORKER, str(tmp_path), "lora")
    r0, r1 = (torch.load(tmp_path / f"hf_rank{r}.pt", weights_only=False) for r in (0, 1))
    for run in (r0, r1):
        refits = {}
        for row in run["history"]:
            refits[row["recompute"]] = refits.get(row["recompute"], 0) + row["layers_refit"]
        # 2 blocks x 6 matrices at the first recompute, then only the 2 x 2 LoRA layers (query, value); rank 0
        # forgot its frozen fits before the third, so both ranks refit everything there
        assert list(refits.values()) == [12, 4, 12]
    assert len(r0["measured"]) + len(r1["measured"]) == 12 and not set(r0["measured"]) & set(r1["measured"])
    for a, b in zip(r0["history"], r1["history"], strict=True):
        assert all(_same(a[k], b[k]) for k in a)
    assert all(torch.equal(r0["params"][n], r1["params"][n]) for n in r0["params"])
