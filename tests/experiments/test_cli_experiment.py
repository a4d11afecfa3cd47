"""``modelbalance experiment`` / ``demo`` through the CLI: a tiny sweep, resume, refusal, one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelbalance.cli.main import main

TINY = [
    "experiment",
    "--task",
    "toy",
    "--model",
    "mlp",
    "--fractions",
    "0.5,1",
    "--seeds",
    "0,1",
    "--methods",
    "baseline,tb",
    "--epochs",
    "2",
    "--batch-size",
    "8",
    "--val-size",
    "6",
    "--no-progress",
    "--no-plots",
    "--task-param",
    "n_samples=30",
    "--task-param",
    "n_test=8",
    "--task-param",
    "resolution=16",
    "--model-param",
    "width=16",
    "--model-param",
    "depth=2",
]


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_tiny_sweep_in_process(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli([*TINY, "--out", out], capsys)
    assert code == 0, stderr
    assert "| fraction | n_train | baseline | tb |" in stdout and "Wilcoxon p" in stdout
    assert f"summary: {out / 'summary.md'}" in stdout
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 8 and set(frame["method"]) == {"baseline", "tb"}
    assert {"task", "model", "fraction", "seed", "method", "nrmse"} <= set(frame.columns)
    # the same command again reuses everything
    code, stdout, _ = run_cli([*TINY, "--out", out], capsys)
    assert code == 0 and "runs: 0 new, 8 reused, 0 failed" in stdout


def test_resume_takes_the_saved_config_and_extends_it(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli([*TINY, "--out", out], capsys)[0] == 0
    code, stdout, stderr = run_cli(
        ["experiment", "--resume", "--out", out, "--seeds", "0-2", "--no-progress", "--no-plots"], capsys
    )
    assert code == 0, stderr
    assert "runs: 4 new, 8 reused, 0 failed" in stdout


def test_reuse_takes_matching_runs_from_another_folder_and_copies_them(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    assert run_cli([*TINY, "--out", first], capsys)[0] == 0
    code, stdout, stderr = run_cli([*TINY, "--seeds", "0-2", "--out", second, "--reuse", first], capsys)
    assert code == 0, stderr
    assert "runs: 4 new, 8 reused, 0 failed" in stdout
    frame_first, frame_second = pd.read_csv(first / "results.csv"), pd.read_csv(second / "results.csv")
    shared = frame_second[frame_second["seed"] < 2].reset_index(drop=True)
    pd.testing.assert_series_equal(shared["nrmse"], frame_first["nrmse"])
    assert len(list((second / "runs").glob("*.json"))) == 12  # the folder stands on its own
    # a run that trains differently is not taken: other epochs -> nothing matches
    code, stdout, _ = run_cli([*TINY, "--epochs", "3", "--out", tmp_path / "third", "--reuse", first], capsys)
    assert code == 0 and "runs: 8 new, 0 reused" in stdout


def test_reuse_of_a_missing_folder_is_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run_cli([*TINY, "--out", out, "--reuse", tmp_path / "nowhere"], capsys)
    assert code == 2 and stderr.count("\n") == 1 and "--reuse" in stderr and "no results folder" in stderr
    assert not out.exists()


def test_changed_config_is_refused_then_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli([*TINY, "--out", out], capsys)[0] == 0
    code, _, stderr = run_cli([*TINY, "--out", out, "--epochs", "3"], capsys)
    assert code == 2
    assert stderr.count("\n") == 1 and "different config: epochs (2 -> 3)" in stderr
    code, stdout, _ = run_cli([*TINY, "--out", out, "--epochs", "3", "--overwrite"], capsys)
    assert code == 0 and "runs: 8 new, 0 reused" in stdout


def test_config_file_with_flag_overrides(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text(
        'task = "toy"\nmodel = "mlp"\nfractions = [1.0]\nseeds = [0]\nmethods = ["baseline"]\nepochs = 1\n'
        "val_size = 4\n[task_params]\nn_samples = 20\nn_test = 4\nresolution = 16\n"
    )
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        ["experiment", "--config", config, "--seeds", "3,4", "--out", out, "--no-progress", "--no-plots"],
        capsys,
    )
    assert code == 0, stderr
    frame = pd.read_csv(out / "results.csv")
    assert sorted(frame["seed"]) == [3, 4] and set(frame["n_train"]) == {16}
    # a config that extends this one: its sizes replace the fractions, its task_params merge into the parent's
    (tmp_path / "studies").mkdir()
    child = tmp_path / "studies" / "smaller.toml"
    child.write_text('extends = "../sweep.toml"\nsizes = [8]\n[task_params]\nn_samples = 24\n')
    out = tmp_path / "out_child"
    code, _, stderr = run_cli(
        ["experiment", "--config", child, "--out", out, "--no-progress", "--no-plots"], capsys
    )
    assert code == 0, stderr
    frame = pd.read_csv(out / "results.csv")
    assert list(frame["seed"]) == [0] and list(frame["n_train"]) == [8]
    saved = json.loads((out / "config.json").read_text())
    assert saved["task_params"] == {"n_samples": 24, "n_test": 4, "resolution": 16} and "extends" not in saved
    # a subset flag replaces the file's axis, whichever it was
    code, stdout, stderr = run_cli(
        ["experiment", "--config", child, "--fractions", "0.5", "--out", tmp_path / "o3", "--dry-run"], capsys
    )
    assert code == 0, stderr
    assert "fraction 0.5: n_train 10" in stdout  # not the sizes the child file set


def test_a_sweep_given_absolute_sizes_names_its_subsets_by_size_not_by_fraction(tmp_path, capsys):
    """``--sizes 10,20`` on a 24-sample pool: tables, console and plots say ``n=10``, not the fraction 0.4167 of this
    pool (which reads like a fraction of the paper's pool)."""
    out = tmp_path / "out"
    command = [*TINY, "--out", out]
    command[command.index("--fractions") : command.index("--fractions") + 2] = ["--sizes", "10,20"]
    command.remove("--no-plots")
    code, stdout, stderr = run_cli(command, capsys)
    assert code == 0, stderr
    summary = (out / "summary.md").read_text()
    assert "| size | n_train | baseline | tb |" in summary and "| size | n_train | baseline | tb |" in stdout
    assert "| n=10 | 10 |" in summary and "| n=20 | tb |" in summary
    assert "0.4167" not in summary and "0.8333" not in summary
    assert (out / "plots" / "relative_gain.png").is_file()


def test_a_finished_sweep_reruns_from_its_own_config_json(tmp_path, capsys):
    """A results folder's config.json is a config: into a new folder it trains the same runs to the same numbers;
    in its own folder it trains nothing and writes the reports again."""
    out = tmp_path / "out"
    assert run_cli([*TINY, "--out", out], capsys)[0] == 0
    again = tmp_path / "again"
    code, stdout, stderr = run_cli(["experiment", "--config", out / "config.json", "--out", again], capsys)
    assert code == 0, stderr
    assert "runs: 8 new, 0 reused" in stdout
    columns = ["fraction", "seed", "method", "lr", "nrmse", "val_nrmse", "final_train_loss"]
    first, second = (pd.read_csv(folder / "results.csv")[columns] for folder in (out, again))
    pd.testing.assert_frame_equal(first, second)
    (out / "summary.md").unlink()
    code, stdout, stderr = run_cli(["experiment", "--config", out / "config.json", "--no-progress"], capsys)
    assert code == 0, stderr
    assert "runs: 0 new, 8 reused" in stdout and (out / "summary.md").is_file()
    broken = tmp_path / "broken.json"
    broken.write_text('{"task": "toy",')
    code, _, stderr = run_cli(["experiment", "--config", broken, "--out", tmp_path / "b"], capsys)
    assert code == 2 and stderr.count("\n") == 1 and "invalid JSON" in stderr


def test_a_published_folder_with_its_runs_archived_is_re_reported_and_extended_without_retraining(
    tmp_path, capsys
):
    """A published folder keeps its runs as runs.tar.gz and has moved since it ran: its config.json re-reports it
    where it lies, and --reuse takes its archived runs, so extending it trains only what is new."""
    import shutil
    import tarfile

    first = tmp_path / "first"
    assert run_cli([*TINY, "--out", first], capsys)[0] == 0
    published = tmp_path / "docs" / "published"
    published.parent.mkdir()
    with tarfile.open(first / "runs.tar.gz", "w:gz") as archive:
        archive.add(first / "runs", arcname="runs")
    shutil.rmtree(first / "runs")
    (first / "summary.md").unlink()
    first.rename(published)  # config.json still names "first" as its out
    config_text = (published / "config.json").read_text()
    code, stdout, stderr = run_cli(
        ["experiment", "--config", published / "config.json", "--no-progress"], capsys
    )
    assert code == 0, stderr
    assert "runs: 0 new, 8 reused" in stdout and (published / "summary.md").is_file()
    assert not first.exists() and (published / "config.json").read_text() == config_text
    more = tmp_path / "more"
    extend = ["experiment", "--config", published / "config.json", "--out", more, "--seeds", "0,1,2",
              "--reuse", published, "--no-progress", "--no-plots"]  # fmt: skip
    code, stdout, stderr = run_cli([*extend, "--dry-run"], capsys)
    assert code == 0 and f"12 runs -> {more}: 8 stored or reusable, 4 to train\n" in stdout, stderr
    code, stdout, stderr = run_cli(extend, capsys)
    assert code == 0, stderr
    assert "runs: 4 new, 8 reused" in stdout
    (published / "runs.tar.gz").write_bytes(b"not an archive")
    for args in (["--out", tmp_path / "other", "--reuse", published], []):
        code, _, stderr = run_cli(["experiment", "--config", published / "config.json", *args], capsys)
        assert code == 2 and stderr.count("\n") == 1 and "not a readable run archive" in stderr


def test_set_reaches_any_config_field(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        [*TINY, "--out", out, "--set", "min_lr_ratio=0.5", "--set", "momentum=0.5"], capsys
    )
    assert code == 0, stderr
    import json

    saved = json.loads((out / "config.json").read_text())
    assert saved["min_lr_ratio"] == 0.5 and saved["momentum"] == 0.5
    code, _, stderr = run_cli([*TINY, "--out", tmp_path / "o2", "--set", "min_lr=0.5"], capsys)
    assert code == 2 and "did you mean 'min_lr_ratio'" in stderr


def test_set_with_a_dotted_key_sets_one_entry_of_a_table_field(tmp_path, capsys):
    import json

    config = tmp_path / "base.toml"
    config.write_text(
        'task = "toy"\nmodel = "mlp"\nfractions = [1.0]\nseeds = [0]\nmethods = ["baseline"]\nlrs = [0.01]\n'
        "epochs = 1\ntask_params = { n_samples = 24, n_test = 4 }\n"
    )
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        ["experiment", "--config", config, "--out", out, "--no-progress", "--no-plots",
         "--set", "task_params.n_test=6", "--set", "method_options.tb.min_eigs=12"],
        capsys,
    )  # fmt: skip
    assert code == 0, stderr
    saved = json.loads((out / "config.json").read_text())
    assert saved["task_params"] == {"n_samples": 24, "n_test": 6}  # the file's other entry is kept
    assert saved["method_options"] == {"tb": {"min_eigs": 12}}
    code, _, stderr = run_cli([*TINY, "--out", tmp_path / "o2", "--set", "lr_grid.x=1"], capsys)
    assert code == 2 and "'lr_grid' is not a table field" in stderr


