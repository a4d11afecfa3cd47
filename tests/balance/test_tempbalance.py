import copy
import io
import logging
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from modelbalance.balance import TempBalance, TempBalanceConfig, param_groups


def mlp(seed=0, widths=(24, 64, 64, 64, 48)):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


def batch(step, width_in=24, width_out=48):
    gen = torch.Generator().manual_seed(1000 + step)
    return torch.randn(32, width_in, generator=gen), torch.randn(32, width_out, generator=gen)


def setup(seed=0, lr=0.02, warmup=3, total=20, **tb_options):
    model = mlp(seed)
    opt = torch.optim.AdamW(param_groups(model, weight_decay=0.01, unit="layer", exclude=()), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.1, 1 - s / total)
    )
    options = dict(unit="layer", exclude=(), interval=3, mapping="sigmoid")
    options.update(tb_options)
    tb = TempBalance(model, opt, **options)
    return model, opt, sched, tb


def train(model, opt, sched, start, stop):
    for step in range(start, stop):
        x, y = batch(step)
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return loss.item()


def params(model):
    return [p.detach().clone() for p in model.parameters()]


def assert_identical(a, b):
    assert len(a) == len(b)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# ------------------------------------------------------------------------------------------------ end to end
def test_end_to_end_factors_change_over_time_and_lrs_differ():
    model, opt, sched, tb = setup(lr=0.03, interval=5, total=60)
    first_loss = ((model(batch(0)[0]) - batch(0)[1]) ** 2).mean().item()
    last_loss = train(model, opt, sched, 0, 60)
    assert last_loss < first_loss
    frame = tb.history_frame()
    assert tb.num_recomputes == 12 and sorted(frame["recompute"].unique()) == list(range(12))
    per_unit = frame.pivot(index="recompute", columns="unit", values="factor")
    assert (per_unit.max() - per_unit.min()).max() > 1e-3  # factors move over training
    last = frame[frame["recompute"] == 11]
    assert last["lr"].nunique() == len(tb.factors) == 4  # every unit trains at its own lr
    assert set(tb.factors) == {"0", "2", "4", "6"} and set(tb.alphas) == set(tb.factors)
    expected = {g["name"]: tb.factors[g["unit"]] for g in opt.param_groups}
    assert tb.group_factors() == expected


def test_tiny_bert_block_units_train(tiny_bert_config):
    transformers = pytest.importorskip("transformers")
    cfg = tiny_bert_config(vocab_size=100, max_position_embeddings=32, num_labels=3)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(cfg)
    opt = torch.optim.AdamW(param_groups(model, weight_decay=0.01), lr=1e-3)
    sched = transformers.get_linear_schedule_with_warmup(opt, 2, 6)
    tb = TempBalance(model, opt, interval=2)
    ids = torch.randint(0, 100, (4, 16), generator=torch.Generator().manual_seed(0))
    for _ in range(4):
        out = model(input_ids=ids, labels=torch.tensor([0, 1, 2, 0]))
        out.loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    assert list(tb.factors) == ["bert.encoder.layer.0", "bert.encoder.layer.1"]
    assert tb.num_recomputes == 2 and all(f > 0 for f in tb.factors.values())
    assert tb.group_factors()["unbalanced"] == 1.0


# ------------------------------------------------------------------------------------ determinism and resume
def test_resume_is_exact():
    n = 5
    model, opt, sched, tb = setup()
    train(model, opt, sched, 0, 2 * n)
    straight = params(model)
    assert tb.num_recomputes == 4  # steps 0, 3 (first half), 6, 9 (second half)

    model, opt, sched, tb = setup()
    train(model, opt, sched, 0, n)
    buffer = io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "opt": opt.state_dict(),
            "sched": sched.state_dict(),
            "tb": tb.state_dict(),
        },
        buffer,
    )
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    model, opt, sched, tb = setup(seed=123)  # fresh objects, different initial weights
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["opt"])
    sched.load_state_dict(saved["sched"])
    tb.load_state_dict(saved["tb"])
    train(model, opt, sched, n, 2 * n)
    assert_identical(params(model), straight)
    assert tb.num_recomputes == 4 and len(tb.history) == 4 * 4


