"""Hugging Face Trainer: per-unit groups, factors acting on the real steps, exact resume, PEFT LoRA."""

import math
import shutil

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from modelbalance import TempBalanceConfig, param_groups  # noqa: E402
from modelbalance.integrations.hf import (  # noqa: E402
    STATE_FILE,
    TempBalanceCallback,
    TempBalanceTrainer,
    short_unit_names,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing")

TINY = dict(
    vocab_size=64,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=32,
    num_labels=2,
)
OPTIONS = dict(unit="block", interval=2, metric="alpha", mapping="sigmoid")


def tiny_bert(seed: int = 0):
    torch.manual_seed(seed)
    return transformers.BertForSequenceClassification(transformers.BertConfig(**TINY))


class Synthetic(torch.utils.data.Dataset):
    """Token sequences whose label is whether token 1 occurs more often than token 2."""

    def __init__(self, n: int = 48, length: int = 12, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(3, TINY["vocab_size"], (n, length), generator=gen)
        self.ids[:, ::3] = torch.randint(1, 3, (n, (length + 2) // 3), generator=gen)
        self.labels = ((self.ids == 1).sum(1) > (self.ids == 2).sum(1)).long()

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {
            "input_ids": self.ids[i],
            "attention_mask": torch.ones_like(self.ids[i]),
            "labels": self.labels[i],
        }


def training_args(output_dir, **overrides):
    options = dict(
        output_dir=str(output_dir),
        max_steps=6,
        per_device_train_batch_size=8,
        learning_rate=5e-3,
        weight_decay=0.01,
        logging_steps=1,
        save_strategy="steps",
        save_steps=3,
        report_to="none",
        seed=0,
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    options.update(overrides)
    return transformers.TrainingArguments(**options)


def final_params(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def same_history(a: list[dict], b: list[dict]) -> bool:
    def same(x, y):
        return x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))

    return len(a) == len(b) and all(
        ra.keys() == rb.keys() and all(same(ra[k], rb[k]) for k in ra) for ra, rb in zip(a, b, strict=True)
    )


class StepRecorder(transformers.TrainerCallback):
    """Records, inside every optimizer step, each group's learning rate and the scheduler's unscaled one."""

    def __init__(self):
        self.used, self.scheduled = [], []

    def on_train_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        inner = optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer

        def record(opt, *_):  # registered after TempBalance's pre-hook, so it sees the scaled values
            self.used.append([float(g["lr"]) for g in opt.param_groups])
            self.scheduled.append([float(x) for x in lr_scheduler.get_last_lr()])

        self.handle = inner.register_step_pre_hook(record)

    def on_train_end(self, *args, **kwargs):
        self.handle.remove()


def test_short_unit_names():
    names = [
        "base_model.model.bert.encoder.layer.0.attention.self.query",
        "base_model.model.bert.encoder.layer.1.x",
    ]
    assert short_unit_names(names) == {names[0]: "layer.0.attention.self.query", names[1]: "layer.1.x"}
    assert short_unit_names(["encoder.block"]) == {"encoder.block": "encoder.block"}


def test_trainer_builds_unit_groups_and_balances_every_step(tmp_path):
    model = tiny_bert()
    trainer = TempBalanceTrainer(
        model=model,
        args=training_args(tmp_path, save_strategy="no"),
        train_dataset=Synthetic(),
        tempbalance=OPTIONS,
    )
    recorder = StepRecorder()
    trainer.add_callback(recorder)
    trainer.train()
    tb = trainer.balancer

    # One group per unit (decayed / not decayed), as param_groups builds them, with the Trainer's decay rule.
    decayed = set(trainer.get_decay_parameter_names(model))
    expected = param_groups(
        model, weight_decay=0.01, config=TempBalanceConfig(**OPTIONS), no_decay=lambda n, p: n not in decayed
    )
    groups = tb.optimizer.param_groups
    assert [g["name"] for g in groups] == [g["name"] for g in expected]
    names = {id(p): n for n, p in model.named_parameters()}
    for group in groups:
        assert {names[id(p)] in decayed for p in group["params"]} == {group["weight_decay"] > 0}
    assert type(tb.optimizer) is torch.optim.AdamW  # args.optim's default, with the Trainer's arguments
    assert tb.optimizer.defaults["eps"] == trainer.args.adam_epsilon

    # Recomputes at optimizer steps 0, 2, 4; factors differ across units and change over time.
    assert tb.step_count == 6 and tb.num_recomputes == 3
    units = list(tb.factors)
    assert units == ["bert.encoder.layer.0", "bert.encoder.layer.1"]
    by_recompute = [
        {row["unit"]: row["factor"] for row in tb.history if row["recompute"] == r} for r in range(3)
    ]
    assert all(len(set(f.values())) == len(units) for f in by_recompute)
    assert by_recompute[0] != by_recompute[2]

    # The learning rate each group used = the Trainer scheduler's value x that group's current factor.
    assert len(recorder.used) == 6
    for step, (used, scheduled) in enumerate(zip(recorder.used, recorder.scheduled, strict=True)):
        factors = by_recompute[step // 2]
        want = [
            lr * (factors[g["unit"]] if g["unit"] is not None else 1.0)
            for lr, g in zip(scheduled, groups, strict=True)
        ]
        np.testing.assert_allclose(used, want, rtol=1e-12)
    assert len({round(lr, 12) for lr in recorder.used[-1]}) > 1  # units really train at different rates

    # Concise logs: factors and alphas by short unit name, once per recompute.
    logged = [entry for entry in trainer.state.log_history if "tempbalance/factor/layer.0" in entry]
    assert [entry["step"] for entry in logged] == [1, 3, 5]
    assert logged[-1]["tempbalance/factor/layer.1"] == tb.factors["bert.encoder.layer.1"]
    assert logged[-1]["tempbalance/alpha/layer.0"] == tb.alphas["bert.encoder.layer.0"]


@pytest.mark.slow
def test_resume_from_checkpoint_is_exact(tmp_path):
    options = dict(OPTIONS, ema=0.5, skip_tolerance=0.05)  # more state to carry: smoothed alphas, references

    def run(output_dir, resume=None):
        model = tiny_bert()
        trainer = TempBalanceTrainer(
            model=model, args=training_args(output_dir), train_dataset=Synthetic(), tempbalance=options
        )
        trainer.train(resume_from_checkpoint=resume)
        return final_params(model), trainer.balancer

    full, tb_full = run(tmp_path / "full")
    assert (tmp_path / "full" / "checkpoint-3" / STATE_FILE).is_file()
    resumed, tb_resumed = run(tmp_path / "resumed", resume=str(tmp_path / "full" / "checkpoint-3"))
    assert tb_resumed.step_count == 6 and same_history(tb_full.history, tb_resumed.history)
    assert all(torch.equal(full[n], resumed[n]) for n in full)

    # Without the balancer's state a resumed run measures afresh at step 3 and ends elsewhere.
    shutil.copytree(tmp_path / "full" / "checkpoint-3", tmp_path / "bare")
    (tmp_path / "bare" / STATE_FILE).unlink()
    with pytest.warns(RuntimeWarning, match="without a saved TempBalance state"):
        fresh, _ = run(tmp_path / "fresh", resume=str(tmp_path / "bare"))
    assert not all(torch.equal(full[n], fresh[n]) for n in full)


def test_callback_with_plain_trainer(tmp_path):
    model = tiny_bert()
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay=0.01, unit="layer"), lr=5e-3)
    callback = TempBalanceCallback(unit="layer", interval=3, metric="alpha", log="summary")
    trainer = transformers.Trainer(
        model=model,
        args=training_args(tmp_path),
        train_dataset=Synthetic(),
        optimizers=(optimizer, None),
        callbacks=[callback],
    )
    trainer.train()
    assert callback.balancer.num_recomputes == 2 and callback.balancer.step_count == 6
    assert (tmp_path / "checkpoint-3" / STATE_FILE).is_file() and (
        tmp_path / "checkpoint-6" / STATE_FILE
    ).is_file()
    saved = torch.load(tmp_path / "checkpoint-3" / STATE_FILE, weights_only=True)
    assert saved["step_count"] == 3 and saved["num_recomputes"] == 1
    logged = [entry for entry in trainer.state.log_history if "tempbalance/factor_max" in entry]
    assert [entry["step"] for entry in logged] == [1, 4]
    assert logged[-1]["tempbalance/factor_max"] == max(callback.balancer.factors.values())


def test_trainer_default_optimizer_is_rejected_with_a_clear_error(tmp_path):
    trainer = transformers.Trainer(
        model=tiny_bert(),
        args=training_args(tmp_path, save_strategy="no"),
        train_dataset=Synthetic(),
        callbacks=[TempBalanceCallback(interval=2)],
    )
    with pytest.raises(ValueError, match="mixes parameters of different units"):
        trainer.train()


def test_trainer_rejects_optimizers_that_build_their_own_groups(tmp_path):
    trainer = TempBalanceTrainer(
        model=tiny_bert(),
        args=training_args(tmp_path),
        train_dataset=Synthetic(),
        tempbalance=OPTIONS,
        optimizer_cls_and_kwargs=(torch.optim.SGD, {"params": []}),
    )
    with pytest.raises(ValueError, match="builds its own parameter groups"):
        trainer.create_optimizer()


def _hill_alpha(matrix: np.ndarray, xmin_pos: float) -> float:
    eigs = np.sort(np.linalg.eigvalsh(matrix.T @ matrix))
    start = int(len(eigs) / xmin_pos)
    tail = eigs[start:]
    return 1.0 + len(tail) / np.log(tail / tail[0]).sum()


def test_peft_lora_balances_only_adapters_on_the_effective_weight(tmp_path):
    peft = pytest.importorskip("peft")
    lora = peft.LoraConfig(r=4, lora_alpha=16, target_modules=["query", "value"], task_type="SEQ_CLS")
    model = peft.get_peft_model(tiny_bert(), lora)
    options = dict(unit="layer", interval=2, metric="alpha", mapping="linear")

    class WeightRecorder(transformers.TrainerCallback):  # adapter weights just before each optimizer step
        seen = {}

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            self.seen[state.global_step] = {
                n: p.detach().double().clone()
                for n, p in model.named_parameters()
                if "query" in n or "value" in n
            }

    trainer = TempBalanceTrainer(
        model=model,
        args=training_args(tmp_path, save_strategy="no", learning_rate=2e-2),
        train_dataset=Synthetic(),
        tempbalance=options,
        callbacks=[WeightRecorder()],
    )
    trainer.train()
    tb = trainer.balancer

    prefix = "base_model.model.bert.encoder.layer"
    expected_units = {f"{prefix}.{i}.attention.self.{m}" for i in range(2) for m in ("query", "value")}
    assert set(tb.plan.units) == expected_units
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    in_groups = [id(p) for g in tb.optimizer.param_groups for p in g["params"]]
    assert sorted(in_groups) == sorted(trainable)  # frozen weights are in no group
    names = {id(p): n for n, p in model.named_parameters()}
    balanced = [names[id(p)] for g in tb.optimizer.param_groups if g["unit"] is not None for p in g["params"]]
    assert len(balanced) == 8 and all(".lora_A." in n or ".lora_B." in n for n in balanced)

    # The alpha measured at step 4 is the Hill alpha of W + scaling * B @ A at that step (scaling = 16 / 4).
    weights = WeightRecorder.seen[4]
    measured = {row["unit"]: row["alpha_measured"] for row in tb.history if row["measured_step"] == 4}
    for unit in expected_units:
        w = weights[f"{unit}.base_layer.weight"].numpy()
        a = weights[f"{unit}.lora_A.default.weight"].numpy()
        b = weights[f"{unit}.lora_B.default.weight"].numpy()
        want = _hill_alpha(w + 4.0 * b @ a, 1.5)
        assert measured[unit] == pytest.approx(want, rel=1e-3)
        assert abs(_hill_alpha(w + b @ a, 1.5) - want) > 10 * 1e-3 * want  # the scaling is not negligible
