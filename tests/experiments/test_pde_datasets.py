"""Generated data sets, the on-disk cache, subsampling, and loaders for users' files."""

import warnings

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelbalance.experiments.pde import datasets
from modelbalance.experiments.pde.advection import solve_advection
from modelbalance.experiments.pde.burgers import solve_burgers
from modelbalance.experiments.pde.datasets import (
    cache_path,
    default_cache_dir,
    generate,
    generate_burgers,
    generate_darcy,
    subsample_indices,
)
from modelbalance.experiments.pde.loaders import load_arrays, load_pde_file, load_pdebench
from modelbalance.experiments.pde.random_fields import random_sine_series

SMALL = {
    "burgers": dict(resolution=64, nu=0.05, t_final=0.2),
    "advection": dict(resolution=64),
    "reaction_diffusion": dict(resolution=64, t_final=0.2),
    "darcy": dict(resolution=16),
}


# ------------------------------------------------------------------------------------------ generation


@pytest.mark.parametrize("task", sorted(SMALL))
def test_generate_shapes_dtypes_and_determinism(task, tmp_path):
    x, y = generate(task, 5, seed=3, cache_dir=tmp_path, progress=False, **SMALL[task])
    grid = (16, 16) if task == "darcy" else (64,)
    assert x.shape == y.shape == (5, 1, *grid)
    assert x.dtype == y.dtype == np.float32
    assert np.all(np.isfinite(y)) and np.abs(y).max() > 0
    x2, y2 = generate(task, 5, seed=3, use_cache=False, progress=False, **SMALL[task])
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, _ = generate(task, 5, seed=4, use_cache=False, progress=False, **SMALL[task])
    assert not np.array_equal(x, x3)


def test_generated_burgers_and_advection_targets_are_the_solver_outputs():
    x, y = generate_burgers(4, use_cache=False, progress=False, **SMALL["burgers"])
    u0 = random_sine_series(np.random.default_rng(0), n_samples=4, resolution=64, n_waves=2, max_wavenumber=4)
    np.testing.assert_allclose(x[:, 0], u0, atol=1e-6)
    np.testing.assert_allclose(y[:, 0], solve_burgers(u0, nu=0.05, t_final=0.2), atol=1e-6)
    x, y = generate("advection", 3, resolution=64, beta=0.5, t_final=0.5, use_cache=False, progress=False)
    np.testing.assert_allclose(y[:, 0], solve_advection(x[:, 0], beta=0.5, t_final=0.5), atol=1e-6)


def test_samples_do_not_depend_on_pool_size():
    small = generate("darcy", 3, resolution=12, use_cache=False, progress=False)
    large = generate("darcy", 7, resolution=12, use_cache=False, progress=False)
    np.testing.assert_array_equal(small[0], large[0][:3])
    np.testing.assert_allclose(small[1], large[1][:3], rtol=1e-6)


def test_generate_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown PDE task"):
        generate("navier_stokes", 4)
    with pytest.raises(ValueError, match="n_samples"):
        generate("advection", 0, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="resolution"):
        generate("burgers", 2, resolution=63, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="nu"):
        generate("burgers", 2, resolution=64, nu=-1.0, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="solver_resolution"):
        generate("burgers", 2, resolution=64, solver_resolution=48, use_cache=False, progress=False)


def test_under_resolved_burgers_warns():
    with pytest.warns(RuntimeWarning, match="under-resolved"):
        generate_burgers(2, resolution=32, nu=0.002, t_final=0.5, use_cache=False, progress=False)


# ------------------------------------------------------------------------------------------------ cache


TIME_DEPENDENT = ("burgers", "advection", "reaction_diffusion")


@pytest.mark.parametrize("task", TIME_DEPENDENT)
def test_trajectories_run_from_the_pair_input_to_the_pair_target(task, tmp_path):
    """n_times snapshots at t_k = k t_final / (n_times - 1): the first is the pair's input, the last its target
    (the same solver, chained over the intervals), and they are cached under their own key."""
    x, y = generate(task, 4, seed=2, use_cache=False, progress=False, **SMALL[task])
    trajectories = generate(task, 4, seed=2, n_times=5, cache_dir=tmp_path, progress=False, **SMALL[task])
    assert trajectories.shape == (4, 1, 5, 64) and trajectories.dtype == np.float32
    np.testing.assert_array_equal(trajectories[:, :, 0], x)
    np.testing.assert_allclose(trajectories[:, :, -1], y, atol=1e-5 * np.abs(y).max())
    assert all(np.abs(trajectories[:, :, k] - trajectories[:, :, k - 1]).max() > 0 for k in range(1, 5))
    cached = generate(task, 4, seed=2, n_times=5, cache_dir=tmp_path, progress=False, **SMALL[task])
    np.testing.assert_array_equal(cached, trajectories)
    assert len(list(tmp_path.iterdir())) == 1


