"""Load a user's own PDE data: PDEBench HDF5 downloads, or ``.npz`` / ``.h5`` files with inputs and targets.

Usage::

    from modelbalance.experiments.pde.loaders import load_pde_file

    x, y = load_pde_file("1D_Burgers_Sols_Nu0.01.hdf5", stride=4)     # u(t=0) -> u(t_last), (N, 1, 256)
    x, y = load_pde_file("2D_DarcyFlow_beta1.0_Train.hdf5")           # a -> u, (N, 1, 128, 128)
    x, y = load_pde_file("my_data.npz")                                # arrays "inputs" and "targets"
    traj = load_trajectories("1D_CFD_Rand_Eta0.1_Zeta0.1_periodic_Train.hdf5", stride=8, time_stride=5)
    # -> (N, 3, 21, 128): density, Vx, pressure at every 5th of 101 times, every 8th of 1024 cells

The pair loaders return two float32 arrays ``(N, channels, *grid)``; :func:`load_trajectories` returns whole
time series ``(N, channels, nt, *grid)`` for autoregressive tasks. A file in the wrong layout raises
``ValueError`` with a one-line message that names the file and the problem.

PDEBench layouts recognised by :func:`load_pdebench` (keys of the top-level HDF5 group):

* scalar time series (advection, Burgers, 1D reaction-diffusion, ...): ``"tensor"`` ``(N, nt, *space)``; the
  input is time index ``input_time`` (default 0), the target time index ``target_time`` (default -1, the
  last).
* Darcy flow: ``"nu"`` ``(N, nx, ny)`` (the coefficient, input) and ``"tensor"`` ``(N, 1, nx, ny)`` (the
  solution).
* compressible Navier-Stokes ("CFD"): ``"density"``, ``"Vx"`` (``"Vy"``, ``"Vz"`` in 2D/3D) and
  ``"pressure"``, each ``(N, nt, *space)``; channels in that order, input and target at ``input_time`` and
  ``target_time``.
* one group per sample (1D diffusion-sorption, 2D diffusion-reaction, shallow water): ``"<id>/data"`` of shape
  ``(nt, *space, channels)``, samples in sorted group-name order.

Coordinate datasets (``"x-coordinate"``, ``"t-coordinate"``, ...) are ignored.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["load_pde_file", "load_pdebench", "load_arrays", "load_trajectories"]

_CFD_FIELDS = ("density", "Vx", "Vy", "Vz", "pressure")
_PDEBENCH_OPTIONS = ("input_time", "target_time", "stride", "max_samples")
_ARRAY_OPTIONS = ("spatial_dims", "stride", "max_samples")


def load_pde_file(path: str | os.PathLike, **options) -> tuple[np.ndarray, np.ndarray]:
    """Load ``path`` with :func:`load_arrays` if it holds ``inputs``/``targets``, else :func:`load_pdebench`.

    Usage: ``x, y = load_pde_file("data.h5", max_samples=1000)``. ``options`` go to the chosen loader
    (``stride`` and ``max_samples`` suit both; an option the chosen loader lacks raises ``ValueError``).
    """
    path = Path(path)
    if path.suffix == ".npz":
        loader = load_arrays
    else:
        keys = _h5_keys(_import_h5py(), path)
        loader = load_arrays if "inputs" in keys or "targets" in keys else load_pdebench
    accepted = _ARRAY_OPTIONS if loader is load_arrays else _PDEBENCH_OPTIONS
    stray = sorted(set(options) - set(accepted))
    if stray:
        kind = "an inputs/targets file" if loader is load_arrays else "a PDEBench file"
        raise ValueError(f"{path}: option(s) {stray} do not apply to {kind}; accepted: {list(accepted)}")
    return loader(path, **options)


def load_pdebench(
    path: str | os.PathLike,
    *,
    input_time: int = 0,
    target_time: int = -1,
    stride: int = 1,
    max_samples: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Input/target pairs from a PDEBench HDF5 file (layouts in the module docstring).

    Usage: ``x, y = load_pdebench("1D_Advection_Sols_beta0.4.hdf5", stride=4, max_samples=2000)``.

    Parameters
    ----------
    input_time, target_time : int
        Time indices of the input and the target (negative counts from the end); ignored for Darcy.
    stride : int
        Keep every ``stride``-th grid point in each spatial direction (PDEBench's ``reduced_resolution``).
    max_samples : int, optional
        Read only the first ``max_samples`` samples (the files hold up to 10,000; reading is lazy).
    """
    h5py = _import_h5py()
    path = Path(path)
    stride = _positive(path, "stride", stride)
    with _open_h5(h5py, path) as f:
        keys = set(f.keys())
        n_limit = None if max_samples is None else _positive(path, "max_samples", max_samples)
        if "nu" in keys and "tensor" in keys:
            coeff, solution = f["nu"], f["tensor"]
            _require_ndim(path, "nu", coeff, 3, "(N, nx, ny)")
            _require_ndim(path, "tensor", solution, 4, "(N, 1, nx, ny)")
            if (
                solution.shape[1] != 1
                or solution.shape[0] != coeff.shape[0]
                or solution.shape[2:] != coeff.shape[1:]
            ):
                raise ValueError(
                    f"{path}: Darcy 'tensor' {solution.shape} does not match 'nu' {coeff.shape} "
                    "as (N, 1, nx, ny)"
                )
            n = _count(coeff.shape[0], n_limit)
            inputs = coeff[:n, ::stride, ::stride][:, None]
            targets = solution[:n, :, ::stride, ::stride]
        elif "tensor" in keys:
            series = f["tensor"]
            if series.ndim < 3:
                raise ValueError(f"{path}: 'tensor' must have shape (N, nt, *space), got {series.shape}")
            inputs, targets = _time_pair(path, [series], input_time, target_time, stride, n_limit)
        elif "density" in keys:
            names = [name for name in _CFD_FIELDS if name in keys]
            missing = [name for name in ("Vx", "pressure") if name not in keys]
            if missing:
                raise ValueError(
                    f"{path}: CFD file lacks dataset(s) {', '.join(missing)} (found {sorted(keys)})"
                )
            shapes = {name: f[name].shape for name in names}
            if len(set(shapes.values())) != 1:
                raise ValueError(f"{path}: CFD fields have different shapes {shapes}")
            inputs, targets = _time_pair(
                path, [f[name] for name in names], input_time, target_time, stride, n_limit
            )
        elif keys and all(isinstance(f[key], h5py.Group) and "data" in f[key] for key in keys):
            inputs, targets = _seed_group_pair(
                path, f, sorted(keys), input_time, target_time, stride, n_limit
            )
        else:
            raise ValueError(
                f"{path}: not a PDEBench layout: expected 'tensor', 'nu'+'tensor', CFD fields "
                f"(density, Vx, pressure) or per-sample groups with 'data'; found keys {sorted(keys)}"
            )
    return _finite(path, "inputs", _as_float32(path, inputs)), _finite(
        path, "targets", _as_float32(path, targets)
    )


