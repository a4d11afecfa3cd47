"""Shared test setup: one torch thread, offline Hugging Face, headless matplotlib, a private cache folder."""

import os

# Set before transformers / huggingface_hub are imported anywhere (they read these at import time).
os.environ["HF_HUB_OFFLINE"] = "1"  # tests never download from a model hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

matplotlib.use("Agg")
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Point MODELBALANCE_CACHE at a fresh folder so tests never read or write the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELBALANCE_CACHE", str(tmp_path_factory.mktemp("modelbalance_cache")))
        yield


TINY_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


@pytest.fixture
def tiny_bert_config():
    """Factory for tiny BertConfigs built locally (no download); keyword arguments add or override fields."""
    transformers = pytest.importorskip("transformers")
    return lambda **fields: transformers.BertConfig(**{**TINY_BERT, **fields})


@pytest.fixture
def failing_eigensolver(monkeypatch):
    """The CPU eigensolver of ``modelbalance.spectral.analyze`` returns NaN eigenvalues (a LAPACK failure)."""
    import importlib

    import numpy as np

    module = importlib.import_module("modelbalance.spectral.analyze")  # the package exports a function too

    def failing(stacks, workers=1, symmetric=False):
        for make in stacks:
            yield np.full(min(make().shape[-2:]), np.nan, dtype=np.float32)[None]

    monkeypatch.setattr(module, "gram_eigenvalues", failing)
    return module
