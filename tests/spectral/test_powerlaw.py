"""fit_power_law: known exponents, scale invariance, KS scan against brute force, the `powerlaw` package."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelbalance import FitConfig, fit_power_law


def pareto(alpha: float, n: int, seed: int, xmin: float = 1.0) -> np.ndarray:
    """n samples with density ~ x^-alpha on [xmin, inf) (inverse-CDF sampling)."""
    u = np.random.default_rng(seed).random(n)
    return xmin * (1.0 - u) ** (-1.0 / (alpha - 1.0))


def hill(tail: np.ndarray, xmin: float) -> float:
    return 1.0 + tail.size / float(np.sum(np.log(tail / xmin)))


def two_sided_ks(tail: np.ndarray, xmin: float, alpha: float) -> float:
    """max over the sorted tail of |ECDF - CDF| on both sides of each step, written out point by point."""
    tail = np.sort(tail)
    k = tail.size
    best = 0.0
    for i, x in enumerate(tail):
        model = 1.0 - (x / xmin) ** (1.0 - alpha)
        best = max(best, (i + 1) / k - model, model - i / k)
    return best


def lower_ks(tail: np.ndarray, xmin: float, alpha: float) -> float:
    """max over the distinct tail values of |ECDF just below the value - CDF| (Clauset's code, `powerlaw`)."""
    tail = np.sort(tail)
    k = tail.size
    best = 0.0
    for i, x in enumerate(tail):
        if i > 0 and tail[i - 1] == x:
            continue  # i = number of tail values below x
        model = 1.0 - (x / xmin) ** (1.0 - alpha)
        best = max(best, abs(model - i / k))
    return best


def brute_force_ks(eigs: np.ndarray, min_tail: int, ks_steps: str = "lower") -> tuple[int, float, float]:
    """Clauset et al. written as a plain loop: fit at every candidate xmin, keep the smallest KS distance.

    The candidates are the distinct values (the first index of each); the tail of xmin = x is every value >= x.
    """
    eigs = np.sort(eigs[eigs > 0])
    distance = two_sided_ks if ks_steps == "both" else lower_ks
    best = (None, math.inf, math.nan)
    for i in range(0, eigs.size - min_tail + 1):
        if i > 0 and eigs[i] == eigs[i - 1]:
            continue
        tail = eigs[i:]
        if tail[-1] == tail[0]:
            continue
        alpha = hill(tail, tail[0])
        ks = distance(tail, tail[0], alpha)
        if ks < best[1]:
            best = (i, ks, alpha)
    return best


def tied(n: int, seed: int, decimals: int = 1, alpha: float = 2.5) -> np.ndarray:
    """A lognormal bulk and a Pareto tail, rounded: many repeated values, as in real measurements."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.exp(rng.normal(0.0, 0.5, n // 2)), 2.0 * pareto(alpha, n - n // 2, seed=seed + 7)])
    return np.round(x, decimals)


# --- known exponents ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.8, 2.5, 4.0])
@pytest.mark.parametrize("n", [200, 2000, 20000])
def test_fixed_xmin_recovers_known_exponent_within_shrinking_tolerance(alpha, n):
    fit = fit_power_law(pareto(alpha, n, seed=n + int(10 * alpha)), xmin="fixed")
    k = n - n // 2
    assert fit.num_tail == k
    assert abs(fit.alpha - alpha) < 4 * (alpha - 1) / math.sqrt(k)
    assert fit.alpha_stderr == pytest.approx((fit.alpha - 1) / math.sqrt(k))


@pytest.mark.parametrize("alpha", [2.0, 3.0])
@pytest.mark.parametrize("n", [300, 1500])
def test_ks_xmin_recovers_exponent_above_a_non_power_law_bulk(alpha, n):
    # A lognormal bulk below 1 and a Pareto tail above: the KS scan must find a tail start near 1.
    rng = np.random.default_rng(n)
    bulk = np.exp(rng.normal(-2.0, 0.3, size=n))
    tail = pareto(alpha, n, seed=n + 1)
    fit = fit_power_law(np.concatenate([bulk, tail]), xmin="ks")
    assert 0.3 < fit.xmin < 3.0
    assert abs(fit.alpha - alpha) < 4 * (alpha - 1) / math.sqrt(fit.num_tail) + 0.05


def test_fixed_position_counts_zeros_and_xmin_pos():
    rng = np.random.default_rng(1)
    eigs = np.concatenate([np.zeros(10), rng.random(90) + 0.1])
    full = np.sort(eigs)
    for pos in (2.0, 1.5, 3.0):
        fit = fit_power_law(eigs, xmin="fixed", xmin_pos=pos)
        start = int(100 / pos)
        assert fit.xmin_index == start
        assert fit.xmin == full[start]
        assert fit.num_tail == 100 - start
        assert fit.num_eigs == 100
        assert fit.alpha == pytest.approx(hill(full[start:], full[start]), rel=1e-12)


def test_accepts_torch_tensors_in_any_order():
    torch = pytest.importorskip("torch")
    eigs = pareto(2.5, 500, seed=3)
    shuffled = np.random.default_rng(0).permutation(eigs)
    a = fit_power_law(torch.from_numpy(shuffled).float())
    b = fit_power_law(np.sort(eigs).astype(np.float32))
    assert a.alpha == b.alpha


# --- scale invariance ---------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    alpha=st.floats(1.5, 6.0),
    n=st.integers(30, 400),
    scale=st.floats(1e-6, 1e6),
    rule=st.sampled_from(["fixed", "ks"]),
)
def test_alpha_is_scale_invariant(seed, alpha, n, scale, rule):
    eigs = pareto(alpha, n, seed=seed)
    a, b = fit_power_law(eigs, xmin=rule), fit_power_law(scale * eigs, xmin=rule)
    assert b.xmin_index == a.xmin_index
    assert b.alpha == pytest.approx(a.alpha, rel=1e-9)
    assert b.xmin == pytest.approx(scale * a.xmin, rel=1e-12)
    assert b.ks_distance == pytest.approx(a.ks_distance, rel=1e-6, abs=1e-9)


# --- "ks" against brute force -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("min_tail", [2, 10])
def test_ks_scan_equals_brute_force(seed, min_tail):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 160))
    # Mix a bulk and a tail so the minimum is somewhere in the middle, not trivially at an end.
    eigs = np.concatenate([rng.gamma(2.0, 0.1, n), pareto(2.0 + seed / 3, n, seed=seed)])
    start, ks, alpha = brute_force_ks(eigs, min_tail)
    fit = fit_power_law(eigs, xmin="ks", min_tail=min_tail)
    assert fit.xmin_index == start
    assert fit.xmin == np.sort(eigs)[start]
    assert fit.alpha == pytest.approx(alpha, rel=1e-10)
    assert fit.ks_distance == pytest.approx(ks, rel=1e-10)
    assert fit.num_tail == eigs.size - start >= min_tail


def test_ks_scan_ignores_zeros_and_reports_index_in_full_spectrum():
    eigs = pareto(2.5, 120, seed=9)
    padded = np.concatenate([np.zeros(7), eigs])
    start, _, alpha = brute_force_ks(eigs, 10)
    fit = fit_power_law(padded, xmin="ks")
    assert fit.xmin_index == start + 7
    assert fit.alpha == pytest.approx(alpha, rel=1e-10)


def test_ks_scan_handles_many_candidates_in_blocks(monkeypatch):
    from modelbalance.spectral import ks

    eigs = np.concatenate([np.random.default_rng(0).gamma(2.0, 0.1, 300), pareto(2.5, 300, seed=1)])
    whole = fit_power_law(eigs, xmin="ks")
    monkeypatch.setattr(ks, "_BLOCK_ELEMENTS", 1000)  # forces ~300 blocks of 1-2 candidates
    for work in (0, 10**12):  # the bounded search and the dense pass
        monkeypatch.setattr(ks, "_DENSE_WORK", work)
        assert fit_power_law(eigs, xmin="ks") == whole


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("min_tail", [2, 10])
@pytest.mark.parametrize("ks_steps", ["both", "lower"])
@pytest.mark.parametrize("method", ["dense", "bounded"])
def test_ks_scan_on_tied_data_equals_brute_force(seed, min_tail, ks_steps, method, monkeypatch):
    # Rounded data: a candidate tail must start at the first of its equal values and hold all of them.
    from modelbalance.spectral import ks

    monkeypatch.setattr(ks, "_DENSE_WORK", 10**12 if method == "dense" else 0)
    rng = np.random.default_rng(seed)
    eigs = tied(int(rng.integers(60, 300)), seed, decimals=int(rng.integers(0, 2)))
    start, dist, alpha = brute_force_ks(eigs, min_tail, ks_steps)
    fit = fit_power_law(eigs, xmin="ks", min_tail=min_tail, ks_steps=ks_steps)
    values = np.sort(eigs)
    start += int((eigs == 0).sum())  # rounding makes zeros; the fit's index counts them
    assert fit.xmin_index == start
    assert start == 0 or values[start - 1] < values[start]
    assert fit.num_tail == int((eigs >= fit.xmin).sum()) >= min_tail
    assert fit.alpha == pytest.approx(alpha, rel=1e-10)
    assert fit.ks_distance == pytest.approx(dist, rel=1e-10)


@pytest.mark.parametrize("ks_steps", ["both", "lower"])
@pytest.mark.parametrize("data", ["pareto", "tied"])
def test_bounded_search_equals_dense_scan_on_every_candidate(ks_steps, data, monkeypatch):
    # The bounded search proves most candidates worse without computing them; those it computes are exact.
    from modelbalance.spectral import ks

    x = np.sort(pareto(2.5, 4000, seed=3) if data == "pareto" else tied(4000, 3, decimals=2))
    x = x[x > 0]
    steps = ks.Steps.of(x)
    suffix = np.concatenate([np.cumsum(np.log(x)[::-1])[::-1], [0.0]])
    candidates = np.arange(steps.size - 1)
    dense, alphas = ks.scan(steps, candidates, suffix_log=suffix, ks_steps=ks_steps, method="dense")
    monkeypatch.setattr(ks, "_BLOCK_ELEMENTS", 5000)  # many small blocks in every stage
    bounded, alphas_b = ks.scan(steps, candidates, suffix_log=suffix, ks_steps=ks_steps, method="bounded")
    np.testing.assert_array_equal(alphas, alphas_b)
    computed = np.isfinite(bounded)
    np.testing.assert_array_equal(bounded[computed], dense[computed])
    assert np.argmin(bounded) == np.argmin(dense)
    assert computed.sum() < candidates.size / 10


def test_ks_scan_is_far_from_quadratic(monkeypatch):
    # 30,000 distinct values: the dense scan would evaluate ~4.5e8 (candidate, value) pairs.
    from modelbalance.spectral import ks

    evaluated = []
    evaluate = ks._evaluate

    def counting(*args):
        out = evaluate(*args)
        evaluated.append(out[-1].size)
        return out

    monkeypatch.setattr(ks, "_evaluate", counting)
    fit = fit_power_law(pareto(2.5, 30_000, seed=5), xmin="ks")
    assert fit.ok and abs(fit.alpha - 2.5) < 0.1
    assert sum(evaluated) < 30_000**2 / 100


def test_ks_scan_on_many_ties_is_fast():
    # 200,000 values with about 1,000 distinct ones: the work is in the distinct values, not the count.
    import time

    x = np.round(pareto(2.5, 200_000, seed=6), 1)
    t0 = time.perf_counter()
    fit = fit_power_law(x, xmin="ks")
    assert time.perf_counter() - t0 < 5.0
    assert fit.num_tail == int((x >= fit.xmin).sum())


# --- the `powerlaw` package ---------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha,seed", [(2.2, 0), (3.5, 1)])
def test_matches_powerlaw_package_at_fixed_xmin(alpha, seed):
    powerlaw = pytest.importorskip("powerlaw")
    eigs = pareto(alpha, 3000, seed=seed)
    xmin = float(np.quantile(eigs, 0.4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # powerlaw clips alpha to (0, 3) unless told otherwise; widen that so both are unconstrained MLEs.
        ref = powerlaw.Fit(
            eigs, xmin=xmin, discrete=False, verbose=False, parameter_ranges={"alpha": [1.0, 50.0]}
        ).power_law
    ours = fit_power_law(eigs, xmin=xmin)
    assert ours.alpha == pytest.approx(ref.alpha, rel=1e-6)
    assert ours.num_tail == int((eigs >= xmin).sum())
    assert ours.ks_distance == pytest.approx(ref.D, rel=1e-9)
    # "both" takes both sides of each ECDF step: the exact supremum, at most 1/k larger than powerlaw's D.
    both = fit_power_law(eigs, xmin=xmin, ks_steps="both")
    assert ref.D - 1e-9 <= both.ks_distance <= ref.D + 1.0 / both.num_tail + 1e-9
    assert both.ks_distance == pytest.approx(two_sided_ks(eigs[eigs >= xmin], xmin, both.alpha), rel=1e-9)


def powerlaw_scan(data, **kwargs):
    powerlaw = pytest.importorskip("powerlaw")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return powerlaw.Fit(data, discrete=False, verbose=False, **kwargs)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("decimals", [0, 1, 2])
def test_ks_scan_matches_powerlaw_package_on_tied_data(seed, decimals):
    # With the default distance (powerlaw's) both pick the same xmin. powerlaw's defaults drop every candidate whose
    # alpha is not in (0, 3) and fit numerically outside (1.5, 3]; alpha in (1, 4) with the closed form there
    # (Nelder-Mead, tolerance 1e-4, elsewhere) makes the candidates the same, the chosen alpha exact.
    x = tied(1500, seed, decimals, alpha=2.2)
    ref = powerlaw_scan(x, parameter_ranges={"alpha": [1.0, 4.0]})
    assert 1.5 < ref.power_law.alpha <= 3
    fit = fit_power_law(x, xmin="ks")
    assert fit.xmin == ref.xmin
    assert fit.alpha == pytest.approx(ref.power_law.alpha, rel=1e-9)
    assert fit.ks_distance == pytest.approx(ref.D, rel=1e-9)
    assert fit.num_tail == ref.n_tail
    # "both", the supremum over both sides of each ECDF step, is never below powerlaw's distance.
    both = fit_power_law(x, xmin=ref.xmin, ks_steps="both")
    assert both.ks_distance >= ref.D - 1e-12


@pytest.mark.parametrize("seed", range(3))
def test_ks_scan_matches_powerlaw_package_on_continuous_data(seed):
    x = np.concatenate([np.exp(np.random.default_rng(seed).normal(-1.0, 0.5, 700)), pareto(2.2, 700, seed)])
    ref = powerlaw_scan(x)
    fit = fit_power_law(x, xmin="ks")
    assert fit.xmin == ref.xmin
    assert fit.alpha == pytest.approx(ref.power_law.alpha, rel=1e-9)


# --- "peak" -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_peak_xmin_lies_in_its_log_window_and_is_best_ks_there(seed):
    rng = np.random.default_rng(seed)
    eigs = np.sort(np.concatenate([np.exp(rng.normal(0.0, 0.4, 800)), pareto(2.5, 200, seed=seed) * 3]))
    log_eigs = np.log(eigs)
    counts, edges = np.histogram(log_eigs, bins=100)
    mode = int(np.argmax(counts))
    centre = 0.5 * (edges[mode] + edges[mode + 1])
    lo, hi = centre + math.log(0.95), centre + math.log(1.5)
    fit = fit_power_law(eigs, xmin="peak")
    assert lo <= math.log(fit.xmin) <= hi
    window = [i for i in range(eigs.size - 10 + 1) if lo <= log_eigs[i] <= hi]
    best = min(window, key=lambda i: lower_ks(eigs[i:], eigs[i], hill(eigs[i:], eigs[i])))
    assert fit.xmin_index == best
    both = fit_power_law(eigs, xmin="peak", ks_steps="both")
    best = min(window, key=lambda i: two_sided_ks(eigs[i:], eigs[i], hill(eigs[i:], eigs[i])))
    assert both.xmin_index == best


# --- float xmin ---------------------------------------------------------------------------------------------


def test_float_xmin_uses_the_value_itself():
    eigs = pareto(3.0, 1000, seed=4)
    xmin = 1.2345  # between two eigenvalues
    fit = fit_power_law(eigs, xmin=xmin)
    tail = eigs[eigs >= xmin]
    assert fit.xmin == xmin
    assert fit.num_tail == tail.size
    assert fit.alpha == pytest.approx(hill(tail, xmin), rel=1e-12)
    assert fit.ks_distance == pytest.approx(lower_ks(tail, xmin, fit.alpha), rel=1e-9)
    both = fit_power_law(eigs, xmin=xmin, ks_steps="both")
    assert both.ks_distance == pytest.approx(two_sided_ks(tail, xmin, fit.alpha), rel=1e-9)
    assert fit_power_law(eigs, xmin=2).alpha == pytest.approx(hill(eigs[eigs >= 2], 2.0), rel=1e-12)


def test_float_xmin_above_the_spectrum_is_nan_with_status():
    fit = fit_power_law(pareto(3.0, 100, seed=5), xmin=1e9)
    assert math.isnan(fit.alpha)
    assert "xmin" in fit.status and not fit.ok


# --- degenerate inputs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["fixed", "peak", "ks", 0.5])
def test_all_equal_eigenvalues_give_nan_with_status(rule):
    fit = fit_power_law(np.full(50, 0.7), xmin=rule)
    assert math.isnan(fit.alpha) and not fit.ok
    assert "equal" in fit.status or "spread" in fit.status or "degenerate" in fit.status
    assert fit.num_eigs == 50


@pytest.mark.parametrize("eigs", [[], [0.0, 0.0, 0.0], [0.0, 0.0, 3.0], [2.0]])
@pytest.mark.parametrize("rule", ["fixed", "peak", "ks"])
def test_fewer_than_two_positive_eigenvalues_give_nan(eigs, rule):
    fit = fit_power_law(np.asarray(eigs, dtype=float), xmin=rule)
    assert math.isnan(fit.alpha)
    assert "too few positive eigenvalues" in fit.status


def test_fixed_xmin_in_the_zeros_is_rank_deficient():
    eigs = np.concatenate([np.zeros(60), pareto(2.5, 40, seed=0)])
    fit = fit_power_law(eigs)
    assert math.isnan(fit.alpha)
    assert fit.status.startswith("rank-deficient")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_eigenvalues_raise(bad):
    eigs = pareto(2.5, 20, seed=0)
    eigs[3] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        fit_power_law(eigs)


def test_negative_eigenvalues_raise():
    eigs = pareto(2.5, 20, seed=0)
    eigs[5] = -1e-3
    with pytest.raises(ValueError, match="non-negative"):
        fit_power_law(eigs)


def test_never_returns_infinite_alpha():
    # A tail made of one repeated top value over a spread bulk: no candidate may give alpha = inf.
    eigs = np.concatenate([np.linspace(0.1, 1.0, 50), np.full(20, 5.0)])
    for rule in ("fixed", "peak", "ks"):
        fit = fit_power_law(eigs, xmin=rule)
        assert not math.isinf(fit.alpha)


# --- FitConfig ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(xmin="median"), "xmin must be"),
        (dict(xmin=0.0), "xmin must be"),
        (dict(xmin=-1.0), "xmin must be"),
        (dict(xmin=float("nan")), "xmin must be"),
        (dict(xmin=float("inf")), "xmin must be"),
        (dict(xmin=True), "xmin must be"),
        (dict(xmin_pos=1.0), "xmin_pos"),
        (dict(xmin_pos=0.5), "xmin_pos"),
        (dict(xmin_pos=float("nan")), "xmin_pos"),
        (dict(min_tail=1), "min_tail"),
        (dict(peak_bins=1), "peak_bins"),
        (dict(ks_steps="upper"), "ks_steps"),
    ],
)
def test_fit_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FitConfig(**kwargs)
    with pytest.raises(ValueError, match=match):
        fit_power_law(pareto(2.5, 50, seed=0), **kwargs)


def test_fit_config_accepts_numpy_numbers_and_overrides_keywords():
    eigs = pareto(2.5, 200, seed=2)
    cfg = FitConfig(xmin=np.float32(1.5))
    assert fit_power_law(eigs, config=cfg).alpha == pytest.approx(hill(eigs[eigs >= 1.5], 1.5), rel=1e-6)
    cfg = FitConfig(xmin_pos=1.5)
    assert fit_power_law(eigs, xmin_pos=3.0, config=cfg) == fit_power_law(eigs, xmin_pos=1.5)


def test_fit_config_key_rebuilds_the_config_and_keeps_old_keys():
    # The null-reference cache on disk is keyed by key(). A fixed or numeric xmin keeps its old key (the KS
    # distance does not move alpha there); the scans hold the distance in theirs, so no entry of a scan under
    # the old default ("both", no field in the key) is read for the new one.
    assert FitConfig().key() == ("fixed", 2.0, 10, 100)
    assert FitConfig(xmin=1.5, ks_steps="both").key() == FitConfig(xmin=1.5).key() == (1.5, 2.0, 10, 100)
    assert FitConfig(xmin="ks").key() == ("ks", 2.0, 10, 100, "lower")
    assert FitConfig(xmin="peak", ks_steps="both").key() == ("peak", 2.0, 10, 100, "both")
    for cfg in (FitConfig(xmin="ks"), FitConfig(xmin="peak", ks_steps="both"), FitConfig(xmin=1.5)):
        assert FitConfig(*cfg.key()) == cfg