def test_a_middle_snapshot_is_the_pair_at_that_time():
    small = {**SMALL["burgers"], "t_final": 0.4, "solver_resolution": 64}
    trajectories = generate_burgers(3, n_times=5, use_cache=False, progress=False, **small)
    _, half = generate_burgers(3, use_cache=False, progress=False, **{**small, "t_final": 0.2})
    np.testing.assert_allclose(trajectories[:, :, 2], half, atol=1e-5 * np.abs(half).max())
    _, shifted = generate(
        "advection", 3, resolution=64, beta=0.5, t_final=0.25, use_cache=False, progress=False
    )
    exact = generate("advection", 3, resolution=64, beta=0.5, t_final=1.0, n_times=5, use_cache=False,
                     progress=False)  # fmt: skip
    np.testing.assert_allclose(exact[:, :, 1], shifted, atol=1e-6)


@pytest.mark.parametrize("n_times", [1, 0, 2.5, True])
def test_n_times_must_be_two_or_more_snapshots(n_times):
    with pytest.raises(ValueError, match="n_times must be an integer >= 2"):
        generate_burgers(2, n_times=n_times, use_cache=False, progress=False, **SMALL["burgers"])


def test_cache_miss_writes_then_hit_reads_without_solving(tmp_path, monkeypatch):
    kwargs = dict(resolution=12, seed=1, cache_dir=tmp_path, progress=False)
    first = generate_darcy(4, **kwargs)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].name.startswith("darcy-") and files[0].suffix == ".npz"

    def broken_solver(*args, **kw):
        raise AssertionError("cache hit expected, but the solver ran")

    monkeypatch.setattr(datasets, "solve_darcy", broken_solver)
    second = generate_darcy(4, **kwargs)
    np.testing.assert_array_equal(first[1], second[1])
    with pytest.raises(AssertionError, match="cache hit expected"):
        generate_darcy(4, **{**kwargs, "seed": 2})  # another key: a miss


def test_cache_key_depends_on_every_generator_parameter_only(tmp_path):
    params = dict(n_samples=4, resolution=12, high=12.0, low=3.0, forcing=1.0, alpha=2.0, tau=3.0, seed=0)
    base = cache_path("darcy", params, tmp_path)
    for name, value in [("n_samples", 5), ("resolution", 14), ("low", 4.0), ("tau", 2.0), ("seed", 1)]:
        assert cache_path("darcy", {**params, name: value}, tmp_path) != base
    assert cache_path("darcy", dict(reversed(params.items())), tmp_path) == base
    assert cache_path("burgers", params, tmp_path).name.startswith("burgers-")
    # progress and cache location are not part of the key
    generate_darcy(4, resolution=12, cache_dir=tmp_path, progress=False)
    generate_darcy(4, resolution=12, cache_dir=tmp_path, progress=True)
    assert [p.name for p in tmp_path.iterdir()] == [base.name]


def test_cache_directory_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELBALANCE_CACHE", str(tmp_path / "root"))
    assert default_cache_dir() == tmp_path / "root" / "pde"
    generate("advection", 2, resolution=16, max_wavenumber=3, progress=False)
    assert len(list((tmp_path / "root" / "pde").glob("advection-*.npz"))) == 1
    monkeypatch.delenv("MODELBALANCE_CACHE")
    assert default_cache_dir().parts[-3:] == (".cache", "modelbalance", "pde")


