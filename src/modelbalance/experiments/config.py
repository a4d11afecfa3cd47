"""ExperimentConfig: one sweep's settings, loadable from TOML or YAML and overridable field by field.

A config is plain data. The runner turns it into runs; the hashes below decide which stored runs a config can
reuse (:meth:`ExperimentConfig.run_hash`) and whether a results folder holds the same experiment
(:meth:`ExperimentConfig.differences`).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("constant", "cosine", "linear", "step")

# Fields that say which runs a sweep contains, not how one run trains: they never enter a run's hash.
SWEEP_FIELDS = ("fractions", "sizes", "shots", "seeds", "tune_seeds", "methods", "lrs", "grids")
# Fields that change neither a run's numbers nor the set of runs.
PRESENTATION_FIELDS = ("out", "device", "analyze_layers", "allow_unequal_budget")
# Task parameters that pick the metric a sweep tunes and reports on; every run records every metric anyway.
SELECTION_TASK_PARAMS = ("primary_metric",)
# Grid parameters that set how training runs (TrainSettings fields); any other grid key is a method option.
TRAINING_GRID_PARAMS = ("lr", "batch_size", "weight_decay", "warmup", "epochs", "steps")
FINETUNE_MODES = ("full", "lora")
DEFAULT_FRACTIONS = (0.05, 0.25, 1.0)
SUBSET_AXES = ("fractions", "sizes", "shots")


@dataclass
class ExperimentConfig:
    """The settings of one experiment sweep (fractions x methods x seeds, with a learning-rate grid).

    Examples
    --------
    >>> config = ExperimentConfig(task="burgers", model="fno", fractions=(0.05, 0.25), seeds=(0, 1))
    >>> config.replace(epochs=5).epochs
    5
    >>> ExperimentConfig.from_dict({"task": "darcy", "lrs": "1e-3,3e-3"}).lrs
    (0.001, 0.003)
    """

    task: str = field(default="burgers", metadata={"help": "registered task name"})
    model: str = field(default="fno", metadata={"help": "registered model name"})
    fractions: tuple[float, ...] | None = field(
        default=None,
        metadata={"help": "training-set fractions of the training pool, in (0, 1] (default 0.05, 0.25, 1)"},
    )
    sizes: tuple[int, ...] | None = field(
        default=None, metadata={"help": "instead of fractions: absolute training-set sizes"}
    )
    shots: tuple[int, ...] | None = field(
        default=None, metadata={"help": "instead of fractions: K training examples per class"}
    )
    seeds: tuple[int, ...] = field(default=(0, 1, 2), metadata={"help": "seeds of the reported runs"})
    tune_seeds: tuple[int, ...] | None = field(
        default=None, metadata={"help": "seeds the learning rate is picked on (default: the seeds)"}
    )
    methods: tuple[str, ...] = field(default=("baseline", "tb"), metadata={"help": "registered method names"})
    lrs: tuple[float, ...] = field(
        default=(1e-3,), metadata={"help": "learning-rate grid, the same for every method"}
    )
    grids: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata={
            "help": "per-method tuning grids, e.g. {tb = {lr = [...], s_max = [0.5, 1]}, baseline = {lr = [...], "
            "batch_size = [8, 16]}}; a method without one tunes lrs. Every method needs the same number of "
            "configurations (equal tuning budget)"
        },
    )
    allow_unequal_budget: bool = field(
        default=False, metadata={"help": "allow grids of different sizes (the summary says so)"}
    )
    epochs: int = field(default=20, metadata={"help": "training epochs per run"})
    steps: int | None = field(
        default=None,
        metadata={"help": "instead of epochs: the same number of optimizer steps for every fraction"},
    )
    batch_size: int = field(default=16, metadata={"help": "training batch size"})
    eval_batch_size: int = field(default=128, metadata={"help": "evaluation batch size"})
    optimizer: str = field(default="adamw", metadata={"help": "adam | adamw | sgd"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    weight_decay: float = field(default=1e-4, metadata={"help": "weight decay (not on biases and norms)"})
    scheduler: str = field(default="cosine", metadata={"help": "constant | cosine | linear | step"})
    warmup: float = field(default=0.0, metadata={"help": "linear warm-up, as a fraction of all steps"})
    min_lr_ratio: float = field(
        default=0.0, metadata={"help": "cosine/linear end lr as a fraction of the lr"}
    )
    step_epochs: int = field(default=10, metadata={"help": "step scheduler: epochs between decays"})
    step_gamma: float = field(default=0.5, metadata={"help": "step scheduler: decay factor"})
    grad_clip: float | None = field(default=None, metadata={"help": "clip the gradient norm to this value"})
    data: str | None = field(default=None, metadata={"help": "user data file (PDEBench HDF5 or .npz)"})
    data_seed: int = field(default=0, metadata={"help": "seed of the data generation and validation split"})
    val_size: float = field(
        default=0.2, metadata={"help": "validation split carved from the pool: fraction (<1) or count"}
    )
    task_params: dict[str, Any] = field(default_factory=dict, metadata={"help": "task keyword arguments"})
    model_params: dict[str, Any] = field(default_factory=dict, metadata={"help": "model keyword arguments"})
    method_options: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata={"help": "per-method options; a new name with base = '<method>' defines a variant"},
    )
    finetune: str = field(
        default="full", metadata={"help": "full | lora: train every weight, or LoRA adapters (peft)"}
    )
    lora: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "LoRA settings: r (8), alpha (16), dropout (0.1), target_modules (model default)"},
    )
    spectral_conv: bool = field(
        default=False, metadata={"help": "balance FNO spectral convolutions too (off = the paper's setting)"}
    )
    analyze_layers: bool = field(default=True, metadata={"help": "store per-layer alpha after training"})
    out: str = field(default="results/experiment", metadata={"help": "results folder"})
    device: str | None = field(default=None, metadata={"help": "torch device (default: cuda if available)"})

    def __post_init__(self):
        if self.sizes is not None:
            self.sizes = _int_tuple(self.sizes, "sizes")
        if self.shots is not None:
            self.shots = _int_tuple(self.shots, "shots")
        axes = [name for name in SUBSET_AXES if getattr(self, name) is not None]
        _require(len(axes) <= 1, f"give one of fractions, sizes or shots, not {' and '.join(axes)}")
        if self.fractions is None and not axes:
            self.fractions = DEFAULT_FRACTIONS
        if self.fractions is not None:
            self.fractions = _float_tuple(self.fractions, "fractions")
        self.seeds = seed_values(self.seeds, "seeds")
        if self.tune_seeds is not None:
            self.tune_seeds = seed_values(self.tune_seeds, "tune_seeds")
        self.methods = _str_tuple(self.methods, "methods")
        self.lrs = _float_tuple(self.lrs, "lrs")
        for name in ("task_params", "model_params", "method_options", "grids", "lora"):
            if not isinstance(getattr(self, name), dict):
                raise TypeError(f"{name} must be a table/mapping, got {type(getattr(self, name)).__name__}")
        self.method_options = {str(k): dict(v) for k, v in self.method_options.items()}
        self.grids = {
            str(k): {str(p): _grid_values(v, f"grids.{k}.{p}") for p, v in dict(g).items()}
            for k, g in self.grids.items()
        }
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        axis = self.subset_axis
        values = getattr(self, axis)
        _require(len(values) > 0, f"{axis} is empty")
        if axis == "fractions":
            for fraction in self.fractions:
                _require(0.0 < fraction <= 1.0, f"fraction {fraction} is outside (0, 1]")
        else:
            for value in values:
                _require(value >= 1, f"{axis} must be positive integers, got {value}")
        _require(len(self.seeds) > 0, "seeds is empty")
        _require(len(self.methods) > 0, "methods is empty")
        _require(len(self.lrs) > 0, "lrs is empty")
        for name in (axis, "seeds", "methods", "lrs"):
            values = getattr(self, name)
            _require(len(set(values)) == len(values), f"{name} has duplicates: {list(values)}")
        if self.tune_seeds is not None:
            _require(len(self.tune_seeds) > 0, "tune_seeds is empty")
        for lr in self.lrs:
            _require(math.isfinite(lr) and lr > 0, f"learning rate {lr} must be positive")
        for name in ("epochs", "batch_size", "eval_batch_size", "step_epochs"):
            value = getattr(self, name)
            _require(
                isinstance(value, int) and value >= 1, f"{name} must be a positive integer, got {value!r}"
            )
        _require(
            self.steps is None or (isinstance(self.steps, int) and self.steps >= 1),
            f"steps must be a positive integer, got {self.steps!r}",
        )
        _require(self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}; known: {OPTIMIZERS}")
        _require(self.scheduler in SCHEDULERS, f"unknown scheduler {self.scheduler!r}; known: {SCHEDULERS}")
        _require(0.0 <= self.warmup < 1.0, f"warmup {self.warmup} must lie in [0, 1)")
        _require(0.0 <= self.min_lr_ratio <= 1.0, f"min_lr_ratio {self.min_lr_ratio} must lie in [0, 1]")
        _require(self.weight_decay >= 0, f"weight_decay {self.weight_decay} must be >= 0")
        _require(self.step_gamma > 0, f"step_gamma {self.step_gamma} must be > 0")
        _require(self.grad_clip is None or self.grad_clip > 0, f"grad_clip {self.grad_clip} must be > 0")
        _require(self.val_size > 0, f"val_size {self.val_size} must be > 0 (a fraction < 1 or a count)")
        _require(
            self.val_size < 1 or float(self.val_size).is_integer(),
            f"val_size {self.val_size} must be a fraction below 1 or a whole count",
        )
        for name, options in self.method_options.items():
            _require(isinstance(options, dict), f"method_options.{name} must be a table")
        _require(
            self.finetune in FINETUNE_MODES,
            f"finetune must be one of {FINETUNE_MODES}, got {self.finetune!r}",
        )
        unknown = sorted(set(self.lora) - {"r", "alpha", "dropout", "target_modules"})
        _require(not unknown, f"unknown lora setting(s) {unknown}; known: r, alpha, dropout, target_modules")
        _require(
            not self.lora or self.finetune == "lora",
            f"lora settings {sorted(self.lora)} apply only with finetune = 'lora' (--set finetune=lora); "
            f"finetune is {self.finetune!r} (to drop inherited ones: --set 'lora={{}}')",
        )
        for method in self.grids:
            _require(
                method in self.methods,
                f"grids.{method}: {method!r} is not one of the methods {list(self.methods)}",
            )
        for method, grid in self.grids.items():
            _require("lr" in grid, f"grids.{method} needs an lr list")
            for lr in grid["lr"]:
                _require(
                    isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0,
                    f"grids.{method}.lr: learning rate {lr!r} must be positive",
                )
        if not self.allow_unequal_budget:
            sizes = {m: len(self.grid_points(m)) for m in self.methods}
            if len(set(sizes.values())) > 1:
                shown = ", ".join(f"{m}: {n}" for m, n in sizes.items())
                raise ValueError(
                    f"unequal tuning budget ({shown} configurations): give every method a grid of the same "
                    "size (e.g. the baseline a finer lr grid, or lr x batch_size), or set allow_unequal_budget"
                )

    # ------------------------------------------------------------------ sweep axes
    @property
    def subset_axis(self) -> str:
        """``"fractions"``, ``"sizes"`` or ``"shots"``: how training subsets are specified."""
        if self.shots is not None:
            return "shots"
        if self.sizes is not None:
            return "sizes"
        return "fractions"

    def grid(self, method: str) -> dict[str, tuple]:
        """The tuning grid of ``method``: parameter -> values (``lr`` always; default ``{"lr": lrs}``)."""
        return dict(self.grids.get(method) or {"lr": self.lrs})

    def grid_points(self, method: str) -> list[tuple[tuple[str, Any], ...]]:
        """Every configuration of ``method``'s grid (the product of its axes), each a normalised tuple."""
        import itertools

        from modelbalance.experiments.plan import normalize_params

        grid = self.grid(method)
        names = list(grid)
        return [normalize_params(dict(zip(names, values))) for values in itertools.product(*grid.values())]

    # ------------------------------------------------------------------ (de)serialisation
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExperimentConfig:
        """Build from a mapping (a parsed config file); unknown keys are an error naming the key."""
        known = set(cls.field_names())
        unknown = [key for key in values if key not in known]
        if unknown:
            import difflib

            hints = []
            for key in unknown:
                if key in _FLAG_KEYS:  # a flag's name, whose config key differs
                    flag, config_key = _FLAG_KEYS[key]
                    hints.append(f"{key!r} (the config key for {flag} is {config_key!r})")
                    continue
                close = difflib.get_close_matches(key, known, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(f"unknown config key(s): {', '.join(hints)}")
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path) -> ExperimentConfig:
        """Load a ``.toml`` or ``.yaml``/``.yml`` file (keys as the field names; tables for the dict fields)."""
        return cls.from_dict(read_config_file(path))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replace(self, **changes: Any) -> ExperimentConfig:
        """A copy with ``changes`` applied (``None`` values are ignored, so unset CLI flags fall through)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        values = without_replaced_axis(dataclasses.asdict(self), changes)
        values.update(changes)
        return ExperimentConfig.from_dict(values)

    # ------------------------------------------------------------------ identity
    def effective_tune_seeds(self) -> tuple[int, ...]:
        return self.seeds if self.tune_seeds is None else self.tune_seeds

    def method_spec(self, method: str) -> tuple[str, dict[str, Any]]:
        """(registered base method, options) for a method name of this sweep.

        ``method_options[name]`` supplies options; a ``base`` key there makes ``name`` a variant of ``base``.
        """
        options = dict(self.method_options.get(method, {}))
        base = options.pop("base", method)
        if base != method and base in self.method_options and "base" in self.method_options[base]:
            raise ValueError(f"method {method!r}: base {base!r} is itself a variant; chain only one level")
        if base != method:
            options = {**self.method_options.get(base, {}), **options}
        return base, options

    def shared_dict(self) -> dict[str, Any]:
        """The fields that shape every run (not the sweep axes, not where or how results are shown)."""
        skip = set(SWEEP_FIELDS) | set(PRESENTATION_FIELDS) | {"method_options"}
        shared = {k: v for k, v in self.to_dict().items() if k not in skip}
        # fields added after results were published: left out at their defaults, so old run hashes still hold
        for name, default in (("finetune", "full"), ("lora", {})):
            if shared.get(name) == default:
                shared.pop(name)
        # task options that choose how runs are compared, not how they train: a study tuned again on another metric
        # reuses the runs it shares with the first
        shared["task_params"] = {
            k: v for k, v in (shared.get("task_params") or {}).items() if k not in SELECTION_TASK_PARAMS
        }
        return shared

    def run_hash(self, method: str, extra: dict[str, Any] | None = None) -> str:
        """Hash of everything that determines a run of ``method`` apart from fraction, seed and lr.

        ``extra`` is the rest of the run's grid point (batch size, method options tuned by ``grids``).
        """
        base, options = self.method_spec(method)
        payload = {"shared": self.shared_dict(), "method": base, "options": options}
        if extra:
            payload["grid"] = dict(sorted(extra.items()))
        return _digest(payload)

    def differences(self, other: ExperimentConfig) -> list[str]:
        """Names of the fields (presentation fields excluded) whose values differ."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [k for k in mine if k not in PRESENTATION_FIELDS and mine[k] != theirs.get(k)]


