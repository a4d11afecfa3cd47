"""modelbalance: layer-wise spectral diagnostics (HT-SR) and TempBalance learning-rate balancing.

>>> import modelbalance
>>> report = modelbalance.analyze(model)                       # doctest: +SKIP
>>> tb = modelbalance.TempBalance(model, optimizer)            # doctest: +SKIP
"""

from .spectral import FitConfig, PowerLawFit, SpectralReport, analyze, extract_layers, fit_power_law, measure

__version__ = "0.1.0"

__all__ = [
    "FitConfig",
    "PowerLawFit",
    "SpectralReport",
    "analyze",
    "extract_layers",
    "fit_power_law",
    "measure",
]

try:  # the balancer is optional while it is being built; the spectral engine never depends on it
    from .balance import TempBalance, TempBalanceConfig, param_groups  # noqa: F401

    __all__ += ["TempBalance", "TempBalanceConfig", "param_groups"]
except ImportError:  # pragma: no cover
    pass