def test_corrupt_cache_file_is_regenerated_and_no_temp_files_remain(tmp_path):
    kwargs = dict(resolution=16, max_wavenumber=3, cache_dir=tmp_path, progress=False)
    good = generate("advection", 3, **kwargs)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"not a zip file")
    with pytest.warns(RuntimeWarning, match="unreadable PDE cache"):
        again = generate("advection", 3, **kwargs)
    np.testing.assert_array_equal(good[1], again[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        generate("advection", 3, **kwargs)  # rewritten file is valid
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


# ------------------------------------------------------------------------------------------ subsampling


def test_subsample_indices_sizes_and_determinism():
    idx = subsample_indices(1000, 0.006, seed=0)
    assert len(idx) == 6 and idx.dtype == np.int64
    assert np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < 1000
    np.testing.assert_array_equal(idx, subsample_indices(1000, 0.006, seed=0))
    assert not np.array_equal(idx, subsample_indices(1000, 0.006, seed=1))
    assert len(subsample_indices(10, 0.001, seed=0)) == 1
    np.testing.assert_array_equal(subsample_indices(7, 1.0), np.arange(7))


@settings(max_examples=30, deadline=None)
@given(
    n_pool=st.integers(1, 500),
    fractions=st.lists(st.floats(1e-4, 1.0), min_size=2, max_size=4),
    seed=st.integers(0, 1000),
)
def test_subsample_indices_are_nested(n_pool, fractions, seed):
    subsets = [set(subsample_indices(n_pool, f, seed).tolist()) for f in sorted(fractions)]
    for smaller, larger in zip(subsets, subsets[1:], strict=False):
        assert smaller <= larger
    assert all(len(s) >= 1 for s in subsets)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_subsample_indices_rejects_bad_fractions(fraction):
    with pytest.raises(ValueError, match="fraction"):
        subsample_indices(100, fraction, seed=0)


# ------------------------------------------------------------------------------------------------ loaders


def write_h5(path, **datasets_):
    with h5py.File(path, "w") as f:
        for key, value in datasets_.items():
            f.create_dataset(key, data=value)
    return path


def test_pdebench_1d_scalar_file(tmp_path):
    tensor = np.random.default_rng(0).standard_normal((5, 4, 16)).astype(np.float32)
    path = write_h5(
        tmp_path / "1D_Burgers_Sols_Nu0.01.hdf5",
        tensor=tensor,
        **{"x-coordinate": np.linspace(0, 1, 16), "t-coordinate": np.linspace(0, 2, 5)},
    )
    x, y = load_pdebench(path)
    assert x.shape == y.shape == (5, 1, 16) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 0], tensor[:, 0])
    np.testing.assert_array_equal(y[:, 0], tensor[:, -1])
    x, y = load_pde_file(path, target_time=2, stride=4, max_samples=3)
    np.testing.assert_array_equal(y[:, 0], tensor[:3, 2, ::4])
    assert x.shape == (3, 1, 4)
    with pytest.raises(ValueError, match="target_time=4 is out of range"):
        load_pdebench(path, target_time=4)


