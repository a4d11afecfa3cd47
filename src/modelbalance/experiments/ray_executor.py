"""``--executor ray``: a sweep's runs as Ray tasks, on a local cluster or one already running.

Every run is one task with its own CPU/GPU request; a task prepares the sweep's config itself, as a local worker
process does, so the metrics equal the sequential sweep's (see :mod:`modelbalance.experiments.executors`)::

    from modelbalance.experiments.ray_executor import RayExecutor

    with RayExecutor(address="auto", num_gpus_per_run=0.25) as executor:  # four runs share each GPU
        executor.run(prepared, specs, on_record=save)

Ray is optional (``pip install 'modelbalance[ray]'``); nothing else in modelbalance imports this module eagerly.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time

from modelbalance.experiments.executors import (
    Executor,
    _execute,
    _limit_threads,
    _plugin_modules,
    _prepared_for,
    available_cores,
    failed_record,
)
from modelbalance.experiments.plan import RunSpec

__all__ = ["RayExecutor", "check_ray_address"]

RAY_EXTRA = "pip install 'modelbalance[ray]'"


class RayExecutor(Executor):
    """``--executor ray``: every run a Ray task with its CPU/GPU request; no address starts a local cluster.

    Examples
    --------
    >>> with RayExecutor(num_cpus=2, threads_per_run=1) as executor:        # doctest: +SKIP
    ...     executor.run(prepared, specs, on_record=save)

    Parameters
    ----------
    address : str, optional
        ``auto`` or ``HOST:PORT`` of a running cluster; default: start a local one (closed by :meth:`close`).
    num_cpus_per_run, num_gpus_per_run : float
        Each task's resource request (``num_gpus_per_run=0.25`` packs four runs on a GPU).
    threads_per_run : int, optional
        torch threads of a run; default ``max(1, int(num_cpus_per_run))``.
    num_cpus : int, optional
        CPUs of a local cluster (default: the cores available here); ignored with an address.

    Progress is per finished run (``reports_steps`` is False: ``on_step`` is never called).
    """

    reports_steps = False

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus_per_run: float = 1,
        num_gpus_per_run: float = 0,
        threads_per_run: int | None = None,
        num_cpus: int | None = None,
    ):
        ray = _import_ray()
        self.num_cpus_per_run = num_cpus_per_run
        self.num_gpus_per_run = num_gpus_per_run
        self.threads_per_run = threads_per_run or max(1, int(num_cpus_per_run))
        self.startup_s = 0.0
        if address not in (None, "auto"):
            check_ray_address(address)
        self._owner = not ray.is_initialized()  # else: use the caller's connection and leave it open
        if self._owner:
            start = time.perf_counter()
            try:
                ray.init(
                    address=address,
                    num_cpus=None if address else (num_cpus or available_cores()),
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                )
            except ConnectionError as err:
                raise ValueError(f"--ray-address {address}: {str(err).splitlines()[0]}") from None
            self.startup_s = time.perf_counter() - start

    def cluster_gpus(self) -> float:
        return float(_import_ray().cluster_resources().get("GPU", 0))

    def close(self) -> None:
        ray = _import_ray()
        if self._owner and ray.is_initialized():
            ray.shutdown()
        self._owner = False

    def run(self, prepared, specs, *, on_record, on_step=None) -> None:
        ray = _import_ray()
        config = prepared.config
        if self.num_gpus_per_run > 0:
            config = config.replace(device="cuda")  # Ray sets CUDA_VISIBLE_DEVICES to the task's GPU
        elif config.device not in (None, "cpu"):
            raise ValueError(f"the sweep trains on {config.device} but the Ray tasks request no GPU")
        else:
            config = config.replace(device="cpu")
        task = ray.remote(_ray_task).options(
            num_cpus=self.num_cpus_per_run,
            num_gpus=self.num_gpus_per_run,
            max_retries=1,
            retry_exceptions=False,
        )
        plugins = _plugin_modules(config)
        pending = {task.remote(config, plugins, spec, self.threads_per_run): spec for spec in specs}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                spec = pending.pop(done[0])
                try:
                    record = ray.get(done[0])
                except ray.exceptions.RayTaskError as err:  # prepare() failed in the task
                    record = failed_record(prepared, spec, f"task failed: {str(err.cause or err)[:1000]}")
                except ray.exceptions.RayError as err:  # the worker or its node died, twice
                    record = failed_record(
                        prepared,
                        spec,
                        f"WorkerDied: {type(err).__name__}: {str(err).splitlines()[0]}, 2 attempts",
                    )
                on_record(spec, record)
        except BaseException:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise


def _ray_task(config, plugins, spec: RunSpec, threads: int) -> dict:
    _limit_threads(threads)
    return _execute(_prepared_for(config, plugins), spec, None)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError(f"--executor ray needs Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """A ValueError unless something listens at ``HOST:PORT`` (ray.init itself would wait for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray-address {address!r}: expected auto or HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ValueError(f"--ray-address {address}: no Ray cluster reachable there ({err})") from None