@pytest.mark.parametrize("skip_tolerance, lr", [(0.0, 0.02), (0.05, 1e-6)])
def test_async_equals_sync_with_the_same_apply_delay_and_resumes_with_a_pending_result(skip_tolerance, lr):
    opts = dict(interval=4, apply_delay=2, skip_tolerance=skip_tolerance, metric="alpha", lr=lr)
    model, opt, sched, tb = setup(**opts)
    train(model, opt, sched, 0, 12)
    sync = params(model)
    sync_factors = [row["factor"] for row in tb.history]
    refit = [row["layers_refit"] for row in tb.history[4:]]
    assert all(refit) if skip_tolerance == 0 else not any(refit)  # the small-lr run re-uses every fit

    model, opt, sched, tb = setup(asynchronous=True, **opts)
    train(model, opt, sched, 0, 12)
    assert_identical(params(model), sync)
    assert [row["factor"] for row in tb.history] == sync_factors
    assert [row["step"] for row in tb.history][::4] == [2, 6, 10]  # measured at 0, 4, 8; used 2 steps later
    tb.remove()

    model, opt, sched, tb = setup(asynchronous=True, **opts)
    train(model, opt, sched, 0, 5)  # the recompute of step 4 is still pending (applies at step 6)
    state = {
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "sched": sched.state_dict(),
        "tb": tb.state_dict(),
    }
    assert state["tb"]["pending"] is not None
    model, opt, sched, tb = setup(seed=7, asynchronous=True, **opts)
    for key, obj in (("model", model), ("opt", opt), ("sched", sched), ("tb", tb)):
        obj.load_state_dict(state[key])
    train(model, opt, sched, 5, 12)
    assert_identical(params(model), sync)
    tb.remove()


def test_apply_delay_changes_when_factors_act():
    model, opt, sched, tb = setup(interval=4, apply_delay=0)
    train(model, opt, sched, 0, 8)
    immediate = params(model)
    model, opt, sched, tb = setup(interval=4, apply_delay=3)
    train(model, opt, sched, 0, 8)
    assert not all(torch.equal(a, b) for a, b in zip(params(model), immediate, strict=True))


def test_grad_scaler_skipped_steps_do_not_advance_the_clock():
    model, opt, sched, tb = setup(interval=2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for step in range(5):
        x, y = batch(step)
        loss = ((model(x) - y) ** 2).mean()
        if step in (1, 2):  # an overflow: GradScaler skips optimizer.step()
            loss = loss * float("inf")
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
    assert tb.step_count == 3
    assert sorted(set(row["measured_step"] for row in tb.history)) == [0, 2]


# ----------------------------------------------------------------------------------------------- schedules
def test_epoch_mode_with_explicit_epoch_end():
    model, opt, sched, tb = setup(interval="epoch")
    for epoch in range(3):
        train(model, opt, sched, 5 * epoch, 5 * epoch + 5)
        tb.epoch_end()
    measured = sorted(set(row["measured_step"] for row in tb.history))
    assert measured == [0, 5, 10, 15]


def test_epoch_mode_with_steps_per_epoch_and_start_step():
    model, opt, sched, tb = setup(interval="epoch", steps_per_epoch=6, recomputes_per_epoch=2, start_step=2)
    inside = []
    opt.register_step_pre_hook(lambda o, a, k: inside.append(list(tb.group_factors().values())))
    train(model, opt, sched, 0, 10)
    assert sorted(set(row["measured_step"] for row in tb.history)) == [2, 5, 8]
    assert inside[0] == inside[1] == [1.0] * len(inside[0])  # nothing before start_step
    assert inside[2] != [1.0] * len(inside[0])
    with pytest.raises(ValueError, match="steps_per_epoch"):
        TempBalance(model, opt, config=TempBalanceConfig.preset("emnlp_glue"), unit="layer", exclude=())


def test_fix_metric_measures_once_and_ema_smooths():
    model, opt, sched, tb = setup(fix_metric=True, interval=2)
    train(model, opt, sched, 0, 8)
    assert tb.num_recomputes == 1
    model, opt, sched, tb = setup(ema=0.5, interval=2, lr=0.05)
    train(model, opt, sched, 0, 8)
    frame = tb.history_frame()
    for _unit, rows in frame.groupby("unit"):  # the default metric, by its own name
        used, measured = rows["alpha_relative"].to_numpy(), rows["alpha_relative_measured"].to_numpy()
        assert used[0] == measured[0]
        np.testing.assert_allclose(used[1:], 0.5 * used[:-1] + 0.5 * measured[1:])
        assert not np.allclose(used, measured)


# ---------------------------------------------------------------------------------------------- edge cases
def test_nan_unit_keeps_factor_one_and_warns_once():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 4))
    opt = torch.optim.SGD(param_groups(model, unit="layer", exclude=()), lr=0.05)
    tb = TempBalance(model, opt, unit="layer", exclude=(), interval=1, mapping="linear")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _step in range(4):
            model(torch.randn(8, 32)).sum().backward()
            opt.step()
            opt.zero_grad()
    nan_warnings = [w for w in caught if "unit '4'" in str(w.message)]
    assert len(nan_warnings) == 1 and "too few eigenvalues" in str(nan_warnings[0].message)
    assert tb.factors["4"] == 1.0 and math.isnan(tb.alphas["4"])
    assert sorted([tb.factors["0"], tb.factors["2"]]) == [0.5, 1.5]  # the NaN unit is out of the min/max


