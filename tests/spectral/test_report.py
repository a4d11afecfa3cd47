"""SpectralReport: table, CSV / JSON round trips, summary, plots."""

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

import modelbalance
from modelbalance.spectral import SpectralReport

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report() -> SpectralReport:
    torch.manual_seed(0)
    model = nn.ModuleDict(
        {
            "encoder": nn.ModuleList([nn.Linear(64, 64), nn.Linear(64, 32)]),
            "conv": nn.Conv2d(8, 16, 3),
            "zero": nn.Linear(32, 24),
            "tiny": nn.Linear(4, 3),
        }
    )
    with torch.no_grad():
        model["zero"].weight.zero_()
    return modelbalance.analyze(model, progress=False)


def test_records_in_network_order_with_statuses(report):
    assert report.names == ["encoder.0", "encoder.1", "conv", "zero", "tiny"]
    assert len(report) == 5 and [s.name for s in report] == report.names
    assert report["conv"].module_type == "Conv2d"
    assert report["zero"].status.startswith("zero matrix")
    assert report["tiny"].status.startswith("too few eigenvalues")
    with pytest.raises(KeyError, match="no layer named 'nope'.*encoder.0"):
        report["nope"]
    assert repr(report) == "SpectralReport(5 layers, 3 fitted)"
    assert set(report.alphas) == set(report.names)


def test_to_frame_has_name_alpha_and_status_columns(report):
    frame = report.to_frame()
    assert isinstance(frame, pd.DataFrame)
    expected = {"name", "alpha", "alpha_relative", "alpha_stderr", "ks_distance", "status", "num_eigs"}
    assert expected <= set(frame)
    assert "eigenvalues" not in frame
    assert list(frame["name"]) == report.names
    np.testing.assert_array_equal(frame["alpha"].to_numpy(), [s.alpha for s in report])
    assert frame.loc[frame.name == "conv", "matrix_shape"].item() == "16x8"


def test_csv_round_trip(report, tmp_path):
    path = tmp_path / "layers.csv"
    assert report.to_csv(path) is None
    back = pd.read_csv(path)
    assert list(back["name"]) == report.names
    np.testing.assert_allclose(back["alpha"], [s.alpha for s in report], rtol=1e-12, equal_nan=True)
    assert list(back["status"]) == [s.status for s in report]
    text = report.to_csv()
    assert pd.read_csv(io.StringIO(text)).equals(back)


def test_json_round_trip_writes_nan_as_null(report, tmp_path):
    text = report.to_json()
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text)
    assert set(doc) == {"settings", "summary", "layers"}
    assert doc["settings"]["xmin"] == "fixed" and doc["settings"]["dtype"] == "float32"
    layers = {r["name"]: r for r in doc["layers"]}
    assert list(layers) == report.names
    assert layers["zero"]["alpha"] is None and layers["zero"]["status"] == report["zero"].status
    for spec in report:
        if math.isfinite(spec.alpha):
            assert layers[spec.name]["alpha"] == spec.alpha  # exact: JSON floats round-trip
    assert doc["summary"]["fitted"] == 3 and doc["summary"]["unfitted"] == 2
    path = tmp_path / "layers.json"
    assert report.to_json(path) is None
    assert json.loads(path.read_text()) == doc


def test_summary_names_extremes_and_reasons(report):
    text = report.summary()
    fitted = [s for s in report if math.isfinite(s.alpha)]
    heaviest = min(fitted, key=lambda s: s.alpha_relative)
    lightest = max(fitted, key=lambda s: s.alpha_relative)
    assert text.splitlines()[0] == "5 layers, 3 fitted"
    assert f"heaviest tail (best trained), by alpha_relative (shape-corrected): {heaviest.name}" in text
    assert f"lightest (least trained): {lightest.name}" in text
    assert f"median {np.median([s.alpha for s in fitted]):.3f}" in text
    assert "not fitted (1): zero matrix" in text and "(layer: zero)" in text
    assert "not fitted (1): too few eigenvalues" in text and "(layer: tiny)" in text


def _spectrum(name, alpha, alpha_relative=math.nan, status="ok", shape=(64, 32)):
    from modelbalance.spectral import LayerSpectrum

    return LayerSpectrum(
        name,
        "Linear",
        "linear",
        (f"{name}.weight",),
        shape,
        1,
        min(shape),
        2.0,
        alpha=alpha,
        alpha_relative=alpha_relative,
        status=status,
    )


