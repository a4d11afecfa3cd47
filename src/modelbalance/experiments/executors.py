"""Where a sweep's runs train: in this process, in worker processes on this machine, or (``ray_executor``) as Ray
tasks.

The runner keeps the plan and hands each batch of :class:`~modelbalance.experiments.plan.RunSpec` to an executor,
which calls back in the driver as each run finishes; only the driver writes results::

    from modelbalance.experiments.executors import make_executor

    with make_executor(workers=2, threads=1) as executor:
        executor.run(prepared, specs, on_record=lambda spec, record: print(spec, record["status"]))

A run's numbers do not depend on where it ran: a worker prepares the same config itself (the data are generated
from seeds) and trains with the thread count it is given, so ``SequentialExecutor`` under
``torch.set_num_threads(1)``, ``ProcessExecutor(2, threads_per_worker=1)`` and ``RayExecutor(threads_per_run=1)``
give bitwise the same metrics. A worker that dies mid-run is replaced and the run retried once, then recorded as
failed; a Ctrl-C in the driver stops the workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelbalance.experiments.plan import RunSpec

__all__ = [
    "Executor",
    "SequentialExecutor",
    "ProcessExecutor",
    "make_executor",
    "available_cores",
    "failed_record",
]

OnRecord = Callable[[RunSpec, dict], None]
OnStep = Callable[[int], None]
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
_STEP_REPORT_S = 0.2  # a worker reports its optimizer steps at most this often


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def failed_record(prepared, spec: RunSpec, error: str) -> dict[str, Any]:
    """The record of a run that never returned one (its worker died): the identity fields of ``execute_run``'s
    record, marked failed with ``error``."""
    from modelbalance.experiments.runner import base_record

    record = base_record(prepared, spec)
    record.update(error=error, train_time_s=0.0, wall_time_s=0.0, finished_at=record["started_at"])
    return record


# ---------------------------------------------------------------------------------------------------- executors
class Executor:
    """Runs a list of specs and reports each record to the driver; a context manager that closes itself."""

    def run(
        self, prepared, specs: list[RunSpec], *, on_record: OnRecord, on_step: OnStep | None = None
    ) -> None:
        """Execute every spec; ``on_record(spec, record)`` runs in the calling thread as each finishes (in any
        order); ``on_step(1)`` per optimizer step where the executor can report it."""
        raise NotImplementedError

    def close(self) -> None:
        """Release workers (a closed executor may be run again: it starts new ones)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SequentialExecutor(Executor):
    """Today's behaviour: every run in this process, in order, with the driver's thread setting.

    Examples
    --------
    >>> SequentialExecutor().run(None, [], on_record=print)
    """

    def run(self, prepared, specs, *, on_record, on_step=None) -> None:
        for spec in specs:
            on_record(spec, _execute(prepared, spec, on_step))


@dataclass
class _Worker:
    process: Any
    conn: Any
    device: str | None
    spec: RunSpec | None = None
    attempt: int = 0
    steps: int = 0  # optimizer steps this attempt reported


@dataclass
class _Progress:
    """Per-spec steps already shown, so a retried run does not count its steps twice."""

    on_step: OnStep | None
    shown: dict[RunSpec, int] = field(default_factory=dict)

    def advance(self, worker: _Worker, steps: int) -> None:
        worker.steps += steps
        new = worker.steps - self.shown.get(worker.spec, 0)
        if new > 0 and self.on_step is not None:
            self.shown[worker.spec] = worker.steps
            for _ in range(new):
                self.on_step(1)