def test_plugin_method_failure_is_recorded_and_exit_status_is_1(tmp_path, capsys):
    plugin = tmp_path / "explode_plugin.py"
    plugin.write_text(
        "from modelbalance.experiments.methods import Method\n"
        "from modelbalance.experiments.registry import METHODS\n\n"
        "class Explode(Method):\n"
        "    def attach(self, model, optimizer, context):\n"
        "        if context.seed == 1:\n"
        "            raise RuntimeError('exploded')\n"
        "        return super().attach(model, optimizer, context)\n\n"
        "if 'explode' not in METHODS:\n"
        "    METHODS.register('explode')(Explode)\n"
    )
    out = tmp_path / "out"
    args = [a if a != "baseline,tb" else "baseline,explode" for a in TINY]
    code, stdout, stderr = run_cli([*args, "--plugin", plugin, "--out", out], capsys)
    from modelbalance.experiments.registry import METHODS

    METHODS.unregister("explode")
    assert code == 1 and "2 run(s) failed" in stderr
    frame = pd.read_csv(out / "results.csv")
    assert (frame.loc[frame["status"] == "failed", "error"] == "RuntimeError: exploded").all()
    assert (frame["status"] == "ok").sum() == 6


def test_list_and_dry_run(tmp_path, capsys):
    code, stdout, _ = run_cli(["experiment", "--list"], capsys)
    assert code == 0
    for name in ("burgers", "darcy", "advection", "fno", "unet", "baseline", "tb", "tb_shuffle", "llrd"):
        assert f"  {name} " in stdout
    out = tmp_path / "out"
    code, stdout, _ = run_cli([*TINY, "--out", out, "--dry-run"], capsys)
    assert code == 0 and "8 runs" in stdout and not out.exists()
    assert "params, trained from scratch)" in stdout  # not "full fine-tuning": nothing here was pretrained


