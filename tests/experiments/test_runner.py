"""The sweep runner on the seconds-fast ``toy`` task: outputs, tuning, determinism, resume, failures, refusal."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from modelbalance.experiments import runner
from modelbalance.experiments.config import ExperimentConfig
from modelbalance.experiments.methods import (
    Attachment,
    LayerwiseDecayMethod,
    Method,
    RunContext,
    ShuffledMapping,
)
from modelbalance.experiments.plan import RunSpec
from modelbalance.experiments.registry import METHODS
from modelbalance.experiments.runner import execute_run, prepare, run_experiment
from modelbalance.experiments.store import FolderConflict, ResultsFolder
from modelbalance.experiments.tuning import pick_learning_rate
from modelbalance.experiments.zoo import FieldMLP


def tiny_config(out, **changes) -> ExperimentConfig:
    values = dict(
        task="toy",
        model="mlp",
        fractions=(0.5, 1.0),
        seeds=(0, 1),
        methods=("baseline", "tb"),
        lrs=(1e-2,),
        epochs=2,
        batch_size=8,
        val_size=6,
        analyze_layers=False,
        out=str(out),
        task_params={"n_samples": 30, "n_test": 8, "resolution": 16, "modes": 3},
        model_params={"width": 16, "depth": 2},
    )
    values.update(changes)
    return ExperimentConfig(**values)


def quiet(config, **options):
    return run_experiment(
        config, progress=False, plots=options.pop("plots", False), log=lambda _: None, **options
    )


@pytest.fixture
def failing_method():
    """A method that fails its runs with seed 1 (registered for the test only)."""

    class FailOnSeed1(Method):
        def attach(self, model, optimizer, context):
            if context.seed == 1:
                raise RuntimeError("boom on seed 1")
            return Attachment()

    METHODS.register("fail_seed1")(lambda: FailOnSeed1())
    yield "fail_seed1"
    METHODS.unregister("fail_seed1")


def test_sweep_writes_rows_grid_and_summary(tmp_path):
    config = tiny_config(tmp_path / "out", lrs=(1e-2, 3e-3))
    outcome = quiet(config)
    out = tmp_path / "out"
    frame = pd.read_csv(out / "results.csv")
    # every (fraction, method, lr, seed) of the grid is a row; the tuning seeds are the seeds
    assert len(frame) == 2 * 2 * 2 * 2 == len(outcome.records)
    for column in (
        "task",
        "model",
        "fraction",
        "n_train",
        "seed",
        "method",
        "lr",
        "nrmse",
        "rel_l2",
        "train_time_s",
        "status",
        "error",
        "val_nrmse",
        "selected",
    ):
        assert column in frame.columns
    assert (frame["status"] == "ok").all()
    assert frame["selected"].sum() == 2 * 2 * 2  # one lr per (fraction, method), every seed
    assert set(frame["n_train"]) == {12, 24}  # 30 pool - 6 validation = 24
    grid = pd.read_csv(out / "grid.csv")
    assert len(grid) == 2 * 2 * 2 and grid["selected"].sum() == 4
    summary = (out / "summary.md").read_text()
    assert "| fraction | n_train | baseline | tb |" in summary
    assert "Wilcoxon p" in summary and "Tuning grid" in summary
    results = json.loads((out / "results.json").read_text())
    assert len(results["runs"]) == len(frame) and results["metric"] == "nrmse"
    assert len(list((out / "runs").glob("*.json"))) == len(frame)


def test_picks_at_a_grid_edge_are_flagged_in_log_summary_and_json(tmp_path, capsys):
    # with two rates every pick is at an edge: the console, summary.md and results.json all say so
    config = tiny_config(tmp_path / "out", lrs=(1e-2, 3e-3), fractions=(1.0,))
    outcome = quiet(config)
    console = capsys.readouterr().out
    assert console.count("at the edge of its grid") == 2 and "widen the grid" in console
    out = tmp_path / "out"
    summary = (out / "summary.md").read_text()
    assert "Grid too narrow" in summary
    for method in ("baseline", "tb"):
        lr = outcome.picked_lrs[1.0, method]
        side = "top" if lr == 1e-2 else "bottom"
        assert (
            f"- {method} at fraction 1 ({outcome.records[0]['n_train']} samples): lr={lr:g} (lr ({side}))"
            in summary
        )
    picked = json.loads((out / "results.json").read_text())["picked"]
    assert all(p["grid_edge"] in (["lr (top)"], ["lr (bottom)"]) for p in picked)
    # one configuration per method is no tuning, hence no edge to report
    quiet(tiny_config(tmp_path / "fixed", fractions=(1.0,)))
    assert "Grid too narrow" not in (tmp_path / "fixed" / "summary.md").read_text()
    picked = json.loads((tmp_path / "fixed" / "results.json").read_text())["picked"]
    assert all(p["grid_edge"] == [] for p in picked)


def test_a_pick_inside_its_grid_that_ties_an_edge_is_flagged(tmp_path, capsys):
    # rates far below float32's resolution of the weights leave every run bitwise equal: the first grid entry wins
    # the tie, inside the grid by value, and both edges scored the same, so the grid is not shown to be wide enough
    config = tiny_config(tmp_path / "out", lrs=(1e-29, 1e-30, 1e-28), fractions=(1.0,))
    outcome = quiet(config)
    assert set(outcome.picked_lrs.values()) == {1e-29}
    assert "tied with an edge of its grid" in capsys.readouterr().out
    assert all(axes == ["lr (bottom, tied)", "lr (top, tied)"] for axes in outcome.grid_edges.values())
    assert "Grid too narrow" in (tmp_path / "out" / "summary.md").read_text()
    picked = json.loads((tmp_path / "out" / "results.json").read_text())["picked"]
    assert all(p["grid_edge"] == ["lr (bottom, tied)", "lr (top, tied)"] for p in picked)


def test_learning_rate_is_picked_on_validation(tmp_path):
    config = tiny_config(tmp_path / "out", lrs=(3e-2, 1e-3))
    outcome = quiet(config)
    frame = pd.read_csv(tmp_path / "out" / "results.csv")
    for (fraction, method), part in frame.groupby(["fraction", "method"]):
        val_means = part.groupby("lr")["val_nrmse"].mean()
        assert outcome.picked_lrs[fraction, method] == val_means.idxmin()
        assert set(part.loc[part["selected"], "lr"]) == {val_means.idxmin()}


def test_pick_ignores_test_metrics_and_failed_lrs():
    records = {
        1e-3: [{"status": "ok", "val_nrmse": 0.30, "nrmse": 0.10}],
        1e-2: [{"status": "ok", "val_nrmse": 0.20, "nrmse": 0.90}],
        1e-1: [{"status": "ok", "val_nrmse": 0.05}, {"status": "failed", "val_nrmse": None}],
    }
    best, stats = pick_learning_rate(records, metric="nrmse", direction="min")
    assert best == 1e-2  # not the test-best 1e-3, not the diverging 1e-1
    assert stats[1e-1][:2] == (1, 1)
    assert pick_learning_rate({1e-3: [{"status": "failed"}]}, metric="nrmse", direction="min")[0] is None
    best_max, _ = pick_learning_rate(
        {1: [{"status": "ok", "val_acc": 0.7}], 2: [{"status": "ok", "val_acc": 0.9}]},
        metric="acc",
        direction="max",
    )
    assert best_max == 2


def test_runs_are_deterministic_and_seeded(tmp_path):
    prepared = prepare(tiny_config(tmp_path / "out"))
    first = execute_run(prepared, RunSpec(0.5, 0, "tb", (("lr", 1e-2),)))
    again = execute_run(prepared, RunSpec(0.5, 0, "tb", (("lr", 1e-2),)))
    other = execute_run(prepared, RunSpec(0.5, 1, "tb", (("lr", 1e-2),)))
    assert first["status"] == "ok", first["error"]
    assert first["nrmse"] == again["nrmse"] and first["epoch_losses"] == again["epoch_losses"]
    assert first["tb_history"] == again["tb_history"]
    assert first["nrmse"] != other["nrmse"]


def test_subsets_are_seeded_nested_and_shared_by_methods(tmp_path):
    prepared = prepare(tiny_config(tmp_path / "out"))
    half, full = prepared.subset_indices(0.5, 0), prepared.subset_indices(1.0, 0)
    assert len(half) == prepared.n_train(0.5) == 12 and len(full) == 24
    assert set(half) <= set(full)
    assert half == prepared.subset_indices(0.5, 0) != prepared.subset_indices(0.5, 1)
    # the validation split never overlaps the training pool
    val_ids = set(prepared.val.indices)
    assert not val_ids & set(prepared.train_pool.indices)


def test_tb_with_unit_factors_reproduces_the_baseline(tmp_path):
    """Baseline and TB differ only by the factors: a TB whose factors are all 1 gives the baseline's numbers."""
    config = tiny_config(
        tmp_path / "out",
        methods=("baseline", "tb_flat"),
        method_options={"tb_flat": {"base": "tb", "mapping": "linear", "s1": 1.0, "s2": 1.0}},
    )
    prepared = prepare(config)
    baseline = execute_run(prepared, RunSpec(1.0, 0, "baseline", (("lr", 1e-2),)))
    flat = execute_run(prepared, RunSpec(1.0, 0, "tb_flat", (("lr", 1e-2),)))
    assert flat["tb_recomputes"] >= 1 and set(flat["tb_factors"].values()) == {1.0}
    assert flat["nrmse"] == pytest.approx(baseline["nrmse"], rel=1e-6)
    assert flat["epoch_losses"] == pytest.approx(baseline["epoch_losses"], rel=1e-6)


