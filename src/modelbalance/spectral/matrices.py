"""Model -> named weight matrices: which matrices each layer contributes to its empirical spectral density.

Example
-------
>>> import torch.nn as nn
>>> from modelbalance.spectral import extract_layers
>>> model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Conv1d(8, 16, kernel_size=3))
>>> [(layer.name, layer.matrix_shape, layer.num_matrices) for layer in extract_layers(model)]
[('0', (32, 64), 1), ('2', (16, 8), 3)]

What is read from each module type (one :class:`LayerWeight` per layer; its ESD pools the eigenvalues of all its
matrices):

- ``nn.Linear`` (and subclasses such as ``NonDynamicallyQuantizableLinear``): ``weight`` (out x in).
- Hugging Face ``Conv1D`` (GPT-2): ``weight`` is stored (in x out); read transposed to (out x in).
- ``nn.MultiheadAttention``: the packed ``in_proj_weight`` (3E x E) is split into its query, key and value parts,
  reported as ``<name>.q``, ``<name>.k``, ``<name>.v``; ``out_proj`` is an ordinary Linear child.
- ``nn.Conv1d/2d/3d`` and transposed convs: one (out/groups x in/groups) matrix per kernel position and group. A
  Conv1d weight (out, in, k) is k matrices of out x in, never out matrices of in x k.
- PEFT LoRA layers (over Linear or Conv1D): the effective weight ``W + scaling * B @ A`` summed over the active
  adapters (``lora="effective"``, the default), the update ``scaling * B @ A`` alone (``lora="delta"``), or ``W``
  alone (``lora="base"``). Their inner ``base_layer`` / ``lora_A`` / ``lora_B`` modules are not reported again.
- neuraloperator ``SpectralConv``: the complex weight (in, out, *modes) is one in x out matrix per retained Fourier
  mode; the eigenvalues of W^H W of all modes are pooled into one ESD. Pooling treats every mode as a sample of the
  same layer's operator, the same choice as for conv kernel positions.
- ``nn.Embedding`` only with ``embeddings=True``.
- Parametrized weights (``torch.nn.utils.parametrizations.weight_norm`` / ``spectral_norm`` / ``orthogonal``, or
  the legacy ``torch.nn.utils.weight_norm``) of the layers above are read as the weight the layer computes, anew
  at every read, and the layer owns the underlying parameters (``original0``/``original1``, ``weight_g``/
  ``weight_v``).

Conv matrices are multiplied by ``conv_scale`` (default sqrt(1/2), the HT-SR literature's normalisation). That
changes norms, not alpha. Matrices are returned as views of the parameters where possible: nothing here copies the
model.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.nn.utils import parametrize
from torch.nn.utils.weight_norm import WeightNorm

CONV_SCALE = math.sqrt(0.5)
_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T_TYPES = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass(frozen=True)
class LayerWeight:
    """One layer's matrices. ``matrices()`` returns a (num_matrices, rows, cols) tensor, real or complex."""

    name: str
    module_type: str
    kind: str
    param_names: tuple[str, ...]
    matrix_shape: tuple[int, int]
    num_matrices: int
    scale: float
    _build: Callable[[], torch.Tensor] = field(repr=False, compare=False)
    device: torch.device = torch.device("cpu")  # where the weights live: the ESD is computed there

    def matrices(self) -> torch.Tensor:
        mats = self._build()
        return mats * self.scale if self.scale != 1.0 else mats

    def with_matrices(self, matrices: torch.Tensor) -> LayerWeight:
        """The same layer reading fixed ``matrices`` (e.g. a snapshot taken at a recompute step).

        ``matrices`` must already include ``scale``; the copy's scale is 1.
        """
        return dataclasses.replace(self, scale=1.0, _build=lambda: matrices, device=matrices.device)

    @property
    def num_eigenvalues(self) -> int:
        return self.num_matrices * min(self.matrix_shape)

    @property
    def is_complex(self) -> bool:
        return self.kind == "spectral_conv"


def _is_hf_conv1d(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "weight")


def _is_spectral_conv(module: nn.Module) -> bool:
    return type(module).__name__.startswith("SpectralConv") and hasattr(module, "weight")


def _is_lora(module: nn.Module) -> bool:
    return hasattr(module, "lora_A") and hasattr(module, "lora_B") and hasattr(module, "base_layer")


def _params_under(model_params: dict[int, str], tensors: Iterable[torch.Tensor]) -> tuple[str, ...]:
    return tuple(model_params[id(t)] for t in tensors if id(t) in model_params)


