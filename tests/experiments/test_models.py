"""UNet and FNO: shapes, determinism, padding, and what "modes" means."""

import pytest
import torch

from modelbalance.experiments.models import UNet, build_fno, fno_n_modes


@pytest.mark.parametrize(
    "dim, shape",
    [(1, (2, 1, 64)), (1, (3, 2, 50)), (2, (2, 1, 16, 16)), (2, (1, 3, 20, 13))],
)
@pytest.mark.parametrize("norm", ["group", "batch", None])
def test_unet_forward_shapes(dim, shape, norm):
    torch.manual_seed(0)
    model = UNet(dim, in_channels=shape[1], out_channels=2, width=4, depth=2, norm=norm)
    out = model(torch.randn(*shape))
    assert out.shape == (shape[0], 2, *shape[2:])
    assert torch.all(torch.isfinite(out))


def test_unet_is_deterministic_given_the_seed():
    torch.manual_seed(3)
    a = UNet(2, 1, 1, width=4, depth=2).state_dict()
    torch.manual_seed(3)
    b = UNet(2, 1, 1, width=4, depth=2).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_unet_with_circular_padding_commutes_with_aligned_shifts():
    # Pooling aligns with shifts by multiples of 2**depth, and circular padding makes every layer periodic,
    # so the whole network commutes with such shifts exactly (up to float round-off).
    torch.manual_seed(0)
    model = UNet(1, 1, 1, width=4, depth=2, padding_mode="circular").eval()
    x = torch.randn(2, 1, 32)
    shifted = model(torch.roll(x, 8, dims=-1))
    torch.testing.assert_close(shifted, torch.roll(model(x), 8, dims=-1), atol=1e-5, rtol=1e-5)


def test_unet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dim"):
        UNet(3, 1, 1)
    with pytest.raises(ValueError, match="norm"):
        UNet(1, 1, 1, norm="layer")
    with pytest.raises(ValueError, match="expected input"):
        UNet(2, 1, 1, width=4, depth=1)(torch.randn(2, 1, 16))


neuralop = pytest.importorskip("neuralop")


@pytest.mark.parametrize("dim, grid", [(1, (32,)), (2, (16, 16))])
def test_fno_forward_shapes_and_mode_count(dim, grid):
    torch.manual_seed(0)
    model = build_fno(dim, in_channels=2, out_channels=3, modes=5, width=8, n_layers=2)
    out = model(torch.randn(2, 2, *grid))
    assert out.shape == (2, 3, *grid)
    spectral = [p for name, p in model.named_parameters() if p.is_complex()]
    assert len(spectral) == 2  # one spectral weight per Fourier layer
    assert tuple(spectral[0].shape) == (8, 8, *(10,) * (dim - 1), 5)


def test_fno_modes_are_the_kept_fourier_modes():
    # A 1D spectral layer with modes=4 passes frequencies 0..3 and removes frequency 4 and above.
    torch.manual_seed(0)
    model = build_fno(1, 1, 1, modes=4, width=4, n_layers=1)
    conv = model.fno_blocks.convs[0]
    x = torch.arange(32) / 32
    zero = conv(torch.zeros(1, 4, 32))
    low = conv(torch.sin(2 * torch.pi * 3 * x).expand(1, 4, 32)) - zero
    high = conv(torch.sin(2 * torch.pi * 4 * x).expand(1, 4, 32)) - zero
    assert low.abs().max() > 1e-3
    assert high.abs().max() < 1e-5


def test_fno_is_deterministic_given_the_seed():
    torch.manual_seed(7)
    a = dict(build_fno(1, 1, 1, modes=4, width=8, n_layers=2).named_parameters())
    torch.manual_seed(7)
    b = dict(build_fno(1, 1, 1, modes=4, width=8, n_layers=2).named_parameters())
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(8)
    c = dict(build_fno(1, 1, 1, modes=4, width=8, n_layers=2).named_parameters())
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_fno_n_modes_mapping_and_validation():
    assert fno_n_modes(1, 16) == (30,)
    assert fno_n_modes(2, 12) == (24, 22)
    with pytest.raises(ValueError, match="modes"):
        fno_n_modes(1, 0)
    with pytest.raises(ValueError, match="dim"):
        build_fno(4, 1, 1)


def test_lora_targets_that_match_no_layer_are_an_error_listing_the_models_layer_names():
    pytest.importorskip("peft")
    from modelbalance.experiments.models.lora import apply_lora
    from modelbalance.experiments.registry import MODELS

    model = MODELS.get("tiny_bert")({"num_classes": 2})
    with pytest.raises(ValueError, match=r"target_modules \['q', 'v'\] matched no layer") as err:
        apply_lora(model, {"target_modules": ["q", "v"]})
    assert "query" in str(err.value) and "value" in str(err.value) and "\n" not in str(err.value)


def test_lora_errors_that_are_not_about_unmatched_targets_are_not_called_so():
    pytest.importorskip("peft")
    from modelbalance.experiments.models.lora import apply_lora
    from modelbalance.experiments.registry import MODELS

    model = MODELS.get("tiny_bert")({"num_classes": 2})
    with pytest.raises(ValueError) as err:
        apply_lora(model, {"target_modules": ["LayerNorm"]})  # found, but not a layer type LoRA supports
    assert "matched no layer" not in str(err.value) and "query" in str(err.value)