def test_placebo_permutes_tb_factors_and_frozen_measures_once(tmp_path):
    config = tiny_config(tmp_path / "out", methods=("tb", "tb_shuffle", "tb_frozen"), epochs=3)
    prepared = prepare(config)
    records = {m: execute_run(prepared, RunSpec(1.0, 0, m, (("lr", 1e-2),))) for m in config.methods}

    def factors_at(record, recompute):
        return {r["unit"]: r["factor"] for r in record["tb_history"] if r["recompute"] == recompute}

    first_tb, first_shuffled = factors_at(records["tb"], 1), factors_at(records["tb_shuffle"], 1)
    # the first recompute sees the same initial weights: the placebo uses the same values, permuted
    assert sorted(first_shuffled.values()) == pytest.approx(sorted(first_tb.values()))
    assert records["tb_frozen"]["tb_recomputes"] == 1
    assert records["tb"]["tb_recomputes"] == config.epochs


def test_shuffled_mapping_is_a_seeded_permutation():
    alphas = np.array([2.0, 3.0, np.nan, 4.0, 5.0])
    a, b = ShuffledMapping("linear", seed=1), ShuffledMapping("linear", seed=1)
    draws = [a(alphas, np.zeros(5)) for _ in range(4)]
    assert [d.tolist() for d in draws] == [b(alphas, np.zeros(5)).tolist() for _ in range(4)]
    for factors in draws:
        assert sorted(factors[[0, 1, 3, 4]].tolist()) == pytest.approx([0.5, 5 / 6, 7 / 6, 1.5])
    assert len({tuple(d) for d in draws}) > 1  # a new permutation at each recompute


