"""measure / analyze: fits and metrics against independent references, bad weights, shape-corrected alphas."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

import modelbalance
from modelbalance import FitConfig, fit_power_law
from modelbalance.spectral import LayerWeight, measure


def gaussian(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def linear(weight: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False, dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer


def model_of(**weights) -> nn.ModuleDict:
    return nn.ModuleDict({name: linear(w) for name, w in weights.items()})


def heavy_tailed(rows, cols, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=g) * torch.rand(rows, cols, generator=g) ** -0.5


def ref_eigs(w: torch.Tensor) -> np.ndarray:
    return np.sort((torch.linalg.svdvals(w.double()) ** 2).numpy())


def analyze(model, **kw):
    kw.setdefault("progress", False)
    return modelbalance.analyze(model, **kw)


# --- fits and metrics ---------------------------------------------------------------------------------------


def test_alpha_and_metrics_match_independent_computation():
    w = heavy_tailed(120, 80, seed=1)
    spec = analyze(model_of(fc=w))["fc"]
    ref = ref_eigs(w)
    fit = fit_power_law(ref)
    assert spec.status == "ok"
    assert spec.alpha == pytest.approx(fit.alpha, abs=1e-3)
    assert spec.xmin == pytest.approx(ref[40], rel=1e-4)  # index floor(80 / 2) of the sorted spectrum
    assert spec.num_tail == 40 and spec.num_eigs == 80 and spec.num_nonzero == 80
    assert spec.alpha_stderr == pytest.approx((spec.alpha - 1) / math.sqrt(40))
    assert spec.spectral_norm == pytest.approx(math.sqrt(ref[-1]), rel=1e-5)
    assert spec.log_spectral_norm == pytest.approx(math.log10(ref[-1]), rel=1e-5)
    assert spec.frobenius_norm == pytest.approx(float(torch.linalg.norm(w.double())), rel=1e-5)
    assert spec.stable_rank == pytest.approx(ref.sum() / ref[-1], rel=1e-4)
    assert spec.alpha_weighted == pytest.approx(spec.alpha * math.log10(ref[-1]), rel=1e-6)
    p = ref / ref.sum()
    assert spec.entropy == pytest.approx(-(p * np.log(p)).sum() / math.log(80), rel=1e-4)
    assert spec.aspect_ratio == pytest.approx(1.5)
    assert spec.matrix_shape == (120, 80) and spec.param_names == ("fc.weight",)


@pytest.mark.parametrize("rule", ["ks", "peak", 2.0])
def test_other_xmin_rules_reach_the_fit(rule):
    w = heavy_tailed(150, 100, seed=2)
    spec = analyze(model_of(fc=w), xmin=rule, relative=False)["fc"]
    ref = fit_power_law(ref_eigs(w), xmin=rule)
    assert spec.alpha == pytest.approx(ref.alpha, abs=1e-3)
    assert spec.num_tail == ref.num_tail


def test_xmin_pos_moves_the_tail():
    w = heavy_tailed(90, 90, seed=3)
    spec = analyze(model_of(fc=w), xmin_pos=1.5, relative=False)["fc"]
    assert spec.num_tail == 90 - 60
    assert spec.alpha == pytest.approx(fit_power_law(ref_eigs(w), xmin_pos=1.5).alpha, abs=1e-3)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), log2_scale=st.integers(-20, 20), scale=st.floats(1e-3, 1e3))
def test_alpha_of_scaled_weights_is_unchanged(seed, log2_scale, scale):
    w = heavy_tailed(40, 30, seed=seed)
    base = analyze(model_of(fc=w), relative=False)["fc"].alpha
    exact = analyze(model_of(fc=w * 2.0**log2_scale), relative=False)["fc"].alpha  # exact in float32
    rounded = analyze(model_of(fc=w * scale), relative=False)["fc"].alpha
    # The same matrix is decomposed (see spectral/eigenvalues.py): only the float64 fit's round-off differs.
    assert exact == pytest.approx(base, rel=1e-12)
    assert rounded == pytest.approx(base, rel=1e-4)


def test_mixed_real_and_complex_layers_keep_their_order():
    real = gaussian(1, 30, 20, seed=1)
    cplx = gaussian(3, 20, 20, seed=2, dtype=torch.complex64)
    layers = [
        LayerWeight(n, "T", k, (), tuple(m.shape[-2:]), m.shape[0], 1.0, lambda m=m: m)
        for n, k, m in (("a", "spectral_conv", cplx), ("b", "linear", real), ("c", "spectral_conv", cplx))
    ]
    specs = measure(layers, relative=False, keep_eigenvalues=True)
    assert [s.name for s in specs] == ["a", "b", "c"]
    assert specs[0].num_eigs == 60 and specs[1].num_eigs == 20
    np.testing.assert_array_equal(specs[0].eigenvalues, specs[2].eigenvalues)
    ref = np.sort((torch.linalg.svdvals(cplx.to(torch.complex128)) ** 2).reshape(-1).numpy())
    np.testing.assert_allclose(specs[0].eigenvalues[30:], ref[30:], rtol=1e-4)


def test_measure_rejects_bad_options():
    layer = LayerWeight("a", "T", "linear", (), (4, 4), 1, 1.0, lambda: torch.eye(4)[None])
    with pytest.raises(ValueError, match="nonfinite"):
        measure([layer], nonfinite="ignore")
    with pytest.raises(ValueError, match="min_eigs"):
        measure([layer], min_eigs=1)


def test_determinism():
    def run():
        model = nn.Sequential(nn.Linear(64, 48), nn.Conv1d(8, 16, 3), nn.Linear(48, 10))
        torch.manual_seed(0)
        model.apply(lambda m: m.reset_parameters() if hasattr(m, "reset_parameters") else None)
        return analyze(model, farms=True).to_json()

    assert run() == run()


# --- bad weights and degenerate spectra ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_weight_raises_naming_the_layer(bad):
    w = gaussian(20, 30)
    w[3, 4] = bad
    model = model_of(good=gaussian(20, 30, seed=1), broken=w)
    with pytest.raises(ValueError, match="'broken'.*NaN or Inf"):
        analyze(model)


def test_nonfinite_weight_can_be_skipped_with_a_warning():
    w = gaussian(20, 30)
    w[0, 0] = float("nan")
    model = model_of(good=gaussian(20, 30, seed=1), broken=w)
    with pytest.warns(UserWarning, match="skipping layer 'broken'"):
        report = analyze(model, nonfinite="skip")
    assert report["good"].status == "ok" and math.isfinite(report["good"].alpha)
    assert math.isnan(report["broken"].alpha)
    assert "NaN or Inf" in report["broken"].status


def test_huge_weights_are_measured_in_float32():
    w = gaussian(20, 30) * 1e25  # finite, but W^T W would overflow float32 without the normalisation
    spec = analyze(model_of(big=w), relative=False)["big"]
    assert spec.status == "ok"
    assert spec.alpha == pytest.approx(fit_power_law(ref_eigs(w)).alpha, rel=1e-5)
    assert spec.spectral_norm == pytest.approx(float(torch.linalg.matrix_norm(w.double(), 2)), rel=1e-5)


def test_subnormal_float32_weights_are_measured_not_an_error():
    w = gaussian(40, 30) * 1e-40  # normalising needs 2**130, more than float32 holds in one factor
    spec = analyze(model_of(tiny=w), relative=False)["tiny"]
    assert spec.status == "ok" and math.isfinite(spec.alpha)


def test_an_eigensolver_failure_on_finite_weights_is_an_error(failing_eigensolver):
    module = failing_eigensolver
    with pytest.raises(module.EigensolverError, match="'big'.*NaN or Inf eigenvalues.*float64") as err:
        analyze(model_of(big=gaussian(20, 30)), relative=False)
    assert err.value.layer == "big"


def _orthogonal(n, dtype):
    q, _ = torch.linalg.qr(gaussian(n, n, seed=n, dtype=torch.float64))
    return q.to(dtype)


DEGENERATE = {
    "zero": (lambda: torch.zeros(40, 30), "zero matrix"),
    "rank3": (lambda: gaussian(40, 3) @ gaussian(3, 30, seed=1), "rank-deficient"),
    "orthogonal": (lambda: _orthogonal(32, torch.float32), "constant spectrum"),
    "scaled_identity": (lambda: 3.0 * torch.eye(24), "equal"),
    "too_small": (lambda: gaussian(6, 5), "too few eigenvalues"),
}


@pytest.mark.parametrize("case", DEGENERATE, ids=DEGENERATE.keys())
@pytest.mark.parametrize("rule", ["fixed", "peak", "ks"])
def test_degenerate_spectra_give_nan_with_a_reason(case, rule):
    make, reason = DEGENERATE[case]
    report = analyze(model_of(w=make(), ok=gaussian(30, 20, seed=5)), xmin=rule, farms=True)
    spec = report["w"]
    assert math.isnan(spec.alpha) and not math.isinf(spec.alpha)
    assert reason in spec.status
    assert math.isnan(spec.alpha_relative) and math.isnan(spec.alpha_weighted)
    assert report["ok"].status == "ok"
    assert f"not fitted (1): {spec.status}" in report.summary()


def test_orthogonal_matrix_in_float64():
    spec = analyze(model_of(q=_orthogonal(40, torch.float64)), dtype=torch.float64)["q"]
    assert math.isnan(spec.alpha) and "constant spectrum" in spec.status
    assert spec.spectral_norm == pytest.approx(1.0)


def test_rank_deficiency_below_the_median_is_nan_for_fixed_xmin_only():
    # Rank 12 of 30: xmin at position 15 is 0. The data-driven rules fit the 12 nonzero eigenvalues.
    w = gaussian(40, 12) @ gaussian(12, 30, seed=1)
    fixed = analyze(model_of(w=w))["w"]
    assert math.isnan(fixed.alpha) and fixed.status.startswith("rank-deficient") and fixed.num_nonzero == 12
    # float32 zeroes round-off, so the layer was decomposed again in float64: the product's own float32
    # rounding noise stays below the storage-noise level and the verdict stands
    for rule in ("ks", "peak"):
        spec = analyze(model_of(w=w), xmin=rule)["w"]
        assert spec.status == "ok" and spec.num_tail <= 12
        assert spec.alpha == pytest.approx(fit_power_law(ref_eigs(w)[-12:], xmin=rule).alpha, abs=1e-3)


def ill_conditioned(rows=60, cols=30, seed=0):
    """Full rank, singular values 1 ... 1e-5 with 16 of 30 below 1e-3: float32's Gram round-off zeroes those."""
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(rows, cols, dtype=torch.float64, generator=gen))
    v, _ = torch.linalg.qr(torch.randn(cols, cols, dtype=torch.float64, generator=gen))
    sigma = torch.cat(
        [torch.logspace(0, -2, 14, dtype=torch.float64), torch.logspace(-3, -5, 16, dtype=torch.float64)]
    )
    return (u * sigma) @ v.T


