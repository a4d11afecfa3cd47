"""ExperimentConfig: one sweep's settings, loadable from TOML or YAML and overridable field by field.

A config is plain data. The runner turns it into runs; the hashes below decide which stored runs a config can
reuse (:meth:`ExperimentConfig.run_hash`) and whether a results folder holds the same experiment
(:meth:`ExperimentConfig.differences`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("constant", "cosine", "linear", "step")

# Fields that say which runs a sweep contains, not how one run trains: they never enter a run's hash.
SWEEP_FIELDS = ("fractions", "seeds", "tune_seeds", "methods", "lrs")
# Fields that change neither a run's numbers nor the set of runs.
PRESENTATION_FIELDS = ("out", "device", "analyze_layers")


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
    fractions: tuple[float, ...] = field(
        default=(0.05, 0.25, 1.0), metadata={"help": "training-set fractions of the training pool, in (0, 1]"}
    )
    seeds: tuple[int, ...] = field(default=(0, 1, 2), metadata={"help": "seeds of the reported runs"})
    tune_seeds: tuple[int, ...] | None = field(
        default=None, metadata={"help": "seeds the learning rate is picked on (default: the seeds)"}
    )
    methods: tuple[str, ...] = field(default=("baseline", "tb"), metadata={"help": "registered method names"})
    lrs: tuple[float, ...] = field(
        default=(1e-3,), metadata={"help": "learning-rate grid, the same for every method"}
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
    spectral_conv: bool = field(
        default=False, metadata={"help": "balance FNO spectral convolutions too (off = the paper's setting)"}
    )
    analyze_layers: bool = field(default=True, metadata={"help": "store per-layer alpha after training"})
    out: str = field(default="results/experiment", metadata={"help": "results folder"})
    device: str | None = field(default=None, metadata={"help": "torch device (default: cuda if available)"})

    def __post_init__(self):
        self.fractions = _float_tuple(self.fractions, "fractions")
        self.seeds = _int_tuple(self.seeds, "seeds")
        if self.tune_seeds is not None:
            self.tune_seeds = _int_tuple(self.tune_seeds, "tune_seeds")
        self.methods = _str_tuple(self.methods, "methods")
        self.lrs = _float_tuple(self.lrs, "lrs")
        for name in ("task_params", "model_params", "method_options"):
            if not isinstance(getattr(self, name), dict):
                raise TypeError(f"{name} must be a table/mapping, got {type(getattr(self, name)).__name__}")
        self.method_options = {str(k): dict(v) for k, v in self.method_options.items()}
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        for fraction in self.fractions:
            if not 0.0 < fraction <= 1.0:
                raise ValueError(f"fraction {fraction} is outside (0, 1]")
        _require(len(self.fractions) > 0, "fractions is empty")
        _require(len(self.seeds) > 0, "seeds is empty")
        _require(len(self.methods) > 0, "methods is empty")
        _require(len(self.lrs) > 0, "lrs is empty")
        for name in ("fractions", "seeds", "methods", "lrs"):
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
        values = dataclasses.asdict(self)
        values.update({k: v for k, v in changes.items() if v is not None})
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
        return {k: v for k, v in self.to_dict().items() if k not in skip}

    def run_hash(self, method: str) -> str:
        """Hash of everything that determines a run of ``method`` apart from fraction, seed and lr."""
        base, options = self.method_spec(method)
        payload = {"shared": self.shared_dict(), "method": base, "options": options}
        return _digest(payload)

    def differences(self, other: ExperimentConfig) -> list[str]:
        """Names of the fields (presentation fields excluded) whose values differ."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [k for k in mine if k not in PRESENTATION_FIELDS and mine[k] != theirs.get(k)]


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a TOML or YAML config file into a dict (no validation)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
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
    else:
        raise ValueError(f"{path}: config files must end in .toml, .yaml or .yml")
    if not isinstance(values, dict):
        raise ValueError(f"{path}: the top level must be a table/mapping of settings")
    # A file may nest everything under an [experiment] table.
    if set(values) == {"experiment"} and isinstance(values["experiment"], dict):
        values = values["experiment"]
    return values


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


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
