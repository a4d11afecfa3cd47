"""Hugging Face Accelerate: attach TempBalance to a prepared model and optimizer in one call.

Example
-------
>>> from accelerate import Accelerator
>>> from modelbalance import param_groups
>>> from modelbalance.integrations.accelerate import attach_tempbalance
>>> accelerator = Accelerator(gradient_accumulation_steps=4)  # doctest: +SKIP
>>> optimizer = torch.optim.AdamW(param_groups(model, weight_decay=0.01), lr=3e-5)  # doctest: +SKIP
>>> model, optimizer, loader, scheduler = accelerator.prepare(
...     model, optimizer, loader, scheduler)  # doctest: +SKIP
>>> tb = attach_tempbalance(accelerator, model, optimizer, interval=10)  # doctest: +SKIP
>>> for batch in loader:  # the usual accelerate loop  # doctest: +SKIP
...     with accelerator.accumulate(model):
...         accelerator.backward(model(**batch).loss)
...         optimizer.step(); scheduler.step(); optimizer.zero_grad()

What Accelerate changes and why TempBalance is unaffected:

- ``prepare`` wraps the optimizer in an ``AcceleratedOptimizer``. TempBalance hooks the torch optimizer inside
  it, whose ``step`` runs only on real optimizer steps: under ``accelerator.accumulate`` the wrapper skips the
  inner step on accumulation micro-batches (and under fp16 a step the GradScaler skips on overflow never
  runs), so the balancer's clock counts exactly the real updates. ``interval`` is therefore in optimizer
  steps.
- ``prepare`` may wrap the model (DDP); the balancer needs the module ``param_groups`` saw, so the model is
  unwrapped first.
- With several processes the measurement is split across ranks and the fits shared, so every rank applies
  identical factors (:mod:`modelbalance.integrations.distributed`). FSDP2 (``fsdp_version=2``) works through
  its DTensor parameters; FSDP1 needs ``use_orig_params=True`` and ``shard_measurement(..., full_params=...)``
  by hand.
- ``register_for_checkpointing`` (on by default) puts the balancer's state into ``accelerator.save_state`` /
  ``load_state``, so a resumed run continues exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..balance import TempBalance, TempBalanceConfig
from .distributed import maybe_shard_measurement, unwrap_model

__all__ = ["attach_tempbalance"]


def attach_tempbalance(
    accelerator,
    model,
    optimizer,
    config: TempBalanceConfig | Mapping | None = None,
    *,
    register_for_checkpointing: bool = True,
    distributed: bool | str = "auto",
    summary_writer=None,
    **options,
) -> TempBalance:
    """TempBalance on the model and optimizer returned by ``accelerator.prepare`` (call on every process).

    Parameters
    ----------
    accelerator : accelerate.Accelerator
    model, optimizer
        As returned by ``accelerator.prepare``; the optimizer built from :func:`modelbalance.param_groups`.
    config : TempBalanceConfig or dict, optional
        Balancer settings; ``**options`` override single fields.
    register_for_checkpointing : bool
        Save and restore the balancer with ``accelerator.save_state`` / ``load_state``. Call
        ``attach_tempbalance`` before ``load_state``, in the same order relative to other registered objects.
    distributed : True, False or "auto"
        Split the measurement across processes ("auto": when there are several).

    Returns
    -------
    TempBalance
    """
    if isinstance(config, Mapping):
        config = TempBalanceConfig().replace(**config)
    base = unwrap_model(accelerator.unwrap_model(model))
    tb = TempBalance(base, optimizer, config, summary_writer=summary_writer, **options)
    maybe_shard_measurement(tb, distributed)
    if register_for_checkpointing:
        accelerator.register_for_checkpointing(tb)
    return tb
