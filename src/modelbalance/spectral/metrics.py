"""HT-SR companions of alpha, computed from a layer's (pooled) eigenvalues of W^T W.

Conventions (documented because tools differ): ``spectral_norm`` is sigma_max = sqrt(lambda_max);
``log_spectral_norm`` is log10(lambda_max), as WeightWatcher reports it; ``frobenius_norm`` is sqrt(sum lambda);
``stable_rank`` = sum lambda / lambda_max; ``alpha_weighted`` = alpha * log10(lambda_max); ``entropy`` is the
matrix entropy -sum p ln p / ln N with p = lambda / sum lambda (0 = rank one, 1 = flat spectrum). For pooled ESDs
(conv kernel positions, Fourier modes) these describe the pooled spectrum.
"""

from __future__ import annotations

import math

import numpy as np


def spectrum_metrics(eigs: np.ndarray, alpha: float) -> dict[str, float]:
    """Norms, stable rank and entropy of one ESD (sorted ascending, float64, zeros allowed)."""
    nan = float("nan")
    n = eigs.size
    total = float(eigs.sum(dtype=np.float64)) if n else 0.0
    top = float(eigs[-1]) if n else 0.0
    if top <= 0:
        return dict(
            spectral_norm=0.0,
            log_spectral_norm=nan,
            frobenius_norm=0.0,
            stable_rank=nan,
            alpha_weighted=nan,
            entropy=nan,
            num_nonzero=0,
        )
    p = eigs[eigs > 0] / total
    entropy = float(-(p * np.log(p)).sum() / math.log(n)) if n > 1 else nan
    log_top = math.log10(top)
    return dict(
        spectral_norm=math.sqrt(top),
        log_spectral_norm=log_top,
        frobenius_norm=math.sqrt(total),
        stable_rank=total / top,
        alpha_weighted=alpha * log_top if math.isfinite(alpha) else nan,
        entropy=entropy,
        num_nonzero=int((eigs > 0).sum()),
    )
