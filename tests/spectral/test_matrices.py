"""extract_layers on real objects: torch layers, transformers GPT-2 / BERT, peft LoRA, neuraloperator FNO."""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from modelbalance.spectral import esd, extract_layers, extract_layers_from_state_dict
from modelbalance.spectral.matrices import CONV_SCALE


def ref_esd(mats) -> np.ndarray:
    """Pooled squared singular values (float64 SVD) of a list or stack of matrices."""
    stack = torch.stack(list(mats)) if isinstance(mats, (list, tuple)) else mats
    wide = torch.complex128 if stack.is_complex() else torch.float64
    return np.sort((torch.linalg.svdvals(stack.detach().to(wide)) ** 2).reshape(-1).numpy())


def assert_same_esd(layer, expected_mats, rtol=1e-4):
    mats = layer.matrices()
    assert mats.shape == (layer.num_matrices, *layer.matrix_shape)
    ours, ref = esd(mats, dtype=torch.float64), ref_esd(expected_mats)
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=1e-9 * ref[-1])


def by_name(layers):
    return {layer.name: layer for layer in layers}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def transformers():
    """transformers, imported once per module (the import alone takes seconds) with GPT-2 and BERT loaded."""
    module = pytest.importorskip("transformers")
    module.GPT2Model, module.BertModel  # noqa: B018 (lazy imports, paid here rather than in a test)
    return module


# --- torch layers -------------------------------------------------------------------------------------------


def test_linear_is_a_view_of_its_weight():
    model = nn.Sequential(nn.Linear(12, 7), nn.ReLU(), nn.Linear(7, 3))
    layers = extract_layers(model)
    assert [(l.name, l.kind, l.matrix_shape, l.num_matrices) for l in layers] == [
        ("0", "linear", (7, 12), 1),
        ("2", "linear", (3, 7), 1),
    ]
    assert layers[0].param_names == ("0.weight",)
    mats = layers[0].matrices()
    assert mats.data_ptr() == model[0].weight.data_ptr()  # no copy of the model
    assert torch.equal(mats[0], model[0].weight)
    assert not mats.requires_grad


def test_conv1d_is_kernel_size_matrices_of_out_by_in():
    conv = nn.Conv1d(8, 16, 3)
    (layer,) = extract_layers(nn.Sequential(conv), conv_scale=1.0)
    assert (layer.kind, layer.matrix_shape, layer.num_matrices) == ("conv", (16, 8), 3)
    assert_same_esd(layer, [conv.weight[:, :, j] for j in range(3)])
    # The classic mistake (16 matrices of 8 x 3) has a different spectrum: 48 eigenvalues, not 24.
    assert ref_esd(conv.weight).size == 48 != layer.num_eigenvalues == 24


def test_conv_scale_defaults_to_sqrt_half():
    conv = nn.Conv1d(8, 16, 3)
    (scaled,) = extract_layers(nn.Sequential(conv))
    assert scaled.scale == pytest.approx(CONV_SCALE) == pytest.approx(2**-0.5)
    np.testing.assert_allclose(
        esd(scaled.matrices(), dtype=torch.float64),
        0.5 * ref_esd([conv.weight[:, :, j] for j in range(3)]),
        rtol=1e-6,
    )


def test_conv2d_and_conv3d_pool_every_kernel_position():
    conv2 = nn.Conv2d(4, 6, (3, 2))
    conv3 = nn.Conv3d(3, 5, (2, 2, 2))
    l2, l3 = extract_layers(nn.Sequential(conv2, conv3), conv_scale=1.0)
    assert (l2.matrix_shape, l2.num_matrices) == ((6, 4), 6)
    assert (l3.matrix_shape, l3.num_matrices) == ((5, 3), 8)
    assert_same_esd(l2, [conv2.weight[:, :, i, j] for i in range(3) for j in range(2)])
    assert_same_esd(l3, [conv3.weight[:, :, i, j, k] for i in range(2) for j in range(2) for k in range(2)])


