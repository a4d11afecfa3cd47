"""LoRA fine-tuning for the runner (``finetune = "lora"``): the pretrained weights frozen, adapters trained.

Uses peft's ``LoraConfig`` with the sequence-classification task type, so the new classification head stays
trainable (peft's ``modules_to_save``) while every pretrained matrix is frozen::

    from modelbalance.experiments.models.lora import apply_lora
    model = apply_lora(model, {"r": 8, "alpha": 16, "target_modules": ["query", "value"]})

Balancing then sees only the trainable parameters: TempBalance's factors act on the adapters (and the head keeps
the base rate), and its spectra are those of ``W + scaling * B A`` (or the update alone with ``lora="delta"``).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

DEFAULTS: dict[str, Any] = {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": None}

# Architectures for which peft has no default targets; named like its defaults for BERT and RoBERTa (the attention's
# query and value projections), so that ``--model mpnet --set finetune=lora`` works as it does for BERT.
EXTRA_TARGETS: dict[str, list[str]] = {"mpnet": ["q", "v"]}


def apply_lora(model: torch.nn.Module, settings: dict[str, Any] | None = None) -> torch.nn.Module:
    """``model`` wrapped by peft with LoRA adapters; ``settings``: r, alpha, dropout, target_modules.

    ``target_modules=None`` takes peft's default for the architecture (query and value projections for BERT), or
    :data:`EXTRA_TARGETS` where peft has none (MPNet).

    Examples
    --------
    >>> lora_model = apply_lora(model, {"r": 4})  # doctest: +SKIP
    >>> lora_model.print_trainable_parameters()  # doctest: +SKIP
    """
    try:
        import peft
    except ModuleNotFoundError:
        raise ModuleNotFoundError("finetune='lora' needs peft: pip install 'modelbalance[hf]'") from None
    options = {**DEFAULTS, **(settings or {})}
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown LoRA setting(s) {unknown}; known: {sorted(DEFAULTS)}")
    r = options["r"]
    if not isinstance(r, int) or r < 1:
        raise ValueError(f"LoRA rank r must be a positive integer, got {r!r}")
    if not 0 <= float(options["dropout"]) < 1:
        raise ValueError(f"LoRA dropout must lie in [0, 1), got {options['dropout']}")
    targets = options["target_modules"]
    if targets is None:
        targets = EXTRA_TARGETS.get(getattr(getattr(model, "config", None), "model_type", None))
    config = peft.LoraConfig(
        task_type=peft.TaskType.SEQ_CLS if hasattr(model, "config") else None,
        r=r,
        lora_alpha=float(options["alpha"]),
        lora_dropout=float(options["dropout"]),
        target_modules=targets,
    )
    try:
        with warnings.catch_warnings():
            # peft asks the model for transformers' deprecated `is_gradient_checkpointing`: a warning on every run
            # about a name the user never wrote; only that one is silenced
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            return peft.get_peft_model(model, config)
    except ValueError as err:
        names = sorted(
            {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
        )
        reason = str(err).splitlines()[0][:160]
        unmatched = targets is not None and ("not found" in reason or "No modules were targeted" in reason)
        what = (
            f"target_modules {targets!r} matched no layer of this model ({reason})" if unmatched else reason
        )
        raise ValueError(
            f"LoRA: {what}; its linear layers are named {', '.join(names)}: set lora.target_modules to some of them"
        ) from None
