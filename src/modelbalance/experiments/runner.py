"""The sweep: validate everything, tune each method's learning rate on validation, run the seeds, write results.

The core knows tasks, models and methods only through the registries, so plug-ins never touch it::

    from modelbalance.experiments.config import TRAINING_GRID_PARAMS, ExperimentConfig
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
import re
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
from modelbalance.experiments.config import TRAINING_GRID_PARAMS, ExperimentConfig
from modelbalance.experiments.methods import Method, RunContext, forward_order
from modelbalance.experiments.plan import RunSpec, point_label
from modelbalance.experiments.registry import METHODS, MODELS, TASKS, unknown_option
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
from modelbalance.experiments.tuning import (
    GridPoint,
    edge_axes,
    pick_learning_rate,
    tied_edge_axes,
    without_signal,
)

GridKey = tuple  # a normalised grid point: (("lr", 1e-3), ("batch_size", 16), ...)

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
    n_trainable: int = 0
    notes: list[str] = field(default_factory=list)
    pool_labels: np.ndarray | None = None  # class labels of train_pool (classification tasks)
    data_hash: str | None = None  # sha256 of the user's data file, if any
    _cell_sizes: dict[float, int] = field(default_factory=dict)  # cell key -> training-set size
    _cell_shots: dict[float, int] = field(
        default_factory=dict
    )  # cell key -> examples per class (k-shot cells)

    def __post_init__(self):
        config, n_pool = self.config, len(self.train_pool)
        if config.subset_axis == "fractions":
            self._cell_sizes = {f: max(1, int(round(f * n_pool))) for f in config.fractions}
            return
        if config.subset_axis == "shots":
            if self.pool_labels is None:
                raise ValueError(f"--shots needs a classification task; {config.task!r} has no class labels")
            from modelbalance.experiments.subsets import check_shots

            n_classes = len(np.unique(self.pool_labels))
            sizes = {}
            for k in config.shots:
                check_shots(self.pool_labels, k, self.data.spec.get("label_names"))
                sizes[k] = k * n_classes
        else:
            sizes = {n: n for n in config.sizes}
        for value, n in sizes.items():
            if n > n_pool:
                raise ValueError(
                    f"{config.subset_axis} {value} needs {n} training examples; the training pool holds {n_pool} "
                    "(after the validation split)"
                )
        # the cell key is the share of the pool, so tables, plots and run keys work alike for every axis
        self._cell_sizes = {n / n_pool: n for n in sizes.values()}
        if config.subset_axis == "shots":
            self._cell_shots = {n / n_pool: k for k, n in sizes.items()}

    @property
    def metric(self) -> str:
        return self.task.primary_metric

    @property
    def direction(self) -> str:
        return self.task.direction

    @property
    def cells(self) -> list[float]:
        """The sweep's training-subset keys (the ``fraction`` column), smallest first as configured."""
        return list(self._cell_sizes)

    def n_train(self, fraction: float) -> int:
        """Training-set size of the cell ``fraction``."""
        if fraction in self._cell_sizes:
            return self._cell_sizes[fraction]
        return max(1, int(round(fraction * len(self.train_pool))))

    def shots_of(self, fraction: float) -> int | None:
        """Examples per class of a k-shot cell, else None."""
        return self._cell_shots.get(fraction)

    def subset_name(self, fraction: float) -> str:
        """A cell named in a sentence (console and summary alike): ``16/class``, ``225 samples`` (a study given
        absolute sizes), else ``fraction 0.1 (54 samples)``."""
        shots = self.shots_of(fraction)
        if shots is not None:
            return f"{shots}/class"
        if self.config.subset_axis == "sizes":
            return f"{self.n_train(fraction)} samples"
        return f"fraction {fraction:g} ({self.n_train(fraction)} samples)"

    def subset_indices(self, fraction: float, seed: int) -> list[int]:
        """The seeded training subset of a cell: a prefix of one seeded ordering of the pool.

        Subsets are nested across cells for one seed and the same for every method and grid point. Labelled
        pools are stratified by class (k-shot cells take k of each class).
        """
        n = self.n_train(fraction)
        if self.pool_labels is not None:
            from modelbalance.experiments.subsets import kshot_subset, stratified_subset

            shots = self.shots_of(fraction)
            if shots is not None:
                return kshot_subset(self.pool_labels, shots, seed).tolist()
            return stratified_subset(self.pool_labels, n, seed).tolist()
        from modelbalance.experiments.pde.datasets import subsample_indices

        return subsample_indices(len(self.train_pool), n / len(self.train_pool), seed=seed).tolist()

    def settings(self, point: GridKey | float) -> TrainSettings:
        """The TrainSettings of a grid point (an lr alone means the config's other settings)."""
        c = self.config
        values = dict(point) if isinstance(point, tuple) else {"lr": float(point)}
        training = {k: v for k, v in values.items() if k in TRAINING_GRID_PARAMS}
        return TrainSettings(
            epochs=training.get("epochs", c.epochs),
            batch_size=training.get("batch_size", c.batch_size),
            lr=training["lr"],
            optimizer=c.optimizer,
            momentum=c.momentum,
            weight_decay=training.get("weight_decay", c.weight_decay),
            scheduler=c.scheduler,
            warmup=training.get("warmup", c.warmup),
            min_lr_ratio=c.min_lr_ratio,
            step_epochs=c.step_epochs,
            step_gamma=c.step_gamma,
            grad_clip=c.grad_clip,
            eval_batch_size=c.eval_batch_size,
            steps=training.get("steps", c.steps),
        )

    def build_model(self, seed: int) -> torch.nn.Module:
        seed_everything(seed)
        model = MODELS.get(self.config.model)(dict(self.data.spec), **self.config.model_params)
        if self.config.finetune == "lora":
            from modelbalance.experiments.models.lora import apply_lora

            model = apply_lora(model, self.config.lora)
        return model.to(self.device)

    def build_method(self, method: str, point: GridKey = ()) -> Method:
        base, options = self.methods[method]
        method_options = {k: v for k, v in dict(point).items() if k not in TRAINING_GRID_PARAMS}
        return METHODS.get(base)(**{**options, **method_options})

    def run_steps(self, fraction: float, point: GridKey | float = 1.0) -> int:
        """Optimizer steps of one run at ``fraction`` (the progress bar's unit)."""
        return self.settings(point if isinstance(point, tuple) else float(point)).total_steps(
            self.n_train(fraction)
        )

    def run_hash(self, method: str, point: GridKey = ()) -> str:
        extra = {k: v for k, v in dict(point).items() if k != "lr"}
        return self.config.run_hash(method, extra)

    def key(self, spec: RunSpec) -> str:
        c = self.config
        return run_key(
            c.task,
            c.model,
            spec.fraction,
            spec.seed,
            spec.method,
            spec.lr,
            self.run_hash(spec.method, spec.params),
        )


