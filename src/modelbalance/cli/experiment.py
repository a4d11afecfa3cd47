"""``modelbalance experiment`` (a sweep of fractions x methods x seeds) and ``modelbalance demo`` (a small one).

Examples::

    modelbalance experiment --task burgers --model fno --fractions 0.02,0.1,0.5 --seeds 0,1,2 \\
        --methods baseline,tb --lrs 1e-3,3e-3 --epochs 30 --out results/burgers
    modelbalance experiment --config sweep.toml --seeds 0-9 --out results/burgers10 \\
        --reuse results/burgers                                   # train only the seeds not run there
    modelbalance experiment --config docs/results/burgers_fno/config.json --out results/more \\
        --seeds 0-19 --reuse docs/results/burgers_fno              # extend a published study (runs.tar.gz)
    modelbalance experiment --resume --out results/burgers        # continue an interrupted sweep
    modelbalance demo                                             # MiniLM on SpamAssassin, a few minutes on CPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from modelbalance.cli.main import UsageError

_USER_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError)


def register(subparsers) -> None:
    """Add the ``experiment`` and ``demo`` sub-commands."""
    _register_experiment(subparsers)
    _register_demo(subparsers)


# ---------------------------------------------------------------------------------------------------- parsing
def _key_values(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, true/false, null, [lists]), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = {"true": True, "false": False, "none": None}.get(value.lower(), value)
    return key.strip(), parsed


def _seed_list(text: str) -> str:
    """Seeds as ``0,1,2`` or with inclusive ranges ``0-9``; returned comma-separated."""
    from modelbalance.experiments.config import seed_values

    try:
        return ",".join(map(str, seed_values(text)))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


_EXAMPLES = """examples:
  modelbalance experiment --task spam --model minilm --shots 4,16 --seeds 0-4 \\
      --methods baseline,tb,tb_shuffle --lrs 1e-4,3e-4,1e-3 --out results/spam
  modelbalance experiment --data reviews.csv --model minilm --sizes 64,256 \\
      --task-param text_column=review --task-param n_val=100 --out results/reviews
  modelbalance experiment --task spam --model minilm --shots 16 --set finetune=lora --set lora.r=8 \\
      --out results/spam_lora
  modelbalance experiment --task burgers --model fno --fractions 0.02,0.1 --seeds 0-2 \\
      --methods baseline,tb --lrs 1e-3,3e-3 --epochs 30 --out results/burgers
  modelbalance experiment --config benchmarks/nlp_study/spam_k4.toml --out results/k4 --dry-run
  modelbalance experiment --resume --out results/spam            # continue an interrupted sweep
  modelbalance experiment --list                                 # tasks, models and methods"""


