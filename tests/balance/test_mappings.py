import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelbalance.balance.mappings import (
    MAPPINGS,
    linear_factors,
    log2_factors,
    map_alphas,
    noise_aware_factors,
    normalize_factors,
    rank_factors,
    shrink_alphas,
    sigmoid_factors,
    sqrt_factors,
)

alpha_lists = st.lists(st.floats(1.5, 12.0, allow_nan=False), min_size=2, max_size=30)
MONOTONE = ["linear", "sigmoid", "rank", "sqrt", "log2"]


@settings(max_examples=60, deadline=None)
@given(alphas=alpha_lists)
@pytest.mark.parametrize("name", MONOTONE)
def test_larger_alpha_never_gets_a_smaller_factor(name, alphas):
    a = np.array(alphas)
    f = MAPPINGS[name](a)
    order = np.argsort(a, kind="stable")
    assert np.all(np.diff(f[order]) >= -1e-12)
    assert np.all(f > 0)


@settings(max_examples=60, deadline=None)
@given(alphas=alpha_lists)
def test_linear_spans_s1_to_s2_linearly(alphas):
    a = np.array(alphas)
    f = linear_factors(a, s1=0.6, s2=1.4)
    if np.ptp(a) <= 1e-9:
        assert np.all(f == 1.0)
        return
    assert f[np.argmin(a)] == pytest.approx(0.6)
    assert f[np.argmax(a)] == pytest.approx(1.4)
    expected = 0.6 + 0.8 * (a - a.min()) / (a.max() - a.min())
    np.testing.assert_allclose(f, expected, rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(alphas=alpha_lists, s_min=st.floats(0.0, 2.0), s_max=st.floats(0.0, 2.0))
def test_sigmoid_bounds_and_two_sides(alphas, s_min, s_max):
    a = np.array(alphas)
    f = sigmoid_factors(a, s_min=s_min, s_max=s_max, temperature=10.0)
    if np.ptp(a) <= 1e-12 * max(1.0, np.abs(a).max()):
        assert np.all(f == 1.0)
        return
    x = a - a.mean()
    assert np.all(f <= 10 ** (s_max / 2) + 1e-12) and np.all(f >= 10 ** (-s_min / 2) - 1e-12)
    assert np.all(f[x > 0] >= 1.0) and np.all(f[x <= 0] <= 1.0)
    # independent formula, side by side
    sig = 1 / (1 + np.exp(-10 * x)) - 0.5
    expected = np.where(x > 0, 10 ** (s_max * sig), 10 ** (s_min * sig))
    np.testing.assert_allclose(f, expected, rtol=1e-12)


def test_sigmoid_sides_use_their_own_scale():
    f = sigmoid_factors([1.0, 3.0], s_min=0.0, s_max=1.0)  # below the mean: s_min = 0 -> factor 1
    assert f[0] == 1.0
    assert f[1] == pytest.approx(10 ** (1.0 / (1 + math.exp(-10)) - 0.5))
    g = sigmoid_factors([1.0, 3.0], s_min=2.0, s_max=0.0)
    assert g[1] == 1.0 and g[0] == pytest.approx(10 ** (2.0 * (1 / (1 + math.exp(10)) - 0.5)))


def test_rank_uses_ranks_not_distances_and_averages_ties():
    np.testing.assert_allclose(rank_factors([2.0, 100.0, 3.0]), [0.5, 1.5, 1.0])
    np.testing.assert_allclose(rank_factors([2.0, 2.0, 5.0], s1=0.5, s2=1.5), [0.75, 0.75, 1.5])


@settings(max_examples=40, deadline=None)
@given(alphas=alpha_lists)
@pytest.mark.parametrize("name", ["sqrt", "log2"])
def test_proportional_maps_have_mean_one(name, alphas):
    a = np.array(alphas)
    f = MAPPINGS[name](a)
    assert f.mean() == pytest.approx(1.0)
    g = {"sqrt": np.sqrt, "log2": np.log2}[name](a)
    if np.ptp(a) > 1e-9:
        np.testing.assert_allclose(f, g / g.mean(), rtol=1e-12)


@pytest.mark.parametrize("name", MONOTONE)
def test_nan_alpha_gets_factor_one_and_is_left_out_of_statistics(name):
    with_nan = MAPPINGS[name](np.array([2.0, np.nan, 4.0, 3.0]))
    without = MAPPINGS[name](np.array([2.0, 4.0, 3.0]))
    assert with_nan[1] == 1.0
    np.testing.assert_allclose(with_nan[[0, 2, 3]], without)


@pytest.mark.parametrize("name", list(MAPPINGS))
def test_all_equal_or_single_alpha_gives_factor_one(name):
    assert np.all(map_alphas([3.0, 3.0, 3.0], [0.1, 0.1, 0.1], mapping=name) == 1.0)
    assert np.all(map_alphas([3.0], mapping=name) == 1.0)
    assert np.all(map_alphas([np.nan, np.nan], mapping=name) == 1.0)


def test_proportional_maps_reject_shifted_metrics():
    with pytest.raises(ValueError, match="sqrt"):
        sqrt_factors([-0.5, 0.3])
    with pytest.raises(ValueError, match="log2"):
        log2_factors([0.5, 3.0])


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="s1"):
        linear_factors([1.0, 2.0], s1=1.5, s2=0.5)
    with pytest.raises(ValueError, match="temperature"):
        sigmoid_factors([1.0, 2.0], temperature=0)
    with pytest.raises(ValueError, match="unknown mapping"):
        map_alphas([1.0, 2.0], mapping="cubic")
    with pytest.raises(ValueError, match="1-D"):
        linear_factors([[1.0, 2.0]])