def test_identical_layers_get_factor_one():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 32), nn.Linear(32, 32), nn.Linear(32, 32))
    with torch.no_grad():
        for layer in model:
            layer.weight.copy_(model[0].weight)
    opt = torch.optim.SGD(param_groups(model, unit="layer", exclude=()), lr=0.05)
    tb = TempBalance(model, opt, unit="layer", exclude=(), interval=5, mapping="sigmoid")
    model(torch.randn(4, 32)).sum().backward()
    opt.step()
    assert tb.factors == {"0": 1.0, "1": 1.0, "2": 1.0}


def test_construction_errors():
    model = mlp()
    groups = param_groups(model, unit="layer", exclude=())
    opt = torch.optim.SGD(groups, lr=0.1)
    for bad, match in [
        (dict(mapping="cubic"), "unknown mapping"),
        (dict(interval=0), "interval"),
        (dict(interval="weekly"), "interval"),
        (dict(interval=2.5), "interval"),
        (dict(unit="row"), "unknown unit"),
        (dict(metric="beta"), "unknown metric"),
        (dict(asynchronous=True, apply_delay=0), "apply_delay"),
        (dict(interval=2, apply_delay=3), "exceeds"),
        (dict(skip_tolerance=0.1, xmin="ks"), "fixed"),
        (dict(mapping="sqrt"), "metric='alpha'"),
        (dict(ema=1.0), "ema"),
        (dict(target="momentum"), "target"),
    ]:
        with pytest.raises(ValueError, match=match):
            TempBalance(model, opt, unit="layer", exclude=(), **bad) if "unit" not in bad else TempBalance(
                model, opt, exclude=(), **bad
            )
    with pytest.raises(ValueError, match="in no optimizer group"):
        TempBalance(model, torch.optim.SGD(groups[:2], lr=0.1), unit="layer", exclude=())
    with pytest.raises(ValueError, match="not in the model"):
        TempBalance(
            model,
            torch.optim.SGD(param_groups(mlp(), unit="layer", exclude=()), lr=0.1),
            unit="layer",
            exclude=(),
        )
    with pytest.raises(ValueError, match="mixes parameters"):
        TempBalance(model, torch.optim.SGD(model.parameters(), lr=0.1), unit="layer", exclude=())
    with pytest.raises(ValueError, match="no balanced units"):
        TempBalance(model, opt, unit="block")
    with pytest.raises(TypeError, match="optimizer"):
        TempBalance(model, object(), unit="layer")


def test_groups_built_for_another_unit_are_rejected():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(
                [nn.Sequential(nn.Linear(32, 32), nn.Linear(32, 32)) for _ in range(2)]
            )

    model = Net()
    opt = torch.optim.SGD(param_groups(model, unit="layer"), lr=0.1)
    with pytest.raises(ValueError, match="was built for unit"):
        TempBalance(model, opt, unit="block")


def test_user_groups_are_mapped_by_parameter_identity():
    model = mlp()
    groups = [
        {"params": list(layer.parameters()), "lr": 0.01 * (i + 1)} for i, layer in enumerate(model[::2])
    ]
    opt = torch.optim.SGD(groups, lr=0.1)
    tb = TempBalance(model, opt, unit="layer", exclude=(), interval=2, mapping="linear")
    train(model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), 0, 1)
    assert list(tb.group_factors()) == ["group0", "group1", "group2", "group3"]
    assert sorted(tb.group_factors().values())[::3] == [0.5, 1.5]


