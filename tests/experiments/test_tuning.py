"""Picks at the edge of a tuning grid are named, so a too-narrow grid cannot pass for a tuned comparison."""

from hypothesis import given
from hypothesis import strategies as st

from modelbalance.experiments.plan import normalize_params
from modelbalance.experiments.tuning import edge_axes, tied_edge_axes

axis_values = st.lists(
    st.floats(min_value=1e-6, max_value=10.0, allow_nan=False), min_size=2, max_size=6, unique=True
)


@given(values=axis_values, data=st.data())
def test_a_pick_is_at_an_edge_exactly_when_it_is_the_smallest_or_largest_value(values, data):
    pick = data.draw(st.sampled_from(values))
    edges = edge_axes(normalize_params({"lr": pick}), {"lr": tuple(values)})
    if pick == min(values):
        assert edges == ["lr (bottom)"]
    elif pick == max(values):
        assert edges == ["lr (top)"]
    else:
        assert edges == []


@given(lrs=axis_values, strengths=axis_values, data=st.data())
def test_every_axis_is_checked_on_its_own(lrs, strengths, data):
    lr, strength = data.draw(st.sampled_from(lrs)), data.draw(st.sampled_from(strengths))
    grid = {"lr": tuple(lrs), "strength": tuple(strengths)}
    edges = edge_axes(normalize_params({"lr": lr, "strength": strength}), grid)
    assert ("strength" in " ".join(edges)) == (strength in (min(strengths), max(strengths)))
    assert any(e.startswith("lr ") for e in edges) == (lr in (min(lrs), max(lrs)))


def test_untuned_and_categorical_axes_have_no_edge():
    point = normalize_params({"lr": 1e-3, "unit": "block", "interval": 5})
    grid = {"lr": (1e-3,), "unit": ("block", "layer"), "interval": (5,)}
    assert edge_axes(point, grid) == []


def test_the_interior_pick_of_a_wide_grid_is_not_flagged():
    point = normalize_params({"lr": 3e-4, "strength": 0.5})
    grid = {"lr": (1e-4, 3e-4, 1e-3), "strength": (0.125, 0.25, 0.5, 1.0, 2.0)}
    assert edge_axes(point, grid) == []
    assert edge_axes(normalize_params({"lr": 3e-4, "strength": 2.0}), grid) == ["strength (top)"]


def test_numpy_values_count_and_a_zero_bottom_is_a_bound():
    import numpy as np

    grid = {"lr": (np.float32(1e-4), np.float32(3e-4)), "warmup": (0.0, 0.06, 0.1)}
    point = normalize_params({"lr": np.float32(3e-4), "warmup": 0.0})
    assert edge_axes(point, grid) == ["lr (top)"]  # numpy floats are numbers; warm-up 0 cannot be widened


def _stats(means: dict, failed=()) -> dict:
    """pick_learning_rate's second value for an lr-only grid: lr -> (n_ok, n_failed, mean, std)."""
    return {
        normalize_params({"lr": lr}): (0, 1, float("nan"), 0.0) if lr in failed else (1, 0, m, 0.0)
        for lr, m in means.items()
    }


@given(values=axis_values, data=st.data())
def test_an_edge_is_tied_exactly_when_it_scored_the_picks_mean(values, data):
    pick = data.draw(st.sampled_from(values))
    means = {v: data.draw(st.sampled_from([0.5, 0.7, 0.9])) for v in values}
    means[pick] = 0.9
    ties = tied_edge_axes(normalize_params({"lr": pick}), {"lr": tuple(values)}, _stats(means))
    expected = [
        f"lr ({side}, tied)"
        for side, edge in (("bottom", min(values)), ("top", max(values)))
        if edge != pick and means[edge] == 0.9
    ]
    assert ties == expected


def test_a_failed_edge_or_a_zero_bottom_does_not_tie_and_other_axes_stay_at_the_pick():
    grid = {"lr": (1e-4, 3e-4, 1e-3)}
    stats = _stats({1e-4: 0.9, 3e-4: 0.9, 1e-3: 0.9}, failed=(1e-3,))
    assert tied_edge_axes(normalize_params({"lr": 3e-4}), grid, stats) == ["lr (bottom, tied)"]
    # two axes: s_max's top ties only at the picked lr; the same score at another lr is not the pick's edge
    grid = {"lr": (1e-4, 3e-4), "s_max": (0.0, 0.5, 1.0)}
    scores = {
        (1e-4, 0.0): 0.9,
        (1e-4, 0.5): 0.8,
        (1e-4, 1.0): 0.8,
        (3e-4, 0.0): 0.9,  # the same score at s_max 0: a bound, not an edge
        (3e-4, 0.5): 0.9,
        (3e-4, 1.0): 0.9,
    }
    stats = {normalize_params({"lr": lr, "s_max": s}): (1, 0, m, 0.0) for (lr, s), m in scores.items()}
    # pick (3e-4, 0.5): its lr bottom (1e-4, 0.5) scored 0.8, its s_max top 0.9 ties, its s_max bottom 0 is a bound
    assert tied_edge_axes(normalize_params({"lr": 3e-4, "s_max": 0.5}), grid, stats) == ["s_max (top, tied)"]