def _call_factory(
    kind: str, name: str, factory: Callable, /, *args, _registered=None, _options=None, **kwargs
):
    """``factory(*args, **kwargs)``, a TypeError turned into a one-line ValueError. ``_registered`` is the
    registered factory whose options the user set (default: ``factory``), ``_options`` those options (default:
    ``kwargs``)."""
    # positional-only: a task's own options may be called "name" (glue's name=sst2)
    try:
        return factory(*args, **kwargs)
    except TypeError as err:
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        options = kwargs if _options is None else _options
        known = _options_of(_registered or factory, skip=("data", "seed"))
        if unknown and unknown[1] in options and known:  # the user's options, not an internal signature
            raise unknown_option(kind, name, unknown[1], known) from None
        raise ValueError(f"{kind} {name!r}: {err}") from None


def _options_of(factory: Callable, skip: Sequence[str] = ()) -> list[str]:
    """The keyword options a registered factory takes (its ``options`` attribute, a list or a function that
    returns one, e.g. where listing them needs an import; else its signature)."""
    import inspect

    options = getattr(factory, "options", None)
    if options is not None:
        return list(options() if callable(options) else options)
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return []  # passes options on: its own list would be incomplete
    return [
        p.name
        for p in parameters
        if p.name not in skip
        and (p.kind is p.KEYWORD_ONLY or (p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty))
    ]