def test_adding_a_param_group_later_is_caught():
    model, opt, sched, tb = setup()
    opt.add_param_group({"params": [nn.Parameter(torch.zeros(3))]})
    with pytest.raises(RuntimeError, match="param groups"):
        train(model, opt, sched, 0, 1)


def test_remove_detaches_hooks():
    model, opt, sched, tb = setup(interval=1)
    train(model, opt, sched, 0, 2)
    tb.remove()
    inside = []
    opt.register_step_pre_hook(lambda o, a, k: inside.append([g["lr"] for g in o.param_groups]))
    before = [g["lr"] for g in opt.param_groups]
    train(model, opt, sched, 2, 3)
    assert inside[0] == before and tb.step_count == 2


# ------------------------------------------------------------------------------------------- observability
def test_history_csv_tensorboard_and_log_line(tmp_path, caplog):
    class Writer:
        def __init__(self):
            self.calls = []

        def add_scalar(self, tag, value, step):
            self.calls.append((tag, value, step))

    writer = Writer()
    csv_path = tmp_path / "tb.csv"
    model, opt, sched, tb = setup(log_csv=str(csv_path), summary_writer=writer)
    with caplog.at_level(logging.INFO, logger="modelbalance.balance"):
        train(model, opt, sched, 0, 7)
    table = pd.read_csv(csv_path)
    assert len(table) == len(tb.history) == 3 * 4
    np.testing.assert_allclose(table["factor"], tb.history_frame()["factor"])
    assert ("tempbalance/factor/2", tb.history[-3]["factor"], 6) in writer.calls
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("TempBalance step")]
    assert len(lines) == 3 and "4 units" in lines[0]


@pytest.mark.parametrize("metric", ["alpha_relative", "alpha"])
def test_outputs_name_the_metric(metric, tmp_path, caplog):
    # With the default metric a log said "alpha -0.13": a negative "alpha" reads as a bug to anyone who knows
    # HT-SR. Frames, CSV, TensorBoard tags and the log line use the metric's own name.
    class Writer:
        def __init__(self):
            self.tags = set()

        def add_scalar(self, tag, value, step):
            self.tags.add(tag)

    writer = Writer()
    csv_path = tmp_path / "tb.csv"
    model, opt, sched, tb = setup(log_csv=str(csv_path), summary_writer=writer, metric=metric)
    with caplog.at_level(logging.INFO, logger="modelbalance"):
        train(model, opt, sched, 0, 4)
    frame = tb.history_frame()
    assert {metric, f"{metric}_measured", f"{metric}_stderr", "metric"} <= set(frame.columns)
    assert (frame["metric"] == metric).all()
    if metric != "alpha":
        assert not {"alpha", "alpha_measured", "alpha_stderr"} & set(frame.columns)
    table = pd.read_csv(csv_path)
    assert list(table.columns) == list(frame.columns)
    np.testing.assert_allclose(table[metric], frame[metric])
    assert f"tempbalance/{metric}/0" in writer.tags
    if metric != "alpha":
        assert "tempbalance/alpha/0" not in writer.tags
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("TempBalance step"))
    assert f", {metric} " in line and f"without {metric}," in line
    # Records keep a plain "alpha" (whichever metric) and "metric": what older readers of tb.history use.
    row = tb.history[-1]
    assert row["alpha"] == row[metric] and row["metric"] == metric
    assert all(row.get(k) is not None for k in ("recompute", "step", "unit", "alpha", "factor"))


def test_states_saved_before_metric_names_load(tmp_path):
    model, opt, sched, tb = setup()
    train(model, opt, sched, 0, 4)
    state = tb.state_dict()
    old = []  # the records as they were saved before metric names
    for row in state["history"]:
        row = {
            k: v
            for k, v in row.items()
            if k not in ("metric", "alpha_relative_measured", "alpha_relative_stderr")
        }
        value = row.pop("alpha_relative")
        row.update(alpha=value, alpha_measured=value, alpha_stderr=0.1)
        old.append(row)
    model2, opt2, sched2, tb2 = setup()
    tb2.load_state_dict({**state, "history": old})
    frame = tb2.history_frame()
    np.testing.assert_allclose(frame["alpha_relative"], tb.history_frame()["alpha_relative"])
    assert (frame["metric"] == "alpha_relative").all() and (frame["alpha_relative_stderr"] == 0.1).all()
    assert [r["alpha"] for r in tb2.history] == [r["alpha"] for r in tb.history]
    train(model2, opt2, sched2, 4, 7)  # and it goes on recording in the new form
    assert tb2.history[-1]["metric"] == "alpha_relative"