def test_epochs_on_the_command_line_replace_a_step_budget_in_the_config_file(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(
        'task = "toy"\nmodel = "mlp"\nfractions = [1.0]\nseeds = [0]\nmethods = ["baseline"]\nlrs = [0.01]\n'
        "steps = 97\nbatch_size = 8\ntask_params = { n_samples = 24, n_test = 4 }\n"
    )
    base = ["experiment", "--config", config, "--out", tmp_path / "out", "--dry-run"]
    code, stdout, stderr = run_cli(base, capsys)
    assert code == 0 and "97 steps per run" in stdout, stderr
    code, stdout, stderr = run_cli([*base, "--epochs", "1"], capsys)
    assert code == 0, stderr
    assert "97 steps per run" not in stdout and " steps per run" in stdout


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "nope"], "unknown task 'nope'"),
        (["--model", "resnet"], "unknown model 'resnet'"),
        (["--methods", "baseline,magic"], "unknown method 'magic'"),
        (["--fractions", "0,0.5"], r"fraction 0.0 is outside \(0, 1\]"),
        (["--fractions", "1.5"], r"fraction 1.5 is outside \(0, 1\]"),
        (["--fractions", "half"], "fractions must be numbers"),
        (["--config", "missing.toml"], "config file not found"),
        (["--task-param", "novalue"], "expected KEY=VALUE"),
        (["--method-param", "s_max=1"], "METHOD.KEY=VALUE"),
        (["--resume", "--overwrite"], "contradict"),
        (["--threads", "-1"], "--threads"),
        (["--seeds", "5-1"], "the range 5-1 runs backwards; write 1-5"),
        (["--steps", "3"], "give --steps or --epochs, not both"),
        (["--set", "steps=3"], "give --steps or --epochs, not both"),
        (
            [
                "--method-param",
                "plain.base=baseline",
                "--method-param",
                "plain.typo=1",
                "--methods",
                "baseline,plain",
            ],
            "method 'plain': .*typo",  # named by its sweep name, with the option (was "unknown method 'plain'")
        ),
        (["--set", "lora.r=4"], "apply only with finetune = 'lora'"),
        (
            ["--task", "burgers", "--task-param", "n_sampels=8"],
            r"task 'burgers' has no option 'n_sampels' \(did you mean 'n_samples'\?\); its options "
            r"\(--task-param\): n_samples, n_test, resolution",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli([*TINY, "--out", out, *extra], capsys)
    assert code == 2
    assert stderr.startswith("error: ") and stderr.count("\n") == 1
    import re

    assert re.search(message, stderr), stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("make_file", "message"),
    [
        (lambda d: d / "absent.npz", "no such file"),
        (lambda d: _npz(d / "xy.npz", x=np.zeros((8, 16)), y=np.zeros((8, 16))), "missing array 'inputs'"),
        (lambda d: _npz(d / "n.npz", inputs=np.zeros((8, 16)), targets=np.zeros((6, 16))), "'targets' has 6"),
    ],
)
def test_bad_data_file_is_a_one_line_error(tmp_path, capsys, make_file, message):
    path = make_file(tmp_path)
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        ["experiment", "--task", "burgers", "--model", "fno", "--data", path, "--out", out, "--no-progress"],
        capsys,
    )
    assert code == 2 and stderr.count("\n") == 1 and message in stderr, stderr
    assert not out.exists()