def _register_experiment(subparsers) -> None:
    from modelbalance.experiments.config import OPTIMIZERS, SCHEDULERS

    parser = subparsers.add_parser(
        "experiment",
        help="sweep training fractions x methods x seeds with a shared lr grid; tables, tests and plots",
        description="Run (or resume) a low-data sweep: every method gets the same learning-rate grid, picked on "
        "a validation split carved from the training pool; results, paired tests and plots go to --out. "
        "Flags override the config file.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--config",
        metavar="FILE",
        help="TOML or YAML file with ExperimentConfig fields, or a results folder's config.json (re-run or "
        "re-report that study as it ran); "
        'extends = "other.toml" (relative to the file) starts from another file and changes what it names; '
        'unset = ["tune_seeds"] removes an inherited setting',
    )
    add("--task", help="task name (see --list)")
    add("--model", help="model name (see --list; default: minilm for the text tasks, fno otherwise)")
    add("--fractions", metavar="F,F", help="training fractions of the pool, in (0, 1], e.g. 0.01,0.1,1")
    add("--sizes", metavar="N,N", help="instead of --fractions: training-set sizes, e.g. 16,64,256")
    add(
        "--shots",
        metavar="K,K",
        help="instead of --fractions: examples per class, e.g. 4,16 (classification)",
    )
    add("--seeds", metavar="S,S", type=_seed_list, help="seeds of the reported runs, e.g. 0,1,2 or 0-9")
    add("--tune-seeds", metavar="S,S", type=_seed_list, help="seeds the lr is picked on (default: --seeds)")
    add("--methods", metavar="M,M", help="methods, e.g. baseline,tb,tb_frozen,tb_shuffle,llrd (see --list)")
    add("--lrs", metavar="LR,LR", help="learning-rate grid shared by all methods, e.g. 1e-3,3e-3")
    add(
        "--grid",
        metavar="METHOD.PARAM=V,V",
        action="append",
        default=[],
        help="a method's own tuning grid axis, e.g. tb.s_max=0.5,1 tb.lr=1e-5,3e-5 baseline.lr=1e-5,2e-5,3e-5,5e-5; "
        "every method needs the same number of configurations (repeatable)",
    )
    add("--epochs", type=int, help="epochs per run")
    add("--steps", type=int, help="instead of --epochs: the same optimizer-step budget at every fraction")
    add("--batch-size", type=int)
    add("--eval-batch-size", type=int)
    add("--optimizer", choices=OPTIMIZERS)
    add("--weight-decay", type=float)
    add("--scheduler", choices=SCHEDULERS, help="base schedule (TempBalance multiplies it)")
    add("--warmup", type=float, help="linear warm-up as a fraction of all steps")
    add("--grad-clip", type=float, help="clip the gradient norm")
    add(
        "--data",
        metavar="PATH",
        help="your own data: a PDEBench HDF5 file or .npz/.h5 with inputs and targets (PDE tasks), or a "
        ".csv/.tsv/.jsonl/.parquet file with text[, text_pair] and label columns (text classification)",
    )
    add("--data-seed", type=int, help="seed of the generated data and of the validation split")
    add("--val-size", type=float, help="validation split from the pool: fraction (< 1) or count")
    add(
        "--task-param",
        metavar="KEY=VALUE",
        type=_key_values,
        action="append",
        default=[],
        help="task option (repeatable): text tasks take n_val, n_test (counts or fractions), max_length, "
        "text_column, label_column, primary_metric=accuracy|macro_f1|mcc; PDE tasks e.g. n_samples=1024, "
        "resolution=512, nu=0.001",
    )
    add(
        "--model-param",
        metavar="KEY=VALUE",
        type=_key_values,
        action="append",
        default=[],
        help="model option, e.g. width=64, modes=16, n_layers=4 (repeatable)",
    )
    add(
        "--method-param",
        metavar="METHOD.KEY=VALUE",
        type=_key_values,
        action="append",
        default=[],
        help="method option, e.g. tb.s_max=1.0 or llrd.decay=0.7 (repeatable)",
    )
    add(
        "--spectral-conv",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="balance FNO spectral convolutions too (default off: the paper's setting)",
    )
    add(
        "--set",
        metavar="FIELD=VALUE",
        type=_key_values,
        action="append",
        default=[],
        help="any other config field, e.g. min_lr_ratio=0.1, momentum=0.8, step_gamma=0.3, or one entry of a "
        'table field: lora.r=4, lora.target_modules=\'["query","value"]\' (repeatable)',
    )
    add("--out", metavar="DIR", help="results folder")
    add("--device", help="torch device (default: cuda if available, else cpu)")
    add(
        "--resume",
        action="store_true",
        help="continue the sweep in --out (its saved config is the default; extra seeds/fractions/methods ok)",
    )
    add(
        "--reuse",
        metavar="DIR",
        action="append",
        default=[],
        help="take finished runs with the same settings from another results folder instead of training them "
        "again, e.g. to extend a study with more seeds in a new folder; its runs/ or, in a published folder, "
        "runs.tar.gz (repeatable)",
    )
    add("--overwrite", action="store_true", help="replace the results already in --out")
    add("--retry-failed", action="store_true", help="run again the runs recorded as failed")
    add(
        "--plugin",
        metavar="MODULE",
        action="append",
        default=[],
        help="import a module or .py file that registers tasks, models or methods (repeatable)",
    )
    add(
        "--threads",
        type=int,
        help="torch CPU threads per run (default: torch's choice; with --workers: cores / workers)",
    )
    add(
        "--workers",
        type=int,
        default=1,
        help="runs at once on this machine, each with its share of the cores",
    )
    add("--runs-per-gpu", type=int, default=1, help="with --workers on a GPU machine: runs sharing each GPU")
    add(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where runs execute (ray: a Ray cluster)",
    )
    add(
        "--ray-address",
        metavar="auto|HOST:PORT",
        help="with --executor ray: an existing cluster (default: start one)",
    )
    add("--no-plots", action="store_true", help="skip the figures")
    add("--no-progress", action="store_true", help="no progress bar")
    add(
        "--dry-run",
        action="store_true",
        help="check everything and print the plan (how many runs are stored, reusable or to train), train nothing",
    )
    add("--list", action="store_true", help="list the registered tasks, models and methods and exit")
    parser.set_defaults(handler=_run_experiment)