def test_ill_conditioned_full_rank_layer_is_refit_in_float64():
    w = ill_conditioned().float()
    spec = analyze(model_of(w=w))["w"]
    assert spec.status == "ok" and spec.num_nonzero == 30
    assert spec.alpha == pytest.approx(fit_power_law(ref_eigs(w)).alpha, rel=1e-6)
    assert spec.alpha == pytest.approx(analyze(model_of(w=w), dtype=torch.float64)["w"].alpha, rel=1e-9)


def test_half_precision_weights_keep_the_float32_verdict():
    # bf16 storage noise (~eps_bf16 * sigma_max) exceeds float32's round-off: float64 would only resolve noise
    w = ill_conditioned().to(torch.bfloat16)
    layer = nn.Linear(30, 60, bias=False).to(torch.bfloat16)
    with torch.no_grad():
        layer.weight.copy_(w)
    spec = analyze(nn.ModuleDict({"w": layer}))["w"]
    assert spec.status.startswith("rank-deficient") and math.isnan(spec.alpha)


def test_rank_deficiency_counts_exact_zeros():
    # Rank 20 of 30: the median position lands on a nonzero eigenvalue, so the fit goes ahead on the tail.
    w = gaussian(40, 20) @ gaussian(20, 30, seed=1)
    spec = analyze(model_of(w=w))["w"]
    assert spec.num_nonzero == 20 and spec.num_eigs == 30
    assert spec.status == "ok"
    assert spec.alpha == pytest.approx(
        fit_power_law(ref_eigs(w)[-20:], xmin=float(ref_eigs(w)[15])).alpha, abs=1e-3
    )