def test_shrinkage_matches_empirical_bayes_formula():
    a = np.array([2.0, 3.0, 5.0, 6.0])
    se = np.array([0.5, 1.0, 0.2, 0.0])
    tau2 = a.var(ddof=1) - (se**2).mean()
    expected = a.mean() + tau2 / (tau2 + se**2) * (a - a.mean())
    np.testing.assert_allclose(shrink_alphas(a, se), expected)


@settings(max_examples=60, deadline=None)
@given(alphas=alpha_lists, se=st.floats(0.0, 3.0))
def test_noise_aware_never_spreads_more_than_its_base_with_equal_errors(alphas, se):
    a = np.array(alphas)
    base = sigmoid_factors(a)
    aware = noise_aware_factors(a, np.full(a.size, se))
    assert np.ptp(np.log(aware)) <= np.ptp(np.log(base)) + 1e-9


def test_noise_aware_limits():
    a = np.array([2.0, 2.3, 2.9, 3.4])
    np.testing.assert_allclose(noise_aware_factors(a, np.zeros(4)), sigmoid_factors(a))
    assert np.all(noise_aware_factors(a, np.full(4, 10.0)) == 1.0)  # all within noise -> no balancing
    np.testing.assert_allclose(noise_aware_factors(a, np.zeros(4), base="linear"), linear_factors(a))


def test_normalisation_plain_and_parameter_weighted():
    f = map_alphas([2.0, 3.0, 6.0], mapping="linear", normalize="mean")
    assert f.mean() == pytest.approx(1.0)
    w = np.array([10.0, 1.0, 1.0])
    g = map_alphas([2.0, 3.0, 6.0], mapping="linear", normalize="param_mean", weights=w)
    assert (g * w).sum() / w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(g / g[0], linear_factors([2.0, 3.0, 6.0]) / 0.5)
    # NaN units stay at exactly 1 and are not counted
    h = map_alphas([2.0, np.nan, 6.0], mapping="linear", normalize="mean")
    assert h[1] == 1.0 and (h[0] + h[2]) / 2 == pytest.approx(1.0)
    with pytest.raises(ValueError, match="weights"):
        map_alphas([2.0, 3.0], normalize="param_mean")
    with pytest.raises(ValueError, match="normalize"):
        map_alphas([2.0, 3.0], normalize="median")
    assert normalize_factors([2.0, 2.0]).tolist() == [1.0, 1.0]


def test_callable_mapping_gets_alphas_and_stderrs():
    seen = {}

    def custom(alphas, stderrs, power=1.0):
        seen["stderrs"] = stderrs
        return (alphas / alphas.mean()) ** power

    f = map_alphas([1.0, 3.0], [0.1, 0.2], mapping=custom, options={"power": 2.0})
    np.testing.assert_allclose(f, [0.25, 2.25])
    np.testing.assert_allclose(seen["stderrs"], [0.1, 0.2])
    with pytest.raises(ValueError, match="non-positive"):
        map_alphas([1.0, 3.0], mapping=lambda a, s: a - 2.0)