def load_trajectories(
    path: str | os.PathLike,
    *,
    stride: int = 1,
    time_stride: int = 1,
    max_samples: int | None = None,
    layout: str | None = None,
) -> np.ndarray:
    """Whole trajectories ``(N, channels, nt, *space)`` float32 from a PDEBench HDF5 file or an ``.npz``.

    Usage: ``traj = load_trajectories("1D_CFD_Rand_Eta0.1_Zeta0.1_periodic_Train.hdf5", stride=8,
    time_stride=5)`` (PDEBench's 1D CFD training resolution, 128 cells x 21 times).

    Layouts: PDEBench CFD files (datasets ``density``, ``Vx`` (``Vy``, ``Vz``), ``pressure``, each ``(N, nt,
    *space)``; channels in that order), PDEBench scalar series (``tensor`` ``(N, nt, *space)``, one channel),
    or a file with an array ``trajectories`` already ``(N, channels, nt, *space)``. ``layout`` forces one of
    ``"cfd"``, ``"tensor"``, ``"trajectories"``; by default it is inferred from the keys. ``stride`` keeps
    every ``stride``-th grid point along each spatial axis (PDEBench's ``reduced_resolution``), ``time_stride``
    every ``time_stride``-th time (``reduced_resolution_t``), ``max_samples`` the first samples; only those
    slices are read (in blocks of samples, so a 12 GB download needs no more memory than the result).
    Coordinates (``x-coordinate``, ``t-coordinate``) are not read; PDEBench's ``t-coordinate`` of the 1D CFD
    sets has one entry more than the data's 101 times. A NaN or Inf in the result is a one-line ValueError
    naming the file and the first bad sample.
    """
    path = Path(path)
    stride = _positive(path, "stride", stride)
    time_stride = _positive(path, "time_stride", time_stride)
    n_limit = None if max_samples is None else _positive(path, "max_samples", max_samples)
    layouts = ("cfd", "tensor", "trajectories")
    if layout is not None and layout not in layouts:
        raise ValueError(f"{path}: layout must be one of {layouts}, got {layout!r}")
    if path.suffix == ".npz":
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        try:
            with np.load(path, allow_pickle=False) as data:
                files = list(data.files)
                series = np.asarray(data["trajectories"]) if "trajectories" in files else None
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise ValueError(f"{path}: cannot read as .npz ({err})") from None
        if series is None:
            raise ValueError(f"{path}: missing array 'trajectories' (found {sorted(files)})")
        if series.ndim < 4:
            raise ValueError(f"{path}: 'trajectories' must be (N, channels, nt, *space), got {series.shape}")
        index = (
            slice(0, n_limit),
            slice(None),
            slice(None, None, time_stride),
            *(slice(None, None, stride) for _ in series.shape[3:]),
        )
        return _finite(path, "trajectories", _as_float32(path, series[index]))
    h5py = _import_h5py()
    with _open_h5(h5py, path) as f:
        keys = set(f.keys())
        if layout is None:
            if "trajectories" in keys:
                layout = "trajectories"
            elif "density" in keys or "pressure" in keys or "Vx" in keys:
                layout = "cfd"
            elif "tensor" in keys and "nu" not in keys:
                layout = "tensor"
            else:
                raise ValueError(
                    f"{path}: no time series found: expected CFD fields (density, Vx, pressure), 'tensor' "
                    f"(N, nt, *space) or 'trajectories'; found keys {sorted(keys)}"
                )
        if layout == "cfd":
            missing = [name for name in ("density", "Vx", "pressure") if name not in keys]
            if missing:
                raise ValueError(
                    f"{path}: CFD file lacks dataset(s) {', '.join(missing)} (found {sorted(keys)})"
                )
            names = [name for name in _CFD_FIELDS if name in keys]
            shapes = {name: f[name].shape for name in names}
            if len(set(shapes.values())) != 1:
                raise ValueError(f"{path}: CFD fields have different shapes {shapes}")
            fields = [f[name] for name in names]
            if fields[0].ndim < 3:
                raise ValueError(f"{path}: CFD fields must be (N, nt, *space), got {fields[0].shape}")
            return _finite(path, "trajectories", _read_series(path, fields, time_stride, stride, n_limit))
        name = "tensor" if layout == "tensor" else "trajectories"
        if name not in keys:
            raise ValueError(f"{path}: missing dataset {name!r} (found {sorted(keys)})")
        data = f[name]
        if layout == "tensor":
            if data.ndim < 3:
                raise ValueError(f"{path}: 'tensor' must be (N, nt, *space), got {data.shape}")
            return _finite(path, "trajectories", _read_series(path, [data], time_stride, stride, n_limit))
        if data.ndim < 4:
            raise ValueError(f"{path}: 'trajectories' must be (N, channels, nt, *space), got {data.shape}")
        n = _count(data.shape[0], n_limit)
        index = (
            slice(0, n),
            slice(None),
            slice(None, None, time_stride),
            *(slice(None, None, stride) for _ in data.shape[3:]),
        )
        return _finite(path, "trajectories", _as_float32(path, data[index]))