def test_min_eigs_is_configurable():
    model = model_of(w=gaussian(12, 8))
    assert "too few" in analyze(model)["w"].status
    spec = analyze(model, min_eigs=4)["w"]
    assert spec.status == "ok" and math.isfinite(spec.alpha)


def test_empty_weight_is_too_few_not_a_crash():
    report = analyze(nn.ModuleDict({"empty": nn.Linear(0, 5), "ok": linear(gaussian(30, 20))}))
    assert "too few eigenvalues" in report["empty"].status
    assert report["ok"].status == "ok"


# --- shape-corrected alphas ---------------------------------------------------------------------------------


def test_alpha_relative_is_near_zero_for_gaussian_matrices():
    conv = nn.Conv2d(32, 64, 3)
    with torch.no_grad():
        conv.weight.copy_(gaussian(64, 32, 3, 3, seed=3))
    model = nn.ModuleDict(
        {"a": linear(gaussian(256, 256, seed=1)), "b": linear(gaussian(200, 200, seed=2)), "conv": conv}
    )
    report = analyze(model)
    for spec in report:
        assert spec.status == "ok"
        assert abs(spec.alpha_relative) < 0.1, spec.name
        assert spec.alpha_null == pytest.approx(spec.alpha - spec.alpha_relative)
    # and it is the shape, not the training, that sets the raw alpha of a random matrix
    tall = analyze(model_of(t=gaussian(512, 128, seed=4)))["t"]
    assert tall.alpha_null > report["a"].alpha_null + 0.5


