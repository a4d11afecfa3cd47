"""ExperimentConfig: files, validation, identity hashes."""

import json

import pytest

from modelbalance.experiments.config import ExperimentConfig, read_config_file

TOML = """
task = "toy"
model = "mlp"
fractions = [0.25, 1.0]
seeds = [0, 1, 2]
methods = ["baseline", "tb"]
lrs = [1e-3, 3e-3]
epochs = 4

[task_params]
n_samples = 32

[method_options.tb_strong]
base = "tb"
s_max = 1.0
"""

YAML = """
task: toy
model: mlp
fractions: [0.25, 1.0]
seeds: [0, 1, 2]
methods: [baseline, tb]
lrs: [0.001, 0.003]
epochs: 4
task_params:
  n_samples: 32
method_options:
  tb_strong:
    base: tb
    s_max: 1.0
"""


def test_toml_and_yaml_give_the_same_config(tmp_path):
    (tmp_path / "c.toml").write_text(TOML)
    (tmp_path / "c.yaml").write_text(YAML)
    from_toml = ExperimentConfig.from_file(tmp_path / "c.toml")
    from_yaml = ExperimentConfig.from_file(tmp_path / "c.yaml")
    assert from_toml == from_yaml
    assert from_toml.fractions == (0.25, 1.0) and from_toml.lrs == (1e-3, 3e-3)
    assert from_toml.task_params == {"n_samples": 32}
    assert from_toml.method_spec("tb_strong") == ("tb", {"s_max": 1.0})


def test_experiment_table_is_accepted(tmp_path):
    (tmp_path / "c.toml").write_text('[experiment]\ntask = "darcy"\n')
    assert ExperimentConfig.from_file(tmp_path / "c.toml").task == "darcy"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('taks = "toy"', r"unknown config key\(s\): 'taks' \(did you mean 'task'\?\)"),
        ("fractions = [0.0, 0.5]", r"fraction 0.0 is outside \(0, 1\]"),
        ("fractions = [1.5]", r"fraction 1.5 is outside"),
        ('optimizer = "lion"', "unknown optimizer 'lion'"),
        ("seeds = [0, 0]", "seeds has duplicates"),
        ("lrs = [-1e-3]", "must be positive"),
        ("epochs = 0", "epochs must be a positive integer"),
        ("seeds = [0.5]", "seeds must be integers"),
        ("val_size = 1.5", "val_size"),
        (
            "method_params = { tb = { s_max = 1 } }",
            r"'method_params' \(the config key for --method-param is 'method_options'\)",
        ),
        ('seeds = "5-1"', "seeds: the range 5-1 runs backwards; write 1-5"),
        ("[lora]\nr = 4", r"lora settings \['r'\] apply only with finetune = 'lora'"),
    ],
)
def test_bad_values_name_the_field(tmp_path, text, message):
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(ValueError, match=message):
        ExperimentConfig.from_file(tmp_path / "c.toml")


def _child(text: str, parent: str = "epochs = 3\n") -> dict[str, str]:
    """Files for a case read from c.toml: a config that extends p.toml and adds ``text``."""
    return {"c.toml": 'extends = "p.toml"\n' + text, "p.toml": parent}