def _read_series(path, fields, time_stride, stride, n_limit, block: int = 256) -> np.ndarray:
    """Stack ``fields`` (each (N, nt, *space)) as channels, strided, reading ``block`` samples at a time."""
    shape = fields[0].shape
    n = _count(shape[0], n_limit)
    if n == 0 or shape[1] == 0:
        raise ValueError(f"{path}: no samples or no time steps (shape {shape})")
    spatial = tuple(slice(None, None, stride) for _ in shape[2:])
    first = fields[0][(slice(0, 1), slice(None, None, time_stride), *spatial)]
    out = np.empty((n, len(fields), *first.shape[1:]), dtype=np.float32)
    for start in range(0, n, block):
        stop = min(start + block, n)
        for c, field in enumerate(fields):
            part = np.asarray(field[(slice(start, stop), slice(None, None, time_stride), *spatial)])
            if not np.issubdtype(part.dtype, np.number) or np.iscomplexobj(part):
                raise ValueError(f"{path}: expected real numeric data, got dtype {part.dtype}")
            out[start:stop, c] = part
    return out


def load_arrays(
    path: str | os.PathLike,
    *,
    spatial_dims: int | None = None,
    stride: int = 1,
    max_samples: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load arrays ``inputs`` and ``targets`` from an ``.npz`` or HDF5 file.

    Usage: ``x, y = load_arrays("pairs.npz")``.

    Each array is ``(N, *grid)`` (one channel) or ``(N, channels, *grid)``; both must share ``N`` and the
    grid. The number of spatial dimensions is ``spatial_dims`` if given, else a scalar ``spatial_dims`` entry
    in the file if present, else inferred: ``ndim 2`` -> 1D without channels, ``ndim >= 4`` -> channels first;
    a 3D array is ambiguous (``(N, C, x)`` or ``(N, x, y)``) and needs ``spatial_dims``. ``stride`` keeps
    every ``stride``-th grid point along each spatial axis; ``max_samples`` keeps the first samples.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: np.asarray(data[key]) for key in data.files}
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: cannot read as .npz ({err})") from None
    else:
        h5py = _import_h5py()
        with _open_h5(h5py, path) as f:
            arrays = {key: f[key][()] for key in f.keys() if isinstance(f[key], h5py.Dataset)}
    for key in ("inputs", "targets"):
        if key not in arrays:
            raise ValueError(f"{path}: missing array {key!r} (found {sorted(arrays)})")
    inputs, targets = arrays["inputs"], arrays["targets"]
    if spatial_dims is None and "spatial_dims" in arrays:
        spatial_dims = int(np.asarray(arrays["spatial_dims"]).item())
    for key, array in (("inputs", inputs), ("targets", targets)):
        if array.ndim < 2:
            raise ValueError(f"{path}: {key!r} has shape {array.shape}; expected (N, *grid) or (N, C, *grid)")
    if spatial_dims is None:
        if inputs.ndim == 2:
            spatial_dims = 1
        elif inputs.ndim >= 4:
            spatial_dims = inputs.ndim - 2
        else:
            raise ValueError(
                f"{path}: 'inputs' of shape {inputs.shape} is ambiguous, (N, C, x) or (N, x, y); "
                "pass spatial_dims"
            )
    if not isinstance(spatial_dims, (int, np.integer)) or spatial_dims < 1:
        raise ValueError(f"{path}: spatial_dims must be a positive integer, got {spatial_dims!r}")
    inputs = _with_channels(path, "inputs", inputs, spatial_dims)
    targets = _with_channels(path, "targets", targets, spatial_dims)
    if inputs.shape[0] != targets.shape[0]:
        raise ValueError(
            f"{path}: 'inputs' has {inputs.shape[0]} samples but 'targets' has {targets.shape[0]}"
        )
    if inputs.shape[2:] != targets.shape[2:]:
        raise ValueError(
            f"{path}: grids differ: 'inputs' {inputs.shape[2:]} vs 'targets' {targets.shape[2:]}"
        )
    if inputs.shape[0] == 0:
        raise ValueError(f"{path}: no samples")
    n = None if max_samples is None else _positive(path, "max_samples", max_samples)
    step = _positive(path, "stride", stride)
    index = (slice(0, n), slice(None), *(slice(None, None, step) for _ in range(spatial_dims)))
    inputs, targets = inputs[index], targets[index]
    return _finite(path, "inputs", _as_float32(path, inputs)), _finite(
        path, "targets", _as_float32(path, targets)
    )


