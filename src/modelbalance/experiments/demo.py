"""The ``modelbalance demo`` presets, CPU-sized: the text track (the paper's headline, the default) and the PDE
track.

Usage::

    from modelbalance.experiments.demo import demo_config
    from modelbalance.experiments.runner import run_experiment
    run_experiment(demo_config(out="modelbalance-demo"))                 # MiniLM on SpamAssassin
    run_experiment(demo_config(track="pde", out="modelbalance-demo-pde"))  # FNO-1D on Burgers
"""

from __future__ import annotations

from modelbalance.experiments.config import ExperimentConfig


def demo_config(
    track: str = "text", out: str = "modelbalance-demo", device: str | None = None
) -> ExperimentConfig:
    """The demo sweep of ``track`` (``"text"`` or ``"pde"``).

    Examples
    --------
    >>> demo_config().task, demo_config().model, demo_config().shots
    ('spam', 'minilm', (4, 16))
    """
    if track == "text":
        return text_demo_config(out=out, device=device)
    if track == "pde":
        return pde_demo_config(out=out, device=device)
    raise ValueError(f"unknown demo track {track!r}; choose text or pde")


def text_demo_config(out: str = "modelbalance-demo", device: str | None = None) -> ExperimentConfig:
    """The text demo: the pretrained MiniLM-L6 fine-tuned on SpamAssassin, 4 and 16 emails per class x 2 seeds x
    {baseline, tb} at one shared learning rate, 10 epochs (the paper's), AdamW with linear decay and 6% warm-up,
    64 tokens per email: a slice of the NLP study's protocol (benchmarks/nlp_study/spam_k4.toml).

    TempBalance runs the EMNLP GLUE preset (sigmoid map of raw alpha, one factor per transformer block, tail =
    top third, 10 recomputes per epoch: every step at these sizes). A few minutes on two CPU cores.
    """
    return ExperimentConfig(
        task="spam",
        model="minilm",
        shots=(4, 16),
        seeds=(0, 1),
        methods=("baseline", "tb"),
        lrs=(3e-4,),
        epochs=10,
        batch_size=16,
        eval_batch_size=64,
        optimizer="adamw",
        weight_decay=0.1,
        scheduler="linear",
        warmup=0.06,
        task_params={"n_val": 200, "n_test": 500, "max_length": 64},
        out=out,
        device=device,
    )


def pde_demo_config(out: str = "modelbalance-demo-pde", device: str | None = None) -> ExperimentConfig:
    """The PDE demo sweep: 3 fractions x 2 seeds x {baseline, tb} at one shared learning rate.

    Sized to finish in a few minutes on two CPU cores (FNO-1D, width 32, 256 grid points, 320 training samples at
    most). Every run takes the same 500 optimizer steps, so the small fractions are not simply under-trained
    (with a fixed epoch count a 32-sample run would get 20 times fewer updates than the full pool). Below ~30
    samples the Burgers nRMSE is dominated by nearly-decayed test samples, so the smallest fraction is 0.1.

    Examples
    --------
    >>> config = pde_demo_config(out="/tmp/demo")
    >>> config.task, config.model, config.methods
    ('burgers', 'fno', ('baseline', 'tb'))
    """
    return ExperimentConfig(
        task="burgers",
        model="fno",
        fractions=(0.1, 0.3, 1.0),
        seeds=(0, 1),
        methods=("baseline", "tb"),
        lrs=(3e-3,),
        steps=500,
        batch_size=16,
        optimizer="adamw",
        weight_decay=1e-4,
        scheduler="cosine",
        val_size=64,
        task_params={"n_samples": 384, "n_test": 128, "resolution": 256},
        model_params={"modes": 16, "width": 32, "n_layers": 4},
        out=out,
        device=device,
    )