def prepare(config: ExperimentConfig) -> PreparedExperiment:
    """Check every name and option and load the data; raises ValueError / FileNotFoundError on bad input.

    Nothing is trained and nothing is written; the CLI turns these errors into one-line messages.
    """
    import dataclasses

    task_factory = TASKS.get(config.task)
    model_factory = MODELS.get(config.model)
    methods = check_method_options(config)
    device = resolve_device(config.device)

    task = _call_factory(
        "task", config.task, task_factory, data=config.data, seed=config.data_seed, **config.task_params
    )
    data = task.load()
    defaults = {f.name: f.default for f in dataclasses.fields(ExperimentConfig)}
    if data.val is not None and config.val_size != defaults["val_size"]:  # silently ignored otherwise
        raise ValueError(
            f"val_size / --val-size does not apply to task {config.task!r}, which cuts its own validation "
            "split; use --task-param n_val=N (a count or a fraction)"
        )
    encode = getattr(task, "encode", None)
    if encode is not None:  # inputs that need the model's own preprocessing (text: its tokenizer)
        tokenizer = getattr(model_factory, "tokenizer", None)
        if tokenizer is None:
            names = [n for n in MODELS.names() if getattr(MODELS.get(n), "tokenizer", None)]
            choices = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else ", ".join(names)
            # From Python (or a plugin task without a default_model) the model may never have been chosen
            default = " (the config's default model)" if config.model == defaults["model"] else ""
            raise ValueError(
                f"task {config.task!r} needs a text model (--model {choices}); "
                f"model {config.model!r}{default} has no tokenizer"
            )
        data = encode(data, tokenizer(**config.model_params))
    val, train_pool = data.val, data.train_pool
    labels = None if data.labels is None else np.asarray(data.labels)
    if val is None:
        val, train_pool, labels = split_validation(data.train_pool, config.val_size, config.data_seed, labels)
    if len(train_pool) < 1 or len(val) < 1 or len(data.test) < 1:
        raise ValueError(
            f"task {config.task!r}: need non-empty train pool, validation and test sets, got "
            f"{len(train_pool)}/{len(val)}/{len(data.test)} samples"
        )
    prepared = PreparedExperiment(
        config=config,
        task=task,
        data=data,
        train_pool=train_pool,
        val=val,
        device=device,
        methods=methods,
        pool_labels=labels,
        data_hash=file_digest(task.data_path) if task.data_path else None,
    )
    model = _call_factory(
        "model",
        config.model,
        prepared.build_model,
        config.seeds[0],
        _registered=model_factory,
        _options=config.model_params,
    )
    prepared.n_params = sum(p.numel() for p in model.parameters())
    prepared.n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    for name in config.methods:
        check_method(prepared, name, model)
    for fraction in prepared.cells:
        if prepared.n_train(fraction) < 2:
            prepared.notes.append(
                f"fraction {fraction:g} gives {prepared.n_train(fraction)} training sample(s)"
            )
    return prepared


def check_method_options(config: ExperimentConfig) -> dict[str, tuple[str, dict[str, Any]]]:
    """Build every method of ``config`` at every grid point (options and grid values checked; no data needed).

    Returns method name -> (registered base method, options), as ``config.method_spec`` gives them.
    """
    methods = {name: config.method_spec(name) for name in config.methods}
    for name, (base, options) in methods.items():
        for point in config.grid_points(name):
            extra = {k: v for k, v in point if k not in TRAINING_GRID_PARAMS}
            _call_factory("method", name, METHODS.get(base), **{**options, **extra})
    return methods