@pytest.mark.parametrize(
    ("files", "error", "message"),
    [
        ({}, FileNotFoundError, "config file not found"),
        ({"c.ini": "[x]"}, ValueError, r"\.toml, \.yaml, \.yml or \.json"),
        ({"c.toml": "task = "}, ValueError, "invalid TOML"),
        ({"c.yaml": "- 1\n- 2\n"}, ValueError, "top level"),
        (
            {"c.toml": 'extends = "b.toml"\n', "b.toml": 'extends = "c.toml"\n'},
            ValueError,
            r"b\.toml: extends makes a cycle: .*c\.toml -> .*b\.toml -> .*c\.toml",
        ),
        ({"c.toml": 'extends = "gone.toml"\n'}, FileNotFoundError, r"gone\.toml \(extended by .*c\.toml\)"),
        ({"c.toml": "extends = 3\n"}, ValueError, "extends must be the path of another config file"),
        (
            {"c.yaml": "extends: p.toml\ntask_params: null\n", "p.toml": "[task_params]\nn_samples = 8\n"},
            ValueError,
            r'c\.yaml: task_params is empty \(null\).*unset = \["task_params"\]',
        ),
        ({"c.toml": 'unset = ["epochs"]\nepochs = 3\n'}, ValueError, "unset .* needs extends"),
        (
            _child('unset = ["task_params.noise"]\n', parent="[task_params]\nn = 8\n"),
            ValueError,
            r"c\.toml: unset names task_params\.noise, which the config it extends does not set",
        ),
        (
            _child('unset = "epochs"\n'),
            ValueError,
            "unset must be a list of setting names",
        ),
        (
            _child('unset = ["epochs.x"]\n'),
            ValueError,
            "unset names epochs.x, but the config it extends sets as a value, not a table epochs",
        ),
        (
            _child('unset = ["task_params..n"]\n', parent="[task_params]\nn = 8\n"),
            ValueError,
            r"unset name 'task_params\.\.n' has an empty part",
        ),
        (
            _child('unset = ["epochs", "epochs"]\n'),
            ValueError,
            "unset names epochs more than once",
        ),
        (
            _child('[experiment]\nextends = "p.toml"\n'),
            ValueError,
            r"extends is given both above and inside \[experiment\]",
        ),
    ],
    ids=[
        "missing",
        "suffix",
        "toml",
        "top-level",
        "cycle",
        "missing-parent",
        "not-a-path",
        "null",
        "unset-alone",
        "unset-unknown",
        "unset-string",
        "unset-through-a-value",
        "unset-empty-part",
        "unset-twice",
        "extends-twice",
    ],
)
def test_file_errors(tmp_path, files, error, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    read = next(iter(files), "missing.toml")  # the first file named is the one read
    with pytest.raises(error, match=message):
        read_config_file(tmp_path / read)


def test_comma_strings_and_replace():
    config = ExperimentConfig(fractions="0.1, 0.5", seeds="3,4", methods="baseline,tb", lrs="1e-3")
    assert config.fractions == (0.1, 0.5) and config.seeds == (3, 4) and config.methods == ("baseline", "tb")
    changed = config.replace(epochs=7, data=None)
    assert changed.epochs == 7 and changed.seeds == (3, 4) and config.epochs == 20


def test_run_hash_ignores_sweep_axes_but_not_training_settings():
    config = ExperimentConfig(task="toy", model="mlp")
    same_runs = config.replace(
        seeds=(5, 6), fractions=(0.5,), lrs=(1e-2, 1e-3), out="elsewhere", device="cpu"
    )
    assert config.run_hash("tb") == same_runs.run_hash("tb")
    assert config.run_hash("tb") != config.replace(epochs=21).run_hash("tb")
    assert config.run_hash("tb") != config.run_hash("baseline")
    # options of one method change only that method's runs
    tuned = config.replace(method_options={"tb": {"s_max": 1.0}})
    assert tuned.run_hash("tb") != config.run_hash("tb")
    assert tuned.run_hash("baseline") == config.run_hash("baseline")


def test_differences_skip_presentation_fields():
    config = ExperimentConfig()
    assert config.differences(config.replace(out="x", device="cpu")) == []
    assert config.differences(config.replace(epochs=3, seeds=(9,))) == ["seeds", "epochs"]


def test_variant_chains_are_refused():
    config = ExperimentConfig(method_options={"a": {"base": "tb"}, "b": {"base": "a"}})
    with pytest.raises(ValueError, match="chain only one level"):
        config.method_spec("b")


def test_a_new_subset_axis_replaces_the_old_one():
    config = ExperimentConfig(shots=(4, 16))
    assert config.replace(sizes=(8,)).shots is None and config.replace(sizes=(8,)).sizes == (8,)
    assert config.replace(seeds=(1,)).shots == (4, 16)
    assert ExperimentConfig(sizes=(8,)).replace(fractions=(0.5,)).sizes is None


def test_extends_merges_tables_and_replaces_the_rest(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "parent.toml").write_text(TOML)
    (tmp_path / "child.yaml").write_text(
        "extends: base/parent.toml\n"
        "sizes: [8, 16]\n"  # replaces the parent's fractions
        "seeds: [5]\n"
        "task_params: {noise: 0.1}\n"
        "method_options: {tb_strong: {s_max: 2.0}, tb: {min_eigs: 12}}\n"
    )
    child = ExperimentConfig.from_file(tmp_path / "child.yaml")
    parent = ExperimentConfig.from_file(tmp_path / "base" / "parent.toml")
    assert child.fractions is None and child.sizes == (8, 16) and child.seeds == (5,)
    assert child.task_params == {"n_samples": 32, "noise": 0.1}
    assert child.method_spec("tb_strong") == ("tb", {"min_eigs": 12, "s_max": 2.0})
    assert child.differences(parent) == ["fractions", "sizes", "seeds", "task_params", "method_options"]
    # a chain: the grandchild sees both ancestors; the saved config.json holds the resolved values, no "extends"
    (tmp_path / "deeper").mkdir()  # each file's parent is found beside that file, not beside the first one
    (tmp_path / "deeper" / "grandchild.toml").write_text(
        '[experiment]\nextends = "../child.yaml"\nlrs = [1e-2]\n'
    )
    grandchild = ExperimentConfig.from_file(tmp_path / "deeper" / "grandchild.toml")
    assert grandchild.lrs == (1e-2,) and grandchild.sizes == (8, 16) and grandchild.epochs == 4
    assert "extends" not in grandchild.to_dict()


def test_unset_removes_inherited_settings(tmp_path):
    (tmp_path / "p.toml").write_text("tune_seeds = [100]\n" + TOML + "[method_options.tb]\nmin_eigs = 12\n")
    (tmp_path / "c.toml").write_text(
        'extends = "p.toml"\nunset = ["tune_seeds", "method_options.tb_strong.s_max", "task_params"]\n'
        "[method_options.tb]\nxmin_pos = 1.5\n"
    )
    child = ExperimentConfig.from_file(tmp_path / "c.toml")
    parent = ExperimentConfig.from_file(tmp_path / "p.toml")
    assert (
        parent.tune_seeds == (100,) and child.tune_seeds is None and child.effective_tune_seeds() == (0, 1, 2)
    )
    assert child.method_options == {"tb_strong": {"base": "tb"}, "tb": {"min_eigs": 12, "xmin_pos": 1.5}}
    assert child.task_params == {} and child.epochs == 4
    # unset and set again: the table is replaced whole instead of merged
    (tmp_path / "r.toml").write_text(
        'extends = "p.toml"\nunset = ["method_options.tb"]\n[method_options.tb]\nxmin_pos = 1.5\n'
    )
    assert ExperimentConfig.from_file(tmp_path / "r.toml").method_options["tb"] == {"xmin_pos": 1.5}
    # a grandparent's key, and a grandchild sees the removal; inside an [experiment] table too
    (tmp_path / "g.toml").write_text('[experiment]\nextends = "c.toml"\nunset = ["epochs"]\n')
    grandchild = ExperimentConfig.from_file(tmp_path / "g.toml")
    assert grandchild.tune_seeds is None and grandchild.epochs == ExperimentConfig().epochs
    # a subset axis: unset alone (back to the default fractions), or unset and replaced by another or the same axis
    assert ExperimentConfig.from_file(tmp_path / "c.toml").fractions == (0.25, 1.0)
    for text, axis, value in [
        ('unset = ["fractions"]\n', "fractions", ExperimentConfig().fractions),
        ('unset = ["fractions"]\nsizes = [10]\n', "sizes", (10,)),
        ('unset = ["fractions"]\nfractions = [0.5]\n', "fractions", (0.5,)),
    ]:
        (tmp_path / "a.toml").write_text('extends = "p.toml"\n' + text)
        assert getattr(ExperimentConfig.from_file(tmp_path / "a.toml"), axis) == value, text
    # above an [experiment] table, like extends
    (tmp_path / "e.toml").write_text('extends = "p.toml"\nunset = ["tune_seeds"]\n[experiment]\nepochs = 2\n')
    assert ExperimentConfig.from_file(tmp_path / "e.toml").tune_seeds is None


def test_extends_above_an_experiment_table_and_through_a_link(tmp_path):
    (tmp_path / "p.toml").write_text('task = "toy"\n[task_params]\nn_samples = 8\n')
    (tmp_path / "f.toml").write_text('extends = "p.toml"\n[experiment]\nmodel = "mlp"\n')
    assert read_config_file(tmp_path / "f.toml") == {
        "task": "toy",
        "task_params": {"n_samples": 8},
        "model": "mlp",
    }
    (tmp_path / "links").mkdir()  # a linked config finds its parent beside the real file
    (tmp_path / "links" / "f.toml").symlink_to(tmp_path / "f.toml")
    assert read_config_file(tmp_path / "links" / "f.toml")["task"] == "toy"


@pytest.mark.parametrize(
    ("seeds", "expected"), [("0-2", (0, 1, 2)), ("0, 3, 5-7", (0, 3, 5, 6, 7)), (4, (4,))]
)
def test_seeds_in_a_file_take_the_same_ranges_as_the_flag(tmp_path, seeds, expected):
    (tmp_path / "c.toml").write_text(f"seeds = {json.dumps(seeds)}\n")
    assert ExperimentConfig.from_file(tmp_path / "c.toml").seeds == expected