def test_transposed_conv_rows_are_output_channels():
    conv = nn.ConvTranspose2d(4, 6, 3)  # weight (in=4, out=6, 3, 3)
    (layer,) = extract_layers(nn.Sequential(conv), conv_scale=1.0)
    assert (layer.matrix_shape, layer.num_matrices) == ((6, 4), 9)
    expected = [conv.weight[:, :, i, j].T for i in range(3) for j in range(3)]
    assert_same_esd(layer, expected)
    got = layer.matrices()
    assert any(torch.equal(got[p], expected[0]) for p in range(9))


def test_grouped_conv_is_one_matrix_per_group_and_position():
    conv = nn.Conv2d(8, 12, 3, groups=4)  # weight (12, 2, 3, 3): group g owns out channels 3g..3g+2
    (layer,) = extract_layers(nn.Sequential(conv), conv_scale=1.0)
    assert (layer.matrix_shape, layer.num_matrices) == ((3, 2), 36)
    expected = [conv.weight[3 * g : 3 * g + 3, :, i, j] for g in range(4) for i in range(3) for j in range(3)]
    assert_same_esd(layer, expected)


def test_grouped_transposed_conv():
    conv = nn.ConvTranspose1d(8, 12, 2, groups=2)  # weight (8, 6, 2): group g owns in channels 4g..4g+3
    (layer,) = extract_layers(nn.Sequential(conv), conv_scale=1.0)
    assert (layer.matrix_shape, layer.num_matrices) == ((6, 4), 4)
    expected = [conv.weight[4 * g : 4 * g + 4, :, k].T for g in range(2) for k in range(2)]
    assert_same_esd(layer, expected)


def test_multihead_attention_packed_in_proj_is_split_into_q_k_v():
    model = nn.Sequential()
    model.add_module("attn", nn.MultiheadAttention(16, 2))
    layers = by_name(extract_layers(model))
    assert list(layers) == ["attn.q", "attn.k", "attn.v", "attn.out_proj"]
    w = model.attn.in_proj_weight
    for i, tag in enumerate("qkv"):
        layer = layers[f"attn.{tag}"]
        assert (layer.kind, layer.matrix_shape, layer.param_names) == (
            "mha_in_proj",
            (16, 16),
            ("attn.in_proj_weight",),
        )
        assert torch.equal(layer.matrices()[0], w[16 * i : 16 * (i + 1)])
        assert_same_esd(layer, [w[16 * i : 16 * (i + 1)]])
    assert layers["attn.out_proj"].kind == "linear"


def test_multihead_attention_separate_projections():
    mha = nn.MultiheadAttention(16, 2, kdim=8, vdim=12)
    layers = by_name(extract_layers(nn.ModuleDict({"mha": mha})))
    assert [layers[f"mha.{t}"].matrix_shape for t in "qkv"] == [(16, 16), (16, 8), (16, 12)]
    for tag, w in zip("qkv", (mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight), strict=True):
        assert torch.equal(layers[f"mha.{tag}"].matrices()[0], w)
        assert layers[f"mha.{tag}"].param_names == (f"mha.{tag}_proj_weight",)
        assert_same_esd(layers[f"mha.{tag}"], [w])


def test_embedding_is_opt_in():
    model = nn.Sequential(nn.Embedding(50, 12), nn.Linear(12, 4))
    assert [l.name for l in extract_layers(model)] == ["1"]
    emb = by_name(extract_layers(model, embeddings=True))["0"]
    assert (emb.kind, emb.matrix_shape) == ("embedding", (50, 12))
    assert torch.equal(emb.matrices()[0], model[0].weight)


# --- filters ------------------------------------------------------------------------------------------------


def _mixed():
    return nn.ModuleDict({"enc": nn.Sequential(nn.Linear(8, 8), nn.Conv1d(8, 8, 3)), "head": nn.Linear(8, 2)})


def test_include_exclude_and_types_filters():
    model = _mixed()
    names = lambda **kw: [l.name for l in extract_layers(model, **kw)]  # noqa: E731
    assert names() == ["enc.0", "enc.1", "head"]
    assert names(include="^enc") == ["enc.0", "enc.1"]
    assert names(include=["head", r"\.1$"]) == ["enc.1", "head"]
    assert names(exclude=r"enc\.0") == ["enc.1", "head"]
    assert names(include="enc", exclude=["1"]) == ["enc.0"]
    assert names(types=[nn.Conv1d]) == ["enc.1"]
    assert names(types=["Linear"]) == ["enc.0", "head"]
    assert names(types=[nn.Linear, "Conv1d"]) == ["enc.0", "enc.1", "head"]