def file_digest(path: str) -> str:
    """sha256 of a file's bytes (the first 16 hex digits), recorded with runs on a user's data file."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def check_method(prepared: PreparedExperiment, method: str, model: torch.nn.Module) -> None:
    """Attach ``method`` to ``model`` with a throw-away optimizer and detach it: structural problems (no blocks
    to balance, ...) surface as a ValueError before any training."""
    config = prepared.config
    point = config.grid_points(method)[0]
    context = _run_context(prepared, fraction=min(prepared.cells), seed=config.seeds[0], point=point)
    try:
        method_obj = prepared.build_method(method, point)
        optimizer = torch.optim.SGD(method_obj.param_groups(model, context), lr=context.lr)
        method_obj.attach(model, optimizer, context).remove()
    except (ValueError, TypeError) as err:
        raise ValueError(f"method {method!r} cannot train model {config.model!r}: {err}") from None


def _run_context(prepared: PreparedExperiment, *, fraction: float, seed: int, point: GridKey) -> RunContext:
    config = prepared.config
    settings, n_train = prepared.settings(point), prepared.n_train(fraction)
    return RunContext(
        seed=seed,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        epochs=settings.num_epochs(n_train),
        steps_per_epoch=settings.steps_per_epoch(n_train),
        total_steps=settings.total_steps(n_train),
        spectral_conv=config.spectral_conv,
        probe=lambda model: _probe(prepared, model),
        preset=prepared.task.tempbalance_preset,
    )


@torch.no_grad()
def _probe(prepared: PreparedExperiment, model: torch.nn.Module) -> None:
    """Run ``model`` on two validation samples in eval mode (no statistics or weights change)."""
    collate = prepared.task.collate or default_collate
    batch = collate([prepared.val[i] for i in range(min(2, len(prepared.val)))])
    inputs, _ = prepared.task.split_batch(to_device(batch, prepared.device))
    was_training = model.training
    model.eval()
    try:
        prepared.task.predict(model, inputs)
    finally:
        model.train(was_training)


def split_validation(pool: Dataset, val_size: float, seed: int, labels: np.ndarray | None = None):
    """Carve a seeded validation split off ``pool``: (validation, remaining training pool, its labels).

    A labelled pool is split stratified by class; the labels returned are those of the remaining pool.
    """
    n = len(pool)
    n_val = int(round(val_size * n)) if val_size < 1 else int(val_size)
    n_val = max(1, n_val)
    if n_val >= n:
        raise ValueError(f"val_size {val_size} leaves no training data in a pool of {n} samples")
    if labels is not None:
        from modelbalance.experiments.subsets import stratified_split

        held, rest = stratified_split(labels, n_val, seed + 0x7A1)
        return Subset(pool, held.tolist()), Subset(pool, rest.tolist()), labels[rest]
    order = np.random.default_rng(np.random.SeedSequence([seed, 0x7A1])).permutation(n)
    return Subset(pool, sorted(order[:n_val].tolist())), Subset(pool, sorted(order[n_val:].tolist())), None


# ---------------------------------------------------------------------------------------------------- one run
def execute_run(
    prepared: PreparedExperiment,
    spec: RunSpec,
    *,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one run; returns its record. Any exception but an interrupt makes a failed record."""
    record = base_record(prepared, spec)
    start = time.perf_counter()
    with _captured_warnings() as notes:
        _train_and_evaluate(prepared, record, spec, on_step=on_step)
    if notes:
        record["warnings"] = notes
    record.setdefault("train_time_s", time.perf_counter() - start)
    record["wall_time_s"] = time.perf_counter() - start
    record["finished_at"] = _now()
    return record