def _register_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a small low-data sweep (MiniLM on SpamAssassin, baseline vs TempBalance) in minutes on a CPU",
        description="Text track (default): the pretrained MiniLM-L6 fine-tuned on SpamAssassin emails at 2 "
        "training sizes x 2 seeds x {baseline, tb}. PDE track (--track pde): FNO-1D on generated Burgers data, 3 "
        "training fractions. The same learning rate for both methods. Prints the table and where the plots are.",
    )
    parser.add_argument(
        "--track",
        choices=("text", "pde"),
        default="text",
        help="text (default, the paper's headline): MiniLM fine-tuned on SpamAssassin; pde: FNO-1D on Burgers",
    )
    parser.add_argument(
        "--out", metavar="DIR", default=None, help="results folder (default modelbalance-demo[-pde])"
    )
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted demo in --out")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo in --out")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: the demo's small model gains little from more, and "
        "loses a lot when other processes compete; 0 = torch's choice)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_demo)


# ---------------------------------------------------------------------------------------------------- config
_FLAG_FIELDS = (
    "task",
    "model",
    "fractions",
    "sizes",
    "shots",
    "seeds",
    "tune_seeds",
    "methods",
    "lrs",
    "epochs",
    "steps",
    "batch_size",
    "eval_batch_size",
    "optimizer",
    "weight_decay",
    "scheduler",
    "warmup",
    "grad_clip",
    "data",
    "data_seed",
    "val_size",
    "spectral_conv",
    "out",
    "device",
)


def _with_sets(values: dict[str, Any], sets: list[tuple[str, Any]]) -> dict[str, Any]:
    """``values`` with ``--set`` applied; ``FIELD.KEY[.KEY]=VALUE`` sets one entry of a table field (``lora.r=4``,
    ``task_params.max_length=64``, ``method_options.tb.min_eigs=12``) and keeps its other entries."""
    import dataclasses

    from modelbalance.experiments.config import ExperimentConfig

    tables = {f.name for f in dataclasses.fields(ExperimentConfig) if str(f.type).startswith("dict")}
    values = dict(values)
    for key, value in sets:
        name, *path = key.split(".")
        if not path:
            values[name] = value
            continue
        if name not in tables:
            raise ValueError(
                f"--set {key}=...: {name!r} is not a table field; tables: {', '.join(sorted(tables))}"
            )
        if not all(path):
            raise ValueError(f"--set {key}=...: empty key in {key!r}")
        table = values[name] = dict(values.get(name) or {})
        for part in path[:-1]:  # nested tables (method_options.tb...) are copied, never edited in place
            inner = table.get(part) or {}
            if not isinstance(inner, dict):
                raise ValueError(f"--set {key}=...: {name}.{part} is {inner!r}, not a table")
            table[part] = dict(inner)
            table = table[part]
        table[path[-1]] = value
    return values