@pytest.mark.parametrize("kwargs", [dict(include="("), dict(exclude=["ok", "[unclosed"])])
def test_bad_regex_raises_value_error_naming_it(kwargs):
    with pytest.raises(ValueError, match="invalid layer-name pattern"):
        extract_layers(_mixed(), **kwargs)


def test_bad_lora_option_raises():
    with pytest.raises(ValueError, match="lora must be"):
        extract_layers(_mixed(), lora="merged")


# --- state dicts --------------------------------------------------------------------------------------------


def test_extract_layers_from_state_dict():
    model = nn.ModuleDict(
        {
            "embed": nn.Embedding(20, 6),
            "fc": nn.Linear(6, 10),
            "conv": nn.Conv2d(3, 4, 2),
            "norm": nn.LayerNorm(10),
        }
    )
    state = model.state_dict()
    spectral = torch.randn(5, 7, 3, dtype=torch.complex64)
    state["spec.weight"] = spectral
    layers = by_name(extract_layers_from_state_dict(state, conv_scale=1.0))
    assert list(layers) == ["fc", "conv", "spec"]
    assert (layers["fc"].kind, layers["fc"].matrix_shape, layers["fc"].param_names) == (
        "linear",
        (10, 6),
        ("fc.weight",),
    )
    assert (layers["conv"].matrix_shape, layers["conv"].num_matrices) == ((4, 3), 4)
    assert_same_esd(layers["conv"], [state["conv.weight"][:, :, i, j] for i in range(2) for j in range(2)])
    assert (layers["spec"].kind, layers["spec"].matrix_shape, layers["spec"].num_matrices) == (
        "spectral_conv",
        (5, 7),
        3,
    )
    assert_same_esd(layers["spec"], [spectral[:, :, m] for m in range(3)])
    assert "embed" in by_name(extract_layers_from_state_dict(state, embeddings=True))
    assert list(by_name(extract_layers_from_state_dict(state, include="c", exclude="spec"))) == ["fc", "conv"]


# --- transformers -------------------------------------------------------------------------------------------


def test_gpt2_conv1d_weights_are_read_transposed(transformers):
    config = transformers.GPT2Config(
        n_embd=32, n_layer=2, n_head=2, vocab_size=64, n_positions=32, bos_token_id=0, eos_token_id=0
    )
    model = transformers.GPT2Model(config)
    layers = by_name(extract_layers(model))
    assert len(layers) == 8
    expected = {
        "attn.c_attn": (96, 32),
        "attn.c_proj": (32, 32),
        "mlp.c_fc": (128, 32),
        "mlp.c_proj": (32, 128),
    }
    for i in range(2):
        for suffix, shape in expected.items():
            layer = layers[f"h.{i}.{suffix}"]
            module = model.get_submodule(f"h.{i}.{suffix}")
            assert (layer.kind, layer.matrix_shape) == ("hf_conv1d", shape)
            assert layer.param_names == (f"h.{i}.{suffix}.weight",)
            assert torch.equal(layer.matrices()[0], module.weight.T)  # (out, in)
            assert_same_esd(layer, [module.weight])
    assert "wte" not in layers and "wte" in by_name(extract_layers(model, embeddings=True))


def test_bert_linears_in_module_order(transformers, tiny_bert_config):
    config = tiny_bert_config(vocab_size=64, max_position_embeddings=32)
    model = transformers.BertModel(config)
    layers = extract_layers(model)
    per_block = [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
    ]
    assert [l.name for l in layers] == [f"encoder.layer.{i}.{p}" for i in range(2) for p in per_block] + [
        "pooler.dense"
    ]
    inter = by_name(layers)["encoder.layer.1.intermediate.dense"]
    assert inter.matrix_shape == (64, 32)
    assert_same_esd(inter, [model.encoder.layer[1].intermediate.dense.weight])
    with_emb = [l.name for l in extract_layers(model, embeddings=True) if l.kind == "embedding"]
    assert with_emb == [
        "embeddings.word_embeddings",
        "embeddings.position_embeddings",
        "embeddings.token_type_embeddings",
    ]