def base_record(prepared: PreparedExperiment, spec: RunSpec) -> dict[str, Any]:
    """The identity fields of a run's record, marked failed until the run finishes (executors use this for
    runs whose worker died)."""
    config = prepared.config
    record: dict[str, Any] = {
        "key": prepared.key(spec),
        "task": prepared.task.label,
        "model": config.model,
        "fraction": spec.fraction,
        "n_train": prepared.n_train(spec.fraction),
        "seed": spec.seed,
        "method": spec.method,
        "lr": spec.lr,
        "point": spec.point_label(),
        "params": [list(item) for item in spec.params],
        "status": "failed",
        "error": "",
        "run_hash": prepared.run_hash(spec.method, spec.params),
        "device": str(prepared.device),
        "started_at": _now(),
        "modelbalance_version": __version__,
    }
    shots = prepared.shots_of(spec.fraction)
    if shots is not None:
        record["shots"] = shots
    if config.finetune != "full":
        record["finetune"] = config.finetune
    if prepared.task.data_path:
        record["data_file"] = str(prepared.task.data_path)
        record["data_sha256"] = prepared.data_hash
    return record


def _train_and_evaluate(prepared, record, spec: RunSpec, *, on_step) -> None:
    """Fill ``record`` with one run's results; an exception other than an interrupt marks it failed."""
    config = prepared.config
    fraction, seed = spec.fraction, spec.seed
    n_train = prepared.n_train(fraction)
    try:
        model = prepared.build_model(seed)
        train_set = Subset(prepared.train_pool, prepared.subset_indices(fraction, seed))
        settings = prepared.settings(spec.params)
        context = _run_context(prepared, fraction=fraction, seed=seed, point=spec.params)
        method_obj = prepared.build_method(spec.method, spec.params)
        optimizer = make_optimizer(method_obj.param_groups(model, context), settings)
        scheduler = make_scheduler(optimizer, settings, n_train)
        if config.analyze_layers and prepared.task.tempbalance_preset is not None:
            try:  # pretrained models: the spectra fine-tuning starts from (for before/after comparisons)
                record["layers_before"] = layer_alphas(model, context.probe)
            except Exception as err:
                record["layers_error"] = f"{type(err).__name__}: {err}"
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
            n_trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
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
    """What a finished sweep produced (paths and counts; the records for programmatic use).

    ``picked`` maps (fraction, method) to the chosen grid point (a tuple of (name, value) pairs, ``lr`` first)
    or None; ``picked_lrs`` is the same with the learning rate alone; ``grid_edges`` maps the tuned picks that lie
    at an edge of their grid, or tie with an edge value, to those axes (``tuning.edge_axes``,
    ``tuning.tied_edge_axes``); ``signal_free_picks`` lists the tuned picks whose every tuning run has validation
    MCC 0 (``tuning.without_signal``: a collapsed classifier won the tuning).
    """

    out: Path
    records: list[dict[str, Any]]
    picked: dict[tuple[float, str], GridKey | None]
    grid: list[GridPoint]
    n_new: int
    n_reused: int
    n_failed: int
    grid_edges: dict[tuple[float, str], list[str]] = field(default_factory=dict)
    signal_free_picks: list[tuple[float, str]] = field(default_factory=list)
    summary_path: Path | None = None
    summary_markdown: str = ""
    plot_paths: list[Path] = field(default_factory=list)

    @property
    def picked_lrs(self) -> dict[tuple[float, str], float | None]:
        return {cell: (None if point is None else dict(point)["lr"]) for cell, point in self.picked.items()}


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
    executor=None,
) -> ExperimentOutcome:
    """Run (or resume) the sweep of ``config`` and write its results folder.

    Parameters
    ----------
    resume : bool
        Allow continuing a folder whose sweep differs in its axes (fractions, seeds, methods, lrs, grids,
        method options) but not in how runs train. A folder with exactly this config is always continued.
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
    executor : Executor, optional
        Where runs execute (:mod:`modelbalance.experiments.executors`: worker processes, Ray); default: one
        after another in this process. Only this process writes the results folder.
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
            executor=executor,
        )
    finally:
        folder.release()


@dataclass(frozen=True)
class PlanStatus:
    """How much of a sweep is already done (``plan_status``): what a dry run says before anything trains."""

    total: int  # the tuning runs and the reported runs
    done: int  # stored in the results folder or reusable from another (--reuse)
    to_train: int  # known to need training
    awaiting_picks: int  # reported runs whose configuration tuning has yet to pick


def plan_status(
    prepared, *, stored: dict[str, dict], donors: dict[str, dict], retry_failed=False
) -> PlanStatus:
    """Count the runs of ``prepared``'s sweep that ``stored`` (this folder's records) or ``donors`` (other
    folders' successful records) already hold. Where a method's tuning runs are all there, its pick is made as the
    sweep would make it, so extending a finished study (more seeds, another method) is counted exactly."""
    config = prepared.config
    tune_seeds = config.effective_tune_seeds()

    def record_of(spec: RunSpec) -> dict | None:
        key = prepared.key(spec)
        record = stored.get(key)
        if record is not None and (record["status"] == "ok" or not retry_failed):
            return record
        return donors.get(key)

    total = done = awaiting = 0
    for fraction in prepared.cells:
        for method in config.methods:
            points = config.grid_points(method)
            if len(points) > 1:
                tuning = {
                    point: [record_of(RunSpec(fraction, s, method, point)) for s in tune_seeds]
                    for point in points
                }
                found = [record for records in tuning.values() for record in records if record is not None]
                total += len(tuning) * len(tune_seeds)
                done += len(found)
                final_seeds = [s for s in config.seeds if s not in tune_seeds]
                if len(found) < len(tuning) * len(tune_seeds):
                    total += len(final_seeds)
                    awaiting += len(final_seeds)
                    continue
                pick, _ = pick_learning_rate(tuning, metric=prepared.metric, direction=prepared.direction)
                if pick is None:
                    continue  # nothing trained without failing: the sweep reports no test runs here
            else:
                pick, final_seeds = points[0], list(config.seeds)
            total += len(final_seeds)
            done += sum(record_of(RunSpec(fraction, s, method, pick)) is not None for s in final_seeds)
    return PlanStatus(total=total, done=done, to_train=total - done - awaiting, awaiting_picks=awaiting)


def check_reuse(folders: Sequence[str | Path]) -> list[ResultsFolder]:
    """The results folders to reuse runs from (``runs/`` or a published ``runs.tar.gz``), checked before training.

    Raises
    ------
    FolderConflict
        A folder is missing or holds no run records (a mistyped path would otherwise silently retrain).
    """
    out = []
    for path in folders:
        other = ResultsFolder(path)
        if not other.holds_runs():
            raise FolderConflict(
                f"--reuse {path}: no results folder there (no runs/ directory or runs.tar.gz)"
            )
        if not other.has_runs():
            raise FolderConflict(f"--reuse {path}: it holds no run records")
        out.append(other)
    return out


def reusable_runs(folders: Sequence[str | Path]) -> dict[str, dict]:
    """The successful run records of other results folders, by key (``run_experiment(reuse=...)``)."""
    donors: dict[str, dict] = {}
    for other in check_reuse(folders):
        donors.update({key: r for key, r in other.load_runs().items() if r.get("status") == "ok"})
    return donors


class _SequentialExecutor:
    """Runs one after another in this process (the default executor)."""

    def run(self, prepared, specs, *, on_record, on_step=None) -> None:
        for spec in specs:
            on_record(spec, execute_run(prepared, spec, on_step=on_step))


class _Sweep:
    """Bookkeeping of one sweep: stored records, the progress bar, run execution."""

    def __init__(self, prepared, folder, *, retry_failed, progress, log, donors=None, executor=None):
        from tqdm.auto import tqdm

        self.prepared = prepared
        self.folder = folder
        self.retry_failed = retry_failed
        self.log = log
        self.executor = executor or _SequentialExecutor()
        self.stored = folder.load_runs()
        self.donors = donors or {}  # finished runs of other folders (--reuse)
        self.n_new = 0
        self.reused: set[str] = set()  # runs taken from earlier sweeps or other folders
        self.produced: set[str] = set()  # runs trained by this sweep
        self.bar = tqdm(
            total=0, unit="step", disable=not progress, dynamic_ncols=True, smoothing=0.1, desc="sweep"
        )

    def is_done(self, spec: RunSpec) -> bool:
        key = self.prepared.key(spec)
        record = self.stored.get(key)
        ok_here = record is not None and (record["status"] == "ok" or not self.retry_failed)
        return ok_here or key in self.donors

    def planned_steps(self, spec: RunSpec) -> int:
        return self.prepared.run_steps(spec.fraction, spec.params) + 1

    def add_pending(self, specs) -> None:
        self.bar.total += sum(self.planned_steps(spec) for spec in specs)
        self.bar.refresh()

    def lookup(self, spec: RunSpec) -> dict | None:
        """The stored (or reusable) record of ``spec``; reused records are copied into this folder."""
        if not self.is_done(spec):
            return None
        key = self.prepared.key(spec)
        if key not in self.produced:
            self.reused.add(key)
        record = self.stored.get(key)
        if record is None or (record["status"] != "ok" and key in self.donors):
            record = self.stored[key] = self.donors[key]  # copied in: the folder stays complete
            self.folder.save_run(record)
        return record

    def run_all(self, specs: list[RunSpec]) -> dict[RunSpec, dict]:
        """Records of every spec: stored ones looked up, the rest executed (by the executor, any order)."""
        records = {spec: record for spec in specs if (record := self.lookup(spec)) is not None}
        todo = list(dict.fromkeys(spec for spec in specs if spec not in records))

        def on_record(spec: RunSpec, record: dict) -> None:
            self.folder.save_run(record)
            self.stored[record["key"]] = record
            self.produced.add(record["key"])
            records[spec] = record
            self.n_new += 1
            # settle the bar to the run's planned size (a failed run stops early; remote runs report no steps)
            done_in_run = record.get("steps", 0) if record["status"] == "ok" and self.streams_steps else 0
            self.bar.update(max(0, self.planned_steps(spec) - done_in_run))
            if record["status"] != "ok":
                self.bar.write(
                    f"run failed: {spec.method} fraction={spec.fraction:g} seed={spec.seed} "
                    f"{spec.point_label()}: {record['error']}"
                )

        if todo:
            self.bar.set_postfix_str(f"{len(todo)} run(s)", refresh=False)
            self.executor.run(
                self.prepared, todo, on_record=on_record, on_step=lambda _step: self.bar.update(1)
            )
        return records

    @property
    def streams_steps(self) -> bool:
        return getattr(self.executor, "reports_steps", True)


def _sweep(
    prepared, folder, state, *, retry_failed, progress, plots, log, donors=None, executor=None
) -> ExperimentOutcome:
    from modelbalance.experiments.report import write_reports

    config = prepared.config
    sweep = _Sweep(
        prepared,
        folder,
        retry_failed=retry_failed,
        progress=progress,
        log=log,
        donors=donors,
        executor=executor,
    )
    if state != "new" and sweep.stored:
        log(f"{folder.path}: continuing a sweep with {len(sweep.stored)} stored run(s)")
    cells = [(fraction, method) for fraction in prepared.cells for method in config.methods]
    grids = {method: config.grid_points(method) for method in config.methods}
    tuning = {method: len(points) > 1 for method, points in grids.items()}
    tune_seeds = config.effective_tune_seeds()

    # planned work: the tuning grids, then the reported seeds not already covered by them
    tune_specs = [
        RunSpec(f, s, m, point) for f, m in cells if tuning[m] for point in grids[m] for s in tune_seeds
    ]
    pending = [spec for spec in tune_specs if not sweep.is_done(spec)]
    pending_final = [
        RunSpec(f, s, m, grids[m][0])
        for f, m in cells
        if not tuning[m]
        for s in config.seeds
        if not sweep.is_done(RunSpec(f, s, m, grids[m][0]))
    ]
    sweep.add_pending(pending + pending_final)
    status = plan_status(prepared, stored=sweep.stored, donors=sweep.donors, retry_failed=retry_failed)
    later = f", {status.awaiting_picks} more once tuning has picked" if status.awaiting_picks else ""
    budgets = {m: len(points) for m, points in grids.items()}
    log(
        f"{prepared.task.label}/{config.model}: {status.total} runs ({status.done} stored or reusable, "
        f"{status.to_train} to train{later}) on "
        f"{prepared.device}, {len(prepared.train_pool)} pool / {len(prepared.val)} validation / "
        f"{len(prepared.data.test)} test samples; tuning configurations per method: "
        + ", ".join(f"{m} {n}" for m, n in budgets.items())
    )

    try:
        tune_records = sweep.run_all(tune_specs)
        picked: dict[tuple[float, str], GridKey | None] = {}
        grid_edges: dict[tuple[float, str], list[str]] = {}
        signal_free: list[tuple[float, str]] = []
        grid: list[GridPoint] = []
        for fraction, method in cells:
            if not tuning[method]:
                picked[fraction, method] = grids[method][0]
                continue
            by_point = {
                point: [tune_records[RunSpec(fraction, s, method, point)] for s in tune_seeds]
                for point in grids[method]
            }
            best, stats = pick_learning_rate(by_point, metric=prepared.metric, direction=prepared.direction)
            picked[fraction, method] = best
            grid += [
                GridPoint(
                    fraction,
                    method,
                    dict(point)["lr"],
                    *stats[point],
                    selected=point == best,
                    point=point_label(point),
                )
                for point in grids[method]
            ]
            if best is None:
                sweep.bar.write(
                    f"no configuration of the grid trained without failing: {method} f={fraction:g}"
                )
            else:
                axes = config.grid(method)
                edges, ties = edge_axes(best, axes), tied_edge_axes(best, axes, stats)
                if edges or ties:
                    grid_edges[fraction, method] = edges + ties
                    where = "at the edge of its grid" if edges else "tied with an edge of its grid"
                    sweep.bar.write(
                        f"warning: {method} at {prepared.subset_name(fraction)} picked {point_label(best)}, "
                        f"{where} ({', '.join(edges + ties)}): the best setting may lie outside it; widen the grid"
                    )
            if best is not None and without_signal(by_point[best]):
                signal_free.append((fraction, method))
                sweep.bar.write(
                    f"warning: {method} at {prepared.subset_name(fraction)} picked {point_label(best)}, where every "
                    "tuning run has validation MCC 0 (the predictions carry nothing about the labels, as when a "
                    "model predicts one class for all): compare at a fixed rate, or tune on macro_f1 or mcc "
                    "(--task-param primary_metric=mcc)"
                )
        final_specs = [
            RunSpec(f, s, m, picked[f, m]) for f, m in cells if picked[f, m] is not None for s in config.seeds
        ]
        rest = [spec for spec in final_specs if not sweep.is_done(spec) and spec not in pending_final]
        sweep.add_pending(rest)
        sweep.run_all(final_specs)
    finally:
        sweep.bar.close()

    records = _sweep_records(sweep, prepared, grids, tune_seeds)
    outcome = ExperimentOutcome(
        out=folder.path,
        records=records,
        picked=picked,
        grid=grid,
        grid_edges=grid_edges,
        signal_free_picks=signal_free,
        n_new=sweep.n_new,
        n_reused=len(sweep.reused),
        n_failed=sum(r["status"] != "ok" for r in records),
    )
    write_reports(prepared, folder, outcome, plots=plots)
    return outcome


def _sweep_records(sweep: _Sweep, prepared, grids, tune_seeds) -> list[dict]:
    """The stored records belonging to this sweep, in sweep order (each once)."""
    config = prepared.config
    seen, records = set(), []
    for fraction in prepared.cells:
        for method in config.methods:
            for point in grids[method]:
                for seed in sorted(set(config.seeds) | set(tune_seeds)):
                    key = prepared.key(RunSpec(fraction, seed, method, point))
                    if key in sweep.stored and key not in seen:
                        seen.add(key)
                        records.append(sweep.stored[key])
    return records
