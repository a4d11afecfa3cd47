"""TempBalanceConfig: every setting of the balancer, with help text, plus the papers' settings as presets.

Example
-------
>>> from modelbalance.balance import TempBalanceConfig
>>> config = TempBalanceConfig.preset("neurips_cnn", steps_per_epoch=390)
>>> config.mapping, config.unit, config.interval_steps
('linear', 'layer', 390)
>>> TempBalanceConfig().unit, TempBalanceConfig.preset("emnlp_glue").unit
('auto', 'block')
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace

from .mappings import MAPPINGS

__all__ = ["DEFAULT_HEAD_PATTERNS", "PRESETS", "TempBalanceConfig"]

DEFAULT_HEAD_PATTERNS: tuple[str, ...] = (r"(^|\.)(classifier|pooler|lm_head|qa_outputs|score|head)(\.|$)",)
"""Newly initialised heads of Hugging Face / timm models; they keep the base learning rate."""

UNITS = ("auto", "layer", "block", "type")
METRICS = ("alpha", "alpha_relative", "alpha_farms")
TARGETS = ("lr", "weight_decay", "both")
NORMALIZE = (None, "mean", "param_mean")


def _help(text: str, default, **kwargs):
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": text}, **kwargs)
    return field(default=default, metadata={"help": text}, **kwargs)


@dataclass(frozen=True)
class TempBalanceConfig:
    """Settings of :class:`~modelbalance.balance.TempBalance` and :func:`~modelbalance.balance.param_groups`.

    The defaults are the EMNLP 2024 GLUE setting (sigmoid mapping, one factor per transformer block, tail =
    top third of the spectrum, factors active from step 0, warmup included) with two deliberate changes. The
    unit is ``"auto"``: blocks where blocks are detected (transformers, ResNet stages, FNO blocks), one factor
    per layer otherwise (an MLP, a plain CNN), so any model works with the defaults; the choice and its
    reason are logged (logger ``modelbalance.balance``, INFO). And the metric is ``alpha_relative`` (alpha
    minus the alpha of a same-shape Gaussian matrix). Raw Hill alpha mostly tracks a matrix's aspect ratio, so
    raw-alpha factors largely encode layer shape; the shape-corrected alpha compares layers by how far training
    has moved them from random. ``preset("emnlp_glue")`` keeps the paper's block units and raw alpha. Each field's help
    text is in ``TempBalanceConfig.help()``.

    >>> TempBalanceConfig(mapping="linear", unit="layer").mapping_options
    {}
    """

    mapping: str | Callable = _help(
        "alpha -> factor map: 'sigmoid' (EMNLP), 'linear' (NeurIPS), 'rank', 'sqrt', 'log2', 'noise_aware' "
        "(empirical-Bayes shrinkage by the fits' standard errors, then mapping_options['base'], default "
        "sigmoid), or a callable f(alphas, stderrs, **mapping_options) -> factors.",
        "sigmoid",
    )
    mapping_options: dict = _help(
        "Keyword arguments of the mapping, e.g. {'s_min': 0.5, 's_max': 0.5, 'temperature': 10} for sigmoid, "
        "{'s1': 0.5, 's2': 1.5} for linear and rank.",
        {},
    )
    unit: str = _help(
        "What shares one factor: 'auto' (default: 'block' when blocks are detected or blocks= finds some, "
        "'layer' otherwise; the choice is logged), 'block' (transformer block / ResNet stage / FNO block, "
        "alpha = mean over its layers), 'layer' (every weight matrix), or 'type' (one factor per layer, but "
        "each layer is compared only with same-role, same-shape layers of the other blocks).",
        "auto",
    )
    blocks: str | Callable | None = _help(
        "Override block detection: a regex searched in module paths (group 1, or the whole match, names the "
        "block) or a callable path -> block name or None.",
        None,
    )
    balance_outside_blocks: bool = _help(
        "With block units ('block', or 'auto' finding blocks): give layers outside every block (pooler, "
        "lifting, ...) their own factor instead of keeping the base learning rate (the paper keeps it).",
        False,
    )
    exclude: tuple[str, ...] = _help(
        "Regexes searched in layer names; matching layers keep factor 1 (default: newly initialised heads "
        "such as classifier, pooler, lm_head).",
        DEFAULT_HEAD_PATTERNS,
    )
    exclude_first_last: bool = _help(
        "Keep the first and the last layer at factor 1 (NeurIPS CNN setting).", False
    )
    attach_norms: bool = _help(
        "With layer units ('layer', 'type', or 'auto' finding no blocks): a normalisation layer follows the "
        "weight layer just before it in the same parent module (BatchNorm after its conv); otherwise it keeps "
        "factor 1.",
        True,
    )
    metric: str = _help(
        "Which alpha drives the factors: 'alpha_relative' (default: shape-corrected), 'alpha' (raw Hill, the "
        "papers') or 'alpha_farms'.",
        "alpha_relative",
    )
    xmin: str | float = _help("Tail start of the power-law fit: 'fixed', 'peak', 'ks' or a number.", "fixed")
    xmin_pos: float = _help(
        "With xmin='fixed': tail = top 1/xmin_pos of the spectrum (GLUE: 1.5, CNN: 2).", 1.5
    )
    min_eigs: int = _help("Layers with fewer eigenvalues get alpha NaN and keep factor 1.", 10)
    lora: str = _help(
        "What a LoRA layer's spectrum is: 'effective' (W + scaling * B A), 'delta' (scaling * B A alone; frozen "
        "layers are then left out, and adapters too small to fit are refused: rank < min_eigs, or with xmin='fixed' "
        "rank < the tail's size) or 'base'.",
        "effective",
    )
    spectral_conv: bool = _help(
        "Balance neuraloperator SpectralConv weights too (the reference code does not).", True
    )
    target: str = _help("What the factor multiplies: 'lr', 'weight_decay' or 'both'.", "lr")
    normalize: str | None = _help(
        "Rescale factors to mean 1: None, 'mean' or 'param_mean' (weighted by trainable parameters per "
        "unit).",
        None,
    )
    interval: int | str = _help(
        "Recompute every `interval` optimizer steps, or 'epoch' (then recomputes_per_epoch times per "
        "steps_per_epoch steps, or at each tb.epoch_end() call when steps_per_epoch is None).",
        10,
    )
    steps_per_epoch: int | None = _help("Optimizer steps per epoch, for interval='epoch'.", None)
    recomputes_per_epoch: int = _help("With interval='epoch': recomputes per epoch (GLUE: 10).", 1)
    start_step: int = _help(
        "No factors before this optimizer step (e.g. the warmup length); the first recompute "
        "happens here. 0 = from the first step, warmup included (paper GLUE).",
        0,
    )
    ema: float = _help(
        "Exponential smoothing of each unit's alpha across recomputes: new = ema * old + "
        "(1 - ema) * measured. 0 = no smoothing.",
        0.0,
    )
    fix_metric: bool = _help(
        "Measure once at start_step and keep those alphas and factors (paper's 'fix metric').", False
    )
    asynchronous: bool = _help(
        "Run the eigendecompositions in a background thread on a snapshot of the weights taken at the "
        "recompute step. Results take effect exactly apply_delay steps later (waiting if needed), so runs "
        "stay deterministic and equal to a synchronous run with the same apply_delay.",
        False,
    )
    measure_device: str = _help(
        "Where recomputes run: 'weights' (the weights' own device) or 'cpu' (matrices copied to pinned CPU "
        "memory without blocking, then decomposed there). Measured on an H200 host, BERT-base: 0.55 s on the "
        "GPU, 1.7 s on its 16-core CPU, so 'weights' is the default. Async and sync runs are identical only "
        "with the same setting.",
        "weights",
    )
    apply_delay: int | None = _help(
        "Optimizer steps between the snapshot and the step whose update first uses the new factors; None = 0 "
        "(synchronous) or 1 (asynchronous). At most the recompute interval.",
        None,
    )
    skip_tolerance: float = _help(
        "Re-use a layer's last alpha when a perturbation bound (Weyl: singular values move by at most "
        "||W - W_fit||_2) proves its alpha moved by at most this much; 0 = always refit. Needs xmin='fixed'; "
        "keeps one copy of the balanced weights (the last fitted ones) and their spectra.",
        0.0,
    )
    shape_check: bool = _help("Log once when factors are essentially a function of layer shape.", True)
    log_csv: str | None = _help("Append one row per unit and recompute to this CSV file.", None)
    tensorboard_dir: str | None = _help(
        "Write alphas, factors and lrs to TensorBoard here (needs tensorboard).", None
    )
    keep_history: bool = _help("Keep per-recompute records in tb.history (and state_dict).", True)

    def __post_init__(self):
        if not callable(self.mapping) and self.mapping not in MAPPINGS:
            raise ValueError(
                f"unknown mapping {self.mapping!r}; choose from {sorted(MAPPINGS)} or pass a callable"
            )
        if not isinstance(self.mapping_options, dict):
            raise TypeError(f"mapping_options must be a dict, got {type(self.mapping_options).__name__}")
        if self.unit not in UNITS:
            raise ValueError(f"unknown unit {self.unit!r}; choose from {UNITS}")
        if isinstance(self.blocks, str):
            try:
                re.compile(self.blocks)
            except re.error as err:
                raise ValueError(f"invalid blocks regex {self.blocks!r}: {err}") from None
        elif self.blocks is not None and not callable(self.blocks):
            raise TypeError(
                f"blocks must be a regex string, a callable or None, got {type(self.blocks).__name__}"
            )
        if isinstance(self.exclude, str):
            object.__setattr__(self, "exclude", (self.exclude,))
        for pattern in self.exclude:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"invalid exclude pattern {pattern!r}: {err}") from None
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; choose from {METRICS}")
        if self.mapping in ("sqrt", "log2") and self.metric == "alpha_relative":
            raise ValueError(f"mapping {self.mapping!r} needs positive alphas; use metric='alpha' with it")
        if self.measure_device not in ("cpu", "weights"):
            raise ValueError(f"measure_device must be 'cpu' or 'weights', got {self.measure_device!r}")
        if self.target not in TARGETS:
            raise ValueError(f"unknown target {self.target!r}; choose from {TARGETS}")
        if self.normalize not in NORMALIZE:
            raise ValueError(f"unknown normalize {self.normalize!r}; choose from {NORMALIZE}")
        if self.lora not in ("effective", "delta", "base"):
            raise ValueError(f"lora must be 'effective', 'delta' or 'base', got {self.lora!r}")
        self._check_schedule()
        if not (isinstance(self.min_eigs, int) and self.min_eigs >= 2):
            raise ValueError(f"min_eigs must be an integer >= 2, got {self.min_eigs!r}")
        if not (0.0 <= self.ema < 1.0):
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if not (math.isfinite(self.skip_tolerance) and self.skip_tolerance >= 0):
            raise ValueError(f"skip_tolerance must be a finite number >= 0, got {self.skip_tolerance}")
        if self.skip_tolerance > 0 and (self.xmin != "fixed" or self.metric == "alpha_farms"):
            raise ValueError(
                "skip_tolerance > 0 needs xmin='fixed' and metric 'alpha' or 'alpha_relative': the "
                "perturbation bound assumes the tail starts at a fixed position of the spectrum"
            )
        self.fit_config()  # validates xmin / xmin_pos

    def _check_schedule(self):
        if self.interval == "epoch":
            if self.steps_per_epoch is not None and not (
                isinstance(self.steps_per_epoch, int) and self.steps_per_epoch >= 1
            ):
                raise ValueError(f"steps_per_epoch must be a positive integer, got {self.steps_per_epoch!r}")
            if not (isinstance(self.recomputes_per_epoch, int) and self.recomputes_per_epoch >= 1):
                raise ValueError(
                    f"recomputes_per_epoch must be a positive integer, got {self.recomputes_per_epoch!r}"
                )
        elif isinstance(self.interval, bool) or not isinstance(self.interval, int) or self.interval < 1:
            raise ValueError(f"interval must be a positive integer or 'epoch', got {self.interval!r}")
        if not (isinstance(self.start_step, int) and self.start_step >= 0):
            raise ValueError(f"start_step must be a non-negative integer, got {self.start_step!r}")
        delay = self.effective_apply_delay
        if not (isinstance(delay, int) and delay >= 0):
            raise ValueError(f"apply_delay must be a non-negative integer, got {self.apply_delay!r}")
        if self.asynchronous and delay == 0:
            raise ValueError(
                "asynchronous=True needs apply_delay >= 1 (results are used a fixed number of steps later)"
            )
        interval = self.interval_steps
        if interval is not None and delay > interval:
            raise ValueError(f"apply_delay={delay} exceeds the recompute interval ({interval} steps)")

    @property
    def interval_steps(self) -> int | None:
        """Optimizer steps between recomputes; None when only ``epoch_end()`` calls trigger them."""
        if self.interval != "epoch":
            return self.interval
        if self.steps_per_epoch is None:
            return None
        return max(1, math.ceil(self.steps_per_epoch / self.recomputes_per_epoch))

    @property
    def effective_apply_delay(self) -> int:
        if self.apply_delay is not None:
            return self.apply_delay
        return 1 if self.asynchronous else 0

    def check_runnable(self) -> None:
        """Checks that need the whole setting, done when a balancer is built (presets may leave gaps)."""
        if self.interval == "epoch" and self.recomputes_per_epoch > 1 and self.steps_per_epoch is None:
            raise ValueError(
                f"recomputes_per_epoch={self.recomputes_per_epoch} needs steps_per_epoch (optimizer steps "
                "per epoch)"
            )

    def fit_config(self):
        """The spectral engine's FitConfig for these settings."""
        from ..spectral import FitConfig

        return FitConfig(xmin=self.xmin, xmin_pos=self.xmin_pos)

    def replace(self, **changes) -> TempBalanceConfig:
        """A copy with some fields changed (validated again)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"unknown TempBalanceConfig field(s): {sorted(unknown)}")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain-data view (callables shown by name), e.g. for logging next to a run's results."""
        out = asdict(self)
        for key, value in out.items():
            if callable(value):
                out[key] = getattr(value, "__name__", repr(value))
        return out

    @classmethod
    def help(cls) -> dict[str, str]:
        """Help text of every field."""
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    @classmethod
    def preset(cls, name: str, **overrides) -> TempBalanceConfig:
        """A named paper setting (see :data:`PRESETS`), with some fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        return PRESETS[name].replace(**overrides)


PRESETS: dict[str, TempBalanceConfig] = {
    # EMNLP 2024 GLUE: block units, sigmoid map, top-third tail, ~10 recomputes per epoch, active during
    # warmup, raw alpha. Pass steps_per_epoch; s_min = s_max was tuned per data ratio in [0.25, 2].
    "emnlp_glue": TempBalanceConfig(
        mapping="sigmoid",
        mapping_options={"s_min": 0.5, "s_max": 0.5, "temperature": 10.0},
        unit="block",
        metric="alpha",
        xmin="fixed",
        xmin_pos=1.5,
        interval="epoch",
        recomputes_per_epoch=10,
        start_step=0,
    ),
    # NeurIPS 2023 CNNs: one factor per layer between 0.5 and 1.5 times the schedule's lr, first and last
    # layer excluded, BatchNorm following its conv, median tail, once per epoch, raw alpha.
    "neurips_cnn": TempBalanceConfig(
        mapping="linear",
        mapping_options={"s1": 0.5, "s2": 1.5},
        unit="layer",
        metric="alpha",
        xmin="fixed",
        xmin_pos=2.0,
        interval="epoch",
        recomputes_per_epoch=1,
        exclude=(),
        exclude_first_last=True,
        attach_norms=True,
    ),
}
"""Paper settings by name. ``emnlp_glue`` recomputes 10 times per epoch, so it needs ``steps_per_epoch=``."""
