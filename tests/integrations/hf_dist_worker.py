"""Worker for test_distributed.py: TempBalanceTrainer under torchrun (DDP, gloo) on test_hf.py's tiny BERT.

python -m torch.distributed.run --nproc_per_node=2 --standalone hf_dist_worker.py OUT_DIR [lora]

With ``lora`` the model carries LoRA adapters on query and value (peft), so the frozen layers' fits are reused;
rank 0 alone forgets them after step 3, so that the ranks disagree and must settle on refitting them.
"""

import os
import sys
import warnings

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(__file__))
warnings.filterwarnings("ignore")

from test_hf import OPTIONS, Synthetic, tiny_bert, training_args  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from modelbalance.integrations.hf import TempBalanceTrainer  # noqa: E402


class ForgetOnRankZero(TrainerCallback):
    """Rank 0 alone forgets its frozen fits after ``step``: the ranks must still agree (all refit)."""

    def __init__(self, trainer, step: int):
        self.trainer, self.step = trainer, step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step and dist.get_rank() == 0:
            self.trainer.balancer.frozen_layers.forget()


def main(out_dir: str, lora: bool = False) -> None:
    torch.set_num_threads(1)
    model = tiny_bert()
    if lora:
        import peft

        config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], task_type="SEQ_CLS")
        model = peft.get_peft_model(model, config)
    args = training_args(os.path.join(out_dir, "trainer"), save_strategy="no", ddp_backend="gloo")
    trainer = TempBalanceTrainer(model=model, args=args, train_dataset=Synthetic(), tempbalance=OPTIONS)
    if lora:
        trainer.add_callback(ForgetOnRankZero(trainer, step=3))
    trainer.train()
    tb = trainer.balancer
    torch.save(
        {
            "world_size": dist.get_world_size(),
            "measurer": type(tb.measurer).__name__,
            "measured": list(tb.measurer.measured),
            "history": tb.history,
            "step_count": tb.step_count,
            "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        },
        os.path.join(out_dir, f"hf_rank{dist.get_rank()}.pt"),
    )
    # Tear the process groups (the Trainer's and the balancer's own gloo group) down in order: left to the
    # interpreter's exit, a gloo thread can still be joinable and abort the process ("terminate called ...").
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], len(sys.argv) > 2 and sys.argv[2] == "lora")