def test_llrd_decays_by_block_depth():
    model = FieldMLP(in_features=4, out_shape=(1, 4), width=8, depth=3)
    method = LayerwiseDecayMethod(decay=0.5)
    depths = method.depths(model)
    assert depths["lift.weight"] == 4 and depths["head.weight"] == 0
    assert [depths[f"blocks.{i}.0.weight"] for i in range(3)] == [3, 2, 1]
    context = RunContext(seed=0, lr=0.1, weight_decay=0.01, epochs=1, steps_per_epoch=1, total_steps=1)
    groups = method.param_groups(model, context)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert lr_of[id(model.lift.weight)] == pytest.approx(0.1 * 0.5**4)
    assert lr_of[id(model.blocks[2][0].weight)] == pytest.approx(0.05)
    assert lr_of[id(model.head.bias)] == pytest.approx(0.1)
    assert {g["weight_decay"] for g in groups if g["name"].endswith("no_decay")} == {0.0}
    with pytest.raises(ValueError, match="decay"):
        LayerwiseDecayMethod(decay=1.5)


def test_interrupted_sweep_resumes_without_redoing_runs(tmp_path, monkeypatch):
    config = tiny_config(tmp_path / "out")
    real = runner.execute_run
    calls = []

    def interrupt_on_third(*args, **kwargs):
        calls.append(kwargs)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "execute_run", interrupt_on_third)
    with pytest.raises(KeyboardInterrupt):
        quiet(config)
    assert len(list((tmp_path / "out" / "runs").glob("*.json"))) == 2
    monkeypatch.setattr(runner, "execute_run", real)
    outcome = quiet(config)  # same config: continues
    assert (outcome.n_reused, outcome.n_new) == (2, 2 * 2 * 2 - 2)
    again = quiet(config)
    assert (again.n_reused, again.n_new) == (8, 0)
    assert [r["nrmse"] for r in again.records] == [r["nrmse"] for r in outcome.records]