def test_csv_written_before_metric_names_keeps_its_header(tmp_path):
    csv_path = tmp_path / "old.csv"
    header = (
        "recompute,step,measured_step,unit,family,alpha,alpha_measured,alpha_stderr,factor,lr,weight_decay,"
        "layers_refit"
    )
    csv_path.write_text(header + "\n0,0,0,0,,0.5,0.5,0.1,1.0,0.01,0.0,1\n")
    model, opt, sched, tb = setup(log_csv=str(csv_path))
    train(model, opt, sched, 0, 1)
    table = pd.read_csv(csv_path)
    assert list(table.columns) == header.split(",") and len(table) == 1 + 4
    np.testing.assert_allclose(table["alpha"][1:], tb.history_frame()["alpha_relative"])


def test_tensorboard_dir_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    model, opt, sched, tb = setup(tensorboard_dir=str(tmp_path / "tb"))
    train(model, opt, sched, 0, 4)
    tb.remove()
    assert any((tmp_path / "tb").iterdir())


def test_shape_driven_factors_are_logged_once(caplog):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(16, 96), nn.Linear(96, 96), nn.Linear(96, 32), nn.Linear(32, 96), nn.Linear(96, 12)
    )
    opt = torch.optim.SGD(param_groups(model, unit="layer", exclude=()), lr=1e-6)
    tb = TempBalance(model, opt, unit="layer", exclude=(), interval=1, metric="alpha", mapping="linear")
    with caplog.at_level(logging.WARNING, logger="modelbalance.balance"):
        for _ in range(4):
            model(torch.randn(4, 16)).sum().backward()
            opt.step()
            opt.zero_grad()
    hits = [r for r in caplog.records if "function of layer shape" in r.getMessage()]
    assert len(hits) == 1 and tb.num_recomputes == 4
    assert "metric='alpha_relative' corrects for shape" in hits[0].getMessage()  # the advice fits the metric


def test_presets_and_config_help():
    from modelbalance.balance import PRESETS

    from .test_blocks import TinyResNet

    assert all(text for text in TempBalanceConfig.help().values())
    glue = TempBalanceConfig.preset("emnlp_glue", steps_per_epoch=100)
    assert (glue.mapping, glue.unit, glue.xmin_pos, glue.interval_steps, glue.start_step) == (
        "sigmoid",
        "block",
        1.5,
        10,
        0,
    )
    cnn = TempBalanceConfig.preset("neurips_cnn", steps_per_epoch=4)
    assert (cnn.mapping, cnn.unit, cnn.xmin_pos, cnn.exclude_first_last) == ("linear", "layer", 2.0, True)
    assert set(PRESETS) == {"emnlp_glue", "neurips_cnn"}
    with pytest.raises(ValueError, match="unknown preset"):
        TempBalanceConfig.preset("iclr")
    torch.manual_seed(0)
    model = TinyResNet(widths=(8, 16, 16, 16), blocks=1)
    opt = torch.optim.SGD(param_groups(model, 5e-4, config=cnn), lr=0.05, momentum=0.9)
    tb = TempBalance(model, opt, config=cnn)
    assert "conv1" not in tb.factors and "fc" not in tb.factors and "layer1.0.conv1" in tb.factors
    for _ in range(6):
        model.zero_grad()
        x = model.conv1(torch.randn(2, 3, 8, 8))
        for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
            for block in stage:
                x = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))
        model.fc(x.mean((2, 3))).sum().backward()
        opt.step()
    assert tb.num_recomputes == 2  # once per 4-step epoch: steps 0 and 4
    assert min(tb.factors.values()) == 0.5 and max(tb.factors.values()) == 1.5
    assert tb.config.to_dict()["mapping"] == "linear"


