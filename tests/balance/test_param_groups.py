import math

import pytest
import torch
import torch.nn as nn

from modelbalance.balance import UNBALANCED, TempBalanceConfig, param_groups


class Block(nn.Module):
    def __init__(self, width=32):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        self.fc2 = nn.Linear(width, width)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 32)
        self.blocks = nn.ModuleList([Block() for _ in range(3)])
        self.classifier = nn.Linear(32, 5)


def _ids(params):
    return [id(p) for p in params]


def test_every_trainable_parameter_exactly_once_and_frozen_left_out():
    model = Net()
    model.blocks[2].fc2.weight.requires_grad_(False)
    groups = param_groups(model, weight_decay=0.1)
    seen = [i for g in groups for i in _ids(g["params"])]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(seen) == sorted(trainable) and len(seen) == len(set(seen))
    assert id(model.blocks[2].fc2.weight) not in seen


def test_block_groups_names_units_and_no_decay_rule():
    model = Net()
    groups = param_groups(model, weight_decay=0.1)
    names = [g["name"] for g in groups]
    assert names == [
        UNBALANCED,
        "blocks.0",
        "blocks.0/no_decay",
        "blocks.1",
        "blocks.1/no_decay",
        "blocks.2",
        "blocks.2/no_decay",
        f"{UNBALANCED}/no_decay",
    ]
    by_name = {g["name"]: g for g in groups}
    assert _ids(by_name["blocks.1"]["params"]) == _ids(
        [model.blocks[1].fc1.weight, model.blocks[1].fc2.weight]
    )
    assert _ids(by_name["blocks.1/no_decay"]["params"]) == _ids(
        [
            model.blocks[1].fc1.bias,
            model.blocks[1].norm.weight,
            model.blocks[1].norm.bias,
            model.blocks[1].fc2.bias,
        ]
    )
    assert by_name["blocks.1"]["weight_decay"] == 0.1 and by_name["blocks.1/no_decay"]["weight_decay"] == 0.0
    assert by_name["blocks.1"]["unit"] == by_name["blocks.1/no_decay"]["unit"] == "blocks.1"
    assert by_name[UNBALANCED]["unit"] is None
    assert _ids(by_name[UNBALANCED]["params"]) == _ids([model.embed.weight, model.classifier.weight])


def test_without_weight_decay_one_group_per_unit_and_deterministic():
    model = Net()
    first = param_groups(model, unit="layer")
    second = param_groups(model, unit="layer")
    assert [g["name"] for g in first] == [g["name"] for g in second]
    assert [_ids(g["params"]) for g in first] == [_ids(g["params"]) for g in second]
    assert [g["name"] for g in first] == [
        UNBALANCED,
        "blocks.0.fc1",
        "blocks.0.fc2",
        "blocks.1.fc1",
        "blocks.1.fc2",
        "blocks.2.fc1",
        "blocks.2.fc2",
    ]
    assert all(g["weight_decay"] == 0.0 for g in first)
    # layer units: the LayerNorm follows fc1, the layer registered before it in the same block
    fc1 = next(g for g in first if g["name"] == "blocks.0.fc1")
    assert id(model.blocks[0].norm.weight) in _ids(fc1["params"])


def test_groups_work_with_an_optimizer_and_round_trip_its_state_dict():
    model = Net()
    opt = torch.optim.AdamW(param_groups(model, weight_decay=0.01), lr=1e-3)
    state = opt.state_dict()
    assert [g["name"] for g in state["param_groups"]] == [g["name"] for g in opt.param_groups]
    opt2 = torch.optim.AdamW(param_groups(model, weight_decay=0.01), lr=1e-3)
    opt2.load_state_dict(state)


def test_config_and_options_and_bad_input():
    model = Net()
    cfg = TempBalanceConfig(unit="layer", exclude=(r"blocks\.0\.",))
    names = [g["name"] for g in param_groups(model, config=cfg)]
    assert "blocks.0.fc1" not in names and "blocks.1.fc1" in names
    assert [g["name"] for g in param_groups(model, config=cfg, unit="block")] == [
        UNBALANCED,
        "blocks.1",
        "blocks.2",
    ]
    with pytest.raises(TypeError, match="unknown option"):
        param_groups(model, mapping="linear")
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups(model, weight_decay=-1.0)
    with pytest.raises(ValueError, match="unknown unit"):
        param_groups(model, unit="row")


