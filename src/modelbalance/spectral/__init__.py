"""Spectral analysis: model -> named matrices -> eigenvalues -> power-law fits -> report."""

from .analyze import LayerSpectrum, analyze, measure
from .eigenvalues import esd
from .matrices import LayerWeight, extract_layers, extract_layers_from_state_dict
from .powerlaw import FitConfig, PowerLawFit, fit_power_law
from .reference import farms_eigenvalues, null_alpha
from .report import SpectralReport

__all__ = [
    "FitConfig",
    "LayerSpectrum",
    "LayerWeight",
    "PowerLawFit",
    "SpectralReport",
    "analyze",
    "esd",
    "extract_layers",
    "extract_layers_from_state_dict",
    "farms_eigenvalues",
    "fit_power_law",
    "measure",
    "null_alpha",
]