def test_measure_device_cpu_matches_weights_on_cpu_and_is_validated():
    results = []
    for where in ("weights", "cpu"):
        model, opt, sched, tb = setup(measure_device=where)
        train(model, opt, sched, 0, 7)
        results.append(params(model))
    assert_identical(*results)
    with pytest.raises(ValueError, match="measure_device"):
        setup(measure_device="gpu")


def test_type_units_map_each_role_separately():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.Linear(32, 96)
            self.down = nn.Linear(96, 32)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([Block() for _ in range(3)])

        def forward(self, x):
            for block in self.blocks:
                x = x + block.down(torch.tanh(block.up(x)))
            return x

    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(param_groups(model, unit="type"), lr=0.05)
    tb = TempBalance(model, opt, unit="type", mapping="linear", metric="alpha", interval=2)
    for _ in range(3):
        model(torch.randn(8, 32)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    for role in ("up", "down"):
        factors = sorted(tb.factors[f"blocks.{i}.{role}"] for i in range(3))
        assert factors[0] == 0.5 and factors[-1] == 1.5  # min and max within the role, not across roles
    families = set(tb.history_frame()["family"])
    assert families == {"blocks.*.up 96x32", "blocks.*.down 32x96"}


# ------------------------------------------------------------------------------------------- unit="auto"
def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_defaults_work_on_models_without_blocks(kind, caplog):
    # The first call a new user makes: no unit, no exclude, nothing. It used to raise "found no balanced units".
    model = mlp() if kind == "mlp" else small_cnn()
    x = torch.randn(8, 24) if kind == "mlp" else torch.randn(4, 3, 8, 8)
    with caplog.at_level(logging.INFO, logger="modelbalance"):
        opt = torch.optim.AdamW(param_groups(model), lr=1e-3)
        tb = TempBalance(model, opt, interval=1)
    chosen = [r.getMessage() for r in caplog.records if "unit='auto'" in r.getMessage()]
    assert chosen and all("chose unit='layer'" in m and "no repeated blocks" in m for m in chosen)
    assert tb.plan.unit == "layer" and tb.config.unit == "auto"
    for _ in range(2):
        model(x).float().pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    expected = {"0", "2", "4", "6"} if kind == "mlp" else {"0", "3", "8"}
    assert set(tb.factors) == expected and tb.num_recomputes == 2
    if kind == "cnn":  # BatchNorm follows its conv
        bn_group = next(g for g in opt.param_groups if any(p is model[1].weight for p in g["params"]))
        assert bn_group["unit"] == "0"
    assert "unit='layer'" in repr(tb)


def test_auto_chooses_blocks_where_blocks_are_detected(tiny_bert_config, caplog):
    transformers = pytest.importorskip("transformers")
    model = transformers.BertForSequenceClassification(tiny_bert_config(vocab_size=100))
    with caplog.at_level(logging.INFO, logger="modelbalance"):
        groups = param_groups(model)
    message = next(r.getMessage() for r in caplog.records if "unit='auto'" in r.getMessage())
    assert "chose unit='block'" in message and "2 block(s) detected" in message
    assert "bert.encoder.layer.0" in message
    blocked = {g["unit"] for g in param_groups(model, unit="block")}
    assert {g["unit"] for g in groups} == blocked
    # Asked for explicitly, "layer" and "block" are exact, whatever the model.
    layered = {g["unit"] for g in param_groups(model, unit="layer")} - {None}
    assert "bert.encoder.layer.0.attention.self.query" in layered
    with pytest.raises(ValueError, match="no balanced units"):
        TempBalance(mlp(), torch.optim.SGD(mlp().parameters(), lr=0.1), unit="block")


def test_auto_follows_a_blocks_rule_and_names_itself_in_group_mismatches():
    model = mlp()
    plan = TempBalance(
        model, torch.optim.SGD(param_groups(model, blocks=r"^[0-3]$"), lr=0.1), blocks=r"^[0-3]$"
    ).plan
    assert plan.unit == "block" and list(plan.units) == ["0", "2"] and "blocks=" in plan.reason
    opt = torch.optim.SGD(param_groups(model, unit="layer", blocks=r"^[0-3]$"), lr=0.1)
    with pytest.raises(ValueError, match="chosen by 'auto'"):
        TempBalance(model, opt, blocks=r"^[0-3]$")


def test_default_unit_and_presets():
    assert TempBalanceConfig().unit == "auto"
    assert TempBalanceConfig.preset("emnlp_glue").unit == "block"
    assert TempBalanceConfig.preset("neurips_cnn").unit == "layer"
    assert "'auto'" in TempBalanceConfig.help()["unit"]


# ------------------------------------------------------------------------------------ frozen layers, reused fits
def lora_bert(tiny_bert_config, seed=0):
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    torch.manual_seed(seed)
    base = transformers.BertForSequenceClassification(
        tiny_bert_config(
            vocab_size=100,
            max_position_embeddings=32,
            num_labels=2,
            hidden_dropout_prob=0.0,  # no random masks: a resumed run would draw other ones
            attention_probs_dropout_prob=0.0,
        )
    )
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], task_type="SEQ_CLS")
    return peft.get_peft_model(base, lora)