def build_config(args: argparse.Namespace):
    """ExperimentConfig from defaults < config file (or, with --resume, the folder's saved config) < flags."""
    from modelbalance.experiments.config import (
        SUBSET_AXES,
        ExperimentConfig,
        read_config_file,
        without_replaced_axis,
    )
    from modelbalance.experiments.store import ResultsFolder

    values: dict[str, Any] = {}
    if args.config:
        values = read_config_file(args.config)
        folder = ResultsFolder(Path(args.config).parent)
        if Path(args.config).name == "config.json" and folder.holds_runs():
            # a results folder's own config: its "out" is where it was first written (a published folder has
            # moved since), so the folder the file sits in is the default --out
            values["out"] = str(folder.path)
    elif args.resume:
        if not args.out:
            raise ValueError("--resume needs --out DIR (the folder of the sweep to continue)")
        saved = ResultsFolder(args.out).saved_config()
        if saved is None:
            raise ValueError(f"--resume: {args.out} holds no config.json to resume")
        values = saved.to_dict()
    values = _with_sets(values, args.set)
    set_steps = any(key == "steps" for key, _ in args.set)
    if args.epochs is not None and (args.steps is not None or set_steps):
        raise ValueError(
            "give --steps or --epochs, not both (--steps trains every size for the same number of optimizer "
            "steps instead of a number of epochs)"
        )
    if args.epochs is not None:
        values.pop("steps", None)  # a step budget in the file would silently win over the --epochs asked for
    axis_flags = [name for name in SUBSET_AXES if getattr(args, name) is not None]
    if len(axis_flags) > 1:
        raise ValueError(f"give one of --fractions, --sizes or --shots, not {' and '.join(axis_flags)}")
    values = without_replaced_axis(values, axis_flags)  # a flag replaces the file's subset axis
    if args.data and not args.task and "task" not in values:
        values["task"] = _task_for_data(args.data)
    if args.model is None and "model" not in values:
        values.update(_default_model(args.task or values.get("task")))
    if args.grid:
        grids = {name: dict(axes) for name, axes in (values.get("grids") or {}).items()}
        for text in args.grid:
            key, sep, listed = text.partition("=")
            method, dot, param = key.partition(".")
            if not sep or not dot or not method or not param or not listed:
                raise ValueError(f"--grid needs METHOD.PARAM=V,V, got {text!r}")
            grids.setdefault(method.strip(), {})[param.strip()] = [
                _key_values(f"v={v}")[1] for v in listed.split(",")
            ]
        values["grids"] = grids
    config = ExperimentConfig.from_dict(values)
    changes = {name: getattr(args, name) for name in _FLAG_FIELDS if getattr(args, name) is not None}
    for option, target in (("task_param", "task_params"), ("model_param", "model_params")):
        pairs = getattr(args, option)
        if pairs:
            changes[target] = {**getattr(config, target), **dict(pairs)}
    if args.method_param:
        options = {name: dict(values) for name, values in config.method_options.items()}
        for key, value in args.method_param:
            method, dot, field = key.partition(".")
            if not dot or not method or not field:
                raise ValueError(f"--method-param needs METHOD.KEY=VALUE, got {key!r}")
            options.setdefault(method, {})[field] = value
        changes["method_options"] = options
    return config.replace(**changes)


def _default_model(task: str | None) -> dict[str, str]:
    """``{"model": ...}`` for a task that names its own default model (text tasks: minilm), else ``{}`` (the
    config's default, fno). An unknown task is left for the runner to report."""
    from modelbalance.experiments.registry import TASKS

    try:
        factory = TASKS.get(task) if task else None
    except ValueError:
        return {}
    model = getattr(factory, "default_model", None)
    return {"model": model} if model else {}


_TEXT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


def _task_for_data(path: str) -> str:
    """The task a ``--data`` file implies when no ``--task`` is given: text classification for tables."""
    suffix = Path(path).suffix.lower()
    if suffix in _TEXT_SUFFIXES:
        return "text"
    raise ValueError(
        f"--data {path}: give --task for this file (a PDE task such as burgers or darcy for .h5/.hdf5/.npz); "
        f"files ending in {', '.join(_TEXT_SUFFIXES)} run text classification"
    )