# ------------------------------------------------------------------------------------------------ helpers


def _time_pair(path, fields, input_time, target_time, stride, n_limit):
    """Stack ``fields`` (each (N, nt, *space)) as channels at two time indices, reading only those slices."""
    shape = fields[0].shape
    n_times = shape[1]
    times = []
    for name, index in (("input_time", input_time), ("target_time", target_time)):
        if not isinstance(index, (int, np.integer)) or not -n_times <= index < n_times:
            raise ValueError(f"{path}: {name}={index!r} is out of range for {n_times} time steps")
        times.append(int(index) % n_times)
    n = _count(shape[0], n_limit)
    spatial = tuple(slice(None, None, stride) for _ in shape[2:])
    inputs = np.stack([field[(slice(0, n), times[0], *spatial)] for field in fields], axis=1)
    targets = np.stack([field[(slice(0, n), times[1], *spatial)] for field in fields], axis=1)
    return inputs, targets


def _seed_group_pair(path, f, names, input_time, target_time, stride, n_limit):
    """Per-sample groups ``<name>/data`` of shape (nt, *space, channels) -> channel-first pairs."""
    names = names[: _count(len(names), n_limit)]
    shape = f[names[0]]["data"].shape
    if len(shape) < 3:
        raise ValueError(f"{path}: '{names[0]}/data' must have shape (nt, *space, channels), got {shape}")
    inputs, targets = [], []
    for name in names:
        data = f[name]["data"]
        if data.shape != shape:
            raise ValueError(
                f"{path}: '{name}/data' has shape {data.shape}, expected {shape} like '{names[0]}'"
            )
        pair = _time_pair(path, [_TimeMajor(data)], input_time, target_time, stride, None)
        inputs.append(pair[0][0, 0])  # (*space, C)
        targets.append(pair[1][0, 0])
    # (N, *space, C) -> (N, C, *space)
    return np.moveaxis(np.stack(inputs), -1, 1), np.moveaxis(np.stack(targets), -1, 1)


