import re
import warnings

import pytest
import torch.nn as nn

from modelbalance.balance import detect_blocks, plan_units
from modelbalance.balance.blocks import BlockIndex

transformers = pytest.importorskip("transformers")
warnings.filterwarnings("ignore", message=".*token_id.*")

TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    vocab_size=100,
    max_position_embeddings=64,
)


def _bert():
    return transformers.BertForSequenceClassification(transformers.BertConfig(**TINY))


def _roberta():
    return transformers.RobertaForSequenceClassification(transformers.RobertaConfig(**TINY))


def _gpt2():
    cfg = transformers.GPT2Config(
        n_embd=32, n_layer=3, n_head=2, vocab_size=100, n_positions=64, bos_token_id=0, eos_token_id=0
    )
    return transformers.GPT2LMHeadModel(cfg)


def _t5():
    cfg = transformers.T5Config(
        d_model=32, d_ff=64, num_layers=2, num_decoder_layers=3, num_heads=2, d_kv=16, vocab_size=100
    )
    return transformers.T5ForConditionalGeneration(cfg)


def _bart():
    cfg = transformers.BartConfig(
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        vocab_size=100,
        max_position_embeddings=64,
    )
    return transformers.BartForConditionalGeneration(cfg)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class TinyResNet(nn.Module):
    """torchvision's ResNet layout (conv1, bn1, layer1..layer4 of BasicBlocks, fc), at toy widths."""

    def __init__(self, widths=(8, 16, 32, 64), blocks=2, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        cin = widths[0]
        for i, w in enumerate(widths, start=1):
            stage = [BasicBlock(cin, w, 1 if i == 1 else 2)] + [BasicBlock(w, w) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*stage))
            cin = w
        self.fc = nn.Linear(cin, classes)


def _block_names(model):
    return list(detect_blocks(model))


@pytest.mark.parametrize(
    "build, prefix, count",
    [
        (_bert, "bert.encoder.layer.", 2),
        (_roberta, "roberta.encoder.layer.", 2),
        (_gpt2, "transformer.h.", 3),
    ],
)
def test_encoder_and_decoder_only_transformers(build, prefix, count):
    model = build()
    assert _block_names(model) == [f"{prefix}{i}" for i in range(count)]
    plan = plan_units(model, unit="block")
    assert list(plan.units) == [f"{prefix}{i}" for i in range(count)]
    # every parameter inside a block follows it; embeddings, final norm and heads are unbalanced
    for name, unit in plan.param_units.items():
        match = re.match(re.escape(prefix) + r"(\d+)\.", name)
        assert unit == (prefix + match.group(1) if match else None), name


@pytest.mark.parametrize(
    "build, enc, dec, n_enc, n_dec",
    [
        (_t5, "encoder.block.", "decoder.block.", 2, 3),
        (_bart, "model.encoder.layers.", "model.decoder.layers.", 2, 2),
    ],
)
def test_encoder_decoder_stacks_are_kept_apart(build, enc, dec, n_enc, n_dec):
    model = build()
    expected = [f"{enc}{i}" for i in range(n_enc)] + [f"{dec}{i}" for i in range(n_dec)]
    assert _block_names(model) == expected
    plan = plan_units(model, unit="block")
    assert list(plan.units) == expected
    decoder_layers = plan.units[f"{dec}0"].layers
    assert decoder_layers and all(name.startswith(f"{dec}0.") for name in decoder_layers)
    # the decoder block holds self- and cross-attention: more matrices than an encoder block
    assert len(decoder_layers) > len(plan.units[f"{enc}0"].layers)


def test_resnet_blocks_are_stages():
    model = TinyResNet()
    assert _block_names(model) == ["layer1", "layer2", "layer3", "layer4"]
    plan = plan_units(model, unit="block")
    assert list(plan.units) == ["layer1", "layer2", "layer3", "layer4"]
    assert plan.param_units["layer2.0.downsample.1.weight"] == "layer2"
    assert plan.param_units["conv1.weight"] is None and plan.param_units["fc.weight"] is None


def test_resnet_layer_units_batchnorm_follows_its_conv():
    plan = plan_units(TinyResNet(), unit="layer", exclude_first_last=True, exclude=())
    assert "conv1" not in plan.units and "fc" not in plan.units
    assert plan.param_units["bn1.weight"] is None  # follows the excluded first conv
    assert plan.param_units["layer1.0.bn2.weight"] == "layer1.0.conv2"
    assert plan.param_units["layer3.0.downsample.1.bias"] == "layer3.0.downsample.0"