def _registry_listing() -> str:
    from modelbalance.experiments.registry import METHODS, MODELS, TASKS

    lines = []
    for title, registry in (("tasks", TASKS), ("models", MODELS), ("methods", METHODS)):
        lines.append(f"{title}:")
        lines += [f"  {name:<20} {help}" for name, help in registry.describe().items()]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- handlers
def _prepare_or_usage_error(config, *, resume: bool, overwrite: bool, reuse=()):
    """Every check that can fail on the user's input, before anything is trained or written."""
    from modelbalance.experiments.pde.cfd1d import CFDSolverError
    from modelbalance.experiments.runner import check_reuse, prepare
    from modelbalance.experiments.store import FolderConflict, ResultsFolder

    try:
        ResultsFolder(config.out).check(config, resume=resume, overwrite=overwrite)
        check_reuse(reuse)
        return prepare(config)
    except (*_USER_ERRORS, FolderConflict) as err:
        raise UsageError(str(err).replace("\n", " ")) from None
    except CFDSolverError as err:  # generating the task's data failed: the settings, not the code
        raise UsageError(
            f"{err}; that set was not cached. The generator's settings made the solver fail: check cfl, "
            "solver_resolution, max_steps, eta/zeta and the initial-condition ranges"
        ) from None


def _run_experiment(args: argparse.Namespace) -> int:
    from modelbalance.experiments.registry import load_plugin

    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite contradict each other")
    _quiet_libraries(args.no_progress)
    try:
        for plugin in args.plugin:
            load_plugin(plugin)
        if args.list:
            print(_registry_listing())
            return 0
        config = build_config(args)
    except _USER_ERRORS as err:
        raise UsageError(str(err).replace("\n", " ")) from None
    _set_threads(args.threads)
    prepared = _prepare_or_usage_error(config, resume=args.resume, overwrite=args.overwrite, reuse=args.reuse)
    executor = _make_executor(args, config)  # after the checks: a Ray cluster is not started for a bad config
    if args.dry_run:
        if executor is not None:
            executor.close()
        _print_plan(prepared, _plan_status(prepared, args))
        return 0
    try:
        return _sweep_and_print(prepared, args, plots=not args.no_plots, executor=executor)
    finally:
        if executor is not None:
            executor.close()


def _make_executor(args, config):
    """The executor the flags ask for (None: runs one after another here); bad options are usage errors."""
    if args.workers == 1 and args.executor == "local" and args.runs_per_gpu == 1 and not args.ray_address:
        return None
    try:
        from modelbalance.experiments.executors import make_executor

        return make_executor(
            executor=args.executor,
            workers=args.workers,
            runs_per_gpu=args.runs_per_gpu,
            ray_address=args.ray_address,
            threads=args.threads,
            device=config.device,
        )
    except (ValueError, ImportError) as err:
        raise UsageError(str(err).replace("\n", " ")) from None


def _run_demo(args: argparse.Namespace) -> int:
    from modelbalance.experiments.demo import demo_config

    out = args.out or ("modelbalance-demo" if args.track == "text" else "modelbalance-demo-pde")
    config = demo_config(track=args.track, out=out, device=args.device)
    _quiet_libraries(args.no_progress)
    _set_threads(args.threads)
    prepared = _prepare_or_usage_error(config, resume=args.resume, overwrite=args.overwrite)
    args.retry_failed = False
    args.reuse = []
    return _sweep_and_print(prepared, args, plots=True)


def _quiet_libraries(no_progress: bool) -> None:
    """--no-progress silences the Hugging Face libraries' own bars too ("Loading weights", downloads)."""
    if not no_progress:
        return
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read at import, here and in worker processes
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def _set_threads(threads: int | None) -> None:
    if threads is None or threads == 0:
        return
    if threads < 0:
        raise UsageError(f"--threads must be >= 0, got {threads}")
    import torch

    torch.set_num_threads(threads)


