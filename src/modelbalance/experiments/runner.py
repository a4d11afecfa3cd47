"""The sweep: validate everything, tune each method's learning rate on validation, run the seeds, write results.

The core knows tasks, models and methods only through the registries, so plug-ins never touch it::

    from modelbalance.experiments.config import ExperimentConfig
    from modelbalance.experiments.runner import run_experiment

    outcome = run_experiment(ExperimentConfig(task="toy", model="mlp", fractions=(0.25, 1.0), seeds=(0, 1),
                                              epochs=3, out="/tmp/toy"))
    print(outcome.summary_path)
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, default_collate

from modelbalance import __version__
from modelbalance.experiments.config import ExperimentConfig
from modelbalance.experiments.methods import Method, RunContext, forward_order
from modelbalance.experiments.registry import METHODS, MODELS, TASKS
from modelbalance.experiments.store import FolderConflict, ResultsFolder, run_key
from modelbalance.experiments.tasks import Task, TaskData
from modelbalance.experiments.training import (
    TrainSettings,
    evaluate,
    make_optimizer,
    make_scheduler,
    seed_everything,
    to_device,
    train,
)
from modelbalance.experiments.tuning import GridPoint, pick_learning_rate

__all__ = [
    "ExperimentOutcome",
    "PreparedExperiment",
    "prepare",
    "run_experiment",
    "execute_run",
    "FolderConflict",
]


def resolve_device(name: str | None) -> torch.device:
    """``name``, or cuda when available, else cpu; an unusable device is a ValueError."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"invalid device {name!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


@dataclass
class PreparedExperiment:
    """A validated sweep with its data loaded: everything a run needs, nothing trained yet."""

    config: ExperimentConfig
    task: Task
    data: TaskData
    train_pool: Dataset
    val: Dataset
    device: torch.device
    methods: dict[str, tuple[str, dict[str, Any]]]  # sweep name -> (registered base, options)
    n_params: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return self.task.primary_metric

    @property
    def direction(self) -> str:
        return self.task.direction

    def n_train(self, fraction: float) -> int:
        """Training-set size for ``fraction`` of the pool (at least one sample)."""
        return max(1, int(round(fraction * len(self.train_pool))))

    def subset_indices(self, fraction: float, seed: int) -> list[int]:
        """The seeded training subset: the first n_train of a seed's permutation of the pool.

        Subsets are nested across fractions for one seed, and the same for every method and learning rate.
        """
        from modelbalance.experiments.pde.datasets import subsample_indices

        return subsample_indices(len(self.train_pool), fraction, seed=seed).tolist()

    def settings(self, lr: float) -> TrainSettings:
        c = self.config
        return TrainSettings(
            epochs=c.epochs,
            batch_size=c.batch_size,
            lr=lr,
            optimizer=c.optimizer,
            momentum=c.momentum,
            weight_decay=c.weight_decay,
            scheduler=c.scheduler,
            warmup=c.warmup,
            min_lr_ratio=c.min_lr_ratio,
            step_epochs=c.step_epochs,
            step_gamma=c.step_gamma,
            grad_clip=c.grad_clip,
            eval_batch_size=c.eval_batch_size,
            steps=c.steps,
        )

    def build_model(self, seed: int) -> torch.nn.Module:
        seed_everything(seed)
        model = MODELS.get(self.config.model)(dict(self.data.spec), **self.config.model_params)
        return model.to(self.device)

    def build_method(self, method: str) -> Method:
        base, options = self.methods[method]
        return METHODS.get(base)(**options)

    def run_steps(self, fraction: float) -> int:
        """Optimizer steps of one run at ``fraction`` (the progress bar's unit)."""
        return self.settings(1.0).total_steps(self.n_train(fraction))


def _call_factory(kind: str, name: str, factory: Callable, *args, **kwargs):
    try:
        return factory(*args, **kwargs)
    except TypeError as err:
        raise ValueError(f"{kind} {name!r}: {err}") from None


def prepare(config: ExperimentConfig) -> PreparedExperiment:
    """Check every name and option and load the data; raises ValueError / FileNotFoundError on bad input.

    Nothing is trained and nothing is written; the CLI turns these errors into one-line messages.
    """
    task_factory = TASKS.get(config.task)
    model_factory = MODELS.get(config.model)
    methods = {name: config.method_spec(name) for name in config.methods}
    for name, (base, options) in methods.items():
        _call_factory("method", name, METHODS.get(base), **options)  # validates the options
    device = resolve_device(config.device)

    task = _call_factory(
        "task", config.task, task_factory, data=config.data, seed=config.data_seed, **config.task_params
    )
    data = task.load()
    val, train_pool = data.val, data.train_pool
    if val is None:
        val, train_pool = split_validation(data.train_pool, config.val_size, config.data_seed)
    if len(train_pool) < 1 or len(val) < 1 or len(data.test) < 1:
        raise ValueError(
            f"task {config.task!r}: need non-empty train pool, validation and test sets, got "
            f"{len(train_pool)}/{len(val)}/{len(data.test)} samples"
        )
    prepared = PreparedExperiment(
        config=config, task=task, data=data, train_pool=train_pool, val=val, device=device, methods=methods
    )
    model = _call_factory("model", config.model, model_factory, dict(data.spec), **config.model_params).to(
        device
    )
    prepared.n_params = sum(p.numel() for p in model.parameters())
    for name in config.methods:
        check_method(prepared, name, model)
    for fraction in config.fractions:
        if prepared.n_train(fraction) < 2:
            prepared.notes.append(
                f"fraction {fraction:g} gives {prepared.n_train(fraction)} training sample(s)"
            )
    return prepared


def check_method(prepared: PreparedExperiment, method: str, model: torch.nn.Module) -> None:
    """Attach ``method`` to ``model`` with a throw-away optimizer and detach it: structural problems (no blocks
    to balance, ...) surface as a ValueError before any training."""
    config = prepared.config
    context = _run_context(prepared, fraction=min(config.fractions), seed=config.seeds[0], lr=config.lrs[0])
    try:
        method_obj = prepared.build_method(method)
        optimizer = torch.optim.SGD(method_obj.param_groups(model, context), lr=config.lrs[0])
        method_obj.attach(model, optimizer, context).remove()
    except (ValueError, TypeError) as err:
        raise ValueError(f"method {method!r} cannot train model {config.model!r}: {err}") from None


def _run_context(prepared: PreparedExperiment, *, fraction: float, seed: int, lr: float) -> RunContext:
    config = prepared.config
    settings, n_train = prepared.settings(lr), prepared.n_train(fraction)
    return RunContext(
        seed=seed,
        lr=lr,
        weight_decay=config.weight_decay,
        epochs=settings.num_epochs(n_train),
        steps_per_epoch=settings.steps_per_epoch(n_train),
        total_steps=settings.total_steps(n_train),
        spectral_conv=config.spectral_conv,
        probe=lambda model: _probe(prepared, model),
    )


@torch.no_grad()
def _probe(prepared: PreparedExperiment, model: torch.nn.Module) -> None:
    """Run ``model`` on two validation samples in eval mode (no statistics or weights change)."""
    batch = default_collate([prepared.val[i] for i in range(min(2, len(prepared.val)))])
    inputs, _ = prepared.task.split_batch(to_device(batch, prepared.device))
    was_training = model.training
    model.eval()
    try:
        prepared.task.predict(model, inputs)
    finally:
        model.train(was_training)


def split_validation(pool: Dataset, val_size: float, seed: int) -> tuple[Subset, Subset]:
    """Carve a seeded validation split off ``pool``: (validation, remaining training pool)."""
    n = len(pool)
    n_val = int(round(val_size * n)) if val_size < 1 else int(val_size)
    n_val = max(1, n_val)
    if n_val >= n:
        raise ValueError(f"val_size {val_size} leaves no training data in a pool of {n} samples")
    order = np.random.default_rng(np.random.SeedSequence([seed, 0x7A1])).permutation(n)
    return Subset(pool, sorted(order[:n_val].tolist())), Subset(pool, sorted(order[n_val:].tolist()))


# ---------------------------------------------------------------------------------------------------- one run
def execute_run(
    prepared: PreparedExperiment,
    *,
    fraction: float,
    seed: int,
    method: str,
    lr: float,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one run; returns its record. Any exception but an interrupt makes a failed record."""
    config = prepared.config
    run_hash = config.run_hash(method)
    n_train = prepared.n_train(fraction)
    record: dict[str, Any] = {
        "key": run_key(config.task, config.model, fraction, seed, method, lr, run_hash),
        "task": config.task,
        "model": config.model,
        "fraction": fraction,
        "n_train": n_train,
        "seed": seed,
        "method": method,
        "lr": lr,
        "status": "failed",
        "error": "",
        "run_hash": run_hash,
        "device": str(prepared.device),
        "started_at": _now(),
        "modelbalance_version": __version__,
    }
    start = time.perf_counter()
    with _captured_warnings() as notes:
        _train_and_evaluate(
            prepared, record, fraction=fraction, seed=seed, method=method, lr=lr, on_step=on_step
        )
    if notes:
        record["warnings"] = notes
    record.setdefault("train_time_s", time.perf_counter() - start)
    record["wall_time_s"] = time.perf_counter() - start
    record["finished_at"] = _now()
    return record


def _train_and_evaluate(prepared, record, *, fraction, seed, method, lr, on_step) -> None:
    """Fill ``record`` with one run's results; an exception other than an interrupt marks it failed."""
    config = prepared.config
    n_train = prepared.n_train(fraction)
    try:
        model = prepared.build_model(seed)
        train_set = Subset(prepared.train_pool, prepared.subset_indices(fraction, seed))
        settings = prepared.settings(lr)
        context = _run_context(prepared, fraction=fraction, seed=seed, lr=lr)
        method_obj = prepared.build_method(method)
        optimizer = make_optimizer(method_obj.param_groups(model, context), settings)
        scheduler = make_scheduler(optimizer, settings, n_train)
        attachment = method_obj.attach(model, optimizer, context)
        try:
            result = train(
                model,
                prepared.task,
                train_set,
                optimizer,
                scheduler,
                settings,
                seed=seed,
                device=prepared.device,
                on_step=on_step,
            )
        finally:
            record.update(attachment.artifacts())
            attachment.remove()
        val = evaluate(
            model, prepared.task, prepared.val, batch_size=config.eval_batch_size, device=prepared.device
        )
        test = evaluate(
            model,
            prepared.task,
            prepared.data.test,
            batch_size=config.eval_batch_size,
            device=prepared.device,
        )
        record.update(test)
        record.update({f"val_{k}": v for k, v in val.items()})
        record.update(
            train_time_s=result.train_time_s,
            steps=result.steps,
            final_train_loss=result.epoch_losses[-1] if result.epoch_losses else math.nan,
            epoch_losses=result.epoch_losses,
            n_params=sum(p.numel() for p in model.parameters()),
        )
        if config.analyze_layers:
            try:  # a diagnostic: its failure must not discard the run's metrics
                record["layers"] = layer_alphas(model, context.probe)
            except Exception as err:
                record["layers_error"] = f"{type(err).__name__}: {err}"
        record["status"] = "ok"
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a failed run is recorded and the sweep goes on
        record["error"] = f"{type(err).__name__}: {err}".replace("\n", " ")[:1000]
        record["traceback"] = traceback.format_exc(limit=20)


@contextlib.contextmanager
def _captured_warnings():
    """Collect the library's log warnings and Python warnings of one run (distinct messages, in order) instead
    of printing them through the progress bar; they are stored with the run and summarised."""
    notes: list[str] = []
    logger = logging.getLogger("modelbalance")

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message not in notes:
                notes.append(message)

    handler = _Collect(level=logging.WARNING)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield notes
        for warning in caught:
            message = f"{warning.category.__name__}: {warning.message}"
            if message not in notes:
                notes.append(message)
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def layer_alphas(
    model: torch.nn.Module, probe: Callable[[torch.nn.Module], None] | None = None
) -> list[dict]:
    """Per-layer alpha after training from the spectral engine (all layers, spectral convolutions included), in
    the order data flows through the model when ``probe`` runs it, else in module registration order."""
    from modelbalance.spectral import analyze

    frame = analyze(model, progress=False, relative=True, nonfinite="skip").to_frame()
    columns = [
        c for c in ("name", "module_type", "kind", "alpha", "alpha_relative", "num_eigs") if c in frame
    ]
    if probe is not None:
        position = forward_order(model, probe)
    else:
        position = {name: i for i, (name, _) in enumerate(model.named_modules())}

    def module_position(layer: str) -> int:  # attention parts are named "<module>.q" etc.
        return position.get(layer, position.get(layer.rpartition(".")[0], len(position)))

    records = frame[columns].to_dict("records")
    return sorted(records, key=lambda record: module_position(record["name"]))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------------- the sweep
@dataclass
class ExperimentOutcome:
    """What a finished sweep produced (paths and counts; the records for programmatic use)."""

    out: Path
    records: list[dict[str, Any]]
    picked_lrs: dict[tuple[float, str], float | None]
    grid: list[GridPoint]
    n_new: int
    n_reused: int
    n_failed: int
    summary_path: Path | None = None
    summary_markdown: str = ""
    plot_paths: list[Path] = field(default_factory=list)


def run_experiment(
    config: ExperimentConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    retry_failed: bool = False,
    progress: bool = True,
    plots: bool = True,
    log: Callable[[str], None] = print,
    prepared: PreparedExperiment | None = None,
    reuse: Sequence[str | Path] = (),
) -> ExperimentOutcome:
    """Run (or resume) the sweep of ``config`` and write its results folder.

    Parameters
    ----------
    resume : bool
        Allow continuing a folder whose sweep differs in its axes (fractions, seeds, methods, lrs, method
        options) but not in how runs train. A folder with exactly this config is always continued.
    overwrite : bool
        Replace the results in ``config.out``.
    retry_failed : bool
        Run again the runs recorded as failed (by default they are kept as failed).
    prepared : PreparedExperiment, optional
        The result of :func:`prepare` when the caller already validated the config.
    reuse : sequence of paths
        Other results folders whose finished runs are taken instead of training again, when their key (task,
        model, fraction, seed, method, lr and every setting that changes training) equals a run of this sweep.
        A reused record is copied into ``config.out``, so the folder stays complete on its own.
    """
    folder = ResultsFolder(config.out)
    donors = reusable_runs(reuse)
    state = folder.check(config, resume=resume, overwrite=overwrite)
    prepared = prepared or prepare(config)
    folder.claim(config, overwrite=overwrite)
    try:
        return _sweep(
            prepared,
            folder,
            state,
            retry_failed=retry_failed,
            progress=progress,
            plots=plots,
            log=log,
            donors=donors,
        )
    finally:
        folder.release()


def check_reuse(folders: Sequence[str | Path]) -> list[ResultsFolder]:
    """The results folders to reuse runs from, checked without reading them.

    Raises
    ------
    FolderConflict
        A folder is missing or holds no run records (a mistyped path would otherwise silently retrain).
    """
    out = []
    for path in folders:
        other = ResultsFolder(path)
        if not other.runs_dir.is_dir():
            raise FolderConflict(f"--reuse {path}: no results folder there (no runs/ directory)")
        if next(other.runs_dir.glob("*.json"), None) is None:
            raise FolderConflict(f"--reuse {path}: its runs/ directory holds no run records")
        out.append(other)
    return out


def reusable_runs(folders: Sequence[str | Path]) -> dict[str, dict]:
    """The successful run records of other results folders, by key (``run_experiment(reuse=...)``)."""
    donors: dict[str, dict] = {}
    for other in check_reuse(folders):
        donors.update({key: r for key, r in other.load_runs().items() if r.get("status") == "ok"})
    return donors


class _Sweep:
    """Bookkeeping of one sweep: stored records, the progress bar, run execution."""

    def __init__(self, prepared, folder, *, retry_failed, progress, log, donors=None):
        from tqdm.auto import tqdm

        self.prepared = prepared
        self.folder = folder
        self.retry_failed = retry_failed
        self.log = log
        self.stored = folder.load_runs()
        self.donors = donors or {}  # finished runs of other folders (--reuse)
        self.n_new = 0
        self.reused: set[str] = set()
        self.bar = tqdm(
            total=0, unit="step", disable=not progress, dynamic_ncols=True, smoothing=0.1, desc="sweep"
        )

    def key(self, fraction, seed, method, lr) -> str:
        c = self.prepared.config
        return run_key(c.task, c.model, fraction, seed, method, lr, c.run_hash(method))

    def is_done(self, fraction, seed, method, lr) -> bool:
        key = self.key(fraction, seed, method, lr)
        record = self.stored.get(key)
        ok_here = record is not None and (record["status"] == "ok" or not self.retry_failed)
        return ok_here or key in self.donors

    def add_pending(self, runs) -> None:
        self.bar.total += sum(self.prepared.run_steps(fraction) + 1 for fraction, *_ in runs)
        self.bar.refresh()

    def run(self, fraction, seed, method, lr) -> dict:
        key = self.key(fraction, seed, method, lr)
        if self.is_done(fraction, seed, method, lr):
            self.reused.add(key)
            record = self.stored.get(key)
            if record is None or (record["status"] != "ok" and key in self.donors):
                record = self.stored[key] = self.donors[key]  # copied in: the folder stays complete
                self.folder.save_run(record)
            return record
        self.bar.set_postfix_str(f"{method} f={fraction:g} seed={seed} lr={lr:g}", refresh=False)
        record = execute_run(
            self.prepared,
            fraction=fraction,
            seed=seed,
            method=method,
            lr=lr,
            on_step=lambda _step: self.bar.update(1),
        )
        self.folder.save_run(record)
        self.stored[key] = record
        self.n_new += 1
        # settle the bar to the run's planned size (a failed run stops early)
        done_in_run = record.get("steps", 0) if record["status"] == "ok" else 0
        self.bar.update(max(0, self.prepared.run_steps(fraction) + 1 - done_in_run))
        if record["status"] != "ok":
            self.bar.write(
                f"run failed: {method} fraction={fraction:g} seed={seed} lr={lr:g}: {record['error']}"
            )
        return record


def _sweep(prepared, folder, state, *, retry_failed, progress, plots, log, donors=None) -> ExperimentOutcome:
    from modelbalance.experiments.report import write_reports

    config = prepared.config
    sweep = _Sweep(prepared, folder, retry_failed=retry_failed, progress=progress, log=log, donors=donors)
    if state != "new" and sweep.stored:
        log(f"{folder.path}: continuing a sweep with {len(sweep.stored)} stored run(s)")
    tuning = len(config.lrs) > 1
    tune_seeds = config.effective_tune_seeds()
    cells = [(fraction, method) for fraction in config.fractions for method in config.methods]

    # planned work, for the progress bar: the tuning grid, then the final seeds not already covered by it
    tune_runs = [(f, s, m, lr) for f, m in cells for lr in config.lrs for s in tune_seeds] if tuning else []
    final_seeds = [s for s in config.seeds if not (tuning and s in tune_seeds)]
    pending = [r for r in tune_runs if not sweep.is_done(*r)]
    if not tuning:
        pending += [
            (f, s, m, config.lrs[0])
            for f, m in cells
            for s in config.seeds
            if not sweep.is_done(f, s, m, config.lrs[0])
        ]
    else:
        pending += [
            (f, s, m, None)
            for f, m in cells
            for s in final_seeds
            if not any(sweep.is_done(f, s, m, lr) for lr in config.lrs)
        ]
    sweep.add_pending(pending)
    n_total = len(tune_runs) + len(cells) * len(final_seeds if tuning else config.seeds)
    log(
        f"{config.task}/{config.model}: {n_total} runs ({len(pending)} to do) on {prepared.device}, "
        f"{len(prepared.train_pool)} pool / {len(prepared.val)} validation / {len(prepared.data.test)} test samples"
    )

    try:
        picked: dict[tuple[float, str], float | None] = {}
        grid: list[GridPoint] = []
        for fraction, method in cells:
            if not tuning:
                picked[fraction, method] = config.lrs[0]
                continue
            by_lr = {lr: [sweep.run(fraction, s, method, lr) for s in tune_seeds] for lr in config.lrs}
            best, stats = pick_learning_rate(by_lr, metric=prepared.metric, direction=prepared.direction)
            picked[fraction, method] = best
            grid += [GridPoint(fraction, method, lr, *stats[lr], selected=lr == best) for lr in config.lrs]
            if best is None:
                sweep.bar.write(
                    f"no learning rate of the grid trained without failing: {method} f={fraction:g}"
                )
        if tuning:  # now that the learning rates are known, size the rest of the bar exactly
            rest = [
                (f, s, m, picked[f, m])
                for f, m in cells
                for s in final_seeds
                if picked[f, m] is not None and not sweep.is_done(f, s, m, picked[f, m])
            ]
            sweep.bar.total = sweep.bar.n
            sweep.add_pending(rest)
        for fraction, method in cells:
            lr = picked[fraction, method]
            if lr is None:
                continue
            for seed in config.seeds:
                sweep.run(fraction, seed, method, lr)
    finally:
        sweep.bar.close()

    records = _sweep_records(sweep, config, tune_seeds if tuning else ())
    outcome = ExperimentOutcome(
        out=folder.path,
        records=records,
        picked_lrs=picked,
        grid=grid,
        n_new=sweep.n_new,
        n_reused=len(sweep.reused),
        n_failed=sum(r["status"] != "ok" for r in records),
    )
    write_reports(prepared, folder, outcome, plots=plots)
    return outcome


def _sweep_records(sweep: _Sweep, config: ExperimentConfig, tune_seeds) -> list[dict]:
    """The stored records belonging to this sweep, in sweep order (each once)."""
    seen, records = set(), []
    for fraction in config.fractions:
        for method in config.methods:
            for lr in config.lrs:
                for seed in sorted(set(config.seeds) | set(tune_seeds)):
                    key = sweep.key(fraction, seed, method, lr)
                    if key in sweep.stored and key not in seen:
                        seen.add(key)
                        records.append(sweep.stored[key])
    return records