class ProcessExecutor(Executor):
    """``--workers N``: N spawned worker processes on this machine, each with its share of the CPU threads.

    Examples
    --------
    >>> with ProcessExecutor(2, threads_per_worker=1) as executor:          # doctest: +SKIP
    ...     executor.run(prepared, specs, on_record=save)

    Parameters
    ----------
    workers : int
        Runs at once.
    threads_per_worker : int, optional
        torch (and OpenMP/MKL) threads of each worker; default: the available cores divided among the workers.
    runs_per_gpu : int
        Workers sharing one GPU (checked by :func:`make_executor`; worker i trains on ``cuda:{i % n_gpus}``).
    devices : list of str, optional
        Devices to deal the workers onto (worker i gets ``devices[i % len(devices)]``); default: every GPU when
        the sweep trains on cuda, else the config's device.
    """

    def __init__(
        self, workers: int, *, threads_per_worker: int | None = None, runs_per_gpu: int = 1, devices=None
    ):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.threads_per_worker = threads_per_worker or max(1, available_cores() // workers)
        self.runs_per_gpu = runs_per_gpu
        self.devices = list(devices) if devices else None
        self._pool: list[_Worker | None] = [None] * workers

    def _devices_for(self, prepared) -> list[str | None]:
        if self.devices:
            return self.devices
        if prepared.device.type == "cuda":
            import torch

            return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        return [None]

    def _start(self, slot: int, device: str | None) -> _Worker:
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has started threads
        parent, child = context.Pipe()
        threads = str(self.threads_per_worker)
        with _environment(dict.fromkeys(_THREAD_VARS, threads)):  # read when the worker imports torch
            process = context.Process(
                target=_worker_main,
                args=(child, self.threads_per_worker, os.getpid()),
                name=f"modelbalance-worker-{slot}",
                daemon=True,
            )
            process.start()
        child.close()
        worker = self._pool[slot] = _Worker(process, parent, device)
        return worker

    def _discard(self, slot: int, *, kill: bool = False) -> None:
        worker, self._pool[slot] = self._pool[slot], None
        if worker is None:
            return
        with contextlib.suppress(OSError):
            if not kill:
                worker.conn.send(None)  # finish after the current message
            worker.conn.close()
        if kill and worker.process.is_alive():
            worker.process.terminate()
        worker.process.join(timeout=5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()

    def close(self) -> None:
        for slot in range(self.workers):
            self._discard(slot)

    def run(self, prepared, specs, *, on_record, on_step=None) -> None:
        from multiprocessing.connection import wait

        devices = self._devices_for(prepared)
        plugins = _plugin_modules(prepared.config)
        queue = deque((spec, 0) for spec in specs)
        progress = _Progress(on_step)
        busy: set[int] = set()
        try:
            while queue or busy:
                for slot in range(self.workers):
                    if slot not in busy and queue:
                        spec, attempt = queue.popleft()
                        self._assign(
                            slot, devices[slot % len(devices)], prepared.config, plugins, spec, attempt
                        )
                        busy.add(slot)
                waitables = [w for s in busy for w in (self._pool[s].conn, self._pool[s].process.sentinel)]
                wait(waitables, timeout=1.0)
                for slot in sorted(busy):
                    worker = self._pool[slot]
                    record, died = self._drain(worker, progress)
                    if record is not None:
                        busy.discard(slot)
                        spec, worker.spec = worker.spec, None
                        on_record(
                            spec,
                            record if isinstance(record, dict) else failed_record(prepared, spec, record),
                        )
                    elif died or not worker.process.is_alive():
                        busy.discard(slot)
                        # the pipe can close before the process is reaped: wait for its exit code to name the cause
                        worker.process.join(timeout=5.0)
                        exitcode = worker.process.exitcode
                        spec, attempt = worker.spec, worker.attempt
                        self._discard(slot, kill=True)
                        if attempt < 1:
                            queue.appendleft((spec, attempt + 1))  # retried once, on a fresh worker
                        else:
                            on_record(
                                spec, failed_record(prepared, spec, _death_message(exitcode, attempt + 1))
                            )
        except BaseException:  # Ctrl-C, a failing on_record: stop every worker, leave nothing half-done
            for slot in range(self.workers):
                self._discard(slot, kill=True)
            raise

    def _assign(self, slot, device, config, plugins, spec, attempt) -> None:
        if device is not None:
            config = config.replace(device=device)
        for _ in range(2):  # a worker that died while idle is replaced without costing the run an attempt
            worker = self._pool[slot]
            if worker is None or worker.device != device or not worker.process.is_alive():
                self._discard(slot, kill=True)
                worker = self._start(slot, device)
            try:
                worker.conn.send((config, plugins, spec))
                break
            except OSError:
                self._discard(slot, kill=True)
        else:
            raise RuntimeError(f"could not start a worker process for slot {slot}")
        worker.spec, worker.attempt, worker.steps = spec, attempt, 0

    @staticmethod
    def _drain(worker: _Worker, progress: _Progress):
        """Read a worker's pending messages: (its record, or an error line, or None; whether its pipe broke)."""
        try:
            while worker.conn.poll():
                kind, payload = worker.conn.recv()
                if kind == "steps":
                    progress.advance(worker, payload)
                else:  # "record", or "error": the worker could not prepare the experiment
                    return payload, False
        except Exception:  # EOF, a broken pipe or a message cut off by the worker's death
            return None, True
        return None, False


def _death_message(exitcode: int | None, attempts: int) -> str:
    how = f"exit code {exitcode}"
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            how = f"signal {signal.Signals(-exitcode).name}"
    return f"WorkerDied: the worker process died ({how}) while training this run, {attempts} attempts"


def _die_with_driver(driver_pid: int) -> None:
    """Have Linux SIGKILL this worker when the driver dies, however it dies (SIGTERM, SIGKILL, a crash)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != driver_pid:  # the driver died before that took effect
        os._exit(1)


class _StepReporter:
    """``on_step`` inside a worker: counts steps and sends them to the driver at most every 0.2 s."""

    def __init__(self, conn):
        self.conn, self.pending, self.last = conn, 0, time.monotonic()

    def __call__(self, _step) -> None:
        self.pending += 1
        if time.monotonic() - self.last > _STEP_REPORT_S:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.conn.send(("steps", self.pending))
        self.pending, self.last = 0, time.monotonic()


def _worker_main(conn, threads: int, driver_pid: int) -> None:
    """A worker process: receive (config, plug-ins, spec), send steps and the record, until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C and stops the workers
    _die_with_driver(driver_pid)
    _limit_threads(threads)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        config, plugins, spec = message
        reporter = _StepReporter(conn)
        try:
            prepared = _prepared_for(config, plugins)
        except Exception as err:
            conn.send(("error", f"worker could not prepare the experiment: {type(err).__name__}: {err}"))
            continue
        record = _execute(prepared, spec, reporter)
        reporter.flush()
        conn.send(("record", record))


# ---------------------------------------------------------------------------------------------------- in a worker
_PREPARED: dict[str, Any] = {}  # config JSON -> PreparedExperiment, per worker process
_PLUGINS: set[str] = set()


def _prepared_for(config, plugins: tuple[str, ...] = ()):
    """The worker's prepared experiment of ``config`` (prepared once per process and config)."""
    from modelbalance.experiments.registry import load_plugin
    from modelbalance.experiments.runner import prepare

    for plugin in plugins:
        if plugin not in _PLUGINS and plugin.removesuffix(".py") not in sys.modules:
            load_plugin(plugin)
        _PLUGINS.add(plugin)
    key = json.dumps(config.to_dict(), sort_keys=True)
    if key not in _PREPARED:
        _PREPARED[key] = prepare(config)
    return _PREPARED[key]


def _plugin_modules(config) -> tuple[str, ...]:
    """Modules (or .py files) outside modelbalance that registered the sweep's task, model or methods: a worker
    imports them before preparing, as the driver did with ``--plugin``."""
    from modelbalance.experiments.registry import METHODS, MODELS, TASKS

    factories = [TASKS.get(config.task), MODELS.get(config.model)]
    factories += [METHODS.get(config.method_spec(method)[0]) for method in config.methods]
    out: list[str] = []
    for factory in factories:
        name = getattr(factory, "__module__", "") or ""
        if name.startswith("modelbalance.") or name in ("__main__", "__mp_main__"):
            continue
        file = getattr(sys.modules.get(name), "__file__", None)
        spec = file if name.startswith("modelbalance_plugin_") and file else name
        if spec and spec not in out:
            out.append(spec)
    return tuple(out)


def _limit_threads(threads: int) -> None:
    os.environ.update(dict.fromkeys(_THREAD_VARS, str(threads)))
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _execute(prepared, spec: RunSpec, on_step: OnStep | None) -> dict:
    from modelbalance.experiments.runner import execute_run

    return execute_run(prepared, spec, on_step=on_step)


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ---------------------------------------------------------------------------------------------------- options
def make_executor(
    *,
    executor: str = "local",
    workers: int = 1,
    runs_per_gpu: int = 1,
    ray_address: str | None = None,
    threads: int | None = None,
    device: str | None = None,
) -> Executor:
    """Check the options (one-line ValueError) and build the executor; ``workers=1`` locally is sequential.

    ``threads`` is per run (default, or 0: the cores divided among the workers; one per Ray task). ``device`` is
    the sweep's device (``None``: cuda where there is one); on cuda, ``workers`` may not exceed the GPUs times
    ``runs_per_gpu``, and Ray tasks request ``1 / runs_per_gpu`` of a GPU each. With Ray, ``workers`` is unused:
    the cluster's resources decide how many runs train at once.

    Examples
    --------
    >>> type(make_executor()).__name__
    'SequentialExecutor'
    >>> make_executor(workers=0)
    Traceback (most recent call last):
    ...
    ValueError: --workers must be at least 1, got 0
    """
    if executor not in ("local", "ray"):
        raise ValueError(f"--executor must be local or ray, got {executor!r}")
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if runs_per_gpu < 1:
        raise ValueError(f"--runs-per-gpu must be at least 1, got {runs_per_gpu}")
    if threads is not None and threads < 0:
        raise ValueError(f"--threads must be >= 0, got {threads}")
    threads = threads or None  # 0: the default share
    if ray_address is not None and executor != "ray":
        raise ValueError("--ray-address needs --executor ray")
    on_gpu = _uses_gpu(device)
    if executor == "ray":
        from modelbalance.experiments.ray_executor import RayExecutor  # Ray is optional: import it only here

        ray_executor = RayExecutor(
            address=ray_address, num_cpus_per_run=threads or 1, threads_per_run=threads
        )
        if on_gpu is not False and ray_executor.cluster_gpus() > 0:
            ray_executor.num_gpus_per_run = 1.0 / runs_per_gpu
        return ray_executor
    if workers == 1:
        return SequentialExecutor()
    cores = available_cores()
    per_worker = threads or 1
    if workers * per_worker > cores:
        need = f"--workers {workers}" + (f" x --threads {threads}" if threads else "")
        raise ValueError(f"{need} needs {workers * per_worker} CPU cores, this process may use {cores}")
    if on_gpu:
        import torch

        gpus = torch.cuda.device_count()
        if workers > gpus * runs_per_gpu:
            raise ValueError(
                f"--workers {workers} is more than {gpus} GPU(s) x --runs-per-gpu {runs_per_gpu} allow; "
                f"raise --runs-per-gpu to {-(-workers // gpus)} or lower --workers"
            )
    return ProcessExecutor(
        workers, threads_per_worker=threads or max(1, cores // workers), runs_per_gpu=runs_per_gpu
    )


def _uses_gpu(device: str | None) -> bool | None:
    """Whether runs on ``device`` train on a local GPU (None: no local GPU, so it is the cluster's choice)."""
    import torch

    if device is not None:
        return device.startswith("cuda")
    return True if torch.cuda.is_available() else None
