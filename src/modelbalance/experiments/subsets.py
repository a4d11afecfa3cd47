"""Seeded low-data training subsets: nested random prefixes, stratified prefixes and k-shot subsets.

For one seed, every subset is a prefix of one fixed ordering of the pool, so smaller subsets are contained in
larger ones (nested) and every method and learning rate trains on exactly the same examples::

    import numpy as np
    from modelbalance.experiments.subsets import stratified_subset, kshot_subset
    labels = np.array([0] * 90 + [1] * 10)
    stratified_subset(labels, 20, seed=0)      # 18 of class 0, 2 of class 1 (sorted indices)
    kshot_subset(labels, 4, seed=0)            # 4 of each class
"""

from __future__ import annotations

import numpy as np

_STRATIFY_SALT = 0x57A7


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """An ordering of the pool whose every prefix is stratified by class (to within one example per class).

    One example of each class comes first (in random order), so any prefix of at least C examples holds every
    class. The rest of each class is shuffled, and its j-th example gets the position (j + u) / n_c with u
    uniform in [0, 1); sorting by position interleaves the classes in proportion to their sizes.

    Examples
    --------
    >>> order = stratified_order(np.array([0, 0, 0, 1]), seed=0)
    >>> sorted(order.tolist()), sorted(np.array([0, 0, 0, 1])[order[:2]].tolist())
    ([0, 1, 2, 3], [0, 1])
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _STRATIFY_SALT]))
    classes = np.unique(labels)
    firsts, rest_index, rest_position = [], [], []
    for c in classes:
        members = rng.permutation(np.flatnonzero(labels == c))
        firsts.append(members[0])
        n = len(members)
        offsets = rng.random(n - 1)
        rest_index.append(members[1:])
        rest_position.append((np.arange(1, n) + offsets) / n)
    head = np.asarray(firsts)[rng.permutation(len(firsts))]
    index = np.concatenate(rest_index) if rest_index else np.empty(0, dtype=int)
    position = np.concatenate(rest_position) if rest_position else np.empty(0)
    tail = index[np.argsort(position, kind="stable")]
    return np.concatenate([head, tail]).astype(np.int64)


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded, class-stratified subset of ``n`` examples, nested in ``n``."""
    labels = np.asarray(labels)
    if not 1 <= n <= len(labels):
        raise ValueError(f"a training subset of {n} examples does not fit in a pool of {len(labels)}")
    return np.sort(stratified_order(labels, seed)[:n])


def kshot_subset(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Sorted indices of ``k`` seeded examples per class (nested in ``k``: the first k of each class's shuffle)."""
    labels = np.asarray(labels)
    check_shots(labels, k)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _STRATIFY_SALT, 1]))
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:k] for c in np.unique(labels)]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def check_shots(labels: np.ndarray, k: int, label_names=None) -> None:
    """ValueError naming the smallest class when it has fewer than ``k`` examples in the pool."""
    classes, counts = np.unique(np.asarray(labels), return_counts=True)
    if k < 1:
        raise ValueError(f"shots must be >= 1, got {k}")
    smallest = int(np.argmin(counts))
    if counts[smallest] < k:
        label = classes[smallest].item()
        name = f"{label} ({label_names[label]!r})" if label_names is not None else str(label)
        raise ValueError(
            f"{k} shots per class do not fit: class {name} has only {counts[smallest]} examples "
            "in the training pool"
        )


def stratified_split(labels: np.ndarray, n_out: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out, rest): a seeded, stratified split of ``n_out`` examples off a labelled pool, both sorted."""
    labels = np.asarray(labels)
    order = stratified_order(labels, seed)
    return np.sort(order[:n_out]), np.sort(order[n_out:])