def test_custom_no_decay_rule():
    model = Net()
    groups = param_groups(model, weight_decay=0.1, no_decay=lambda name, p: name.endswith("bias"))
    norm_group = next(g for g in groups if id(model.blocks[0].norm.weight) in _ids(g["params"]))
    assert norm_group["name"] == "blocks.0" and norm_group["weight_decay"] == 0.1


def test_lora_model_balances_adapter_weights(tiny_bert_config):
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    cfg = tiny_bert_config(vocab_size=100, max_position_embeddings=64)
    base = transformers.BertForSequenceClassification(cfg)
    model = peft.get_peft_model(base, peft.LoraConfig(r=4, target_modules=["query", "value"], lora_alpha=8))
    groups = param_groups(model)
    units = [g["unit"] for g in groups if g["unit"] is not None]
    assert len(units) == 2 and all(u.endswith(("encoder.layer.0", "encoder.layer.1")) for u in units)
    block0 = next(g for g in groups if g["unit"] is not None and g["unit"].endswith("layer.0"))
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)].split(".")[-3] for p in block0["params"]} == {"lora_A", "lora_B"}


def test_withheld_spectral_convs_keep_the_base_lr_under_block_units():
    """spectral_conv=False (the paper's FNO setting): the complex spectral weights are not balanced at all, rather
    than inheriting the factor their block gets from its linear / 1x1-conv layers."""
    pytest.importorskip("neuralop")
    from modelbalance.balance import TempBalanceConfig, param_groups
    from modelbalance.experiments.models.fno import build_fno

    model = build_fno(1, 1, 1, modes=8, width=16, n_layers=2)
    spectral = {id(p) for n, p in model.named_parameters() if p.is_complex()}
    assert spectral
    for on in (False, True):
        groups = param_groups(
            model, weight_decay=0.1, config=TempBalanceConfig(unit="block", spectral_conv=on)
        )
        units_of_spectral = {g["unit"] for g in groups for p in g["params"] if id(p) in spectral}
        if on:
            assert None not in units_of_spectral and len(units_of_spectral) == 2
        else:
            assert units_of_spectral == {None}


def _lora_bert(tiny_bert_config, r):
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = tiny_bert_config(vocab_size=100, max_position_embeddings=64)
    base = transformers.BertForSequenceClassification(cfg)
    return peft.get_peft_model(base, peft.LoraConfig(r=r, target_modules=["query", "value"], lora_alpha=8))


def test_lora_delta_measures_only_the_adapters_updates(tiny_bert_config):
    """With lora='delta' a unit's alpha comes from its adapters' B A alone: the frozen key / output / FFN weights
    (another spectrum, which never changes) are left out; with 'effective' every layer of the block counts."""
    from modelbalance import TempBalance

    model = _lora_bert(tiny_bert_config, r=16)
    for mode, kinds in (("delta", {"query", "value"}), ("effective", None)):
        opt = torch.optim.AdamW(param_groups(model, unit="block", lora=mode), lr=1e-3)
        tb = TempBalance(model, opt, unit="block", lora=mode, min_eigs=10)
        roles = {layer.name.split(".")[-1] for layer in tb.plan.layers}
        if kinds is not None:
            assert roles == kinds and all(layer.kind == "lora" for layer in tb.plan.layers)
        else:
            assert {"query", "value", "key", "dense"} <= roles
        tb.remove()


def test_lora_delta_refuses_adapters_too_small_to_fit(tiny_bert_config):
    """A rank-4 update has 4 nonzero eigenvalues: below min_eigs every alpha would be NaN forever, so TempBalance
    refuses instead of silently balancing on nothing (or, before, on the frozen layers)."""
    from modelbalance import TempBalance

    model = _lora_bert(tiny_bert_config, r=4)
    opt = torch.optim.AdamW(param_groups(model, unit="block", lora="delta"), lr=1e-3)
    with pytest.raises(
        ValueError,
        match=r"rank <= 4, fewer nonzero eigenvalues than the fit needs \(11: min_eigs=10.*lora=.effective.",
    ):
        TempBalance(model, opt, unit="block", lora="delta", min_eigs=10)
    # the user may fit the nonzero eigenvalues only (a KS-chosen tail) with a lower threshold
    TempBalance(model, opt, unit="block", lora="delta", min_eigs=3, xmin="ks")