def lora_setup(tiny_bert_config, seed=0, **tb_options):
    model = lora_bert(tiny_bert_config, seed)
    opt = torch.optim.AdamW(param_groups(model, weight_decay=0.01, unit="block"), lr=1e-2)
    tb = TempBalance(model, opt, **{"unit": "block", "interval": 2, "mapping": "sigmoid", **tb_options})
    return model, opt, tb


def lora_train(model, opt, start, stop):
    for step in range(start, stop):
        gen = torch.Generator().manual_seed(step)
        ids = torch.randint(0, 100, (8, 12), generator=gen)
        model(input_ids=ids, labels=torch.randint(0, 2, (8,), generator=gen)).loss.backward()
        opt.step()
        opt.zero_grad()


def refits(tb):
    return tb.history_frame().groupby("recompute")["layers_refit"].sum().tolist()


def test_frozen_layers_are_fit_once_and_their_fits_reused_exactly(tiny_bert_config, monkeypatch):
    model, opt, tb = lora_setup(tiny_bert_config)
    lora_train(model, opt, 0, 8)
    # 2 blocks x 6 matrices; after the first recompute only the 2 x 2 LoRA layers (query, value) are refit
    assert refits(tb) == [12, 4, 4, 4]
    reused = tb.history_frame()[["alpha_relative", "factor"]].to_numpy()
    weights = params(model)

    from modelbalance.balance.measurement import FrozenLayers

    monkeypatch.setattr(FrozenLayers, "reusable", lambda self, layers, fits: [])
    model, opt, tb = lora_setup(tiny_bert_config)
    lora_train(model, opt, 0, 8)
    assert refits(tb) == [12, 12, 12, 12]
    np.testing.assert_array_equal(tb.history_frame()[["alpha_relative", "factor"]].to_numpy(), reused)
    assert_identical(params(model), weights)


KEY0 = "base_model.model.bert.encoder.layer.0.attention.self.key"


def perturb(model):
    key = model.get_submodule(KEY0).weight
    with torch.no_grad():
        key.add_(torch.randn(key.shape, generator=torch.Generator().manual_seed(0)))
    return key


def test_a_frozen_weight_changed_in_place_or_unfrozen_is_refit(tiny_bert_config):
    model, opt, tb = lora_setup(tiny_bert_config)
    lora_train(model, opt, 0, 4)
    before = tb._fits[KEY0].alpha
    key = perturb(model)
    lora_train(model, opt, 4, 6)
    assert refits(tb)[-1] == 5  # the four LoRA layers and the changed key
    assert tb._fits[KEY0].alpha != before

    key.requires_grad_(
        True
    )  # trainable: something (another optimizer) may step it, so it is measured every time
    lora_train(model, opt, 6, 8)
    assert refits(tb)[-1] == 5 and key.grad is not None
    key.requires_grad_(
        False
    )  # frozen again, but its leftover .grad could still be stepped (fused optimizers)
    lora_train(model, opt, 8, 10)
    assert refits(tb)[-1] == 5
    key.grad = None
    lora_train(model, opt, 10, 14)  # measured once more as a frozen layer, then reused
    assert refits(tb)[-2:] == [5, 4]
    tb.frozen_layers.forget()  # e.g. after writing frozen weights through .data
    lora_train(model, opt, 14, 16)
    assert refits(tb)[-1] == 12


