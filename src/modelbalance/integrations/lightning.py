"""PyTorch Lightning: TempBalance as a callback; its state travels in Lightning checkpoints.

Example
-------
>>> import lightning.pytorch as pl
>>> from modelbalance import param_groups
>>> from modelbalance.integrations.lightning import TempBalanceCallback
>>> class Module(pl.LightningModule):
...     def configure_optimizers(self):   # one param group per unit, same unit settings as the callback
...         return torch.optim.AdamW(param_groups(self, weight_decay=0.01, unit="block"), lr=1e-3)
>>> callback = TempBalanceCallback(unit="block", interval=10)
>>> trainer = pl.Trainer(max_epochs=3, callbacks=[callback])  # doctest: +SKIP
>>> trainer.fit(Module(), loader)  # resume: trainer.fit(..., ckpt_path=...)  # doctest: +SKIP

Notes
-----
- ``configure_optimizers`` must build the optimizer from :func:`modelbalance.param_groups` with the same unit
  settings as the callback (pass one ``TempBalanceConfig`` to both, or the same keywords), called on the
  LightningModule itself (``param_groups(self, ...)``): the callback balances the LightningModule, and unit
  names are module paths inside it.
- The balancer is built at ``on_train_start``: the optimizers exist then and, on a resumed fit, the
  checkpoint's callback state has been read (Lightning restores callbacks before or after strategy set-up
  depending on the strategy; both orders are handled).
- Lightning calls ``optimizer.step(closure)``; the balancer's step hooks run around that call, so factors
  apply to exactly the real steps (``accumulate_grad_batches`` skips steps; so does a GradScaler on overflow).
- ``interval="epoch"`` without ``steps_per_epoch`` takes ``trainer.num_training_batches`` (divided by
  ``accumulate_grad_batches``).
- With several processes (DDP) every rank measures its share of layers and all apply identical factors.
  Lightning's ``FSDPStrategy`` (FSDP1) is not supported: when the callback starts, the module holds flat
  weight shards, so layers and units cannot be formed. FSDP2 through ``ModelParallelStrategy`` (``fully_shard``
  in ``configure_model``) goes through the DTensor path of :mod:`modelbalance.integrations.distributed` but
  is untested here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import lightning.pytorch as pl

from ..balance import TempBalance, TempBalanceConfig
from .distributed import maybe_shard_measurement
from .log_values import LOG_MODES, balancer_log_values

__all__ = ["TempBalanceCallback"]


class TempBalanceCallback(pl.Callback):
    """Runs TempBalance during ``Trainer.fit``; saves and restores the balancer with Lightning checkpoints.

    >>> callback = TempBalanceCallback(unit="layer", mapping="linear", interval=50)
    >>> trainer = pl.Trainer(callbacks=[callback])  # doctest: +SKIP

    Parameters
    ----------
    config : TempBalanceConfig or dict, optional
        Balancer settings; ``**options`` override single fields.
    optimizer_index : int
        Which of ``trainer.optimizers`` to balance.
    distributed : True, False or "auto"
        Split the measurement across ranks ("auto": when several are running).
    log : {"units", "summary", None}
        Log factors and metric values (``tempbalance/factor/<unit>``, ``tempbalance/<metric>/<unit>``, e.g.
        ``tempbalance/alpha_relative/layer.3``) with ``pl_module.log_dict`` after each recompute (to the
        Trainer's loggers).

    Attributes
    ----------
    balancer : TempBalance or None
    """

    def __init__(
        self,
        config: TempBalanceConfig | Mapping | None = None,
        *,
        optimizer_index: int = 0,
        distributed: bool | str = "auto",
        log: str | None = "units",
        **options,
    ):
        if log not in LOG_MODES:
            raise ValueError(f"log must be one of {LOG_MODES}, got {log!r}")
        if isinstance(config, Mapping):
            config = TempBalanceConfig().replace(**config)
        config = config or TempBalanceConfig()
        self.config = config.replace(**options) if options else config
        self.optimizer_index = optimizer_index
        self.distributed = distributed
        self.log_mode = log
        self.balancer: TempBalance | None = None
        self._pending_state: dict | None = None
        self._logged_recomputes = 0

    @property
    def state_key(self) -> str:
        return f"TempBalanceCallback[optimizer={self.optimizer_index}]"

    def on_train_start(self, trainer, pl_module):
        optimizers = trainer.optimizers
        if not (0 <= self.optimizer_index < len(optimizers)):
            raise ValueError(
                f"optimizer_index={self.optimizer_index} but the LightningModule configured "
                f"{len(optimizers)} optimizer(s)"
            )
        if self.balancer is not None:
            self.balancer.remove()
        config = self.config
        if config.interval == "epoch" and config.steps_per_epoch is None:
            batches = trainer.num_training_batches
            if isinstance(batches, int) or (isinstance(batches, float) and math.isfinite(batches)):
                accumulate = max(int(trainer.accumulate_grad_batches), 1)
                config = config.replace(steps_per_epoch=max(math.ceil(int(batches) / accumulate), 1))
        self.balancer = TempBalance(pl_module, optimizers[self.optimizer_index], config)
        maybe_shard_measurement(self.balancer, self.distributed)
        if self._pending_state is not None:
            self.balancer.load_state_dict(self._pending_state)
            self._pending_state = None
        self._logged_recomputes = self.balancer.num_recomputes

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        tb = self.balancer
        if tb is None or self.log_mode is None or tb.num_recomputes == self._logged_recomputes:
            return
        self._logged_recomputes = tb.num_recomputes
        values = balancer_log_values(tb, self.log_mode)
        if values:
            pl_module.log_dict(values, on_step=True, on_epoch=False, sync_dist=False, rank_zero_only=True)

    def on_train_epoch_end(self, trainer, pl_module):
        if self.balancer is not None and self.balancer.config.interval_steps is None:
            self.balancer.epoch_end()

    def on_train_end(self, trainer, pl_module):
        if self.balancer is not None:
            self.balancer.remove()

    def state_dict(self) -> dict:
        if self.balancer is not None:
            return {"balancer": self.balancer.state_dict()}
        return {"balancer": self._pending_state} if self._pending_state is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        state = state_dict.get("balancer")
        if state is None:
            return
        if self.balancer is not None:  # strategies that restore callbacks after set-up
            self.balancer.load_state_dict(state)
            self._logged_recomputes = self.balancer.num_recomputes
        else:
            self._pending_state = state
