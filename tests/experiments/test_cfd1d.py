"""1D compressible Navier-Stokes: the solver against exact solutions and conservation, the generator and its
cache, PDEBench-layout files, and the autoregressive RolloutTask (rollout, loss, PDEBench's nRMSE, bad input)."""

import re

import numpy as np
import pytest
import torch

from modelbalance.experiments.pde import cfd1d
from modelbalance.experiments.pde.cfd1d import (
    CFDSolverError,
    conservative_to_primitive,
    primitive_to_conservative,
    rand_initial_conditions,
    riemann_exact,
    riemann_star,
    solve_cfd1d,
)
from modelbalance.experiments.pde.datasets import generate, generate_cfd1d
from modelbalance.experiments.pde.loaders import load_trajectories
from modelbalance.experiments.registry import MODELS, TASKS
from modelbalance.experiments.tasks.rollout import RolloutTask

SOD_LEFT, SOD_RIGHT = (1.0, 0.0, 1.0), (0.125, 0.0, 0.1)


def cell_average_ic(n, fields, sub=8):
    """Cell averages (of the conservative variables) of smooth primitive fields on [0, 1)."""
    xs = (np.arange(n * sub) + 0.5) / (n * sub)
    u = primitive_to_conservative(*(f(xs)[None] for f in fields))[0]
    return conservative_to_primitive(u.reshape(3, n, sub).mean(-1))


def totals(traj, gamma=cfd1d.GAMMA):
    """Total mass, momentum and energy of primitive trajectories (batch, 3, T, n) -> (batch, 3, T)."""
    return primitive_to_conservative(traj[:, 0], traj[:, 1], traj[:, 2], gamma).sum(axis=-1).swapaxes(1, 2)


# ------------------------------------------------------------------------------------------- exact Riemann


@pytest.mark.parametrize(
    "left, right, p_star, u_star",
    [  # Toro, Table 4.2 (gamma = 1.4): Sod, the 123 problem, the left half of the blast wave
        (SOD_LEFT, SOD_RIGHT, 0.30313, 0.92745),
        ((1.0, -2.0, 0.4), (1.0, 2.0, 0.4), 0.00189, 0.0),
        ((1.0, 0.0, 1000.0), (1.0, 0.0, 0.01), 460.894, 19.5975),
    ],
)
def test_exact_riemann_star_state_matches_toro(left, right, p_star, u_star):
    p, u = riemann_star(left, right, gamma=1.4)
    assert p == pytest.approx(p_star, rel=2e-4, abs=1e-5)
    assert u == pytest.approx(u_star, rel=2e-4, abs=1e-5)


def test_exact_riemann_solution_is_piecewise_consistent():
    xi = np.linspace(-3, 3, 601)
    rho, v, p = riemann_exact(SOD_LEFT, SOD_RIGHT, xi, gamma=1.4)
    assert rho[0] == 1.0 and p[0] == 1.0 and rho[-1] == 0.125 and p[-1] == 0.1
    assert np.all(np.diff(p) <= 1e-12)  # Sod: pressure falls monotonically left to right
    p_star, u_star = riemann_star(SOD_LEFT, SOD_RIGHT, gamma=1.4)
    plateau = (xi > 0.2) & (xi < 0.9)  # between the rarefaction tail and the contact
    assert np.allclose(p[plateau], p_star) and np.allclose(v[plateau], u_star)


# ------------------------------------------------------------------------------------------- solver


def sod_l1_error(n, limiter="vanleer"):
    x = (np.arange(n) + 0.5) / n
    rho = np.where(x < 0.5, 1.0, 0.125)
    p = np.where(x < 0.5, 1.0, 0.1)
    out = solve_cfd1d(
        rho,
        np.zeros(n),
        p,
        times=[0.0, 0.2],
        eta=0.0,
        zeta=0.0,
        gamma=1.4,
        length=1.0,
        boundary="transmissive",
        limiter=limiter,
    )
    sub = 16  # compare with cell averages of the exact solution
    xs = (np.arange(n * sub) + 0.5) / (n * sub)
    exact, _, _ = riemann_exact(SOD_LEFT, SOD_RIGHT, (xs - 0.5) / 0.2, gamma=1.4)
    return np.abs(out[0, 0, -1] - exact.reshape(n, sub).mean(-1)).mean()