def test_fno_blocks_merge_parallel_lists():
    pytest.importorskip("neuralop")
    from neuralop.models import FNO

    model = FNO(n_modes=(16,), hidden_channels=16, in_channels=1, out_channels=1, n_layers=3)
    blocks = detect_blocks(model)
    assert list(blocks) == ["fno_blocks.0", "fno_blocks.1", "fno_blocks.2"]
    members = blocks["fno_blocks.1"]
    assert "fno_blocks.convs.1" in members and "fno_blocks.channel_mlp.1" in members
    plan = plan_units(model, unit="block")
    layers = plan.units["fno_blocks.1"].layers
    assert "fno_blocks.convs.1" in layers  # the spectral weights are balanced too
    assert not any(
        name.startswith(("lifting", "projection"))
        for name in plan.param_units
        if plan.param_units[name] is not None
    )
    assert plan.param_units["fno_blocks.convs.1.bias"] == "fno_blocks.1"
    typed = plan_units(model, unit="type", exclude=())
    assert typed.units["fno_blocks.convs.0"].family == typed.units["fno_blocks.convs.2"].family
    assert typed.units["fno_blocks.convs.0"].family != typed.units["fno_blocks.fno_skips.0.conv"].family


def test_plain_numbered_module_list_and_non_repeating_sequential():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(4, 16)
            self.layers = nn.ModuleList([nn.Linear(16, 16) for _ in range(4)])
            self.out = nn.Linear(16, 2)

    assert _block_names(Net()) == [f"layers.{i}" for i in range(4)]
    mlp = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    assert _block_names(mlp) == []  # different shapes, no composite members: not a stack


def test_regex_and_callable_override():
    model = _bert()
    by_regex = BlockIndex(model, r"encoder\.layer\.(\d+)")
    assert by_regex.block_of("bert.encoder.layer.1.attention.self.query") == "1"
    assert (
        by_regex.role_of("bert.encoder.layer.1.attention.self.query")
        == "bert.encoder.layer.*.attention.self.query"
    )
    assert by_regex.block_of("bert.pooler.dense") is None
    halves = BlockIndex(model, lambda path: "attention" if ".attention." in path else None)
    assert halves.block_of("bert.encoder.layer.0.attention.self.key") == "attention"
    plan = plan_units(model, unit="block", blocks=lambda p: "all" if p.startswith("bert.encoder") else None)
    assert list(plan.units) == ["all"]
    with pytest.raises(ValueError, match="unknown unit"):
        plan_units(model, unit="matrix")


def test_type_units_compare_same_role_layers_only():
    plan = plan_units(_bert(), unit="type")
    query = plan.units["bert.encoder.layer.0.attention.self.query"]
    assert query.family == plan.units["bert.encoder.layer.1.attention.self.query"].family
    assert query.family.startswith("bert.encoder.layer.*.attention.self.query")
    assert query.family != plan.units["bert.encoder.layer.0.attention.self.key"].family
    assert len({u.family for u in plan.units.values()}) == 6  # q, k, v, attn-out, ffn-in, ffn-out


def test_multihead_attention_parts_share_one_unit():
    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(
                [nn.TransformerEncoderLayer(32, 2, 64, batch_first=True) for _ in range(2)]
            )

    plan = plan_units(Encoder(), unit="layer", exclude=())
    assert "layers.0.self_attn" in plan.units  # .q/.k/.v of the packed in_proj_weight merged
    assert set(plan.units["layers.0.self_attn"].layers) == {
        "layers.0.self_attn.q",
        "layers.0.self_attn.k",
        "layers.0.self_attn.v",
    }
    assert plan.param_units["layers.0.self_attn.in_proj_bias"] == "layers.0.self_attn"
    # the rule is registration order: norm1 is registered after linear2 under the same parent
    assert plan.param_units["layers.0.norm1.weight"] == "layers.0.linear2"
    assert (
        plan_units(Encoder(), unit="layer", exclude=(), attach_norms=False).param_units[
            "layers.0.norm1.weight"
        ]
        is None
    )


def test_root_level_stacks_stay_apart_and_single_modules_are_not_blocks():
    """A UNet's encoders.N and decoders.N run at mirrored depths: pairing them by index would be wrong. A
    Sequential holding one layer (Linear + activation) is not a stack of blocks."""
    from modelbalance.balance import detect_blocks
    from modelbalance.experiments.models.unet import UNet

    blocks = detect_blocks(UNet(1, 1, 1, width=8, depth=2))
    assert blocks["encoders.0"] == ["encoders.0"] and blocks["decoders.0"] == ["decoders.0"]
    assert "0" not in blocks
    lifted = nn.Sequential(
        nn.Sequential(nn.Linear(4, 8), nn.GELU()), nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])
    )
    blocks = detect_blocks(lifted)
    assert "0.0" not in blocks and sorted(blocks) == ["1.0", "1.1", "1.2"]