def test_plan_status_counts_what_a_sweep_will_train_and_makes_the_picks_the_sweep_makes(tmp_path):
    from modelbalance.experiments.runner import PlanStatus, plan_status, reusable_runs

    config = tiny_config(tmp_path / "out", lrs=(1e-2, 3e-2), tune_seeds=(100,))
    prepared = prepare(config)
    # per fraction and method: 2 tuning runs, then seeds 0 and 1 at the pick
    assert plan_status(prepared, stored={}, donors={}) == PlanStatus(16, 0, 8, 8)
    outcome = quiet(config)
    assert outcome.n_new == 16
    stored = ResultsFolder(tmp_path / "out").load_runs()
    assert plan_status(prepared, stored=stored, donors={}) == PlanStatus(16, 16, 0, 0)
    more = prepare(tiny_config(tmp_path / "more", lrs=(1e-2, 3e-2), tune_seeds=(100,), seeds=(0, 1, 2)))
    status = plan_status(more, stored={}, donors=reusable_runs([tmp_path / "out"]))
    assert status == PlanStatus(20, 16, 4, 0)  # seed 2 at each pick
    extended = quiet(more.config, reuse=[tmp_path / "out"])
    assert (extended.n_new, extended.n_reused) == (status.to_train, status.done)
    failed = {key: {**record, "status": "failed"} for key, record in stored.items()}
    # failures are kept (no pick, so nothing to test) or retried
    assert plan_status(prepared, stored=failed, donors={}) == PlanStatus(8, 8, 0, 0)
    assert plan_status(prepared, stored=failed, donors={}, retry_failed=True) == PlanStatus(16, 0, 8, 8)


def test_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path, failing_method):
    config = tiny_config(tmp_path / "out", methods=("baseline", failing_method))
    outcome = quiet(config)
    frame = pd.read_csv(tmp_path / "out" / "results.csv")
    failed = frame[frame["status"] == "failed"]
    assert len(failed) == 2 and set(failed["seed"]) == {1} and set(failed["method"]) == {failing_method}
    assert failed["error"].str.contains("RuntimeError: boom on seed 1").all()
    assert failed["nrmse"].isna().all()
    assert (frame.loc[frame["status"] == "ok", "nrmse"] > 0).all() and outcome.n_failed == 2
    assert "## Failed runs (2)" in (tmp_path / "out" / "summary.md").read_text()
    assert quiet(config).n_new == 0  # failures are kept ...
    assert quiet(config, retry_failed=True).n_new == 2  # ... unless asked to retry


def test_a_folder_with_another_config_is_refused(tmp_path):
    config = tiny_config(tmp_path / "out")
    quiet(config)
    with pytest.raises(FolderConflict, match=r"epochs \(2 -> 3\).*--overwrite"):
        quiet(config.replace(epochs=3))
    with pytest.raises(FolderConflict, match="--resume"):
        quiet(config.replace(seeds=(0, 1, 2)))
    extended = quiet(config.replace(seeds=(0, 1, 2)), resume=True)
    assert (extended.n_reused, extended.n_new) == (8, 4)
    with pytest.raises(FolderConflict):  # resume may extend a sweep, not change how runs train
        quiet(config.replace(epochs=3), resume=True)
    replaced = quiet(config.replace(epochs=3), overwrite=True)
    assert replaced.n_new == 8 and len(list((tmp_path / "out" / "runs").glob("*.json"))) == 8