def _weight_of(
    module: nn.Module, names: dict[int, str]
) -> tuple[torch.Tensor, Callable[[], torch.Tensor], tuple]:
    """``(weight now, reader of the current weight, owned parameter names)`` of a layer's ``weight``.

    A plain parameter is its own reader (a view, no copy). A parametrized weight is recomputed at every read:
    capturing the tensor once would freeze the layer's spectrum at its value when the layers were extracted.
    """
    if parametrize.is_parametrized(module, "weight"):
        chain = module.parametrizations["weight"]
        originals = list(chain.parameters())

        def read() -> torch.Tensor:
            # eval mode: reading must not advance state (spectral_norm's power iteration runs in training mode)
            modes = [m.training for m in chain.modules()]
            chain.train(False)
            try:
                with torch.no_grad():
                    return module.weight
            finally:
                for m, mode in zip(chain.modules(), modes):
                    m.training = mode

        return read(), read, _params_under(names, originals)
    legacy = next(
        (h for h in module._forward_pre_hooks.values() if isinstance(h, WeightNorm) and h.name == "weight"),
        None,
    )
    if legacy is not None:

        def read() -> torch.Tensor:
            with torch.no_grad():
                return legacy.compute_weight(module)

        owned = [module.weight_g, module.weight_v]
        return read(), read, _params_under(names, owned)
    w = module.weight
    return w, (lambda: w), _params_under(names, [w])