def test_lora_delta_refuses_a_fixed_tail_that_reaches_the_zero_eigenvalues(tiny_bert_config):
    """A rank-8 update of a 32-wide layer has 8 >= min_eigs nonzero eigenvalues, but the fixed tail at xmin_pos 1.5
    is the top 11 of all 32: it holds zeros, so the fit is refused at every recompute (as a rank-32 update of
    MiniLM's 384-wide layers was, silently, before this check). Rank 16 fits, and its alpha is finite."""
    from modelbalance import TempBalance

    model = _lora_bert(tiny_bert_config, r=8)
    opt = torch.optim.AdamW(param_groups(model, unit="block", lora="delta"), lr=1e-3)
    with pytest.raises(
        ValueError, match=r"rank <= 8, fewer nonzero eigenvalues than the fit needs \(11: min_eigs=5"
    ):
        TempBalance(model, opt, unit="block", lora="delta", min_eigs=5, xmin_pos=1.5)
    model = _lora_bert(tiny_bert_config, r=16)
    opt = torch.optim.AdamW(param_groups(model, unit="block", lora="delta"), lr=1e-2)
    tb = TempBalance(model, opt, unit="block", lora="delta", min_eigs=5, xmin_pos=1.5, interval=1)
    x, y = torch.randint(0, 100, (8, 16)), torch.randint(0, 2, (8,))
    for _ in range(2):  # B = 0 at the start: the update has no spectrum until a step has been taken
        model(input_ids=x, labels=y).loss.backward()
        opt.step()
        opt.zero_grad()
    assert all(math.isfinite(a) for a in tb.alphas.values()), tb.alphas
    tb.remove()


def test_lora_delta_warns_for_units_whose_adapters_cannot_be_fit(tiny_bert_config):
    """Block 1 also trains its FFN input weights fully (measurable); block 0 holds only rank-4 adapters: TempBalance
    runs, and names block 0 as a unit whose factor stays 1."""
    from modelbalance import TempBalance

    model = _lora_bert(tiny_bert_config, r=4)
    ffn = next(m for n, m in model.named_modules() if n.endswith("layer.1.intermediate.dense"))
    ffn.weight.requires_grad_(True)
    opt = torch.optim.AdamW(param_groups(model, unit="block", lora="delta"), lr=1e-3)
    with pytest.warns(UserWarning, match=r"1 of 2 units \(.*layer\.0\) hold only LoRA updates of rank <= 4"):
        tb = TempBalance(model, opt, unit="block", lora="delta", min_eigs=10)
    assert any(layer.name.endswith("layer.1.intermediate.dense") for layer in tb.plan.layers)
    tb.remove()


def test_lora_delta_keeps_a_lora_layer_whose_frozen_base_weight_is_shared():
    """A frozen layer tied to a LoRA layer's base weight is dropped from the measurement, not excluded: an
    excluded layer would take the LoRA layer it shares a weight with out of balancing too."""
    peft = pytest.importorskip("peft")
    from modelbalance.balance.units import plan_units

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.tied, self.c = nn.Linear(32, 32), nn.Linear(32, 32), nn.Linear(32, 32)
            self.tied.weight = self.a.weight

        def forward(self, x):
            return self.c(self.tied(self.a(x)))

    model = peft.get_peft_model(Net(), peft.LoraConfig(r=16, target_modules=["a", "c"]))
    delta = plan_units(model, unit="layer", lora="delta", exclude=())
    assert sorted(name.split(".")[-1] for name in delta.units) == ["a", "c"]  # tied: not measured
    effective = plan_units(model, unit="layer", lora="effective", exclude=())
    assert {layer.name.split(".")[-1] for layer in effective.layers} == {
        "a",
        "tied",
        "c",
    }  # a + tied: one unit