def read_config_file(path: str | Path, *, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Parse a TOML, YAML or JSON config file into a dict (no validation); JSON is what a results folder saves as
    its ``config.json``, so a finished study can be re-run or re-reported from its own folder.

    ``extends = "other.toml"`` (a path relative to this file) starts from another config: this file's settings
    replace the other's key by key, tables (``task_params``, ``method_options.tb``, ``grids``...) are merged key by
    key, lists are replaced whole, and a subset axis here (``fractions``, ``sizes``, ``shots``) replaces the other's,
    whichever it was. ``unset = ["tune_seeds", "method_options.tb.s_max"]`` removes inherited settings (dotted
    names reach into tables), which then take their defaults; a table both unset and set is replaced whole, and an
    axis may be unset and replaced by another.
    Chains are allowed; cycles are an error.
    """
    path = Path(path)
    if not path.is_file():
        where = f" (extended by {_chain[-1]})" if _chain else ""
        raise FileNotFoundError(f"config file not found: {path}{where}")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python < 3.11
            try:
                import tomli as tomllib
            except ModuleNotFoundError:
                raise ValueError(
                    f"{path}: TOML configs on Python 3.10 need tomli (pip install tomli)"
                ) from None
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: invalid TOML: {err}") from None
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ModuleNotFoundError:
            raise ValueError(
                f"{path}: YAML configs need PyYAML (pip install 'modelbalance[config]')"
            ) from None
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: invalid YAML: {err}".replace("\n", " ")) from None
    elif suffix == ".json":  # a results folder's config.json: re-run or re-report a finished study as it ran
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: invalid JSON: {err}") from None
    else:
        raise ValueError(f"{path}: config files must end in .toml, .yaml, .yml or .json")
    if not isinstance(values, dict):
        raise ValueError(f"{path}: the top level must be a table/mapping of settings")
    # A file may nest everything under an [experiment] table (with `extends` and `unset` inside it or above it).
    if set(values) - {"extends", "unset"} == {"experiment"} and isinstance(values["experiment"], dict):
        outer, values = values, dict(values["experiment"])
        for key in ("extends", "unset"):
            if key in outer:
                if key in values:
                    raise ValueError(f"{path}: {key} is given both above and inside [experiment]; keep one")
                values[key] = outer[key]
    if "extends" not in values:
        if "unset" in values:
            raise ValueError(f'{path}: unset removes inherited settings, so it needs extends = "other.toml"')
        return values
    parent = values.pop("extends")
    unset = values.pop("unset", [])
    if not isinstance(parent, str) or not parent.strip():
        raise ValueError(f"{path}: extends must be the path of another config file, got {parent!r}")
    real = path.resolve()  # a linked config finds its parent beside the file it links to
    parent_path = Path(parent).expanduser()
    if not parent_path.is_absolute():
        parent_path = real.parent / parent_path
    chain = (*_chain, real)
    if parent_path.resolve() in chain:
        cycle = " -> ".join(str(p) for p in (*chain, parent_path.resolve()))
        raise ValueError(f"{path}: extends makes a cycle: {cycle}")
    base = _without_keys(read_config_file(parent_path, _chain=chain), unset, path)
    return _merge_tables(without_replaced_axis(base, values), values, path)


def without_replaced_axis(values: dict[str, Any], new: Any) -> dict[str, Any]:
    """``values`` without its subset axis if the keys of ``new`` name one: a new axis replaces the old, whichever."""
    if any(axis in new for axis in SUBSET_AXES):
        return {k: v for k, v in values.items() if k not in SUBSET_AXES}
    return dict(values)


def _without_keys(base: dict[str, Any], names: Any, path: Path) -> dict[str, Any]:
    """``base`` less the dotted keys in ``names`` (a config's ``unset``), each of which ``base`` must hold.

    It runs before the merge, so a table both unset and set is replaced whole instead of merged key by key.
    (A key that itself contains a dot cannot be named.)
    """
    if isinstance(names, str) or not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f'{path}: unset must be a list of setting names, e.g. unset = ["tune_seeds"]')
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{path}: unset names {', '.join(repeated)} more than once")
    base = copy.deepcopy(base)
    for name in names:
        *tables, key = parts = name.split(".")
        if not all(parts):
            raise ValueError(
                f"{path}: unset name {name!r} has an empty part; write table.key, e.g. task_params.noise"
            )
        holder = base
        for depth, table in enumerate(tables):
            holder = holder.get(table)
            if not isinstance(holder, dict):
                where = ".".join(tables[: depth + 1])
                what = "does not set" if holder is None else "sets as a value, not a table"
                raise ValueError(f"{path}: unset names {name}, but the config it extends {what} {where}")
        if key not in holder:
            raise ValueError(f"{path}: unset names {name}, which the config it extends does not set")
        del holder[key]
    return base


def _merge_tables(
    base: dict[str, Any], override: dict[str, Any], path: Path, prefix: str = ""
) -> dict[str, Any]:
    """``base`` updated by ``override``: nested tables merged key by key, anything else replaced."""
    merged = dict(base)
    for key, value in override.items():
        if value is None and key in base:
            raise ValueError(
                f"{path}: {prefix}{key} is empty (null); to remove an inherited setting, delete the null and "
                f'name it in unset (unset = ["{prefix}{key}"])'
            )
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_tables(merged[key], value, path, f"{prefix}{key}.")
        else:
            merged[key] = value
    return merged


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# CLI flags whose config-file key is not the flag's own name (singular flags, repeated KEY=VALUE options)
_FLAG_KEYS = {
    "method_param": ("--method-param", "method_options"),
    "method_params": ("--method-param", "method_options"),
    "task_param": ("--task-param", "task_params"),
    "model_param": ("--model-param", "model_params"),
    "grid": ("--grid", "grids"),
}


def seed_values(values: Any, name: str = "seeds") -> tuple[int, ...]:
    """Seeds as a list, one integer, or text with inclusive ranges: ``"0-9"``, ``"0,3,5-7"``."""
    items: list = []
    for value in _split(values, name):
        span = re.fullmatch(r"(\d+)\s*-\s*(\d+)", value) if isinstance(value, str) else None
        if span is None:
            items.append(value)
            continue
        low, high = int(span[1]), int(span[2])
        _require(low <= high, f"{name}: the range {value} runs backwards; write {high}-{low}")
        items += range(low, high + 1)
    return _int_tuple(items, name)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _grid_values(values: Any, name: str) -> tuple:
    items = _split(values, name)
    _require(len(items) > 0, f"{name} is empty")
    _require(len(set(map(repr, items))) == len(items), f"{name} has duplicates: {items}")
    out = []
    for v in items:
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                pass
        out.append(v)
    return tuple(out)


def _split(values: Any, name: str) -> list:
    if isinstance(values, str):
        return [v.strip() for v in values.split(",") if v.strip()]
    if isinstance(values, (int, float)):
        return [values]
    if isinstance(values, (list, tuple)):
        return list(values)
    raise TypeError(f"{name} must be a list or a comma-separated string, got {type(values).__name__}")


def _float_tuple(values: Any, name: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in _split(values, name))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, got {values!r}") from None


def _int_tuple(values: Any, name: str) -> tuple[int, ...]:
    items = _split(values, name)
    out = []
    for v in items:
        if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
            raise ValueError(f"{name} must be integers, got {values!r}")
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be integers, got {values!r}") from None
    return tuple(out)


def _str_tuple(values: Any, name: str) -> tuple[str, ...]:
    return tuple(str(v) for v in _split(values, name))
