"""Task and model plug-ins of the runner: the PDE adapter, user files, FNO/UNet builders, LLRD on an FNO."""

import numpy as np
import pytest
import torch

from modelbalance.experiments.config import ExperimentConfig
from modelbalance.experiments.methods import LayerwiseDecayMethod
from modelbalance.experiments.plan import RunSpec
from modelbalance.experiments.registry import MODELS, TASKS
from modelbalance.experiments.runner import _probe, execute_run, prepare
from modelbalance.experiments.tasks.pde import PDETask, field_metrics

ADVECTION = {"n_samples": 20, "n_test": 6, "resolution": 32}


def test_generated_pde_task_is_normalised_and_disjoint():
    data = TASKS.get("advection")(**ADVECTION).load()
    x_pool, y_pool = data.train_pool.tensors
    x_test, _ = data.test.tensors
    assert data.spec == {"in_channels": 1, "out_channels": 1, "grid": (32,), "n_dims": 1}
    assert x_pool.shape == (20, 1, 32) and x_test.shape == (6, 1, 32)
    assert abs(float(x_pool.mean())) < 1e-5 and float(x_pool.std()) == pytest.approx(1.0, rel=0.05)
    assert float(y_pool.pow(2).mean().sqrt()) == pytest.approx(1.0, rel=1e-5)
    # the test set comes from another seed: no test input equals a pool input
    assert torch.cdist(x_test.flatten(1), x_pool.flatten(1)).min() > 1e-3


def test_metrics_do_not_depend_on_the_target_scale():
    torch.manual_seed(0)
    prediction, target = torch.randn(4, 1, 16), torch.randn(4, 1, 16)
    scaled = field_metrics(3.7 * prediction, 3.7 * target)
    assert scaled == pytest.approx(field_metrics(prediction, target), rel=1e-5)


def test_user_npz_is_split_into_pool_and_test(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "pairs.npz"
    np.savez(path, inputs=rng.normal(size=(25, 16)), targets=rng.normal(size=(25, 16)))
    task = PDETask("burgers", data=str(path), seed=3, test_fraction=0.2)
    data = task.load()
    assert (len(data.train_pool), len(data.test)) == (20, 5)
    assert data.spec["grid"] == (16,) and "pairs.npz" in task.describe()
    # the split is seeded
    again = PDETask("burgers", data=str(path), seed=3).load()
    assert torch.equal(data.test.tensors[0], again.test.tensors[0])


def test_pde_task_option_mistakes():
    with pytest.raises(ValueError, match="loader options"):
        PDETask("burgers", data="x.npz", resolution=64)
    with pytest.raises(ValueError, match="apply to --data files only"):
        PDETask("burgers", stride=2)
    with pytest.raises(ValueError, match="loss"):
        PDETask("darcy", loss="l1")


@pytest.mark.parametrize("grid", [(32,), (16, 16)])
def test_model_builders_follow_the_task_grid(grid):
    spec = {"in_channels": 2, "out_channels": 1, "grid": grid}
    x = torch.zeros(3, 2, *grid)
    fno = MODELS.get("fno")(spec, modes=4, width=8, n_layers=2)
    unet = MODELS.get("unet")(spec, width=4, depth=2)
    assert fno(x).shape == unet(x).shape == (3, 1, *grid)
    with pytest.raises(ValueError, match="exceeds half"):
        MODELS.get("fno")(spec, modes=64)


def _fno_config(tmp_path, **changes):
    values = dict(
        task="advection",
        model="fno",
        fractions=(1.0,),
        seeds=(0,),
        methods=("tb", "llrd"),
        epochs=2,
        batch_size=8,
        val_size=4,
        task_params=ADVECTION,
        out=str(tmp_path / "out"),
        model_params={"modes": 4, "width": 8, "n_layers": 2},
        analyze_layers=False,
    )
    values.update(changes)
    return ExperimentConfig(**values)


def test_llrd_orders_fno_layers_by_data_flow(tmp_path):
    prepared = prepare(_fno_config(tmp_path))
    model = prepared.build_model(0)
    depths = LayerwiseDecayMethod().depths(model, lambda m: _probe(prepared, m))
    # neuraloperator registers `lifting` after the blocks; the probe puts it first (deepest)
    assert depths["lifting.fcs.0.weight"] == 3 and depths["projection.fcs.1.weight"] == 0
    assert depths["fno_blocks.convs.0.bias"] == 2 and depths["fno_blocks.convs.1.bias"] == 1


def test_tb_on_fno_balances_one_factor_per_block(tmp_path):
    prepared = prepare(_fno_config(tmp_path, spectral_conv=True))
    record = execute_run(prepared, RunSpec(1.0, 0, "tb", (("lr", 1e-3),)))
    assert record["status"] == "ok", record["error"]
    assert sorted(record["tb_factors"]) == ["fno_blocks.0", "fno_blocks.1"]
    # the spectral weights give the blocks a fitted alpha, so the factors move off 1
    assert any(abs(f - 1.0) > 1e-3 for f in record["tb_factors"].values())


@pytest.mark.parametrize("spectral_conv", [False, True])
def test_tb_over_llrd_splits_an_fno_depth_by_balanced_unit(tmp_path, spectral_conv):
    # an FNO block's depth holds balanced skip weights and (without spectral_conv) unbalanced spectral weights:
    # LLRD's one group per depth is split so that no group mixes units, and the run trains
    config = _fno_config(tmp_path, methods=("tb_llrd",), spectral_conv=spectral_conv)
    prepared = prepare(config)
    record = execute_run(prepared, RunSpec(1.0, 0, "tb_llrd", (("lr", 1e-3),)))
    assert record["status"] == "ok", record["error"]
    assert sorted(record["tb_factors"]) == ["fno_blocks.0", "fno_blocks.1"]
    assert any(abs(f - 1.0) > 1e-3 for f in record["tb_factors"].values()) == spectral_conv
