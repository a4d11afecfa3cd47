"""Lightning: the callback balances fit() exactly like a plain loop, logs factors, and resumes exactly."""

import math

import pytest
import torch
import torch.nn as nn

pl = pytest.importorskip("lightning.pytorch")

from modelbalance import TempBalance, TempBalanceConfig, param_groups  # noqa: E402
from modelbalance.integrations.lightning import TempBalanceCallback  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers"),
    pytest.mark.filterwarnings("ignore:.*callbacks used to create the checkpoint"),
    pytest.mark.filterwarnings("ignore:.*treespec"),
]

CONFIG = TempBalanceConfig(unit="layer", exclude=(), interval=2, metric="alpha", mapping="sigmoid")
BATCH, SAMPLES, EPOCHS = 4, 12, 2  # 3 optimizer steps per epoch


def build_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 32))


def make_optimizer(module: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(module, weight_decay=0.01, config=CONFIG), lr=1e-2)


def data():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(SAMPLES, 16, generator=gen), torch.randn(SAMPLES, 32, generator=gen)


class Regressor(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = build_net()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return make_optimizer(self)


def loader():
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*data()), batch_size=BATCH, shuffle=False
    )


def fit(tmp_path, callback, ckpt_path=None, checkpoints=False):
    module = Regressor()
    callbacks = [callback]
    if checkpoints:
        callbacks.append(pl.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_epochs=1, save_top_k=-1))
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=callbacks,
        enable_checkpointing=checkpoints,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, loader(), ckpt_path=ckpt_path)
    return module, trainer


def same_history(a, b):
    same = lambda x, y: x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))  # noqa: E731
    return len(a) == len(b) and all(all(same(ra[k], rb[k]) for k in ra) for ra, rb in zip(a, b, strict=True))


def test_fit_matches_a_plain_loop_and_logs_factors(tmp_path):
    callback = TempBalanceCallback(CONFIG)
    module, trainer = fit(tmp_path, callback)
    tb = callback.balancer
    assert tb.step_count == 6 and tb.num_recomputes == 3
    assert list(tb.factors) == ["net.0", "net.2", "net.4"]
    assert len(set(tb.factors.values())) == 3

    net = build_net()  # the same training without Lightning
    optimizer = make_optimizer(net)
    reference = TempBalance(net, optimizer, CONFIG.replace())
    x, y = data()
    for _ in range(EPOCHS):
        for i in range(0, SAMPLES, BATCH):
            nn.functional.mse_loss(net(x[i : i + BATCH]), y[i : i + BATCH]).backward()
            optimizer.step()
            optimizer.zero_grad()
    assert [row["factor"] for row in tb.history] == [row["factor"] for row in reference.history]
    for p, q in zip(module.net.parameters(), net.parameters(), strict=True):
        assert torch.equal(p, q)

    assert trainer.callback_metrics["tempbalance/factor/net.2"].item() == pytest.approx(tb.factors["net.2"])
    assert trainer.callback_metrics["tempbalance/recomputes"].item() == 3


def test_checkpoint_resume_is_exact(tmp_path):
    full, _ = fit(tmp_path / "full", TempBalanceCallback(CONFIG), checkpoints=True)
    first_epoch = tmp_path / "full" / "epoch=0-step=3.ckpt"
    state = torch.load(first_epoch, weights_only=False)["callbacks"]["TempBalanceCallback[optimizer=0]"]
    assert state["balancer"]["step_count"] == 3 and state["balancer"]["num_recomputes"] == 2

    callback = TempBalanceCallback(CONFIG)
    resumed, _ = fit(tmp_path / "resumed", callback, ckpt_path=first_epoch)
    assert callback.balancer.step_count == 6 and callback.balancer.num_recomputes == 3
    for p, q in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)


def test_bad_optimizer_index_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="optimizer_index=1"):
        fit(tmp_path, TempBalanceCallback(CONFIG, optimizer_index=1))
