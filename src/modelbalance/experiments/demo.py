"""The ``modelbalance demo`` preset: FNO-1D on generated Burgers data, baseline vs TempBalance, CPU-sized.

Usage::

    from modelbalance.experiments.demo import demo_config
    from modelbalance.experiments.runner import run_experiment
    run_experiment(demo_config(out="modelbalance-demo"))
"""

from __future__ import annotations

from modelbalance.experiments.config import ExperimentConfig


def demo_config(out: str = "modelbalance-demo", device: str | None = None) -> ExperimentConfig:
    """The demo sweep: 3 fractions x 2 seeds x {baseline, tb} at one shared learning rate.

    Sized to finish in a few minutes on two CPU cores (FNO-1D, width 32, 256 grid points, 320 training samples at
    most). Every run takes the same 500 optimizer steps, so the small fractions are not simply under-trained
    (with a fixed epoch count a 32-sample run would get 20 times fewer updates than the full pool). Below ~30
    samples the Burgers nRMSE is dominated by nearly-decayed test samples, so the smallest fraction is 0.1.

    Examples
    --------
    >>> config = demo_config(out="/tmp/demo")
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