def test_sod_shock_tube_converges_at_first_order_in_l1():
    # Measured (van Leer): 4.6e-3, 2.8e-3, 1.5e-3 at 100, 200, 400 cells; rates 0.75, 0.91 (0.92 at 800).
    errors = np.array([sod_l1_error(n) for n in (100, 200, 400)])
    rates = np.log2(errors[:-1] / errors[1:])
    assert errors[-1] < 2e-3
    assert np.all(rates > 0.65) and np.all(rates < 1.3), rates


def test_sod_other_limiters_also_converge():
    for limiter in ("minmod", "mc"):
        coarse, fine = sod_l1_error(100, limiter), sod_l1_error(200, limiter)
        assert fine < 0.7 * coarse


@pytest.mark.parametrize(
    "eta, zeta, viscosity, stepper",
    [(0.0, 0.0, "kinematic", "rk2"), (0.1, 0.1, "kinematic", "rk2"), (0.05, 0.02, "dynamic", "rk3")],
)
def test_periodic_domain_conserves_mass_momentum_and_energy(eta, zeta, viscosity, stepper):
    rho, v, p = rand_initial_conditions(3, 4, resolution=64)
    traj = solve_cfd1d(
        rho, v, p, times=np.linspace(0, 0.2, 3), eta=eta, zeta=zeta, viscosity=viscosity, time_stepper=stepper
    )
    total = totals(traj)
    scale = np.abs(primitive_to_conservative(rho, v, p)).sum(axis=-1)  # (batch, 3)
    drift = np.abs(total - total[:, :, :1]) / scale[:, :, None]
    print(f"max relative drift of mass/momentum/energy: {drift.max(axis=(0, 2))}")
    assert drift.max() < 1e-13
    assert not np.allclose(traj[:, :, -1], traj[:, :, 0], atol=1e-3)  # the flow did evolve


def test_smooth_viscous_flow_converges_at_second_order():
    # Measured: L1 errors 8.1e-4, 1.7e-4, 3.5e-5 at 32, 64, 128 cells against 512; rates 2.28, 2.27.
    fields = (
        lambda x: 1 + 0.2 * np.sin(2 * np.pi * x),
        lambda x: 0.3 * np.cos(2 * np.pi * x),
        lambda x: 1 + 0.2 * np.sin(2 * np.pi * x + 1.0),
    )

    def run(n):
        out = solve_cfd1d(
            *cell_average_ic(n, fields),
            times=[0.0, 0.1],
            eta=0.01,
            zeta=0.01,
            length=1.0,
            viscosity="dynamic",
        )
        return primitive_to_conservative(out[0, 0, -1], out[0, 1, -1], out[0, 2, -1])

    reference = run(512)
    errors = np.array([np.abs(run(n) - reference.reshape(3, n, -1).mean(-1)).mean() for n in (32, 64, 128)])
    rates = np.log2(errors[:-1] / errors[1:])
    assert np.all(rates > 1.8), rates


def test_positivity_in_strong_rarefactions_and_random_flows():
    n = 200  # Toro's 123 problem: two strong rarefactions, near-vacuum in the middle
    x = (np.arange(n) + 0.5) / n
    out = solve_cfd1d(
        np.ones(n),
        np.where(x < 0.5, -2.0, 2.0),
        np.full(n, 0.4),
        times=[0, 0.05, 0.15],
        eta=0.0,
        zeta=0.0,
        gamma=1.4,
        length=1.0,
        boundary="transmissive",
    )
    assert out[:, 0].min() > 0 and out[:, 2].min() > 0
    assert out[0, 0, -1].min() < 0.1  # the near-vacuum is there
    rho, v, p = rand_initial_conditions(0, 8, resolution=64)
    traj = solve_cfd1d(rho, v, p, times=np.linspace(0, 0.3, 4), eta=1e-8, zeta=1e-8)
    assert np.isfinite(traj).all() and traj[:, 0].min() > 0 and traj[:, 2].min() > 0