def test_results_without_a_config_are_not_overwritten(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("precious\n")
    with pytest.raises(FolderConflict, match="without a config.json"):
        quiet(tiny_config(out))
    assert (out / "results.csv").read_text() == "precious\n"


def test_a_live_sweep_locks_its_folder(tmp_path):
    folder = ResultsFolder(tmp_path / "out")
    config = tiny_config(tmp_path / "out")
    folder.claim(config)
    (tmp_path / "out" / ".sweep.lock").write_text(str(os.getppid()))  # a live process that is not us
    with pytest.raises(FolderConflict, match="another sweep"):
        folder.check(config)
    (tmp_path / "out" / ".sweep.lock").write_text("999999999")  # a dead one: stale, ignored
    assert folder.check(config) == "same"


def test_store_skips_unreadable_records(tmp_path):
    folder = ResultsFolder(tmp_path)
    folder.save_run({"key": "a", "status": "ok", "value": float("nan")})
    (tmp_path / "runs" / "broken.json").write_text("{not json")
    runs = folder.load_runs()
    assert list(runs) == ["a"] and runs["a"]["value"] is None
    assert not list((tmp_path / "runs").glob("*.tmp"))


def test_store_reads_an_archived_folder_and_a_record_in_runs_wins_over_the_archive(tmp_path):
    import tarfile

    published = ResultsFolder(tmp_path / "pub")
    published.save_run({"key": "a", "status": "ok", "value": 1.0})
    published.save_run({"key": "b", "status": "failed", "value": 2.0})
    (published.runs_dir / "notes.txt").write_text("not a record")
    stray = tmp_path / "stray.json"
    stray.write_text('{"key": "c", "status": "ok"}')
    with tarfile.open(published.runs_archive, "w:gz") as archive:
        archive.add(published.runs_dir, arcname="runs")
        archive.add(stray, arcname="other/c.json")  # a record outside runs/ is not this folder's
    for path in published.runs_dir.iterdir():
        path.unlink()
    published.runs_dir.rmdir()
    assert published.has_runs() and published.load_runs() == {
        "a": {"key": "a", "status": "ok", "value": 1.0},
        "b": {"key": "b", "status": "failed", "value": 2.0},
    }
    published.save_run({"key": "b", "status": "ok", "value": 3.0})  # retried after it was published
    assert published.load_runs()["b"]["value"] == 3.0 and len(published.load_runs()) == 2
    empty = ResultsFolder(tmp_path / "empty")
    empty.runs_dir.mkdir(parents=True)
    with tarfile.open(empty.runs_archive, "w:gz"):
        pass
    assert not empty.has_runs() and empty.load_runs() == {}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": "nope"}, "unknown task 'nope'"),
        ({"model": "fnoo"}, r"unknown model 'fnoo' \(did you mean 'fno'\?\)"),
        ({"methods": ("baseline", "tbb")}, "unknown method 'tbb'"),
        ({"model_params": {"widht": 3}}, "model 'mlp'.*widht"),
        ({"task_params": {"n_samples": 0}}, "n_samples must be a positive integer"),
        ({"method_options": {"tb": {"s_mx": 1}}}, r"unknown TempBalance option\(s\) \['s_mx'\]"),
        (
            {"method_options": {"llrd": {"blocks": "nomatch"}}, "methods": ("llrd",)},
            "cannot train model 'mlp'",
        ),
        ({"data": "some.npz"}, "does not read --data"),
        ({"device": "cuda:7"} if not torch.cuda.is_available() else {"device": "nonsense"}, "device"),
    ],
)
def test_bad_input_fails_before_training(tmp_path, changes, message):
    config = tiny_config(tmp_path / "out", **changes)
    with pytest.raises(ValueError, match=message):
        prepare(config)


@pytest.mark.slow
def test_plots_are_written(tmp_path):
    config = tiny_config(
        tmp_path / "out", methods=("baseline", "tb", "tb_frozen"), lrs=(1e-2, 3e-3), analyze_layers=True
    )
    outcome = quiet(config, plots=True)
    names = sorted(p.name for p in outcome.plot_paths)
    assert names == [
        "error_vs_fraction.png",
        "factors_over_time.png",
        "layer_alphas.png",
        "lr_grid.png",
        "relative_gain.png",
    ]
    for path in outcome.plot_paths:
        assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"
    record = next(r for r in outcome.records if r["method"] == "tb")
    assert {"name", "alpha"} <= set(record["layers"][0])
    assert "![layer_alphas](plots/layer_alphas.png)" in outcome.summary_markdown


def test_a_step_budget_gives_every_fraction_the_same_number_of_updates(tmp_path):
    config = tiny_config(tmp_path / "out", steps=7, methods=("baseline", "tb"))
    prepared = prepare(config)
    records = [execute_run(prepared, RunSpec(f, 0, "tb", (("lr", 1e-2),))) for f in (0.5, 1.0)]
    assert [r["steps"] for r in records] == [7, 7]
    # 12 samples in batches of 8 = 2 steps per epoch: 4 epochs, the last cut short, one TB recompute per epoch
    assert records[0]["tb_recomputes"] == 4 and len(records[0]["epoch_losses"]) == 4


def test_tables_show_ties_as_ties_not_as_losses_or_a_bold_winner():
    from modelbalance.experiments.report import comparison_frame, comparison_table, mean_std_table

    frame = pd.DataFrame(
        {
            "fraction": [1.0] * 4,
            "n_train": [8] * 4,
            "method": ["baseline", "baseline", "tb", "tb"],
            "seed": [0, 1, 0, 1],
            "accuracy": [0.8, 0.9, 0.8, 0.9],  # the same accuracy, seed for seed
            "selected": [True] * 4,
            "status": ["ok"] * 4,
        }
    )
    means = mean_std_table(frame, "accuracy", "max", ["baseline", "tb"], {1.0: "all"})
    assert "**" not in means  # neither method has the best mean
    comparisons = comparison_frame(frame, metric="accuracy", direction="max", n_boot=100)
    table = comparison_table(comparisons, "accuracy", {1.0: "all"})
    assert "| 0/2, 2 tied |" in table
    frame.loc[3, "accuracy"] = 0.95
    assert "**0.875" in mean_std_table(frame, "accuracy", "max", ["baseline", "tb"], {1.0: "all"})