# --- peft LoRA ----------------------------------------------------------------------------------------------


class _MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(24, 40), nn.Linear(40, 12), nn.Linear(12, 3)

    def forward(self, x):
        return self.out(self.fc2(self.fc1(x).relu()).relu())


def _lora(model, **config):
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=16, **config))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # peft starts B at 0, which would make every check trivial
                p.normal_()
    return model


def test_lora_effective_delta_and_base_on_linear():
    model = _lora(_MLP(), target_modules=["fc1", "fc2"])
    merged = copy.deepcopy(model).merge_and_unload()
    layers = by_name(extract_layers(model))
    assert list(layers) == ["base_model.model.fc1", "base_model.model.fc2", "base_model.model.out"]
    for short in ("fc1", "fc2"):
        module = model.base_model.model.get_submodule(short)
        scaling = module.scaling["default"]
        assert scaling == 4.0  # lora_alpha / r: the case the paper's code gets wrong
        layer = layers[f"base_model.model.{short}"]
        assert (layer.kind, layer.matrix_shape) == ("lora", tuple(module.base_layer.weight.shape))
        assert set(layer.param_names) == {
            f"base_model.model.{short}.{p}.weight" for p in ("base_layer", "lora_A.default", "lora_B.default")
        }
        effective = layer.matrices()[0]
        torch.testing.assert_close(effective, merged.get_submodule(short).weight, rtol=1e-5, atol=1e-6)
        delta = scaling * module.lora_B["default"].weight @ module.lora_A["default"].weight
        torch.testing.assert_close(effective, module.base_layer.weight + delta)
        assert_same_esd(layer, [merged.get_submodule(short).weight])
    fc1 = model.base_model.model.fc1
    delta_layer = by_name(extract_layers(model, lora="delta"))["base_model.model.fc1"]
    torch.testing.assert_close(
        delta_layer.matrices()[0], 4.0 * fc1.lora_B["default"].weight @ fc1.lora_A["default"].weight
    )
    assert int((esd(delta_layer.matrices()) > 0).sum()) == 4  # rank r
    base_layer = by_name(extract_layers(model, lora="base"))["base_model.model.fc1"]
    assert torch.equal(base_layer.matrices()[0], fc1.base_layer.weight)
    assert base_layer.param_names == ("base_model.model.fc1.base_layer.weight",)


def test_lora_layers_match_their_base_type_filter():
    model = _lora(_MLP(), target_modules=["fc1"])
    names = [l.name for l in extract_layers(model, types=[nn.Linear])]
    assert names == ["base_model.model.fc1", "base_model.model.fc2", "base_model.model.out"]
    assert [l.name for l in extract_layers(model, types=["Linear"])] == names


def test_lora_after_merge_is_not_counted_twice():
    model = _lora(_MLP(), target_modules=["fc1"])
    reference = copy.deepcopy(model).merge_and_unload().fc1.weight
    model.base_model.model.fc1.merge()
    layer = by_name(extract_layers(model))["base_model.model.fc1"]
    torch.testing.assert_close(layer.matrices()[0], reference, rtol=1e-5, atol=1e-6)


def test_lora_on_gpt2_conv1d(transformers):
    config = transformers.GPT2Config(
        n_embd=32, n_layer=1, n_head=2, vocab_size=64, n_positions=32, bos_token_id=0, eos_token_id=0
    )
    model = _lora(transformers.GPT2Model(config), target_modules=["c_attn"], fan_in_fan_out=True)
    merged = copy.deepcopy(model).merge_and_unload()
    layer = by_name(extract_layers(model))["base_model.model.h.0.attn.c_attn"]
    assert (layer.kind, layer.matrix_shape) == ("lora", (96, 32))
    torch.testing.assert_close(layer.matrices()[0], merged.h[0].attn.c_attn.weight.T, rtol=1e-5, atol=1e-6)


# --- neuraloperator -----------------------------------------------------------------------------------------