def test_summary_ranks_by_alpha_relative_and_says_so():
    # Raw alpha and alpha_relative disagree here: "wide" has the lowest raw alpha only because of its shape.
    layers = [_spectrum("wide", 2.0, +0.3), _spectrum("square", 3.0, -0.4), _spectrum("mid", 2.5, 0.0)]
    text = SpectralReport(layers).summary()
    assert (
        "heaviest tail (best trained), by alpha_relative (shape-corrected): square (alpha_relative -0.400); "
        "lightest (least trained): wide (alpha_relative +0.300)"
    ) in text


def test_summary_falls_back_to_raw_alpha_and_says_so():
    layers = [_spectrum("wide", 2.0), _spectrum("square", 3.0), _spectrum("mid", 2.5)]
    text = SpectralReport(layers).summary()
    assert (
        "heaviest tail (best trained), by raw alpha (no shape-corrected alpha_relative): wide (alpha 2.000); "
        "lightest (least trained): square (alpha 3.000)"
    ) in text


def test_summary_names_unfitted_layers_and_the_root_layer():
    reason = "too few eigenvalues (4 < min_eigs=10)"
    small = [_spectrum(f"head.{i}", math.nan, status=reason) for i in range(5)]
    text = SpectralReport([_spectrum("", 2.3, -0.1)] + small).summary()
    assert f"not fitted (5): {reason} (layers: head.0, head.1, head.2 and 2 more)" in text
    assert "heaviest tail (best trained), by alpha_relative (shape-corrected): (root) (alpha_relative" in text
    # A model that is one layer (e.g. a bare nn.Linear): its name is empty, the text says "(root)".
    torch.manual_seed(0)
    report = modelbalance.analyze(nn.Linear(64, 32), progress=False)
    assert report.names == [""]
    assert ": (root) (alpha_relative" in report.summary()
    assert report.table().splitlines()[2].startswith("(root)  Linear")


def test_table_has_a_row_per_layer(report):
    lines = report.table().splitlines()
    assert lines[0].split()[:2] == ["name", "module_type"]
    assert len(lines) == 2 + 5
    assert lines[4].startswith("conv")
    short = report.table(max_rows=2).splitlines()
    assert len(short) == 2 + 2 + 1 and short[-1] == "... 3 more layers"
    assert str(report) == report.table()


def test_empty_report():
    empty = SpectralReport([])
    assert empty.summary() == "0 layers, 0 fitted"
    assert json.loads(empty.to_json())["layers"] == []


def _is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 1000


def test_esd_plot_saves_a_png(report, tmp_path):
    import matplotlib.pyplot as plt

    fig = report.plot_esd("conv", path=tmp_path / "sub" / "esd_conv.png")
    assert _is_png(tmp_path / "sub" / "esd_conv.png")
    ax = fig.axes[0]
    assert "conv" in ax.get_title() and ax.get_xscale() == ax.get_yscale() == "log"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(f"alpha = {report['conv'].alpha:.2f}" in t for t in legend)
    assert any(f"xmin = {report['conv'].xmin:.3g}" in t for t in legend)
    plt.close("all")
    fig = report.plot_esd()  # default: the first fitted layer
    assert "encoder.0" in fig.axes[0].get_title()
    plt.close("all")


def test_alpha_plot_saves_a_png(report, tmp_path):
    import matplotlib.pyplot as plt

    report.plot_alphas(path=tmp_path / "alphas.png")
    report.plot_alphas(path=tmp_path / "rel.png", column="alpha_relative", blocks=lambda name: name[:3])
    for name in ("alphas.png", "rel.png"):
        assert _is_png(tmp_path / name), name
    plt.close("all")


def test_plot_errors_are_clear(report):
    with pytest.raises(KeyError, match="no layer named"):
        report.plot_esd("missing")
    with pytest.raises(ValueError, match="fewer than 2 positive eigenvalues"):
        report.plot_esd("zero")
    unfitted = SpectralReport([report["zero"]])
    with pytest.raises(ValueError, match="no fitted layer"):
        unfitted.plot_esd()
