"""modelbalance: layer-wise spectral diagnostics (HT-SR) and TempBalance learning-rate balancing.

>>> import modelbalance
>>> report = modelbalance.analyze(model)                       # doctest: +SKIP
>>> groups = modelbalance.param_groups(model, weight_decay=0.01)  # doctest: +SKIP
>>> tb = modelbalance.TempBalance(model, torch.optim.AdamW(groups, lr=3e-5))  # doctest: +SKIP
"""

from .balance import TempBalance, TempBalanceConfig, detect_blocks, param_groups
from .spectral import FitConfig, PowerLawFit, SpectralReport, analyze, extract_layers, fit_power_law, measure

__version__ = "0.1.0"

__all__ = [
    "FitConfig",
    "PowerLawFit",
    "SpectralReport",
    "TempBalance",
    "TempBalanceConfig",
    "analyze",
    "detect_blocks",
    "extract_layers",
    "fit_power_law",
    "measure",
    "param_groups",
]