def _sweep_and_print(prepared, args, *, plots: bool, executor=None) -> int:
    from modelbalance.experiments.report import (
        comparison_table,
        mean_std_table,
        reported,
        results_frame,
        subset_labels,
    )
    from modelbalance.experiments.runner import run_experiment

    config = prepared.config
    try:
        outcome = run_experiment(
            config,
            resume=args.resume,
            overwrite=args.overwrite,
            retry_failed=args.retry_failed,
            progress=not args.no_progress,
            plots=plots,
            prepared=prepared,
            reuse=args.reuse,
            executor=executor,
        )
    except KeyboardInterrupt:
        command = "modelbalance demo" if args.command == "demo" else "modelbalance experiment --resume"
        print(f"finished runs are kept; continue with: {command} --out {config.out}", file=sys.stderr)
        raise
    frame = results_frame(outcome.records, outcome.picked, seeds=config.seeds)
    metric, direction = prepared.metric, prepared.direction
    print()
    print(f"Test {metric} (mean ± std over seeds, {'lower' if direction == 'min' else 'higher'} is better):")
    labels = subset_labels(frame, config.subset_axis)
    print(mean_std_table(frame, metric, direction, list(config.methods), labels))
    if len(config.methods) > 1 and not reported(frame).empty:
        from modelbalance.experiments.report import comparison_frame

        print()
        print("Paired comparison (gain > 0: better than the reference):")
        comparisons = comparison_frame(
            frame, metric=metric, direction=direction, methods=list(config.methods)
        )
        print(comparison_table(comparisons, metric, labels))
    print()
    print(f"runs: {outcome.n_new} new, {outcome.n_reused} reused, {outcome.n_failed} failed")
    print(f"summary: {outcome.summary_path}")
    print(f"results: {Path(config.out) / 'results.csv'}")
    for path in outcome.plot_paths:
        print(f"plot:    {path}")
    if outcome.n_failed:
        print(
            f"{outcome.n_failed} run(s) failed; their errors are in the summary (--retry-failed runs them again)",
            file=sys.stderr,
        )
        return 1
    return 0


def _plan_status(prepared, args):
    """What of the sweep is stored in --out or reusable from --reuse (folders already checked)."""
    from modelbalance.experiments.runner import plan_status, reusable_runs
    from modelbalance.experiments.store import ResultsFolder

    stored = {} if args.overwrite else ResultsFolder(prepared.config.out).load_runs()
    return plan_status(
        prepared, stored=stored, donors=reusable_runs(args.reuse), retry_failed=args.retry_failed
    )


def _print_plan(prepared, status) -> None:
    config = prepared.config
    tune_seeds = config.effective_tune_seeds()
    from modelbalance.experiments.registry import MODELS

    if config.finetune == "lora":
        training = f"{prepared.n_trainable:,} of them trained: LoRA"
    elif getattr(MODELS.get(config.model), "tokenizer", None) is not None:  # a pretrained text model
        training = "full fine-tuning"
    else:
        training = "trained from scratch"
    print(
        f"task {prepared.task.label} ({prepared.task.describe()}), model {config.model} "
        f"({prepared.n_params:,} params, {training})"
    )
    print(
        f"pool {len(prepared.train_pool)} / validation {len(prepared.val)} / test {len(prepared.data.test)}; "
        f"device {prepared.device}"
    )
    for fraction in prepared.cells:
        first_point = config.grid_points(config.methods[0])[0]
        steps = prepared.run_steps(fraction, first_point)
        label = (
            f"fraction {fraction:g}" if config.subset_axis == "fractions" else prepared.subset_name(fraction)
        )
        print(f"  {label}: n_train {prepared.n_train(fraction)}, {steps} steps per run")
    total = 0
    for method in config.methods:
        points = config.grid_points(method)
        per_cell = (
            len(tune_seeds) * len(points) + len(set(config.seeds) - set(tune_seeds))
            if len(points) > 1
            else len(config.seeds)
        )
        total += per_cell * len(prepared.cells)
        print(f"  {method}: {len(points)} configuration(s), {per_cell} runs per training size")
    later = f"; {status.awaiting_picks} more once tuning has picked" if status.awaiting_picks else ""
    print(
        f"{total} runs -> {config.out}: {status.done} stored or reusable, {status.to_train} to train{later}"
    )
