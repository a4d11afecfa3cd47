"""The PDE solvers against exact solutions and conservation laws."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelbalance.experiments.pde.advection import solve_advection
from modelbalance.experiments.pde.burgers import cole_hopf_solution, solve_burgers
from modelbalance.experiments.pde.darcy import darcy_matrix, solve_darcy
from modelbalance.experiments.pde.random_fields import (
    gaussian_random_field_2d,
    random_sine_series,
    two_phase_coefficient,
)
from modelbalance.experiments.pde.reaction_diffusion import solve_reaction_diffusion
from modelbalance.experiments.pde.spectral1d import etdrk4, fourier_upsample, spectral_tail, wavenumbers

COLE_HOPF = dict(offset=1.0, amplitudes=[0.6, 0.3], wavenumbers_int=[1, 2], phases=[0.3, 1.1])


def grid(n):
    return np.arange(n) / n


# ------------------------------------------------------------------------------------------- Burgers


def test_burgers_matches_cole_hopf_exact_solution():
    x = grid(128)
    u0 = cole_hopf_solution(x, 0.0, nu=0.02, **COLE_HOPF)
    exact = cole_hopf_solution(x, 0.3, nu=0.02, **COLE_HOPF)
    u1 = solve_burgers(u0, nu=0.02, t_final=0.3)
    assert np.abs(u0).max() > 0.2  # a non-trivial solution: the comparison below means something
    assert np.abs(u1 - exact).max() < 1e-7


def test_burgers_steep_cole_hopf_solution_batched():
    # Two different exact solutions in one batch; the first has a steep front (max |u_x| ~ 38, max |u| ~ 0.6).
    x = grid(512)
    waves = [dict(offset=1.0, amplitudes=[0.98], wavenumbers_int=[1], phases=[0.0]), COLE_HOPF]
    u0 = np.stack([cole_hopf_solution(x, 0.0, nu=0.01, **w) for w in waves])
    exact = np.stack([cole_hopf_solution(x, 0.2, nu=0.01, **w) for w in waves])
    u1 = solve_burgers(u0, nu=0.01, t_final=0.2)
    assert np.abs(np.diff(u0[0])).max() * 512 > 30
    assert np.abs(u1 - exact).max() < 1e-8


def test_burgers_coarse_solve_with_spectral_upsampling_matches_exact():
    x = grid(512)
    u0 = cole_hopf_solution(x, 0.0, nu=0.02, **COLE_HOPF)
    exact = cole_hopf_solution(x, 0.3, nu=0.02, **COLE_HOPF)
    u1 = solve_burgers(u0[None], nu=0.02, t_final=0.3, solver_resolution=128)
    assert u1.shape == (1, 512)
    assert np.abs(u1[0] - exact).max() < 1e-7


def test_burgers_rejects_bad_arguments():
    u0 = np.zeros((2, 64))
    with pytest.raises(ValueError, match="nu"):
        solve_burgers(u0, nu=0.0, t_final=1.0)
    with pytest.raises(ValueError, match="solver_resolution"):
        solve_burgers(u0, nu=0.1, t_final=1.0, solver_resolution=48)
    with pytest.raises(ValueError, match="even"):
        solve_burgers(np.zeros((2, 63)), nu=0.1, t_final=1.0)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), nu=st.floats(0.02, 0.2))
def test_burgers_conserves_mean_and_obeys_maximum_principle(seed, nu):
    u0 = random_sine_series(np.random.default_rng(seed), n_samples=3, resolution=64, max_wavenumber=3)
    u0 += 0.3  # non-zero mean
    u1 = solve_burgers(u0, nu=nu, t_final=0.1)
    np.testing.assert_allclose(u1.mean(axis=1), u0.mean(axis=1), atol=1e-12)
    assert np.all(np.abs(u1).max(axis=1) <= np.abs(u0).max(axis=1) + 1e-9)


# ------------------------------------------------------------------------------------ spectral tools


def test_etdrk4_is_exact_for_linear_problems():
    n = 32
    rng = np.random.default_rng(0)
    u0 = rng.standard_normal((3, n))
    linear = -0.05 * wavenumbers(n) ** 2
    u1 = etdrk4(u0, linear=linear, nonlinear=lambda v: np.zeros_like(v), t_final=0.7, n_steps=3)
    expected = np.fft.irfft(np.fft.rfft(u0) * np.exp(0.7 * linear), n=n)
    np.testing.assert_allclose(u1, expected, atol=1e-13)


def test_fourier_upsample_is_exact_for_trigonometric_polynomials():
    f = lambda x: np.sin(2 * np.pi * 3 * x) + 0.5 * np.cos(2 * np.pi * 7 * x + 0.4) - 0.1  # noqa: E731
    fine = fourier_upsample(f(grid(32))[None], 256)
    np.testing.assert_allclose(fine[0], f(grid(256)), atol=1e-13)
    np.testing.assert_allclose(fine[0, ::8], f(grid(32)), atol=1e-13)
    with pytest.raises(ValueError, match="smaller"):
        fourier_upsample(fine, 32)


def test_spectral_tail_flags_unresolved_fields():
    x = grid(64)
    smooth = np.sin(2 * np.pi * x)[None]
    kink = np.abs(np.sin(2 * np.pi * x))[None]  # slowly decaying spectrum
    assert spectral_tail(smooth)[0] < 1e-12
    assert spectral_tail(kink)[0] > 1e-4


# ------------------------------------------------------------------------- advection, reaction-diffusion


def test_advection_is_the_exact_shift():
    f = lambda x: np.sin(2 * np.pi * x) + 0.5 * np.cos(2 * np.pi * 5 * x + 1.0)  # noqa: E731
    x = grid(128)
    u1 = solve_advection(f(x)[None], beta=0.37, t_final=1.3)
    np.testing.assert_allclose(u1[0], f(x - 0.37 * 1.3), atol=1e-12)
    # a shift by whole cells is a roll, for any data
    u0 = np.random.default_rng(0).standard_normal(64)
    np.testing.assert_allclose(solve_advection(u0, beta=5 / 64, t_final=1.0), np.roll(u0, 5), atol=1e-12)


def test_reaction_diffusion_matches_logistic_growth_for_constant_data():
    c = np.array([0.1, 0.5, 0.9])[:, None] * np.ones((1, 32))
    for rho in (1.0, 5.0):
        u1 = solve_reaction_diffusion(c, nu=0.01, rho=rho, t_final=1.0)
        exact = c * np.exp(rho) / (1 - c + c * np.exp(rho))
        assert np.abs(u1 - exact).max() < 1e-7


def test_reaction_diffusion_without_reaction_is_the_heat_equation():
    x = grid(64)
    u1 = solve_reaction_diffusion(np.sin(2 * np.pi * 3 * x) + 0.2, nu=0.02, rho=0.0, t_final=1.0)
    exact = np.exp(-0.02 * (6 * np.pi) ** 2) * np.sin(2 * np.pi * 3 * x) + 0.2
    np.testing.assert_allclose(u1, exact, atol=1e-12)


# ------------------------------------------------------------------------------------------------ Darcy


def manufactured_darcy_error(s):
    """Max nodal error for u = sin(pi x) sin(2 pi y) e^x with a smooth variable coefficient."""
    pi = np.pi
    x, y = np.meshgrid(np.linspace(0, 1, s), np.linspace(0, 1, s), indexing="ij")
    a = 1 + 0.5 * np.sin(2 * pi * x) * np.cos(pi * y) + x * y
    a_x = pi * np.cos(2 * pi * x) * np.cos(pi * y) + y
    a_y = -0.5 * pi * np.sin(2 * pi * x) * np.sin(pi * y) + x
    u = np.sin(pi * x) * np.sin(2 * pi * y) * np.exp(x)
    u_x = (pi * np.cos(pi * x) + np.sin(pi * x)) * np.sin(2 * pi * y) * np.exp(x)
    u_xx = (2 * pi * np.cos(pi * x) + (1 - pi**2) * np.sin(pi * x)) * np.sin(2 * pi * y) * np.exp(x)
    u_y = 2 * pi * np.sin(pi * x) * np.cos(2 * pi * y) * np.exp(x)
    u_yy = -4 * pi**2 * u
    f = -(a_x * u_x + a * u_xx + a_y * u_y + a * u_yy)
    return np.abs(solve_darcy(a, f) - u).max()


def test_darcy_is_second_order_on_a_manufactured_solution():
    errors = [manufactured_darcy_error(s) for s in (17, 33, 65)]
    ratios = [errors[i] / errors[i + 1] for i in range(2)]
    assert errors[-1] < 2e-3
    for ratio in ratios:
        assert 3.6 < ratio < 4.4


def test_darcy_properties_scaling_symmetry_positivity():
    a = two_phase_coefficient(np.random.default_rng(0), n_samples=2, resolution=24)
    u = solve_darcy(a)
    assert u.shape == a.shape
    assert np.all(u[:, [0, -1], :] == 0) and np.all(u[:, :, [0, -1]] == 0)
    assert np.all(u[:, 1:-1, 1:-1] > 0)  # f = 1 > 0: maximum principle
    np.testing.assert_allclose(solve_darcy(4.0 * a), u / 4.0, rtol=1e-10)
    np.testing.assert_allclose(
        solve_darcy(a.transpose(0, 2, 1)), u.transpose(0, 2, 1), rtol=1e-10, atol=1e-14
    )
    matrix = darcy_matrix(a[0])
    assert abs(matrix - matrix.T).max() < 1e-9


def test_darcy_constant_coefficient_matches_series_solution():
    # -lap u = 1 on the unit square: u(1/2, 1/2) = 0.0736713... (classical series value)
    u = solve_darcy(np.ones((65, 65)))
    assert abs(u[32, 32] - 0.07367135) < 1e-4


def test_darcy_rejects_bad_coefficients():
    with pytest.raises(ValueError, match="> 0"):
        solve_darcy(np.zeros((1, 8, 8)))
    with pytest.raises(ValueError, match="square"):
        solve_darcy(np.ones((1, 8, 9)))
    with pytest.raises(ValueError, match="broadcast"):
        solve_darcy(np.ones((1, 8, 8)), forcing=np.ones(3))


# ---------------------------------------------------------------------------------------- random fields


def test_random_sine_series_is_seeded_band_limited_and_prefix_stable():
    a = random_sine_series(np.random.default_rng(3), n_samples=5, resolution=64, n_waves=2, max_wavenumber=4)
    b = random_sine_series(np.random.default_rng(3), n_samples=9, resolution=64, n_waves=2, max_wavenumber=4)
    np.testing.assert_array_equal(a, b[:5])
    spectrum = np.abs(np.fft.rfft(b))
    assert spectrum[:, 5:].max() < 1e-12 and spectrum[:, 1:5].max() > 1
    assert np.abs(b).max() <= 2.0


def test_two_phase_coefficient_takes_two_values_in_both_phases():
    a = two_phase_coefficient(np.random.default_rng(0), n_samples=4, resolution=32)
    assert set(np.unique(a)) == {3.0, 12.0}
    assert 0.2 < (a == 12.0).mean() < 0.8
    g1 = gaussian_random_field_2d(np.random.default_rng(1), n_samples=2, resolution=16)
    g2 = gaussian_random_field_2d(np.random.default_rng(1), n_samples=3, resolution=16)
    np.testing.assert_allclose(g1, g2[:2])


def test_darcy_faces_use_the_harmonic_mean():
    a = np.ones((5, 5))
    a[2, 2], a[3, 2] = 2.0, 6.0  # interior nodes (1, 1) and (2, 1) of the 3x3 unknown block
    matrix = darcy_matrix(a).toarray() / 16.0  # h = 1/4
    p, q = 1 * 3 + 1, 2 * 3 + 1  # row-major interior indices of (i, j) = (2, 2) and (3, 2)
    assert matrix[p, q] == pytest.approx(-2 * 2.0 * 6.0 / (2.0 + 6.0))
    # three faces to neighbours with a = 1 (harmonic mean 4/3 each) and one to the neighbour with a = 6 (3)
    assert matrix[p, p] == pytest.approx(3 * 4 / 3 + 3.0)
