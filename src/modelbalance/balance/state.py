"""Balancer state in a form ``torch.load(..., weights_only=True)`` accepts (as Trainer and Lightning load it).

``TempBalance.state_dict()`` passes its state through :func:`plain_state`, so checkpoints need no pickled numpy.

Example
-------
>>> import numpy as np
>>> plain_state({"alpha": np.float64(2.5), "steps": [np.int64(3)]})
{'alpha': 2.5, 'steps': [3]}
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["plain_state"]


def plain_state(obj):
    """``obj`` with numpy scalars turned into Python numbers and numpy arrays into tensors (recursively)."""
    if isinstance(obj, dict):
        return {key: plain_state(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [plain_state(value) for value in obj]
    if isinstance(obj, tuple):
        return tuple(plain_state(value) for value in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    return obj
