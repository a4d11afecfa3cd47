"""Eigenvalues of W^H W against a float64 SVD reference; the ctypes LAPACK path against scipy's."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modelbalance import fit_power_law
from modelbalance.spectral import LayerWeight, lapack, measure
from modelbalance.spectral.eigenvalues import esd, esd_batches, power_of_two_normalized


def reference_eigs(mats: torch.Tensor) -> np.ndarray:
    """Squared singular values from a float64 (complex128) SVD, pooled and sorted."""
    wide = torch.complex128 if mats.is_complex() else torch.float64
    return np.sort((torch.linalg.svdvals(mats.to(wide)) ** 2).reshape(-1).numpy())


def assert_matches_reference(ours: np.ndarray, mats: torch.Tensor, rtol: float = 1e-4):
    ref = reference_eigs(mats)
    assert ours.shape == ref.shape
    half = ref.size // 2
    np.testing.assert_allclose(ours[half:], ref[half:], rtol=rtol)
    assert abs(fit_power_law(ours).alpha - fit_power_law(ref).alpha) < 1e-3


def layer(mats: torch.Tensor, kind: str = "linear") -> LayerWeight:
    return LayerWeight("w", "Tensor", kind, (), tuple(mats.shape[-2:]), mats.shape[0], 1.0, lambda: mats)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


SHAPES = {"tall": (1, 300, 120), "wide": (1, 120, 300), "square": (1, 200, 200), "stack": (5, 64, 48)}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_float32_matches_float64_svd(shape):
    mats = torch.randn(*shape, generator=generator(0))
    assert_matches_reference(esd(mats), mats)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_measure_matches_float64_svd(shape):
    # A heavy-tailed matrix too, so the comparison is not only ever made on a Marchenko-Pastur bulk.
    g = generator(1)
    mats = torch.randn(*shape, generator=g) * torch.rand(*shape, generator=g) ** -0.7
    (spec,) = measure([layer(mats)], relative=False, keep_eigenvalues=True)
    assert_matches_reference(spec.eigenvalues, mats)
    ref = reference_eigs(mats)
    assert abs(spec.alpha - fit_power_law(ref).alpha) < 1e-3
    assert spec.spectral_norm == pytest.approx(np.sqrt(ref[-1]), rel=1e-5)
    assert spec.frobenius_norm == pytest.approx(np.sqrt(ref.sum()), rel=1e-5)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_is_upcast(half):
    mats = torch.randn(2, 96, 64, generator=generator(2)).to(half)
    ours = esd(mats)
    assert ours.dtype == np.float64
    assert_matches_reference(ours, mats)  # reference: the same (rounded) half-precision numbers in float64
    (spec,) = measure([layer(mats)], relative=False, keep_eigenvalues=True)
    assert_matches_reference(spec.eigenvalues, mats)


@pytest.mark.parametrize("shape", [(3, 40, 24), (3, 24, 40)])
def test_complex_matrices(shape):
    mats = torch.randn(*shape, dtype=torch.complex64, generator=generator(3))
    assert_matches_reference(esd(mats), mats)
    (spec,) = measure([layer(mats, "spectral_conv")], relative=False, keep_eigenvalues=True)
    assert_matches_reference(spec.eigenvalues, mats)


def test_float64_option_is_accurate_to_double_precision():
    mats = torch.randn(2, 150, 90, generator=generator(4))
    ref = reference_eigs(mats)
    np.testing.assert_allclose(esd(mats, dtype=torch.float64), ref, rtol=1e-9, atol=1e-12 * ref[-1])
    (spec,) = measure([layer(mats)], dtype=torch.float64, relative=False, keep_eigenvalues=True)
    np.testing.assert_allclose(spec.eigenvalues, ref, rtol=1e-9, atol=1e-12 * ref[-1])
    assert spec.alpha == pytest.approx(fit_power_law(ref).alpha, rel=1e-9)


def test_small_torch_batches_give_the_same_eigenvalues():
    mats = torch.randn(7, 20, 12, dtype=torch.complex64, generator=generator(5))
    np.testing.assert_array_equal(esd(mats, batch_elements=144 * 2), esd(mats))


@pytest.mark.parametrize("rank", [1, 7, 30])
@pytest.mark.parametrize("rows,cols", [(64, 64), (80, 50), (50, 80)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exact_rank_deficiency_is_reported(rank, rows, cols, dtype):
    g = generator(rank + rows)
    mats = (torch.randn(rows, rank, generator=g) @ torch.randn(rank, cols, generator=g)).unsqueeze(0)
    eigs = esd(mats, dtype=dtype)
    assert int((eigs > 0).sum()) == rank
    (spec,) = measure([layer(mats)], dtype=dtype, relative=False)
    assert spec.num_nonzero == rank


def test_rank_deficient_complex_stack_is_reported():
    # Four 32 x 32 complex matrices of rank 5: 20 nonzero eigenvalues, whichever code path computes them.
    g = generator(6)
    a = torch.randn(4, 32, 5, dtype=torch.complex64, generator=g)
    b = torch.randn(4, 5, 32, dtype=torch.complex64, generator=g)
    mats = a @ b
    assert int((esd(mats) > 0).sum()) == 20
    (spec,) = measure([layer(mats, "spectral_conv")], relative=False)
    assert spec.num_nonzero == 20
    assert np.isnan(spec.alpha) and spec.status.startswith("rank-deficient")


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="dtype"):
        esd(torch.randn(1, 4, 4), dtype=torch.float16)
    with pytest.raises(ValueError, match="batch, rows, cols"):
        esd_batches(torch.randn(4, 4))
    with pytest.raises(ValueError, match="dtype"):
        measure([layer(torch.randn(1, 4, 4))], dtype=torch.bfloat16)


# --- scale: the decomposed matrix is the same for W and 2**k W -------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    k=st.integers(-100, 100),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_power_of_two_scaling_decomposes_the_same_matrix(seed, k, dtype):
    mats = torch.randn(2, 30, 20, generator=generator(seed), dtype=dtype) * 0.01
    base, e0 = power_of_two_normalized(mats)
    scaled, e1 = power_of_two_normalized(mats * 2.0**k)
    assert torch.equal(base, scaled) and e1 - e0 == k
    assert 0.5 <= float(base.abs().max()) < 1
    # so the eigenvalues are exactly 4**k times each other
    np.testing.assert_array_equal(np.ldexp(esd(mats), 2 * k), esd(mats * 2.0**k))


def test_scaling_in_place_only_touches_the_given_tensor():
    mats = torch.full((1, 3, 2), 8.0)
    out, e = power_of_two_normalized(mats)
    assert e == 4 and float(mats.max()) == 8.0 and float(out.max()) == 0.5
    out, e = power_of_two_normalized(mats, inplace=True)
    assert out is mats and float(mats.max()) == 0.5


def test_zero_and_nonfinite_stacks_are_left_alone():
    for mats in (torch.zeros(1, 4, 3), torch.full((1, 4, 3), float("nan")), torch.empty(0, 4, 3)):
        out, e = power_of_two_normalized(mats)
        assert out is mats and e == 0


def test_huge_and_tiny_float32_weights_are_measured_in_float32():
    mats = torch.randn(1, 60, 40, generator=generator(3))
    ref = esd(mats.double(), dtype=torch.float64)
    # 1e30: W^T W would overflow float32 without the normalisation; 1e-40: subnormal float32 weights, whose
    # normalisation needs 2**130, more than float32 holds
    for scale in (1e-40, 1e-30, 1e-12, 1e12, 1e30):
        big = mats * scale
        ours = esd(big)
        assert np.isfinite(ours).all()
        rtol = 1e-2 if scale < 1e-38 else 1e-5  # subnormals keep fewer digits
        np.testing.assert_allclose(ours[20:] / scale**2, ref[20:], rtol=rtol)
        if abs(np.log10(scale)) < 15:  # esd_batches answers in float32, where 1e+-60 eigenvalues do not fit
            per_matrix = esd_batches(big).double().numpy()[0]
            np.testing.assert_allclose(per_matrix[20:] / scale**2, ref[20:], rtol=1e-5)


# --- the ctypes LAPACK path ---------------------------------------------------------------------------------


def _stacks(seed: int):
    g = generator(seed)
    shapes = [(3, 50, 30), (2, 30, 50), (1, 64, 64), (4, 17, 9), (1, 9, 17)]
    return [torch.randn(*s, generator=g) for s in shapes]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parallel_ctypes_lapack_equals_scipy_fallback(monkeypatch, dtype):
    if not lapack._binding_or_none():
        pytest.skip("scipy's OpenBLAS could not be bound through ctypes on this platform")
    stacks = [s.numpy().astype(dtype) for s in _stacks(7)]
    fast = list(lapack.gram_eigenvalues([lambda s=s: s for s in stacks], workers=2))
    monkeypatch.setattr(lapack, "_binding", {})  # forces the scipy wrappers
    slow = list(lapack.gram_eigenvalues([lambda s=s: s for s in stacks], workers=2))
    assert len(fast) == len(slow) == len(stacks)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    for stack, a, b in zip(stacks, fast, slow, strict=True):
        assert a.shape == b.shape == (stack.shape[0], min(stack.shape[1:]))
        assert a.dtype == b.dtype == dtype
        top = b.max()
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * top)
        np.testing.assert_allclose(
            np.sort(a.reshape(-1)), reference_eigs(torch.from_numpy(stack)), rtol=rtol, atol=rtol * top
        )


def test_parallel_and_serial_ctypes_paths_agree():
    stacks = [s.numpy() for s in _stacks(8)]
    serial = list(lapack.gram_eigenvalues([lambda s=s: s for s in stacks], workers=1))
    parallel = list(lapack.gram_eigenvalues([lambda s=s: s for s in stacks], workers=2))
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


def test_lapack_reports_nan_input_as_nan_rows():
    stack = torch.randn(2, 12, 8, generator=generator(9)).numpy()
    stack[1, 3, 4] = np.nan
    (eigs,) = lapack.gram_eigenvalues([lambda: stack])
    assert np.isfinite(eigs[0]).all()
    assert not np.isfinite(eigs[1]).all()


# --- accelerators (run where a CUDA device exists) ----------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_path_matches_the_cpu_path():
    g = generator(10)
    a = torch.randn(4, 32, 5, dtype=torch.complex64, generator=g)
    cases = {
        "real": torch.randn(2, 120, 80, generator=g) * torch.rand(2, 120, 80, generator=g) ** -0.5,
        "half": torch.randn(1, 96, 64, generator=g).to(torch.bfloat16),
        "complex": torch.randn(5, 24, 40, dtype=torch.complex64, generator=g),
        "rank5_complex": a @ torch.randn(4, 5, 32, dtype=torch.complex64, generator=g),
        "rank7_real": (torch.randn(60, 7, generator=g) @ torch.randn(7, 50, generator=g)).unsqueeze(0),
    }

    def layers(device):
        out = []
        for name, mats in cases.items():
            m = mats.to(device)
            kind = "spectral_conv" if m.is_complex() else "linear"
            out.append(
                LayerWeight(
                    name, "T", kind, (), tuple(m.shape[-2:]), m.shape[0], 1.0, lambda m=m: m, m.device
                )
            )
        return out

    cpu = measure(layers("cpu"), keep_eigenvalues=True)
    gpu = measure(layers("cuda"), keep_eigenvalues=True)
    for c, d in zip(cpu, gpu, strict=True):
        assert c.name == d.name and c.status == d.status and c.num_nonzero == d.num_nonzero, c.name
        half = c.eigenvalues.size // 2
        np.testing.assert_allclose(d.eigenvalues[half:], c.eigenvalues[half:], rtol=1e-4)
        if np.isfinite(c.alpha):
            assert abs(c.alpha - d.alpha) < 1e-3
    assert gpu[3].num_nonzero == 20 and gpu[4].num_nonzero == 7
    for name, mats in cases.items():
        np.testing.assert_allclose(esd(mats.cuda())[-10:], esd(mats)[-10:], rtol=1e-4, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_symmetric_mode_matches_gram_mode_and_scipy_fallback(dtype):
    """Eigenvalues of Gram matrices formed elsewhere (the GPU route) equal the syrk+syevd route and scipy's."""
    from modelbalance.spectral import lapack
    from modelbalance.spectral.eigenvalues import gram

    rng = np.random.default_rng(3)
    mats = rng.standard_normal((4, 40, 25)).astype(dtype)
    grams = gram(torch.from_numpy(mats)).numpy()
    direct = next(lapack.gram_eigenvalues([lambda: mats], workers=2))
    given = next(lapack.gram_eigenvalues([lambda: grams], workers=2, symmetric=True))
    fallback = np.stack([lapack._scipy_sym_eigs(np.array(g, order="C", copy=True)) for g in grams])
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(given, direct, rtol=tol, atol=tol * direct.max())
    np.testing.assert_allclose(fallback, direct, rtol=tol, atol=tol * direct.max())
    assert np.array_equal(grams, gram(torch.from_numpy(mats)).numpy())  # inputs are not overwritten
