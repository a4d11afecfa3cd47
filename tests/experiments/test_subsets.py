"""Training subsets: stratified, nested across sizes, k-shot, seeded; and the grid / size axes of the config."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelbalance.experiments.config import ExperimentConfig
from modelbalance.experiments.subsets import (
    kshot_subset,
    stratified_order,
    stratified_split,
    stratified_subset,
)

labels_strategy = st.lists(st.integers(0, 3), min_size=4, max_size=80).filter(lambda x: len(set(x)) >= 2)


@settings(max_examples=60, deadline=None)
@given(labels=labels_strategy, seed=st.integers(0, 10_000))
def test_stratified_order_is_a_permutation_whose_prefixes_are_stratified(labels, seed):
    labels = np.array(labels)
    order = stratified_order(labels, seed)
    assert sorted(order.tolist()) == list(range(len(labels)))
    classes, counts = np.unique(labels, return_counts=True)
    for n in range(len(classes), len(labels) + 1):
        prefix = labels[order[:n]]
        assert set(prefix) == set(classes)  # every class present once n >= C
        got = np.array([(prefix == c).sum() for c in classes])
        expected = counts * n / len(labels)
        assert np.all(np.abs(got - expected) <= 2.0), (got, expected)  # within about one per class


@settings(max_examples=40, deadline=None)
@given(labels=labels_strategy, seed=st.integers(0, 10_000), data=st.data())
def test_subsets_are_nested_and_seeded(labels, seed, data):
    labels = np.array(labels)
    small = data.draw(st.integers(1, len(labels)))
    large = data.draw(st.integers(small, len(labels)))
    a, b = stratified_subset(labels, small, seed), stratified_subset(labels, large, seed)
    assert set(a) <= set(b) and len(a) == small and len(b) == large
    assert np.array_equal(a, stratified_subset(labels, small, seed))
    k_max = int(np.unique(labels, return_counts=True)[1].min())
    k = data.draw(st.integers(1, k_max))
    shots = kshot_subset(labels, k, seed)
    assert all((labels[shots] == c).sum() == k for c in np.unique(labels))
    assert set(kshot_subset(labels, 1, seed)) <= set(shots)


def test_subsets_differ_between_seeds_and_errors_are_clear():
    labels = np.repeat([0, 1], 50)
    assert not np.array_equal(stratified_subset(labels, 10, 0), stratified_subset(labels, 10, 1))
    with pytest.raises(ValueError, match="class 1 has only 3 examples"):
        kshot_subset(np.array([0] * 10 + [1] * 3), 4, 0)
    with pytest.raises(ValueError, match="does not fit in a pool of 100"):
        stratified_subset(labels, 101, 0)
    held, rest = stratified_split(labels, 20, 0)
    assert len(set(held) & set(rest)) == 0 and len(held) == 20 and (labels[held] == 1).sum() == 10


def test_config_subset_axes_and_equal_budget_grids():
    config = ExperimentConfig(task="toy", sizes="16,64", methods=("baseline", "tb"), lrs=(1e-3, 3e-3))
    assert config.subset_axis == "sizes" and config.fractions is None and config.sizes == (16, 64)
    assert ExperimentConfig(shots=(4,)).subset_axis == "shots"
    assert ExperimentConfig().fractions == (0.05, 0.25, 1.0)
    with pytest.raises(ValueError, match="one of fractions, sizes or shots"):
        ExperimentConfig(fractions=(0.5,), sizes=(10,))
    grids = {"tb": {"lr": [1e-3, 3e-3], "s_max": [0.5, 1.0]}, "baseline": {"lr": [1e-3, 2e-3, 3e-3, 5e-3]}}
    config = ExperimentConfig(methods=("baseline", "tb"), grids=grids)
    assert len(config.grid_points("tb")) == len(config.grid_points("baseline")) == 4
    assert (("lr", 0.001), ("s_max", 0.5)) in config.grid_points("tb")
    assert config.run_hash("tb", {"s_max": 0.5}) != config.run_hash("tb", {"s_max": 1.0})
    assert config.run_hash("tb") == config.run_hash("tb", {})
    with pytest.raises(ValueError, match=r"unequal tuning budget \(baseline: 2, tb: 4"):
        ExperimentConfig(
            methods=("baseline", "tb"), grids={"tb": grids["tb"], "baseline": {"lr": [1e-3, 2e-3]}}
        )
    with pytest.raises(ValueError, match="not one of the methods"):
        ExperimentConfig(methods=("baseline",), grids={"tb": grids["tb"]})
    unequal = ExperimentConfig(
        methods=("baseline", "tb"), grids={"tb": grids["tb"]}, allow_unequal_budget=True
    )
    assert len(unequal.grid_points("baseline")) == 1


def test_old_run_hashes_survive_the_new_fields():
    # the hash of a config without the new fields must not change, so published results stay reusable
    config = ExperimentConfig(task="burgers", model="fno", fractions=(0.1,), lrs=(1e-3, 3e-3))
    shared = config.shared_dict()
    assert (
        "finetune" not in shared and "lora" not in shared and "sizes" not in shared and "grids" not in shared
    )
    assert ExperimentConfig(task="burgers", finetune="lora").shared_dict()["finetune"] == "lora"