def test_alpha_relative_is_negative_for_a_heavy_tail():
    spec = analyze(model_of(h=heavy_tailed(200, 200, seed=7)))["h"]
    assert spec.alpha_relative < -0.2  # Gaussian 200 x 200 matrices scatter by ~0.02


def test_alpha_relative_is_not_made_up_for_a_numeric_xmin():
    # An absolute xmin is in the weights' units; reusing it on unit-variance Gaussian matrices would compare
    # two unrelated tails (it gave alpha_relative ~ +1 for a Gaussian matrix of std 0.02).
    w = 0.02 * gaussian(128, 128)
    spec = analyze(model_of(w=w), xmin=float(np.median(ref_eigs(w))))["w"]
    assert math.isfinite(spec.alpha)
    assert math.isnan(spec.alpha_relative) and math.isnan(spec.alpha_null)


def test_relative_can_be_switched_off():
    spec = analyze(model_of(w=gaussian(64, 64)), relative=False)["w"]
    assert math.isnan(spec.alpha_relative) and math.isnan(spec.alpha_null) and math.isfinite(spec.alpha)


def test_null_reference_is_cached_on_disk(tmp_path, monkeypatch):
    from modelbalance.spectral import reference

    monkeypatch.setenv("MODELBALANCE_CACHE", str(tmp_path))
    monkeypatch.setattr(reference, "_disk", None)
    reference._null_alpha.cache_clear()
    first = reference.null_alpha((33, 21), 1, False, FitConfig())
    assert (tmp_path / "null_alpha_v1.json").is_file()
    reference._null_alpha.cache_clear()
    monkeypatch.setattr(reference, "_disk", None)
    assert reference.null_alpha((21, 33), 1, False, FitConfig()) == first  # same key either orientation
    reference._null_alpha.cache_clear()
    monkeypatch.setattr(reference, "_disk", None)


def test_farms_is_finite_and_reduces_the_aspect_ratio_bias():
    model = model_of(square=gaussian(256, 256, seed=1), tall=gaussian(512, 128, seed=2))
    report = analyze(model, farms=True)
    square, tall = report["square"], report["tall"]
    assert math.isfinite(square.alpha_farms) and math.isfinite(tall.alpha_farms)
    assert abs(tall.alpha_farms - square.alpha_farms) < 0.5 * abs(tall.alpha - square.alpha)
    assert math.isnan(analyze(model)["square"].alpha_farms)  # only on request


def test_farms_windows_are_decomposed_in_bounded_batches():
    from modelbalance.spectral.reference import farms_eigenvalues

    mats = gaussian(3, 40, 90).reshape(3, 40, 90)
    whole = farms_eigenvalues(mats)
    # 400 numbers per batch: one 20 x 20 window of the 3-matrix stack (1200) is over it, so one window at a time
    np.testing.assert_array_equal(farms_eigenvalues(mats, batch_elements=400), whole)
    np.testing.assert_array_equal(farms_eigenvalues(mats, batch_elements=5000), whole)
    assert len(whole) == 3 * 20 * 3 * 8  # 3 matrices x 20 eigenvalues x (3 x 8 half-overlapping windows)


def test_no_warnings_for_ordinary_models():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        analyze(nn.Sequential(nn.Linear(32, 32), nn.Conv2d(3, 8, 3)), farms=True)


@pytest.mark.parametrize("eigensolver", ["host", "device"])
def test_accelerator_paths_match_cpu_lapack(eigensolver):
    """The two accelerator routes (Gram on the device + host LAPACK, or batched eigvalsh on the device) give the
    CPU route's alphas. The layers claim a CUDA device while their data stays on the CPU, which exercises the
    routing and both code paths without a GPU."""
    import dataclasses

    from modelbalance.spectral import FitConfig, extract_layers, measure

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(200, 150), torch.nn.Linear(150, 150), torch.nn.Linear(150, 40))
    layers = extract_layers(net)
    fake = [dataclasses.replace(layer, device=torch.device("cuda")) for layer in layers]
    cpu = measure(layers, fit=FitConfig(), relative=False)
    routed = measure(fake, fit=FitConfig(), relative=False, eigensolver=eigensolver)
    for a, b in zip(cpu, routed, strict=True):
        assert a.status == b.status == "ok"
        assert abs(a.alpha - b.alpha) < 1e-4
        assert abs(a.spectral_norm - b.spectral_norm) < 1e-4 * a.spectral_norm


def test_unknown_eigensolver_is_rejected():
    from modelbalance.spectral import extract_layers, measure

    with pytest.raises(ValueError, match="eigensolver"):
        measure(extract_layers(torch.nn.Linear(20, 20)), eigensolver="gpu")