def test_resume_without_a_saved_sweep(tmp_path, capsys):
    code, _, stderr = run_cli(["experiment", "--resume", "--out", tmp_path / "empty"], capsys)
    assert code == 2 and "holds no config.json" in stderr


def test_demo_refuses_a_folder_with_other_results(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "summary.md").write_text("mine")
    code, _, stderr = run_cli(["demo", "--out", out], capsys)
    assert code == 2 and "without a config.json" in stderr and (out / "summary.md").read_text() == "mine"


@pytest.mark.slow
def test_console_script_runs_a_sweep(tmp_path):
    script = Path(sys.executable).parent / "modelbalance"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "modelbalance.cli.main"]
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run(
        [*command, *TINY, "--methods", "baseline,tb_frozen", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "| fraction | n_train | baseline | tb_frozen |" in result.stdout
    assert len(pd.read_csv(out / "results.csv")) == 8
    bad = subprocess.run(
        [*command, "experiment", "--task", "toy", "--fractions", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: fraction 2.0 is outside")


def test_bad_executor_options_are_usage_errors(tmp_path, capsys):
    code, _, err = run_cli([*TINY, "--out", tmp_path / "out", "--workers", "0"], capsys)
    assert code == 2 and "--workers must be at least 1" in err
    code, _, err = run_cli([*TINY, "--out", tmp_path / "out", "--ray-address", "auto"], capsys)
    assert code == 2 and "--executor ray" in err


def test_the_examples_in_experiment_help_parse_into_valid_configs():
    import shlex

    from modelbalance.cli.experiment import _EXAMPLES, build_config
    from modelbalance.cli.main import build_parser

    commands = " ".join(_EXAMPLES.splitlines()[1:]).replace("\\ ", " ").split("modelbalance ")[1:]
    parsed = 0
    for command in commands:
        words = shlex.split(command.split("#")[0])
        if "--task" in words or "--data" in words:
            config = build_config(build_parser().parse_args(words))
            assert config.out.startswith("results/")
            parsed += 1
    assert parsed == 4


def test_a_text_task_without_a_model_runs_on_minilm_and_a_typed_model_is_kept(tmp_path):
    from modelbalance.cli.experiment import build_config
    from modelbalance.cli.main import build_parser

    def model_of(*words):
        return build_config(build_parser().parse_args(["experiment", *words])).model

    assert model_of("--task", "spam") == "minilm"
    assert model_of("--data", "reviews.csv") == "minilm"  # no --task: text classification
    assert model_of("--task", "glue", "--task-param", "name=rte") == "minilm"
    assert model_of("--task", "spam", "--model", "mpnet") == "mpnet"
    assert model_of("--task", "spam", "--model", "fno") == "fno"  # typed: kept, and refused by the runner
    assert model_of("--task", "burgers") == "fno"
    assert model_of("--task", "no_such_task") == "fno"  # the runner names the known tasks
    config = tmp_path / "sweep.toml"
    config.write_text('task = "wordnet"\nshots = [2]\n')
    assert model_of("--config", str(config)) == "minilm"
    config.write_text('task = "wordnet"\nmodel = "tiny_bert"\n')
    assert model_of("--config", str(config)) == "tiny_bert"
    assert model_of("--config", str(config), "--model", "minilm") == "minilm"


@pytest.mark.parametrize(
    ("model", "option", "message"),
    [
        (
            "fno",
            "widht=8",
            r"model 'fno' has no option 'widht' \(did you mean 'width'\?\); its options \(--model-param\): modes, "
            r"width, n_layers, .*domain_padding",  # neuraloperator FNO's own keywords too
        ),
        (
            "unet",
            "dept=2",
            r"model 'unet' has no option 'dept' \(did you mean 'depth'\?\); its options \(--model-param\): "
            r"width, depth, norm, padding_mode$",
        ),
    ],
)
def test_a_pde_models_option_typo_names_its_options(tmp_path, capsys, model, option, message):
    import re

    args = ["experiment", "--task", "toy", "--model", model, "--model-param", option, "--fractions", "0.5"]
    code, _, stderr = run_cli([*args, "--seeds", "0", "--out", tmp_path / "out", "--dry-run"], capsys)
    assert code == 2 and stderr.count("\n") == 1
    assert re.search(message, stderr.strip()), stderr
