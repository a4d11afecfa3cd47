"""Accelerate: TempBalance acts once per real optimizer step under gradient accumulation; exact resume."""

import math

import pytest
import torch
import torch.nn as nn

accelerate = pytest.importorskip("accelerate")

from modelbalance import TempBalance, param_groups  # noqa: E402
from modelbalance.integrations.accelerate import attach_tempbalance  # noqa: E402

OPTIONS = dict(unit="layer", exclude=(), interval=2, metric="alpha", mapping="sigmoid")
ACCUMULATE, MICRO_BATCHES = 2, 12  # 6 optimizer steps


def build():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 32))
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay=0.01, unit="layer", exclude=()), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    return model, optimizer, scheduler


def micro_batch(i: int):
    gen = torch.Generator().manual_seed(i)
    return torch.randn(8, 16, generator=gen), torch.randn(8, 32, generator=gen)


def new_accelerator():
    accelerate.state.AcceleratorState._reset_state(reset_partial_state=True)
    accelerate.state.GradientState._reset_state()
    return accelerate.Accelerator(cpu=True, gradient_accumulation_steps=ACCUMULATE)


def accelerate_run(start: int = 0, stop: int = MICRO_BATCHES, save_to=None, load_from=None):
    accelerator = new_accelerator()
    model, optimizer, scheduler = build()
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    tb = attach_tempbalance(accelerator, model, optimizer, **OPTIONS)
    if load_from is not None:
        accelerator.load_state(load_from)
    calls = 0
    for i in range(start, stop):
        x, y = micro_batch(i)
        with accelerator.accumulate(model):
            accelerator.backward(nn.functional.mse_loss(model(x), y))
            optimizer.step()  # called on every micro-batch: accelerate skips all but the last of each window
            calls += 1
            scheduler.step()
            optimizer.zero_grad()
    if save_to is not None:
        accelerator.save_state(save_to)
    return model, tb, calls


def reference_run():
    """The same training by hand, without accelerate: a step every ACCUMULATE micro-batches."""
    model, optimizer, scheduler = build()
    tb = TempBalance(model, optimizer, **OPTIONS)
    for i in range(MICRO_BATCHES):
        x, y = micro_batch(i)
        (nn.functional.mse_loss(model(x), y) / ACCUMULATE).backward()
        if (i + 1) % ACCUMULATE == 0:
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
    return model, tb


def same_history(a, b):
    same = lambda x, y: x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))  # noqa: E731
    return len(a) == len(b) and all(all(same(ra[k], rb[k]) for k in ra) for ra, rb in zip(a, b, strict=True))


def test_gradient_accumulation_acts_once_per_real_step():
    model, tb, calls = accelerate_run()
    assert calls == MICRO_BATCHES
    assert tb.step_count == MICRO_BATCHES // ACCUMULATE and tb.num_recomputes == 3  # steps 0, 2, 4
    assert sorted({row["step"] for row in tb.history}) == [0, 2, 4]
    assert len(set(tb.factors.values())) == len(tb.factors)

    ref_model, ref_tb = reference_run()
    assert same_history(tb.history, ref_tb.history)
    for (name, p), q in zip(model.named_parameters(), ref_model.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_save_state_and_load_state_resume_exactly(tmp_path):
    full, tb_full, _ = accelerate_run()
    accelerate_run(stop=6, save_to=tmp_path / "state")  # 3 optimizer steps, then saved
    resumed, tb_resumed, _ = accelerate_run(start=6, load_from=tmp_path / "state")
    assert tb_resumed.step_count == tb_full.step_count and same_history(tb_full.history, tb_resumed.history)
    for p, q in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)