def _conv_matrices(weight: torch.Tensor, groups: int, transposed: bool) -> torch.Tensor:
    # conv: (out, in/g, *k); transposed conv: (in, out/g, *k). Result: (g * K, rows, cols).
    a, b = weight.shape[:2]
    kernel = int(math.prod(weight.shape[2:]))
    w = weight.reshape(groups, a // groups, b, kernel)  # (g, a/g, b, K)
    w = w.permute(0, 3, 1, 2)  # (g, K, a/g, b)
    if transposed:
        w = w.transpose(-1, -2)  # rows = out channels
    return w.reshape(groups * kernel, *w.shape[-2:])


def _active_adapters(module: nn.Module) -> list[str]:
    active = getattr(module, "active_adapters", None) or list(module.lora_A.keys())
    return [active] if isinstance(active, str) else list(active)


def _lora_delta(module: nn.Module) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
    """Sum over active adapters of scaling * B @ A, as (out, in); and the tensors it used."""
    delta, used = None, []
    for adapter in _active_adapters(module):
        if adapter not in module.lora_A:
            continue
        a, b = module.lora_A[adapter].weight, module.lora_B[adapter].weight
        if a.dim() != 2 or b.dim() != 2:
            return None, []
        scaling = module.scaling[adapter] if isinstance(module.scaling, dict) else module.scaling
        part = float(scaling) * (b.to(torch.float32) @ a.to(torch.float32))
        delta = part if delta is None else delta + part
        used += [a, b]
    return delta, used


def lora_update_rank(module: nn.Module) -> int | None:
    """Upper bound on the rank of a PEFT LoRA layer's update ``scaling * B A`` (the active adapters' ranks summed,
    at most the matrix's smaller side): its ESD has at most that many nonzero eigenvalues. None if ``module``
    holds no LoRA adapter.

    Examples
    --------
    >>> lora_update_rank(nn.Linear(4, 4)) is None
    True
    """
    lora_a = getattr(module, "lora_A", None)
    if not isinstance(lora_a, nn.ModuleDict):
        return None
    rank = sum(lora_a[a].weight.shape[0] for a in _active_adapters(module) if a in lora_a)
    base = getattr(module, "base_layer", None)
    sides = tuple(base.weight.shape) if base is not None and hasattr(base, "weight") else ()
    return min(rank, *sides) if sides else rank


def _matches(name: str, patterns: Sequence[str] | None) -> bool:
    return any(re.search(p, name) for p in patterns or ())


def _type_ok(module: nn.Module, types) -> bool:
    if not types:
        return True
    for t in types:
        if isinstance(t, str):
            if type(module).__name__ == t:
                return True
        elif isinstance(module, t):
            return True
    return False


def extract_layers(
    model: nn.Module,
    *,
    include: Sequence[str] | str | None = None,
    exclude: Sequence[str] | str | None = None,
    types: Sequence[type | str] | None = None,
    lora: str = "effective",
    embeddings: bool = False,
    spectral_conv: bool = True,
    conv_scale: float = CONV_SCALE,
) -> list[LayerWeight]:
    """List the layers of ``model`` whose ESD can be taken, in module order.

    Parameters
    ----------
    model : nn.Module
    include, exclude : regex or list of regexes, optional
        Keep only layers whose name matches one of ``include``; drop those matching ``exclude`` (``re.search``).
    types : list of module classes or class names, optional
        Keep only layers of these module types (e.g. ``[nn.Linear, "SpectralConv"]``).
    lora : {"effective", "delta", "base"}
        What a PEFT LoRA layer contributes (see module docstring).
    embeddings : bool
        Include ``nn.Embedding`` tables (off by default: their ESD reflects token frequencies, not training).
    spectral_conv : bool
        Include neuraloperator ``SpectralConv`` weights.
    conv_scale : float
        Multiplier for conv matrices (norms only; alpha is scale-invariant).
    """
    if lora not in ("effective", "delta", "base"):
        raise ValueError(f"lora must be 'effective', 'delta' or 'base', got {lora!r}")
    include = [include] if isinstance(include, str) else include
    exclude = [exclude] if isinstance(exclude, str) else exclude
    for p in list(include or ()) + list(exclude or ()):
        try:
            re.compile(p)
        except re.error as err:
            raise ValueError(f"invalid layer-name pattern {p!r}: {err}") from None
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    skip_prefixes: list[str] = []
    layers: list[LayerWeight] = []

    for name, module in model.named_modules():
        if any(name.startswith(prefix) for prefix in skip_prefixes):
            continue
        found = _layers_of(name, module, names, lora, embeddings, spectral_conv, conv_scale, skip_prefixes)
        for layer in found:
            if include and not _matches(layer.name, include):
                continue
            if exclude and _matches(layer.name, exclude):
                continue
            # A LoRA wrapper (peft's lora.Linear is no nn.Linear subclass) also matches its base layer's type.
            if not (_type_ok(module, types) or (_is_lora(module) and _type_ok(module.base_layer, types))):
                continue
            layers.append(layer)
    return layers


def _layers_of(name, module, names, lora, embeddings, spectral_conv, conv_scale, skip_prefixes):
    mtype = type(module).__name__
    if _is_lora(module):
        return _lora_layer(name, module, names, lora, skip_prefixes)
    if isinstance(module, nn.Linear) or _is_hf_conv1d(module):
        if not isinstance(getattr(module, "weight", None), torch.Tensor):
            return []
        w, read, owned = _weight_of(module, names)
        if w.dim() != 2:
            return []
        transposed = _is_hf_conv1d(module)
        shape = (w.shape[1], w.shape[0]) if transposed else tuple(w.shape)
        build = (
            (lambda: read().detach().t().unsqueeze(0))
            if transposed
            else (lambda: read().detach().unsqueeze(0))
        )
        kind = "hf_conv1d" if transposed else "linear"
        return [LayerWeight(name, mtype, kind, owned, shape, 1, 1.0, build, w.device)]
    if isinstance(module, nn.MultiheadAttention):
        return _mha_layers(name, module, names)
    if isinstance(module, _CONV_TYPES + _CONV_T_TYPES):
        w, read, owned = _weight_of(module, names)
        transposed = isinstance(module, _CONV_T_TYPES)
        g = module.groups
        a, b = w.shape[:2]
        rows, cols = (b, a // g) if transposed else (a // g, b)
        count = g * int(math.prod(w.shape[2:]))
        build = lambda g=g, t=transposed: _conv_matrices(read().detach(), g, t)  # noqa: E731
        return [
            LayerWeight(
                name,
                mtype,
                "conv",
                owned,
                (rows, cols),
                count,
                conv_scale,
                build,
                w.device,
            )
        ]
    if _is_spectral_conv(module):
        if not spectral_conv:
            return []
        skip_prefixes.append(name + ".")
        return [_spectral_layer(name, module, names)]
    if isinstance(module, nn.Embedding) and embeddings:
        w, read, owned = _weight_of(module, names)
        return [
            LayerWeight(
                name,
                mtype,
                "embedding",
                owned,
                tuple(w.shape),
                1,
                1.0,
                lambda: read().detach().unsqueeze(0),
                w.device,
            )
        ]
    return []


def _mha_layers(name, module, names):
    mtype = type(module).__name__
    prefix = f"{name}." if name else ""
    e = module.embed_dim
    if module.in_proj_weight is not None:
        w = module.in_proj_weight
        parts = [
            (f"{prefix}{tag}", (lambda w=w, i=i: w.detach()[i * e : (i + 1) * e].unsqueeze(0)), w)
            for i, tag in enumerate("qkv")
        ]
    else:
        parts = [
            (f"{prefix}{tag}", (lambda w=w: w.detach().unsqueeze(0)), w)
            for tag, w in zip("qkv", (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight))
        ]
    out = []
    for part_name, build, w in parts:
        rows = e
        cols = w.shape[1]
        out.append(
            LayerWeight(
                part_name,
                mtype,
                "mha_in_proj",
                _params_under(names, [w]),
                (rows, cols),
                1,
                1.0,
                build,
                w.device,
            )
        )
    return out


def _lora_layer(name, module, names, lora, skip_prefixes):
    base = module.base_layer
    if not (isinstance(base, nn.Linear) or _is_hf_conv1d(base)):
        warnings.warn(
            f"{name}: LoRA over {type(base).__name__} is analysed as its base layer only", stacklevel=3
        )
        return []  # the walk continues into base_layer, which is reported on its own
    skip_prefixes.append(name + ".")
    w = base.weight
    transposed = _is_hf_conv1d(base)  # GPT-2 Conv1D stores (in, out); B @ A is always (out, in)
    shape = (w.shape[1], w.shape[0]) if transposed else tuple(w.shape)
    used = [
        t
        for adapter in _active_adapters(module)
        if adapter in module.lora_A
        for t in (module.lora_A[adapter].weight, module.lora_B[adapter].weight)
    ]
    merged = bool(getattr(module, "merged", False))

    def build():
        base_w = w.detach().t() if transposed else w.detach()
        d, _ = _lora_delta(module)
        if lora == "base" or d is None:
            return base_w.unsqueeze(0)
        d = d.detach().to(base_w.device)
        if lora == "delta":
            return d.unsqueeze(0)
        if merged:  # the update is already inside W
            return base_w.unsqueeze(0)
        return (base_w.to(torch.float32) + d).unsqueeze(0)

    params = _params_under(names, [w] + ([] if lora == "base" else used))
    return [LayerWeight(name, type(module).__name__, "lora", params, shape, 1, 1.0, build, w.device)]


def _spectral_layer(name, module, names):
    weight = module.weight
    if isinstance(weight, torch.Tensor):
        tensors = [weight]
        dense = lambda: weight.detach()  # noqa: E731
    else:  # tensorly-torch FactorizedTensor (dense, CP, Tucker, ...): parameters live inside it
        tensors = list(weight.parameters())
        dense = lambda: weight.to_tensor().detach()  # noqa: E731
    shape = tuple(dense().shape) if not isinstance(weight, torch.Tensor) else tuple(weight.shape)
    cin, cout = shape[0], shape[1]
    modes = int(math.prod(shape[2:]))

    def build():
        w = dense()  # (in, out, *modes)
        return w.reshape(cin, cout, modes).permute(2, 0, 1)  # (modes, in, out)

    return LayerWeight(
        name,
        type(module).__name__,
        "spectral_conv",
        _params_under(names, tensors),
        (cin, cout),
        modes,
        1.0,
        build,
        tensors[0].device,
    )


def extract_layers_from_state_dict(
    state_dict: dict[str, torch.Tensor],
    *,
    include=None,
    exclude=None,
    embeddings: bool = False,
    conv_scale: float = CONV_SCALE,
) -> list[LayerWeight]:
    """Layers from a bare state dict (no module types): 2-D weights are read as (out x in) matrices, 3-D to 5-D
    real weights as convs (out, in, *kernel), complex ones as spectral convs (in, out, *modes). Keys containing
    "embed" are skipped unless ``embeddings``; only keys ending in "weight" (or "weight.tensor") are used."""
    include = [include] if isinstance(include, str) else include
    exclude = [exclude] if isinstance(exclude, str) else exclude
    layers = []
    for key, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor) or not (
            key.endswith("weight") or key.endswith("weight.tensor")
        ):
            continue
        name = re.sub(r"\.weight(\.tensor)?$", "", key)
        if (include and not _matches(name, include)) or (exclude and _matches(name, exclude)):
            continue
        if "embed" in name.lower() and not embeddings:
            continue
        t = tensor
        if t.is_complex() and t.dim() >= 3:
            cin, cout, modes = t.shape[0], t.shape[1], int(math.prod(t.shape[2:]))
            build = lambda t=t, a=cin, b=cout, m=modes: t.detach().reshape(a, b, m).permute(2, 0, 1)  # noqa: E731
            layers.append(
                LayerWeight(name, "Tensor", "spectral_conv", (key,), (cin, cout), modes, 1.0, build, t.device)
            )
        elif t.dim() == 2 and t.is_floating_point():
            layers.append(
                LayerWeight(
                    name,
                    "Tensor",
                    "linear",
                    (key,),
                    tuple(t.shape),
                    1,
                    1.0,
                    lambda t=t: t.detach().unsqueeze(0),
                    t.device,
                )
            )
        elif 3 <= t.dim() <= 5 and t.is_floating_point():
            count = int(math.prod(t.shape[2:]))
            layers.append(
                LayerWeight(
                    name,
                    "Tensor",
                    "conv",
                    (key,),
                    tuple(t.shape[:2]),
                    count,
                    conv_scale,
                    lambda t=t: _conv_matrices(t.detach(), 1, False),
                    t.device,
                )
            )
    return layers
