"""Paired statistics against scipy and hand-computed values."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from modelbalance.experiments.stats import (
    bootstrap_gain_ci,
    holm,
    mean_std,
    paired_comparison,
    paired_ttest_p,
    relative_gain,
    sign_test_p,
    wilcoxon_p,
)


def test_relative_gain_by_hand():
    assert relative_gain(0.20, 0.15) == pytest.approx(0.25)
    assert relative_gain(0.20, 0.25) == pytest.approx(-0.25)
    assert relative_gain(0.80, 0.88, direction="max") == pytest.approx(0.10)
    assert math.isnan(relative_gain(0.0, 0.1))
    with pytest.raises(ValueError, match="direction"):
        relative_gain(1.0, 1.0, direction="lower")


def test_paired_ttest_matches_scipy_and_hand():
    d = np.array([0.1, 0.2, 0.3])
    # t = mean / (sd / sqrt(n)) = 0.2 / (0.1 / sqrt(3)); two-sided with 2 degrees of freedom
    t = 0.2 / (0.1 / math.sqrt(3))
    assert paired_ttest_p(d) == pytest.approx(2 * scipy_stats.t.sf(t, df=2))
    b, m = np.array([1.0, 2.0, 3.5, 4.0]), np.array([0.8, 2.1, 3.0, 3.1])
    assert paired_ttest_p(b - m) == pytest.approx(scipy_stats.ttest_rel(b, m).pvalue)


def test_ttest_degenerate_cases():
    assert math.isnan(paired_ttest_p([0.3]))
    assert paired_ttest_p([0.0, 0.0, 0.0]) == 1.0
    assert math.isnan(paired_ttest_p([0.1, 0.1, 0.1]))  # zero spread, nonzero mean: t undefined


def test_wilcoxon_matches_scipy():
    d = np.array([0.5, -0.2, 0.9, 0.4, 0.3, -0.1, 0.7])
    assert wilcoxon_p(d) == pytest.approx(scipy_stats.wilcoxon(d).pvalue)
    # all positive, n = 5: exact two-sided p = 2 / 2^5
    assert wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(2 / 32)
    assert wilcoxon_p([0.0, 0.0]) == 1.0


def test_sign_test_by_hand():
    assert sign_test_p(9, 0) == pytest.approx(2 * 0.5**9)
    # 7 wins of 9: P(X >= 7) = (36 + 9 + 1) / 512, doubled
    assert sign_test_p(7, 2) == pytest.approx(2 * 46 / 512)
    assert sign_test_p(0, 0) == 1.0


def test_holm_by_hand():
    adjusted = holm([0.01, 0.04, 0.03, np.nan])
    # sorted: 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> max(0.06, 0.04) = 0.06
    assert adjusted[:3].tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(adjusted[3])
    assert holm([0.9, 0.8]).tolist() == [1.0, 1.0]


def test_paired_comparison_fields():
    baseline = [0.20, 0.22, 0.25, 0.21]
    method = [0.18, 0.20, 0.26, 0.20]
    result = paired_comparison(baseline, method, n_boot=2000)
    assert (result.n, result.wins, result.losses, result.ties) == (4, 3, 1, 0)
    assert result.gain == pytest.approx((np.mean(baseline) - np.mean(method)) / np.mean(baseline))
    assert result.p_sign == pytest.approx(sign_test_p(3, 1))
    assert result.p_ttest == pytest.approx(scipy_stats.ttest_rel(baseline, method).pvalue)
    assert result.ci_low <= result.gain <= result.ci_high


def test_paired_comparison_direction_max_counts_higher_as_win():
    result = paired_comparison([0.80, 0.70], [0.85, 0.72], direction="max", n_boot=100)
    assert result.wins == 2 and result.gain > 0


def test_bootstrap_ci_of_a_constant_ratio_is_a_point():
    baseline = np.array([1.0, 2.0, 4.0, 3.0])
    low, high = bootstrap_gain_ci(baseline, 0.9 * baseline, n_boot=500)
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)


def test_bootstrap_is_seeded():
    b, m = [0.3, 0.2, 0.5, 0.4], [0.25, 0.22, 0.41, 0.43]
    assert bootstrap_gain_ci(b, m, seed=3) == bootstrap_gain_ci(b, m, seed=3)
    assert all(math.isnan(v) for v in bootstrap_gain_ci([1.0], [0.5]))


def test_bad_inputs():
    with pytest.raises(ValueError, match="equal length"):
        paired_comparison([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        paired_comparison([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least one"):
        paired_comparison([], [])


def test_mean_std():
    assert mean_std([1.0, 3.0, np.nan]) == (2.0, pytest.approx(math.sqrt(2)), 2)
    mean, std, n = mean_std([5.0])
    assert (mean, n) == (5.0, 1) and math.isnan(std)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.1, 10), st.floats(0.1, 10)), min_size=2, max_size=12))
def test_swapping_the_methods_mirrors_the_comparison(pairs):
    b = np.array([p[0] for p in pairs])
    m = np.array([p[1] for p in pairs])
    forward = paired_comparison(b, m, n_boot=200)
    backward = paired_comparison(m, b, n_boot=200)
    assert (forward.wins, forward.losses, forward.ties) == (backward.losses, backward.wins, backward.ties)
    for p in (forward.p_sign, forward.p_wilcoxon):
        assert 0.0 <= p <= 1.0
    assert forward.p_sign == pytest.approx(backward.p_sign)
    assert np.sign(forward.gain) == -np.sign(backward.gain) or forward.gain == 0