def test_per_sample_steps_make_samples_independent_of_their_batch():
    rho, v, p = rand_initial_conditions(1, 3, resolution=32)
    times = np.linspace(0, 0.1, 3)
    together = solve_cfd1d(rho, v, p, times=times, eta=0.1, zeta=0.1)
    alone = solve_cfd1d(rho[1], v[1], p[1], times=times, eta=0.1, zeta=0.1)
    np.testing.assert_allclose(together[1], alone[0], rtol=1e-12, atol=1e-12)


def test_rand_initial_conditions_follow_pdebench_ranges():
    rho, v, p = rand_initial_conditions(0, 200, resolution=64)
    assert rho.min() >= 1.0 and rho.max() <= 20.0 and p.min() >= 10.0 and p.max() <= 200.0
    assert np.abs(v).max() <= 3.0 and np.abs(v).max() > 0.5
    first, _, _ = rand_initial_conditions(0, 5, resolution=64)
    np.testing.assert_array_equal(first, rho[:5])  # sample i does not depend on the number of samples


@pytest.mark.parametrize(
    "change, message",
    [
        ({"density": -1.0}, "initial density must be positive"),
        ({"pressure": 0.0}, "initial pressure must be positive"),
        ({"cfl": 1.5}, "cfl must lie in"),
        ({"cfl": 0.0}, "cfl must lie in"),
        ({"eta": -0.1}, "viscosity eta must be >= 0"),
        ({"zeta": -1.0}, "viscosity zeta must be >= 0"),
        ({"limiter": "superbee"}, "unknown limiter"),
    ],
)
def test_unphysical_solver_input_is_one_clear_value_error(change, message):
    n = 16
    args = {"density": np.ones(n), "velocity": np.zeros(n), "pressure": np.ones(n)}
    options = {"times": [0, 0.1], "eta": 0.1, "zeta": 0.1}
    for key, value in change.items():
        if key in args:
            args[key] = args[key].copy()
            args[key][3] = value
        else:
            options[key] = value
    with pytest.raises(ValueError, match=message) as info:
        solve_cfd1d(args["density"], args["velocity"], args["pressure"], **options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("poison, problem", [(np.nan, "non-finite value"), (-1.0, "non-positive density")])
def test_a_blow_up_names_the_sample_and_time_step(monkeypatch, poison, problem):
    # The scheme is robust (it survives Toro's 123 problem and near-vacuum collisions), so corrupt one
    # sample's state at its third step to see the failure path.
    original, calls = cfd1d._ssp_rk2, []

    def corrupting(rhs, u, dt):
        calls.append(1)
        out = original(rhs, u, dt)
        if len(calls) == 3:
            out[1, 0, 5] = poison
        return out

    monkeypatch.setattr(cfd1d, "_ssp_rk2", corrupting)
    rho, v, p = rand_initial_conditions(0, 2, resolution=32)
    with pytest.raises(
        CFDSolverError, match=rf"sample 7 produced a {problem}.* at time step 3 \(t = "
    ) as info:
        solve_cfd1d(rho, v, p, times=[0, 0.5], eta=0.1, zeta=0.1, first_sample=6)
    assert info.value.sample == 7 and info.value.step == 3 and "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------- generator

TINY = dict(resolution=32, n_times=5, t_final=0.2)


def test_generator_shapes_cache_and_prefix_property(tmp_path):
    traj = generate("cfd1d", 6, seed=0, cache_dir=tmp_path, progress=False, **TINY)
    assert traj.shape == (6, 3, 5, 32) and traj.dtype == np.float32
    assert traj[:, 0].min() > 0 and traj[:, 2].min() > 0
    files = list(tmp_path.glob("cfd1d-*.npz"))
    assert len(files) == 1
    again = generate_cfd1d(6, seed=0, cache_dir=tmp_path, progress=False, **TINY)  # from the cache
    np.testing.assert_array_equal(traj, again)
    prefix = generate_cfd1d(4, seed=0, cache_dir=tmp_path, use_cache=False, **TINY)
    np.testing.assert_array_equal(prefix, traj[:4])
    other = generate_cfd1d(4, seed=1, cache_dir=tmp_path, use_cache=False, **TINY)
    assert not np.allclose(other, prefix)


def test_generator_averages_a_finer_solve_down(tmp_path):
    coarse = generate_cfd1d(2, solver_resolution=64, cache_dir=tmp_path, use_cache=False, **TINY)
    assert coarse.shape == (2, 3, 5, 32)
    direct = generate_cfd1d(2, cache_dir=tmp_path, use_cache=False, **TINY)
    assert np.abs(coarse - direct).max() < 0.1 * np.abs(direct).max()  # same flow, a little sharper


@pytest.mark.parametrize(
    "change, message",
    [
        ({"density_range": (-1.0, 2.0)}, "density_range must satisfy 0 < low"),
        ({"pressure_range": (0.0, 2.0)}, "pressure_range must satisfy 0 < low"),
        ({"cfl": 2.0}, "cfl must lie in"),
        ({"eta": -0.01}, "viscosity eta must be >= 0"),
        ({"solver_resolution": 48}, "multiple of resolution"),
    ],
)
def test_generator_rejects_unphysical_parameters(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        generate_cfd1d(2, cache_dir=tmp_path, **{**TINY, **change})
    assert not list(tmp_path.iterdir())


def failing_solver(*args, first_sample=0, **kwargs):
    """Stands in for solve_cfd1d: blows up at time step 3 of the batch's first sample."""
    raise CFDSolverError(
        f"cfd1d solver: sample {first_sample} produced a non-finite value at time step 3",
        sample=first_sample,
        step=3,
        time=0.01,
    )


def test_a_solver_failure_never_writes_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(cfd1d, "solve_cfd1d", failing_solver)
    with pytest.raises(CFDSolverError, match="sample 0"):
        generate_cfd1d(3, cache_dir=tmp_path, progress=False, **TINY)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------- files


def write_pdebench_cfd(path, n=10, nt=11, nx=32, seed=0, drop=None):
    """A tiny file in PDEBench's 1D CFD layout: density, Vx, pressure (N, nt, nx) and coordinates."""
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(seed)
    fields = {
        "density": 1.0 + rng.random((n, nt, nx)),
        "Vx": rng.normal(size=(n, nt, nx)),
        "pressure": 10.0 + rng.random((n, nt, nx)),
    }
    with h5py.File(path, "w") as f:
        for name, value in fields.items():
            if name != drop:
                f.create_dataset(name, data=value.astype(np.float32))
        f.create_dataset("t-coordinate", data=np.linspace(0, 1, nt + 1).astype(np.float32))
        f.create_dataset("x-coordinate", data=np.linspace(-1, 1, nx).astype(np.float32))
    return fields


def test_pdebench_cfd_file_loads_as_strided_trajectories(tmp_path):
    path = tmp_path / "1D_CFD_Rand_tiny_periodic_Train.hdf5"
    fields = write_pdebench_cfd(path)
    traj = load_trajectories(path, stride=2, time_stride=5, max_samples=7)
    assert traj.shape == (7, 3, 3, 16) and traj.dtype == np.float32
    np.testing.assert_allclose(traj[:, 1], fields["Vx"][:7, ::5, ::2], rtol=1e-6)
    np.testing.assert_allclose(traj[:, 2], fields["pressure"][:7, ::5, ::2], rtol=1e-6)


def test_cfd1d_task_reads_a_pdebench_file_with_pdebench_split(tmp_path):
    path = tmp_path / "cfd.hdf5"
    fields = write_pdebench_cfd(path, n=20, nt=12)
    task = TASKS.get("cfd1d")(data=str(path), initial_step=4, t_train=8)
    data = task.load()
    assert len(data.test) == 2 and len(data.train_pool) == 18  # PDEBench: the first 10% are the test set
    np.testing.assert_allclose(data.test.tensors[0][0, 0].numpy(), fields["density"][0], rtol=1e-6)
    assert data.spec["in_channels"] == 12 and data.spec["out_channels"] == 3 and data.spec["grid"] == (32,)
    assert task.label.endswith("cfd.hdf5")


def test_bad_files_and_options_fail_before_training(tmp_path):
    path = tmp_path / "no_pressure.hdf5"
    write_pdebench_cfd(path, drop="pressure")
    with pytest.raises(ValueError, match="lacks dataset"):
        TASKS.get("cfd1d")(data=str(path)).load()
    good = tmp_path / "good.hdf5"
    write_pdebench_cfd(good, nt=11)
    with pytest.raises(ValueError, match="initial_step=11 must be below the number of time steps"):
        TASKS.get("cfd1d")(data=str(good), initial_step=11).load()
    with pytest.raises(ValueError, match="t_train=12 exceeds the number of time steps"):
        TASKS.get("cfd1d")(data=str(good), initial_step=4, t_train=12).load()
    with pytest.raises(ValueError, match="must exceed initial_step"):
        TASKS.get("cfd1d")(data=str(good), initial_step=4, t_train=4)
    with pytest.raises(ValueError, match="not \\['eta'\\]"):
        TASKS.get("cfd1d")(data=str(good), eta=0.1)
    with pytest.raises(ValueError, match="apply to --data files only"):
        TASKS.get("cfd1d")(stride=2)
    with pytest.raises(ValueError, match="unknown option"):
        TASKS.get("cfd1d")(etaa=0.1)
    with pytest.raises(ValueError, match="needs a data file"):
        TASKS.get("rollout")()


def test_rollout_task_reads_pdebench_scalar_series(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "1D_Burgers_tiny.hdf5"
    series = np.random.default_rng(0).normal(size=(10, 9, 16)).astype(np.float32)  # PDEBench: (N, nt, nx)
    with h5py.File(path, "w") as f:
        f.create_dataset("tensor", data=series)
        f.create_dataset("x-coordinate", data=np.linspace(0, 1, 16))
    task = TASKS.get("rollout")(data=str(path), initial_step=3, time_stride=2)
    data = task.load()
    assert data.spec["in_channels"] == 3 and data.spec["out_channels"] == 1 and data.spec["n_times"] == 5
    np.testing.assert_allclose(data.train_pool.tensors[0][0, 0].numpy(), series[1, ::2])


# ------------------------------------------------------------------------------------------- rollout task


class Persistence(torch.nn.Module):
    """Predicts the newest snapshot of its input window (records whether gradients were enabled)."""

    def __init__(self, channels, initial_step):
        super().__init__()
        self.c, self.k = channels, initial_step
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.grad_flags = []

    def forward(self, x):
        self.grad_flags.append(torch.is_grad_enabled())
        window = x.view(x.shape[0], self.c, self.k, *x.shape[2:])
        return self.scale * window[:, :, -1]


def toy_trajectories(n=6, c=2, t=9, x=16, seed=0):
    rng = np.random.default_rng(seed)
    return (3.0 + rng.normal(size=(n, c, t, x))).astype(np.float32)


def test_rollout_lengths_follow_training_mode():
    traj = toy_trajectories()
    task = RolloutTask("toy", lambda: (traj, traj[:2]), initial_step=3, t_train=6)
    task.load()
    model = Persistence(2, 3)
    batch = torch.as_tensor(traj[:4])
    model.train()
    assert task.predict(model, batch).shape == (4, 2, 3, 16)  # steps 3, 4, 5
    model.eval()
    prediction = task.predict(model, batch)
    assert prediction.shape == (4, 2, 6, 16)  # to the end
    # no teacher forcing: persistence repeats the last given snapshot at every step
    expected = batch[:, :, 2:3].expand(-1, -1, 6, -1)
    torch.testing.assert_close(prediction, expected)


def test_loss_is_the_sum_of_per_step_mse_and_pushforward_limits_gradients():
    traj = toy_trajectories()
    batch = torch.as_tensor(traj[:3])
    task = RolloutTask("toy", lambda: (traj, traj[:2]), initial_step=3)
    task.load()
    model = Persistence(2, 3)
    prediction = task.predict(model, batch)
    manual = sum(((prediction[:, :, j] - batch[:, :, 3 + j]) ** 2).mean() for j in range(6))
    torch.testing.assert_close(task.loss(prediction, batch), manual)
    mean_task = RolloutTask("toy", lambda: (traj, traj[:2]), initial_step=3, loss_reduction="mean")
    torch.testing.assert_close(mean_task.loss(prediction, batch), manual / 6)

    pushforward = RolloutTask("toy", lambda: (traj, traj[:2]), initial_step=3, unroll_step=2)
    model = Persistence(2, 3)
    prediction = pushforward.predict(model, batch)
    assert model.grad_flags == [False] * 4 + [True] * 2
    last_two = sum(((prediction[:, :, j] - batch[:, :, 3 + j]) ** 2).mean() for j in (4, 5))
    torch.testing.assert_close(pushforward.loss(prediction, batch), last_two)


def pdebench_nrmse(pred, target):
    """PDEBench's definition, written out with numpy: (b, c, t) nRMSE, batch mean, then channel/time mean."""
    err = np.sqrt(((pred - target) ** 2).mean(axis=-1))
    norm = np.sqrt((target**2).mean(axis=-1))
    table = (err / norm).mean(axis=0)  # (c, t)
    return table


@pytest.mark.parametrize("normalize", [False, True])
def test_metrics_are_pdebench_nrmse_over_the_rolled_out_steps(normalize):
    traj = toy_trajectories(n=8, c=3)
    task = RolloutTask(
        "toy", lambda: (traj, traj[:4]), initial_step=3, normalize=normalize, channel_names=("a", "b", "c")
    )
    data = task.load()
    model = Persistence(3, 3).eval()
    batch = data.test.tensors[0]
    metrics = task.metrics(task.predict(model, batch), batch)
    raw = traj[:4].astype(np.float64)
    persistence = np.repeat(raw[:, :, 2:3], 6, axis=2)
    table = pdebench_nrmse(persistence, raw[:, :, 3:])
    assert metrics["nrmse"] == pytest.approx(table.mean(), rel=1e-5)
    assert metrics["nrmse_b"] == pytest.approx(table[1].mean(), rel=1e-5)
    assert metrics["nrmse_final"] == pytest.approx(table[:, -1].mean(), rel=1e-5)
    perfect = task.metrics(batch[:, :, 3:], batch)
    assert perfect["nrmse"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "model_name, params",
    [("fno", {"modes": 4, "width": 8, "n_layers": 2}), ("unet", {"width": 4, "depth": 2})],
)
def test_fno_and_unet_train_and_evaluate_on_generated_cfd1d(tmp_path, model_name, params):
    from modelbalance.experiments.training import (
        TrainSettings,
        evaluate,
        make_optimizer,
        make_scheduler,
        train,
    )

    task = TASKS.get("cfd1d")(
        n_samples=6,
        n_test=2,
        resolution=32,
        n_times=8,
        t_final=0.2,
        initial_step=4,
        t_train=6,
        cache_dir=str(tmp_path),
    )
    data = task.load()
    model = MODELS.get(model_name)(dict(data.spec), **params)
    settings = TrainSettings(
        epochs=2, batch_size=3, lr=1e-3, optimizer="adam", scheduler="step", step_epochs=1
    )
    optimizer = make_optimizer([{"params": list(model.parameters())}], settings)
    scheduler = make_scheduler(optimizer, settings, len(data.train_pool))
    result = train(
        model, task, data.train_pool, optimizer, scheduler, settings, seed=0, device=torch.device("cpu")
    )
    assert result.steps == 4 and np.isfinite(result.epoch_losses).all()
    metrics = evaluate(model, task, data.test, batch_size=2, device=torch.device("cpu"))
    assert set(metrics) >= {"nrmse", "nrmse_density", "nrmse_velocity", "nrmse_pressure", "nrmse_final"}
    assert np.isfinite(metrics["nrmse"])


def tiny_rollout_sweep(tmp_path, task, model, task_params, **changes):
    """A seconds-long baseline-vs-TB sweep of a rollout task on 8 tiny generated trajectories."""
    from modelbalance.experiments.config import ExperimentConfig

    model_params = {"modes": 4, "width": 8, "n_layers": 2} if model == "fno" else {"width": 4, "depth": 2}
    return ExperimentConfig(
        task=task,
        model=model,
        sizes=(4,),
        seeds=(0,),
        methods=("baseline", "tb"),
        lrs=(1e-3,),
        epochs=2,
        batch_size=2,
        val_size=2,
        analyze_layers=False,
        task_params={
            "n_samples": 8,
            "n_test": 2,
            "resolution": 32,
            "t_final": 0.2,
            "cache_dir": str(tmp_path / "cache"),
            **task_params,
        },
        model_params=model_params,
        method_options={"tb": {"min_eigs": 4}},
        out=str(tmp_path / "out"),
        **changes,
    )


def test_cfd1d_runs_through_the_experiment_runner(tmp_path):
    from modelbalance.experiments.runner import run_experiment

    config = tiny_rollout_sweep(
        tmp_path,
        "cfd1d",
        "fno",
        {"n_times": 7, "initial_step": 4},
        optimizer="adam",
        scheduler="step",
        step_epochs=1,
    )
    outcome = run_experiment(config)
    assert outcome.n_failed == 0 and len(outcome.records) == 2
    for record in outcome.records:
        assert record["status"] == "ok" and np.isfinite(record["nrmse"]) and "nrmse_pressure" in record


CFD_CLI = ["experiment", "--task", "cfd1d", "--model", "fno", "--sizes", "4", "--seeds", "0", "--lrs", "1e-3",
           "--epochs", "1", "--batch-size", "2", "--val-size", "2", "--no-progress", "--no-plots",
           "--task-param", "n_samples=8", "--task-param", "n_test=2", "--task-param", "resolution=32",
           "--task-param", "t_final=0.2", "--model-param", "modes=4", "--model-param", "width=8"]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task-param", "n_times=5", "--task-param", "initial_step=5"], "initial_step=5 must be below"),
        (["--task-param", "n_times=5", "--task-param", "initial_step=2", "--task-param", "t_train=9"],
         "t_train=9 exceeds the number of time steps (5)"),
        (["--task-param", "n_times=5", "--task-param", "initial_step=2", "--task-param", "cfl=2"],
         "cfl must lie in"),
        (["--task-param", "n_times=5", "--task-param", "initial_step=2", "--task-param", "eta=-0.1"],
         "viscosity eta must be >= 0"),
    ],
)  # fmt: skip
def test_bad_cfd1d_settings_stop_the_cli_before_any_solve(tmp_path, capsys, monkeypatch, extra, message):
    from modelbalance.cli.main import main

    def no_solve(*args, **kwargs):
        raise AssertionError("the solver ran for settings that were known to be bad")

    monkeypatch.setattr(cfd1d, "solve_cfd1d", no_solve)
    cache = ["--task-param", f"cache_dir={tmp_path / 'cache'}"]
    code = main([*CFD_CLI, *cache, *extra, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_solver_blow_up_is_one_line_from_the_cli_and_caches_nothing(tmp_path, capsys, monkeypatch):
    from modelbalance.cli.main import main

    monkeypatch.setattr(cfd1d, "solve_cfd1d", failing_solver)
    cache = tmp_path / "cache"
    args = [*CFD_CLI, "--task-param", "n_times=5", "--task-param", "initial_step=2"]
    code = main([*args, "--task-param", f"cache_dir={cache}", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "generating the training pool (8 samples, seed 0): cfd1d solver: sample 0 produced" in err
    assert "at time step 3" in err and "not cached" in err and "check cfl" in err
    assert not (tmp_path / "out").exists() and not (cache.exists() and any(cache.iterdir()))


@pytest.mark.parametrize(("generator", "model"), [("burgers", "fno"), ("advection", "unet")])
def test_rollout_on_generated_trajectories_runs_through_the_runner(tmp_path, generator, model):
    """The existing time-dependent generators feed the autoregressive task too (FNO and UNet)."""
    from modelbalance.experiments.runner import run_experiment

    task_params = {"generator": generator, "n_times": 6, "initial_step": 2}
    if generator == "burgers":
        task_params.update(nu=0.1, resolution=64)  # a resolved Burgers
    config = tiny_rollout_sweep(tmp_path, "rollout", model, task_params)
    outcome = run_experiment(config, progress=False, plots=False, log=lambda _: None)
    assert outcome.n_failed == 0 and len(outcome.records) == 2
    assert all(np.isfinite(r["nrmse"]) and "nrmse_u" in r for r in outcome.records)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "needs a data file (--data PATH with time series) or generated trajectories"),
        (
            {"generator": "navier"},
            "unknown generator 'navier'; known: burgers, advection, reaction_diffusion",
        ),
        ({"generator": "burgers", "eta": 0.1}, "unknown option(s) ['eta']"),
        ({"generator": "burgers", "n_times": 4, "initial_step": 4}, "initial_step=4 must be below"),
    ],
)
def test_bad_generated_rollout_options_are_refused_before_generating(params, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        TASKS.get("rollout")(**params)