class _TimeMajor:
    """View a (nt, *space, C) dataset as (1, nt, *space, C) so that :func:`_time_pair` can slice it."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.shape = (1, *dataset.shape[:-1])

    def __getitem__(self, index):
        _, time, *spatial = index
        return self.dataset[(time, *spatial, slice(None))][None]


def _with_channels(path, name, array, spatial_dims):
    if array.ndim == spatial_dims + 1:
        return array[:, None]
    if array.ndim == spatial_dims + 2:
        return array
    raise ValueError(
        f"{path}: {name!r} has shape {array.shape}; expected (N, *grid) or (N, C, *grid) "
        f"with a {spatial_dims}D grid"
    )


def _require_ndim(path, name, dataset, ndim, layout):
    if dataset.ndim != ndim:
        raise ValueError(f"{path}: {name!r} must have shape {layout}, got {dataset.shape}")


def _count(n_available: int, n_limit: int | None) -> int:
    return n_available if n_limit is None else min(n_available, n_limit)


def _positive(path, name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{path}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _as_float32(path, array) -> np.ndarray:
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise ValueError(f"{path}: expected real numeric data, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _finite(path, name: str, array: np.ndarray) -> np.ndarray:
    """``array`` (N, ...) unchanged; a one-line ValueError naming the first sample with a NaN or Inf."""
    ok = np.isfinite(array.reshape(array.shape[0], -1)).all(axis=1)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        values = array[bad[0]]
        kind = "NaN" if np.isnan(values).any() else "Inf"
        raise ValueError(
            f"{path}: {name!r} holds {kind} values (NaN or Inf, after conversion to float32) in {bad.size} of "
            f"{array.shape[0]} samples, the first is sample {int(bad[0])}; clean or drop them before training"
        )
    return array


def _import_h5py():
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - h5py is in the "pde" extra
        raise ImportError("reading HDF5 files needs h5py: pip install 'modelbalance[pde]'") from err
    return h5py


def _open_h5(h5py, path: Path):
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: cannot read as HDF5 ({err})") from None


def _h5_keys(h5py, path: Path) -> set[str]:
    with _open_h5(h5py, path) as f:
        return set(f.keys())