def test_fno_spectral_convs_are_complex_per_mode_matrices():
    models = pytest.importorskip("neuralop.models")
    fno = models.FNO(n_modes=(8,), hidden_channels=16, in_channels=1, out_channels=1)
    layers = extract_layers(fno)
    spectral = [l for l in layers if l.kind == "spectral_conv"]
    assert len(spectral) == fno.n_layers == 4
    for layer in spectral:
        module = fno.get_submodule(layer.name)
        dense = module.weight.to_tensor() if hasattr(module.weight, "to_tensor") else module.weight
        cin, cout, modes = dense.shape
        assert (layer.module_type, layer.matrix_shape) == ("SpectralConv", (cin, cout))
        assert layer.num_matrices == modes
        assert (cin, cout) == (16, 16) and modes >= 5
        mats = layer.matrices()
        assert mats.is_complex() and mats.shape == (modes, 16, 16)
        assert torch.equal(mats[2], dense[:, :, 2])
        assert_same_esd(layer, [dense[:, :, m] for m in range(modes)])
        assert all(name.startswith(layer.name + ".") for name in layer.param_names)
        assert layer.param_names  # the balancer needs the parameters behind the matrices
    # No layer is reported twice, and the spectral convs' internals are not reported as layers.
    names = [l.name for l in layers]
    assert len(names) == len(set(names))
    without = [l for l in extract_layers(fno, spectral_conv=False)]
    assert [l.name for l in without] == [l.name for l in layers if l.kind != "spectral_conv"]


# --- parametrized weights -------------------------------------------------------------------------------------


def _legacy_weight_norm(module):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated in favour of parametrizations.weight_norm
        return torch.nn.utils.weight_norm(module)


PARAMETRIZATIONS = {
    "weight_norm": (nn.utils.parametrizations.weight_norm, ("original0", "original1")),
    "spectral_norm": (nn.utils.parametrizations.spectral_norm, ("original",)),
    "legacy_weight_norm": (_legacy_weight_norm, ("weight_g", "weight_v")),
}


@pytest.mark.parametrize("kind", list(PARAMETRIZATIONS))
@pytest.mark.parametrize(
    "make", [lambda: nn.Linear(6, 5), lambda: nn.Conv1d(4, 3, 3)], ids=["linear", "conv1d"]
)
def test_parametrized_weight_is_read_as_computed_now_not_when_extracted(kind, make):
    wrap, originals = PARAMETRIZATIONS[kind]
    model = nn.Sequential(wrap(make()))
    layer = extract_layers(model)[0]
    assert [n.rsplit(".", 1)[-1] for n in layer.param_names] == list(originals)
    with torch.no_grad():  # a training step's worth of change in the underlying parameters
        for name, param in model.named_parameters():
            if not name.endswith("bias"):
                param.mul_(1.5).add_(0.3 * torch.randn_like(param))
    before = {name: b.clone() for name, b in model.named_buffers()}
    mats = layer.matrices()
    # reading does not advance state (spectral_norm's power iteration)
    assert all(torch.equal(before[name], b) for name, b in model.named_buffers())
    model.eval()
    if kind == "legacy_weight_norm":  # the legacy hook recomputes the attribute on forward only
        model(torch.zeros(1, 6) if isinstance(model[0], nn.Linear) else torch.zeros(1, 4, 5))
    scale = 1.0 if isinstance(model[0], nn.Linear) else CONV_SCALE
    expected = model[0].weight.detach()
    expected = expected.unsqueeze(0) if expected.dim() == 2 else expected.permute(2, 0, 1)
    torch.testing.assert_close(mats / scale, expected)
    assert not mats.requires_grad


def test_parametrized_layer_owns_its_original_parameters_for_balancing():
    import modelbalance as mb

    model = nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(8, 8)), nn.ReLU(), nn.Linear(8, 8))
    groups = mb.param_groups(model, unit="layer")
    names = {id(p): n for n, p in model.named_parameters()}
    first = next(g for g in groups if g["unit"] == "0")
    assert {names[id(p)] for p in first["params"]} >= {
        "0.parametrizations.weight.original0",
        "0.parametrizations.weight.original1",
    }