def test_resume_keeps_frozen_fits_and_is_exact(tiny_bert_config):
    def resumed(change_before_saving=False, order=("model", "opt", "tb"), drop_frozen_state=False):
        model, opt, tb = lora_setup(tiny_bert_config)
        lora_train(model, opt, 0, 3)  # recomputes at 0 and 2
        if change_before_saving:
            perturb(model)
        # deep copies: a loaded optimizer state shares its tensors with the dict it came from
        saved = copy.deepcopy({"model": model.state_dict(), "opt": opt.state_dict(), "tb": tb.state_dict()})
        if drop_frozen_state:  # as saved before frozen layers' fits were reused
            del saved["tb"]["frozen_layers"]
        model, opt, tb = lora_setup(tiny_bert_config, seed=1)
        for name in order:
            {"model": model, "opt": opt, "tb": tb}[name].load_state_dict(saved[name])
        lora_train(model, opt, 3, 8)
        return saved, params(model), tb

    unchanged = None
    for change in (True, False):
        model, opt, tb = lora_setup(tiny_bert_config)
        lora_train(model, opt, 0, 3)
        if change:
            perturb(model)
        lora_train(model, opt, 3, 8)
        straight, history = params(model), tb.history_frame()
        assert refits(tb) == ([12, 4, 5, 4] if change else [12, 4, 4, 4])
        if not change:
            unchanged = straight

        saved, weights, tb = resumed(change)
        # key, attention output, intermediate and output of 2 blocks; a key changed since its fit is not saved
        assert len(saved["tb"]["frozen_layers"]) == (7 if change else 8)
        assert refits(tb) == ([12, 4, 5, 4] if change else [12, 4, 4, 4])
        assert_identical(weights, straight)
        pd.testing.assert_frame_equal(tb.history_frame(), history)

    # The balancer's state loaded onto other weights (the model's state comes after): the saved fingerprints do
    # not match, so the frozen layers are refit once, to the same fits.
    _, weights, tb = resumed(order=("tb", "model", "opt"))
    assert refits(tb) == [12, 4, 12, 4]
    assert_identical(weights, unchanged)
    _, _, tb = resumed(order=("opt", "tb"))  # other frozen weights entirely: the saved fits are not trusted
    assert refits(tb) == [12, 4, 12, 4]
    _, weights, tb = resumed(drop_frozen_state=True)
    assert refits(tb) == [12, 4, 12, 4]
    assert_identical(weights, unchanged)


def test_frozen_fits_with_a_background_recompute_pending_at_a_checkpoint(tiny_bert_config):
    opts = dict(asynchronous=True, apply_delay=1)
    model, opt, tb = lora_setup(tiny_bert_config, **opts)
    lora_train(model, opt, 0, 8)
    straight = params(model)
    assert refits(tb) == [12, 4, 4, 4]
    model, opt, tb = lora_setup(tiny_bert_config, apply_delay=1)  # the same in the main thread
    lora_train(model, opt, 0, 8)
    assert_identical(params(model), straight)

    model, opt, tb = lora_setup(tiny_bert_config, **opts)
    lora_train(model, opt, 0, 3)  # the recompute of step 2 is pending (applies at step 3)
    saved = copy.deepcopy({"model": model.state_dict(), "opt": opt.state_dict(), "tb": tb.state_dict()})
    assert saved["tb"]["pending"] is not None and saved["tb"]["pending"]["reused"] == 8
    assert len(saved["tb"]["frozen_layers"]) == 8
    tb.remove()
    model, opt, tb = lora_setup(tiny_bert_config, seed=1, **opts)
    for name, obj in (("model", model), ("opt", opt), ("tb", tb)):
        obj.load_state_dict(saved[name])
    lora_train(model, opt, 3, 8)
    assert refits(tb) == [12, 4, 4, 4]
    assert_identical(params(model), straight)
    tb.remove()


def test_frozen_layers_keep_no_snapshot_copy_for_the_skip_bound(tiny_bert_config):
    model, opt, tb = lora_setup(tiny_bert_config, skip_tolerance=0.05)
    lora_train(model, opt, 0, 6)
    adapted = {name for name in tb._fits if ".query" in name or ".value" in name}
    assert len(adapted) == 4 and set(tb._references) == adapted  # copies only where the bound can be used
    assert set(tb.state_dict()["references"]) == adapted
