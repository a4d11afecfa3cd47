"""Scaling optimizer hyperparameters for exactly one ``optimizer.step()``, then putting them back.

Example
-------
>>> import torch
>>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
>>> scaler = GroupScaler(("lr",))
>>> scaler.scale(opt.param_groups, [2.0]); opt.param_groups[0]["lr"]
0.2
>>> scaler.restore(opt.param_groups); opt.param_groups[0]["lr"]
0.1

This is why the balancer composes exactly with any learning-rate scheduler: the scaled value exists only while
the optimizer is stepping (between the balancer's step pre-hook and post-hook). A scheduler, before or after,
reads and writes the unscaled value, so its own arithmetic (chainable ``lr *= gamma`` included) never sees a
factor and factors never compound. Tensor hyperparameters (``lr=torch.tensor(...)``, used by fused/capturable
optimizers) are scaled in place (``mul_``) and restored in place (``copy_``), so optimizers holding a
reference to the tensor see both. One tensor shared by several groups (an optimizer's tensor default ``lr``
lands in every group) cannot carry a different value per group: such groups get a scaled copy for the step
instead, and their own tensor back after.
"""

from __future__ import annotations

import torch

__all__ = ["GroupScaler"]


class GroupScaler:
    """Multiplies the given keys (``"lr"``, ``"weight_decay"``) of each param group by a factor, undoably."""

    def __init__(self, keys: tuple[str, ...]):
        self.keys = keys
        self._saved: list[dict] | None = None

    @property
    def active(self) -> bool:
        """True between :meth:`scale` and :meth:`restore`."""
        return self._saved is not None

    @torch.no_grad()
    def scale(self, param_groups: list[dict], factors: list[float]) -> None:
        if self._saved is not None:
            raise RuntimeError("GroupScaler.scale called twice without restore")
        saved = []
        shared = {key: _shared_tensor_ids(param_groups, key) for key in self.keys}
        for group, factor in zip(param_groups, factors, strict=True):
            entry = {}
            if factor != 1.0:
                for key in self.keys:
                    value = group.get(key)
                    if value is None or isinstance(value, bool):
                        continue
                    if isinstance(value, torch.Tensor) and id(value) not in shared[key]:
                        entry[key] = (True, value.clone())
                        value.mul_(factor)
                    else:  # plain numbers, and tensors other groups hold too: scaled copy, original put back
                        entry[key] = (False, value)
                        group[key] = value * factor
            saved.append(entry)
        self._saved = saved

    @torch.no_grad()
    def restore(self, param_groups: list[dict]) -> None:
        if self._saved is None:
            return
        for group, entry in zip(param_groups, self._saved, strict=True):
            for key, (in_place, value) in entry.items():
                if in_place:
                    group[key].copy_(value)
                else:
                    group[key] = value
        self._saved = None


def _shared_tensor_ids(param_groups: list[dict], key: str) -> set[int]:
    seen, shared = set(), set()
    for group in param_groups:
        value = group.get(key)
        if isinstance(value, torch.Tensor):
            (shared if id(value) in seen else seen).add(id(value))
    return shared