def test_pdebench_darcy_file(tmp_path):
    rng = np.random.default_rng(1)
    nu, u = rng.uniform(1, 2, (3, 8, 8)), rng.standard_normal((3, 1, 8, 8))
    path = write_h5(tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5", nu=nu, tensor=u)
    x, y = load_pde_file(path)
    assert x.shape == y.shape == (3, 1, 8, 8)
    np.testing.assert_allclose(x[:, 0], nu, rtol=1e-6)
    np.testing.assert_allclose(y, u, rtol=1e-6)
    bad = write_h5(tmp_path / "bad_darcy.hdf5", nu=nu, tensor=u[:2])
    with pytest.raises(ValueError, match=r"bad_darcy\.hdf5: Darcy 'tensor'"):
        load_pdebench(bad)


def test_pdebench_cfd_file_channels(tmp_path):
    rng = np.random.default_rng(2)
    fields = {name: rng.standard_normal((4, 3, 8)) for name in ("density", "Vx", "pressure")}
    path = write_h5(tmp_path / "1D_CFD_Rand.hdf5", **fields, **{"x-coordinate": np.arange(8.0)})
    x, y = load_pdebench(path)
    assert x.shape == y.shape == (4, 3, 8)
    for channel, name in enumerate(("density", "Vx", "pressure")):
        np.testing.assert_allclose(x[:, channel], fields[name][:, 0], rtol=1e-6)
        np.testing.assert_allclose(y[:, channel], fields[name][:, -1], rtol=1e-6)
    partial = write_h5(tmp_path / "partial.hdf5", density=fields["density"], Vx=fields["Vx"])
    with pytest.raises(ValueError, match="lacks dataset.*pressure"):
        load_pdebench(partial)


def test_pdebench_per_sample_group_file(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.standard_normal((3, 5, 6, 6, 2))  # samples, nt, x, y, channels
    with h5py.File(tmp_path / "2D_diff-react.h5", "w") as f:
        for i in range(3):
            f.create_dataset(f"{i:04d}/data", data=data[i])
    x, y = load_pde_file(tmp_path / "2D_diff-react.h5", max_samples=2)
    assert x.shape == y.shape == (2, 2, 6, 6)
    np.testing.assert_allclose(x, np.moveaxis(data[:2, 0], -1, 1), rtol=1e-6)
    np.testing.assert_allclose(y, np.moveaxis(data[:2, -1], -1, 1), rtol=1e-6)


def test_pdebench_wrong_layouts(tmp_path):
    unknown = write_h5(tmp_path / "unknown.hdf5", velocity=np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"unknown\.hdf5: not a PDEBench layout.*velocity"):
        load_pdebench(unknown)
    flat = write_h5(tmp_path / "flat.hdf5", tensor=np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"flat\.hdf5: 'tensor' must have shape"):
        load_pdebench(flat)
    not_h5 = tmp_path / "text.hdf5"
    not_h5.write_text("hello")
    with pytest.raises(ValueError, match="cannot read as HDF5"):
        load_pdebench(not_h5)
    with pytest.raises(FileNotFoundError):
        load_pdebench(tmp_path / "missing.hdf5")


def test_load_arrays_npz_and_h5(tmp_path):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((6, 32)), rng.standard_normal((6, 32))
    np.savez(tmp_path / "pairs.npz", inputs=a, targets=b)
    x, y = load_pde_file(tmp_path / "pairs.npz")
    assert x.shape == y.shape == (6, 1, 32) and x.dtype == np.float32
    np.testing.assert_allclose(y[:, 0], b, rtol=1e-6)
    c = rng.standard_normal((6, 2, 8, 8))
    write_h5(tmp_path / "pairs.h5", inputs=c, targets=c[:, :1])
    x, y = load_pde_file(tmp_path / "pairs.h5", max_samples=4, stride=2)
    assert x.shape == (4, 2, 4, 4) and y.shape == (4, 1, 4, 4)
    np.testing.assert_allclose(x, c[:4, :, ::2, ::2], rtol=1e-6)
    with pytest.raises(ValueError, match=r"pairs\.h5: option\(s\) \['target_time'\] do not apply"):
        load_pde_file(tmp_path / "pairs.h5", target_time=3)
    np.savez(
        tmp_path / "three.npz", inputs=rng.standard_normal((6, 3, 8)), targets=rng.standard_normal((6, 8))
    )
    x, y = load_arrays(tmp_path / "three.npz", spatial_dims=1)
    assert x.shape == (6, 3, 8) and y.shape == (6, 1, 8)
    np.savez(tmp_path / "tagged.npz", inputs=np.zeros((6, 8, 8)), targets=np.zeros((6, 8, 8)), spatial_dims=2)
    assert load_arrays(tmp_path / "tagged.npz")[0].shape == (6, 1, 8, 8)


@pytest.mark.parametrize(
    "arrays, message",
    [
        (dict(inputs=np.zeros((4, 8))), "missing array 'targets'"),
        (dict(inputs=np.zeros((4, 8)), targets=np.zeros((5, 8))), "4 samples but 'targets' has 5"),
        (dict(inputs=np.zeros((4, 8)), targets=np.zeros((4, 9))), "grids differ"),
        (dict(inputs=np.zeros((4, 3, 8)), targets=np.zeros((4, 3, 8))), "ambiguous"),
        (dict(inputs=np.zeros((4, 2, 8, 8)), targets=np.zeros((4, 8))), "'targets' has shape"),
        (dict(inputs=np.zeros(4), targets=np.zeros(4)), "'inputs' has shape"),
    ],
)
def test_load_arrays_wrong_layouts(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message) as info:
        load_arrays(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("kind", ["npz", "h5", "pdebench"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e300])  # 1e300 is Inf once in float32
@pytest.mark.parametrize("array", ["inputs", "targets"])
def test_non_finite_user_data_is_a_one_line_error_at_load(tmp_path, kind, bad, array):
    # A NaN used to train "ok" and report an empty test metric; now loading the file refuses it.
    rng = np.random.default_rng(5)
    inputs, targets = rng.standard_normal((6, 16)), rng.standard_normal((6, 16))
    (inputs if array == "inputs" else targets)[3, 7] = bad
    (inputs if array == "inputs" else targets)[5, 0] = bad
    if kind == "npz":
        path = tmp_path / "user.npz"
        np.savez(path, inputs=inputs, targets=targets)
    elif kind == "h5":
        path = write_h5(tmp_path / "user.h5", inputs=inputs, targets=targets)
    else:  # a PDEBench series u(t): inputs = u(t=0), targets = u(t=last)
        path = write_h5(
            tmp_path / "1D_user.hdf5", tensor=np.stack([inputs, np.zeros_like(inputs), targets], 1)
        )
    with pytest.raises(ValueError) as info:
        load_pde_file(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and f"'{array}'" in message
    assert "first is sample 3" in message and "2 of 6 samples" in message
    assert ("NaN" if bad != bad else "Inf") in message
    # Only the samples read are checked: the first three are clean.
    x, y = load_pde_file(path, max_samples=3)
    assert np.isfinite(x).all() and np.isfinite(y).all()


def test_nonfinite_trajectories_name_the_file_and_sample(tmp_path):
    from modelbalance.experiments.pde.loaders import load_trajectories

    trajectories = np.random.default_rng(0).random((4, 3, 5, 8)).astype("float32")
    trajectories[2, 1, 3, 4] = np.inf
    path = tmp_path / "series.npz"
    np.savez(path, trajectories=trajectories)
    with pytest.raises(ValueError, match=r"series\.npz: 'trajectories' holds Inf .* first is sample 2"):
        load_trajectories(path)
