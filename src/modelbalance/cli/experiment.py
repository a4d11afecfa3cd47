"""``modelbalance experiment`` (a sweep of fractions x methods x seeds) and ``modelbalance demo`` (a small one).

Examples::

    modelbalance experiment --task burgers --model fno --fractions 0.02,0.1,0.5 --seeds 0,1,2 \\
        --methods baseline,tb --lrs 1e-3,3e-3 --epochs 30 --out results/burgers
    modelbalance experiment --config sweep.toml --seeds 0-9 --out results/burgers10 \
        --reuse results/burgers                                   # train only the seeds not run there
    modelbalance experiment --resume --out results/burgers        # continue an interrupted sweep
    modelbalance demo                                             # FNO-1D on Burgers, a few minutes on CPU
"""

from __future__ import annotations

import argparse
import json
import re
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
    parts = []
    for item in (part.strip() for part in text.split(",")):
        span = re.fullmatch(r"(\d+)-(\d+)", item)
        if span:
            parts += [str(s) for s in range(int(span[1]), int(span[2]) + 1)]
        elif item:
            parts.append(item)
    return ",".join(parts)


def _register_experiment(subparsers) -> None:
    from modelbalance.experiments.config import OPTIMIZERS, SCHEDULERS

    parser = subparsers.add_parser(
        "experiment",
        help="sweep training fractions x methods x seeds with a shared lr grid; tables, tests and plots",
        description="Run (or resume) a low-data sweep: every method gets the same learning-rate grid, picked on "
        "a validation split carved from the training pool; results, paired tests and plots go to --out. "
        "Flags override the config file.",
    )
    add = parser.add_argument
    add("--config", metavar="FILE", help="TOML or YAML file with ExperimentConfig fields")
    add("--task", help="task name (see --list)")
    add("--model", help="model name (see --list)")
    add("--fractions", metavar="F,F", help="training fractions of the pool, in (0, 1], e.g. 0.01,0.1,1")
    add("--seeds", metavar="S,S", type=_seed_list, help="seeds of the reported runs, e.g. 0,1,2 or 0-9")
    add("--tune-seeds", metavar="S,S", type=_seed_list, help="seeds the lr is picked on (default: --seeds)")
    add("--methods", metavar="M,M", help="methods, e.g. baseline,tb,tb_frozen,tb_shuffle,llrd (see --list)")
    add("--lrs", metavar="LR,LR", help="learning-rate grid shared by all methods, e.g. 1e-3,3e-3")
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
        help="your own data: a PDEBench HDF5 file, or .npz/.h5 with inputs and targets",
    )
    add("--data-seed", type=int, help="seed of the generated data and of the validation split")
    add("--val-size", type=float, help="validation split from the pool: fraction (< 1) or count")
    add(
        "--task-param",
        metavar="KEY=VALUE",
        type=_key_values,
        action="append",
        default=[],
        help="task option, e.g. n_samples=1024, resolution=512, nu=0.001 (repeatable)",
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
        help="any other config field, e.g. min_lr_ratio=0.1, momentum=0.8, step_gamma=0.3 (repeatable)",
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
        "again, e.g. to extend a study with more seeds in a new folder (repeatable)",
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
    add("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    add("--no-plots", action="store_true", help="skip the figures")
    add("--no-progress", action="store_true", help="no progress bar")
    add("--dry-run", action="store_true", help="check everything and print the plan, train nothing")
    add("--list", action="store_true", help="list the registered tasks, models and methods and exit")
    parser.set_defaults(handler=_run_experiment)


def _register_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a small low-data sweep (FNO-1D on Burgers, baseline vs TempBalance) in minutes on a CPU",
        description="FNO-1D on generated Burgers data: 3 training fractions x 2 seeds x {baseline, tb}, the "
        "same learning rate for both. Prints the table and where the plots are.",
    )
    parser.add_argument("--out", metavar="DIR", default="modelbalance-demo", help="results folder")
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


def build_config(args: argparse.Namespace):
    """ExperimentConfig from defaults < config file (or, with --resume, the folder's saved config) < flags."""
    from modelbalance.experiments.config import ExperimentConfig, read_config_file
    from modelbalance.experiments.store import ResultsFolder

    values: dict[str, Any] = {}
    if args.config:
        values = read_config_file(args.config)
    elif args.resume:
        if not args.out:
            raise ValueError("--resume needs --out DIR (the folder of the sweep to continue)")
        saved = ResultsFolder(args.out).saved_config()
        if saved is None:
            raise ValueError(f"--resume: {args.out} holds no config.json to resume")
        values = saved.to_dict()
    config = ExperimentConfig.from_dict({**values, **dict(args.set)})
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
    from modelbalance.experiments.runner import check_reuse, prepare
    from modelbalance.experiments.store import FolderConflict, ResultsFolder

    try:
        ResultsFolder(config.out).check(config, resume=resume, overwrite=overwrite)
        check_reuse(reuse)
        return prepare(config)
    except (*_USER_ERRORS, FolderConflict) as err:
        raise UsageError(str(err).replace("\n", " ")) from None


def _run_experiment(args: argparse.Namespace) -> int:
    from modelbalance.experiments.registry import load_plugin

    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite contradict each other")
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
    if args.dry_run:
        _print_plan(prepared)
        return 0
    return _sweep_and_print(prepared, args, plots=not args.no_plots)


def _run_demo(args: argparse.Namespace) -> int:
    from modelbalance.experiments.demo import demo_config

    config = demo_config(out=args.out, device=args.device)
    _set_threads(args.threads)
    prepared = _prepare_or_usage_error(config, resume=args.resume, overwrite=args.overwrite)
    args.retry_failed = False
    args.reuse = []
    return _sweep_and_print(prepared, args, plots=True)


def _set_threads(threads: int | None) -> None:
    if threads is None or threads == 0:
        return
    if threads < 0:
        raise UsageError(f"--threads must be >= 0, got {threads}")
    import torch

    torch.set_num_threads(threads)


def _sweep_and_print(prepared, args, *, plots: bool) -> int:
    from modelbalance.experiments.report import comparison_table, mean_std_table, reported, results_frame
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
        )
    except KeyboardInterrupt:
        command = "modelbalance demo" if args.command == "demo" else "modelbalance experiment --resume"
        print(f"finished runs are kept; continue with: {command} --out {config.out}", file=sys.stderr)
        raise
    frame = results_frame(outcome.records, outcome.picked_lrs, seeds=config.seeds)
    metric, direction = prepared.metric, prepared.direction
    print()
    print(f"Test {metric} (mean ± std over seeds, {'lower' if direction == 'min' else 'higher'} is better):")
    print(mean_std_table(frame, metric, direction, list(config.methods)))
    if len(config.methods) > 1 and not reported(frame).empty:
        from modelbalance.experiments.report import comparison_frame

        print()
        print("Paired comparison (gain > 0: better than the reference):")
        comparisons = comparison_frame(
            frame, metric=metric, direction=direction, methods=list(config.methods)
        )
        print(comparison_table(comparisons, metric))
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


def _print_plan(prepared) -> None:
    config = prepared.config
    tuning = len(config.lrs) > 1
    tune_seeds = config.effective_tune_seeds()
    per_cell = (
        (len(tune_seeds) * len(config.lrs) + len(set(config.seeds) - set(tune_seeds)))
        if tuning
        else len(config.seeds)
    )
    cells = len(config.fractions) * len(config.methods)
    print(
        f"task {config.task} ({prepared.task.describe()}), model {config.model} ({prepared.n_params:,} params)"
    )
    print(
        f"pool {len(prepared.train_pool)} / validation {len(prepared.val)} / test {len(prepared.data.test)}; "
        f"device {prepared.device}"
    )
    for fraction in config.fractions:
        print(
            f"  fraction {fraction:g}: n_train {prepared.n_train(fraction)}, "
            f"{prepared.run_steps(fraction)} steps per run"
        )
    print(f"{cells} (fraction, method) cells x {per_cell} runs = {cells * per_cell} runs -> {config.out}")
