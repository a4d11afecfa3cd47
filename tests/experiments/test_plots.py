"""The sweep figures name k-shot subsets by their shots, and the cross-study size report pools studies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelbalance.experiments import plots
from modelbalance.experiments.report import comparison_frame, subset_labels

ROOT = Path(__file__).resolve().parents[2]


def kshot_frame(shots: list[int], seeds: int = 4, pool: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for k in shots:
        for method, shift in (("baseline", 0.0), ("tb", 0.01)):
            for seed in range(seeds):
                rows.append(
                    dict(
                        task="spam",
                        model="minilm",
                        fraction=2 * k / pool,
                        n_train=2 * k,
                        shots=k,
                        seed=seed,
                        method=method,
                        lr=3e-4,
                        point="lr=0.0003",
                        selected=True,
                        status="ok",
                        accuracy=0.8 + 0.01 * np.log2(k) + shift + 0.01 * rng.standard_normal(),
                    )
                )
    return pd.DataFrame(rows)


@pytest.fixture
def figures(monkeypatch):
    """Keep the figures the plot functions save, so their axes can be read."""
    saved = []
    real = plots._save

    def keep(fig, path):
        saved.append(fig)
        return real(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return saved


def test_kshot_axes_are_named_by_shots(tmp_path, figures):
    frame = kshot_frame([4, 16])
    labels = subset_labels(frame)
    comparisons = comparison_frame(frame, metric="accuracy", direction="max", methods=["baseline", "tb"])
    assert plots.plot_error_vs_fraction(
        frame, "accuracy", "max", ["baseline", "tb"], tmp_path / "a.png", labels
    )
    assert plots.plot_relative_gain(comparisons, "accuracy", ["baseline", "tb"], tmp_path / "g.png", labels)
    for fig in figures:
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["4/class", "16/class"]
        assert ax.get_xlabel().startswith("training examples per class")


def test_fraction_axes_keep_fractions(tmp_path, figures):
    frame = kshot_frame([4, 16]).drop(columns="shots")
    plots.plot_error_vs_fraction(frame, "accuracy", "max", ["baseline", "tb"], tmp_path / "a.png")
    ax = figures[0].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.008", "0.032"]
    assert ax.get_xlabel().startswith("training fraction of the pool")


def test_absolute_sizes_are_named_by_size_in_plots_and_the_size_report(tmp_path, figures):
    frame = kshot_frame([27, 112], seeds=5, pool=536).drop(columns="shots").assign(task="cfd1d", model="fno")
    labels = subset_labels(frame, "sizes")
    assert labels == {54 / 536: "n=54", 224 / 536: "n=224"}
    plots.plot_error_vs_fraction(frame, "accuracy", "max", ["baseline", "tb"], tmp_path / "a.png", labels)
    ax = figures[0].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["n=54", "n=224"]
    assert ax.get_xlabel().startswith("training-set size")
    # size_report names them by size only when every folder's study gave sizes
    folders = []
    for n in (54, 224):
        folder = tmp_path / f"n{n}"
        folder.mkdir()
        frame[frame["n_train"] == n].to_csv(folder / "results.csv", index=False)
        config = {"task": "cfd1d", "model": "fno", "sizes": [n], "seeds": [0, 1, 2, 3, 4], "lrs": [3e-4]}
        (folder / "config.json").write_text(json.dumps(config))
        folders.append(folder)
    script = ROOT / "benchmarks" / "reports" / "size_report.py"

    def summary() -> str:
        command = [sys.executable, str(script), *map(str, folders), "--out", str(tmp_path / "sizes")]
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return (tmp_path / "sizes" / "summary.md").read_text()

    text = summary()
    assert (
        "| size | n_train | baseline | tb |" in text
        and "| n=54 | tb |" in text
        and "- `n224` (n=224)" in text
    )
    (folders[1] / "config.json").write_text(json.dumps({**config, "fractions": [224 / 536], "sizes": None}))
    assert "| fraction | n_train | baseline | tb |" in summary()


def test_a_method_missing_at_a_middle_size_gets_a_broken_line_not_a_bridge(tmp_path, figures):
    frame = kshot_frame([4, 16, 64])
    llrd = frame[(frame["method"] == "tb") & (frame["shots"] != 16)].assign(method="llrd")
    frame = pd.concat([frame, llrd], ignore_index=True)
    methods = ["baseline", "tb", "llrd"]
    comparisons = comparison_frame(frame, metric="accuracy", direction="max", methods=methods)
    plots.plot_error_vs_fraction(frame, "accuracy", "max", methods, tmp_path / "a.png", subset_labels(frame))
    plots.plot_relative_gain(comparisons, "accuracy", methods, tmp_path / "g.png", subset_labels(frame))
    for fig in figures:
        # each errorbar container holds (data line, caps, bars)
        lines = {bars.get_label(): bars.lines[0] for bars in fig.axes[0].containers}
        # llrd has no 16/class runs: its middle point is missing (the line breaks there), the others are drawn
        y = np.asarray(lines["llrd"].get_ydata(), dtype=float)
        assert len(y) == 3 and np.isnan(y[1]) and np.isfinite(y[[0, 2]]).all()
        assert np.isfinite(np.asarray(lines["tb"].get_ydata(), dtype=float)).all()


def test_size_report_pools_studies_and_refuses_mixed_tasks(tmp_path):
    frame = kshot_frame([4, 16], seeds=5)
    folders = []
    for k in (4, 16):
        folder = tmp_path / f"k{k}"
        folder.mkdir()
        frame[frame["shots"] == k].to_csv(folder / "results.csv", index=False)
        folders.append(str(folder))
    fixed = {"task": "spam", "model": "minilm", "shots": [16], "seeds": [0, 1, 2, 3, 4], "lrs": [1e-4]}
    (Path(folders[1]) / "config.json").write_text(json.dumps(fixed))
    tuned = {**fixed, "shots": [4], "lrs": [1e-4, 3e-4, 1e-3]}
    (Path(folders[0]) / "config.json").write_text(json.dumps(tuned))
    script = ROOT / "benchmarks" / "reports" / "size_report.py"
    out = tmp_path / "sizes"
    done = subprocess.run(
        [sys.executable, str(script), *folders, "--out", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out / "comparisons.csv")
    assert sorted(table["fraction"]) == pytest.approx([0.008, 0.032])
    assert (table["n"] == 5).all()
    # one Holm correction over both sizes: each adjusted p is at least its raw p, and at most twice it
    assert (table["p_ttest_holm"] >= table["p_ttest"] - 1e-12).all()
    assert (table["p_ttest_holm"] <= 2 * table["p_ttest"] + 1e-12).all()
    assert all((out / "plots" / name).is_file() for name in ("gain_vs_size.png", "accuracy_vs_size.png"))
    summary = (out / "summary.md").read_text()
    assert "| 16/class | tb |" in summary
    assert "- `k16` (16/class): one fixed configuration (lr=0.0001), not tuned" in summary
    assert "- `k4` (4/class): tuned on validation, baseline 3, tb 3 configurations" in summary

    other = frame[frame["shots"] == 16].assign(task="wordnet")
    other.to_csv(Path(folders[1]) / "results.csv", index=False)
    mixed = subprocess.run(
        [sys.executable, str(script), *folders, "--out", str(tmp_path / "mixed")],
        capture_output=True,
        text=True,
    )
    assert mixed.returncode != 0
    assert "mix tasks" in mixed.stderr


def test_size_report_pools_a_study_with_its_confirmation(tmp_path):
    """--pool reports one size from folders on disjoint seeds: every seed of the methods that all of them ran."""
    frame = kshot_frame([4, 16], seeds=8)
    script = ROOT / "benchmarks" / "reports" / "size_report.py"
    small, first, confirm = (tmp_path / name for name in ("k4", "k16", "k16_confirm"))
    for folder in (small, first, confirm):
        folder.mkdir()
    frame[frame["shots"] == 4].to_csv(small / "results.csv", index=False)
    at16 = frame[frame["shots"] == 16]
    at16[at16["seed"] < 5].to_csv(first / "results.csv", index=False)
    later = at16[at16["seed"] >= 5]
    placebo = later[later["method"] == "tb"].assign(method="tb_shuffle")  # only the confirmation ran it
    pd.concat([later, placebo]).to_csv(confirm / "results.csv", index=False)

    def report(*arguments):
        command = [sys.executable, str(script), *map(str, arguments), "--out", str(tmp_path / "sizes")]
        return subprocess.run(command, capture_output=True, text=True)

    done = report(small, "--pool", first, confirm)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "sizes" / "comparisons.csv")
    assert list(table["method"]) == ["tb", "tb"] and list(table["n"]) == [8, 8]
    both = at16.pivot_table(index="seed", columns="method", values="accuracy")
    assert table["gain"].iloc[1] == pytest.approx(both["tb"].mean() / both["baseline"].mean() - 1)
    summary = (tmp_path / "sizes" / "summary.md").read_text()
    assert "pooled at 16/class: baseline 8 seeds, tb 8 seeds" in summary
    assert "tb_shuffle" not in summary
    refused = report(small, first, confirm)  # the same size twice without --pool
    assert refused.returncode != 0 and "give each size once" in refused.stderr
    overlapping = report("--pool", first, first)
    assert overlapping.returncode != 0 and "same name" in overlapping.stderr


def test_size_report_unions_folders_that_ran_different_methods_of_one_size(tmp_path):
    """--union: each method from every folder reporting it; a run two folders share counts once; a seed with two
    different results, or a method at two configurations, is refused."""
    frame = kshot_frame([16], seeds=8)
    script = ROOT / "benchmarks" / "reports" / "size_report.py"
    tuned, controls, confirm = (tmp_path / name for name in ("k16", "k16_controls", "k16_confirm"))
    for folder in (tuned, controls, confirm):
        folder.mkdir()
    first = frame[frame["seed"] < 5]
    llrd = first[first["method"] == "tb"].assign(method="llrd", accuracy=first["accuracy"] - 0.02)
    pd.concat([first, llrd]).to_csv(tuned / "results.csv", index=False)
    placebo = first[first["method"] == "baseline"].assign(method="tb_shuffle")
    pd.concat([first, placebo]).to_csv(controls / "results.csv", index=False)  # baseline and tb reused
    frame[frame["seed"] >= 5].to_csv(confirm / "results.csv", index=False)

    def report(*arguments):
        command = [sys.executable, str(script), *map(str, arguments), "--out", str(tmp_path / "sizes")]
        return subprocess.run(command, capture_output=True, text=True)

    done = report("--union", tuned, controls, confirm)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "sizes" / "comparisons.csv").set_index("method")
    assert table.loc["tb", "n"] == 8  # seeds 0-4 once, though two folders report them, and 5-7
    assert table.loc["llrd", "n"] == 5 and table.loc["tb_shuffle", "n"] == 5
    assert table.loc["tb_shuffle", "gain"] == pytest.approx(0.0)
    every = frame.pivot_table(index="seed", columns="method", values="accuracy")
    assert table.loc["tb", "gain"] == pytest.approx(every["tb"].mean() / every["baseline"].mean() - 1)
    early = every.loc[:4]
    assert table.loc["llrd", "gain"] == pytest.approx(
        (early["tb"].mean() - 0.02) / early["baseline"].mean() - 1
    )
    summary = (tmp_path / "sizes" / "summary.md").read_text()
    assert "baseline 8 seeds, llrd 5 seeds, tb 8 seeds, tb_shuffle 5 seeds" in summary
    assert "a shared run counted once" in summary

    changed = pd.concat([first.assign(accuracy=first["accuracy"] + 0.01), placebo])
    changed.to_csv(controls / "results.csv", index=False)  # seeds 0-4 of baseline and tb now differ
    refused = report("--union", tuned, controls)
    assert refused.returncode != 0 and "different results" in refused.stderr
    other_rate = pd.concat([first.assign(point="lr=0.003"), placebo])
    other_rate.to_csv(controls / "results.csv", index=False)
    refused = report("--union", tuned, controls)
    assert refused.returncode != 0 and "more than one configuration" in refused.stderr


def test_seed_pool_pools_disjoint_seeds_of_one_cell_and_refuses_the_rest(tmp_path):
    """Two batches of seeds of the same cell pool into one paired comparison; overlapping seeds, another size or
    another rate are refused before any numbers are printed."""
    frame = kshot_frame([8], seeds=10)
    first, second = tmp_path / "first", tmp_path / "confirm"
    for folder, seeds in ((first, range(0, 6)), (second, range(6, 10))):
        folder.mkdir()
        frame[frame["seed"].isin(seeds)].to_csv(folder / "results.csv", index=False)
    script = ROOT / "benchmarks" / "reports" / "seed_pool.py"

    def pool(*folders, pairs=("tb:baseline",)):
        command = [sys.executable, str(script), *map(str, folders), "--pairs", *pairs]
        return subprocess.run(command, capture_output=True, text=True)

    done = pool(first, second)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| tb vs baseline"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    b = frame.pivot_table(index="seed", columns="method", values="accuracy")
    assert cells[1] == "10"
    assert cells[2] == f"{b['tb'].mean() / b['baseline'].mean() - 1:+.1%}"
    assert cells[6] == cells[5]  # Holm over a family of one pair leaves its p-value as it is
    batches = cells[8].split("; ")  # each batch's own gain, with its number of seeds
    assert len(batches) == 2 and batches[0].endswith("(6)") and batches[1].endswith("(4)")
    two = pool(first, second, pairs=("tb:baseline", "baseline:tb"))
    table = [
        line.strip("|").split("|")
        for line in two.stdout.splitlines()
        if line.startswith(("| tb ", "| baseline "))
    ]
    p_t = float(cells[5])  # printed to two significant digits, hence the tolerance
    assert [float(row[6]) for row in table] == pytest.approx([min(1.0, 2 * p_t)] * 2, rel=0.1)

    again = tmp_path / "first_again"  # the same seeds under another name
    again.mkdir()
    frame[frame["seed"].isin(range(4, 8))].to_csv(again / "results.csv", index=False)
    assert "seeds [4, 5] appear in two folders" in pool(first, again).stderr
    assert "same name" in pool(first, first).stderr
    # a confirmation that also ran a method its parent ran elsewhere pools on the pairs' methods only
    extra = tmp_path / "confirm_with_placebo"
    extra.mkdir()
    later = frame[frame["seed"] >= 6]
    placebo = later[later["method"] == "tb"].assign(method="tb_shuffle", point="lr=0.001")
    pd.concat([later, placebo]).to_csv(extra / "results.csv", index=False)
    widened = pool(first, extra)
    assert widened.returncode == 0, widened.stderr
    assert next(line for line in widened.stdout.splitlines() if line.startswith("| tb vs baseline")) == row
    other = tmp_path / "other_rate"
    other.mkdir()
    frame[frame["seed"] >= 6].assign(point="lr=0.001").to_csv(other / "results.csv", index=False)
    refused = pool(first, other)
    assert refused.returncode != 0 and "different cells or configurations" in refused.stderr


def run_overview(cells_file: Path, results: Path | None, out: Path) -> subprocess.CompletedProcess:
    """benchmarks/reports/overview.py on ``cells_file``, reading ``results`` (the published folders when None)."""
    script = ROOT / "benchmarks" / "reports" / "overview.py"
    command = [sys.executable, str(script), "--cells", str(cells_file), "--out", str(out)]
    if results is not None:
        command += ["--results", str(results)]
    return subprocess.run(command, capture_output=True, text=True)


def test_overview_pools_each_arm_from_its_own_folders_and_holm_adjusts_tb_over_cells(tmp_path):
    """The overview reads each cell's arms from the folders overview.toml names, compares them with the
    baseline seed for seed, and adjusts TB's p-values over all cells at once."""
    results = tmp_path / "results"
    frame = kshot_frame([4, 16], seeds=6)
    placebo = frame[frame["method"] == "tb"].assign(
        method="tb_shuffle", accuracy=lambda f: f["accuracy"] - 0.02
    )
    frame = pd.concat([frame, placebo])
    for k in (4, 16):
        for name, seeds in ((f"k{k}", range(0, 3)), (f"k{k}_confirm", range(3, 6))):
            (results / name).mkdir(parents=True)
            at = frame[(frame["shots"] == k) & frame["seed"].isin(seeds)]
            at.to_csv(results / name / "results.csv", index=False)
    cells = tmp_path / "cells.toml"
    cells.write_text(
        "\n".join(
            [
                "[[cell]]",
                'task = "spam"\nmodel = "m"\nfinetune = "full"\nper_class = 4',
                'tb = ["k4", "k4_confirm"]\nplacebo = ["k4"]\nnote = "three placebo seeds"',
                "[[cell]]",
                'task = "spam"\nmodel = "m"\nfinetune = "full"\nper_class = 16\nrate = "3e-4"\ntb = ["k16"]',
            ]
        )
    )

    def overview(cells_file):
        return run_overview(cells_file, results, tmp_path / "out")

    done = overview(cells)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "out" / "overview.csv")
    assert list(zip(table["per_class"], table["arm"], table["n"])) == [
        (4, "TB", 6),
        (4, "placebo", 3),
        (16, "TB", 3),
    ]
    at4 = frame[frame["shots"] == 4].pivot_table(index="seed", columns="method", values="accuracy")
    assert table["gain"].iloc[0] == pytest.approx(at4["tb"].mean() / at4["baseline"].mean() - 1)
    first3 = at4.loc[[0, 1, 2]]
    assert table["gain"].iloc[1] == pytest.approx(first3["tb_shuffle"].mean() / first3["baseline"].mean() - 1)
    tb = table[table["arm"] == "TB"]
    assert (tb["p_holm_tb"] >= tb["p"] - 1e-12).all() and (tb["p_holm_tb"] <= 2 * tb["p"] + 1e-12).all()
    assert table.loc[table["arm"] == "placebo", "p_holm_tb"].isna().all()  # Holm covers TB's rows only
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert (
        "| spam | m | full | 4 | tuned | 6 |" in summary
        and "| spam | m | full | 16 | 3e-4 | 3 |" in summary
        and "not run | not run |" in summary
    )
    assert (tmp_path / "out" / "plots" / "gains.png").is_file()

    bad = tmp_path / "bad.toml"
    bad.write_text('[[cell]]\ntask = "spam"\nmodel = "m"\nfinetune = "full"\nper_class = 4\ntb = ["k8"]')
    refused = overview(bad)
    assert refused.returncode != 0 and "not found" in refused.stderr
    bad.write_text('[[cell]]\ntask = "spam"\nmodel = "m"\nper_class = 4\ntb = ["k4"]\nshots = 4')
    refused = overview(bad)
    assert refused.returncode != 0 and "unknown keys ['shots'], missing ['finetune']" in refused.stderr


def test_the_tuning_plot_names_kshot_panels_and_tells_settings_apart(tmp_path, figures):
    """A method tuned over lr x strength draws one line per strength, each in its own shade; the panel is 4/class."""
    rows = [
        dict(fraction=0.008, method="tb", lr=lr, point=f"lr={lr:g}, strength={s:g}", n_failed=0,
             val_accuracy_mean=0.6 + 0.01 * i, selected=(lr == 3e-4 and s == 0.5))
        for i, (lr, s) in enumerate((lr, s) for s in (0.25, 0.5, 1.0) for lr in (1e-4, 3e-4, 1e-3))
    ] + [dict(fraction=0.008, method="baseline", lr=lr, point=f"lr={lr:g}", n_failed=0, val_accuracy_mean=0.6,
              selected=lr == 3e-4) for lr in (1e-4, 3e-4, 1e-3)]  # fmt: skip
    grid = pd.DataFrame(rows)
    assert plots.plot_lr_grid(
        grid, "accuracy", ["baseline", "tb"], tmp_path / "g.png", "max", {0.008: "4/class"}
    )
    ax = figures[0].axes[0]
    assert ax.get_title() == "4/class"
    tb_lines = [line for line in ax.get_lines() if line.get_label().startswith("tb (")]
    assert [line.get_label() for line in tb_lines] == [f"tb (strength={s:g})" for s in (0.25, 0.5, 1.0)]
    assert len({line.get_color() for line in tb_lines}) == 3


def test_a_diverged_rate_is_marked_at_the_top_of_the_tuning_plot(tmp_path, figures):
    """An error of 1.5e10 at the largest rate must not squeeze the usable rates into a sliver of the log axis:
    the axis ends just above the worst usable error and the diverged rate is a labelled triangle at the top."""
    lrs = (1e-3, 3e-3, 1e-2, 3e-2)
    errors = {"baseline": (0.092, 0.073, 0.068, 0.55), "tb": (0.095, 0.073, 0.070, 1.5e10)}
    rows = [
        dict(fraction=0.42, method=m, lr=lr, point=f"lr={lr:g}", n_failed=0, val_nrmse_mean=e,
             selected=lr == 1e-2)
        for m, values in errors.items() for lr, e in zip(lrs, values)
    ]  # fmt: skip
    assert plots.plot_lr_grid(pd.DataFrame(rows), "nrmse", ["baseline", "tb"], tmp_path / "g.png", "min")
    ax = figures[-1].axes[0]
    top = ax.get_ylim()[1]
    assert 0.55 < top < 1.0  # the baseline's 0.55 (8x the best) stays on the scale
    tb_line = next(line for line in ax.get_lines() if line.get_label() == "tb")
    assert max(tb_line.get_ydata()) < top
    assert [t.get_text() for t in ax.texts] == ["1.5e+10"]
    # over a decade and more, only 2, 3 and 5 label minor ticks (0.09 would hit 0.1)
    figures[-1].canvas.draw()
    minor = {t.get_text() for t in ax.get_yticklabels(minor=True)} - {""}
    assert {"0.2", "0.5"} <= minor and "0.09" not in minor

    # no rate diverged: the axis is matplotlib's own
    rows = [r for r in rows if r["lr"] < 3e-2]
    assert plots.plot_lr_grid(pd.DataFrame(rows), "nrmse", ["baseline", "tb"], tmp_path / "h.png", "min")
    ax = figures[-1].axes[0]
    assert not ax.texts and ax.get_ylim()[1] < 0.2
    figures[-1].canvas.draw()  # a fraction of a decade: every minor tick labelled
    assert {"0.07", "0.08", "0.09"} <= {t.get_text() for t in ax.get_yticklabels(minor=True)}


@pytest.mark.parametrize(
    "cells_file, keys",
    [
        ("benchmarks/nlp_study/overview.toml", ["task", "model", "finetune", "per_class", "rate"]),
        ("benchmarks/pde_study/overview.toml", ["task", "model", "samples", "rate"]),
    ],
)
def test_the_committed_overviews_read_the_published_studies(tmp_path, cells_file, keys):
    """Each committed cells file names published folders that pool cleanly: one TB row per cell, gains finite."""
    done = run_overview(ROOT / cells_file, None, tmp_path / "out")  # the published folders
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "out" / "overview.csv")
    cells = table.groupby(keys).ngroups
    assert (table["arm"] == "TB").sum() == cells
    assert np.isfinite(table["gain"]).all() and (table["n"] >= 5).all()


def test_an_overview_of_an_error_metric_counts_a_lower_error_as_a_gain(tmp_path):
    """[overview] sets the metric, its direction, the cell keys and the arms: a PDE study reads as an NLP one does."""
    results = tmp_path / "results"
    frame = kshot_frame([16], seeds=6).drop(columns="shots").rename(columns={"accuracy": "nrmse"})
    frozen = frame[frame["method"] == "tb"].assign(method="tb_frozen", nrmse=lambda f: f["nrmse"] - 0.05)
    (results / "cfd").mkdir(parents=True)
    pd.concat([frame, frozen]).to_csv(results / "cfd" / "results.csv", index=False)
    cells = tmp_path / "cells.toml"
    cells.write_text(
        '[overview]\ntitle = "CFD"\nmetric = "nrmse"\ndirection = "min"\n'
        'keys = ["task", "model", "samples", "rate"]\narms = ["tb", "frozen"]\nvalue_format = ".3g"\n'
        '[[cell]]\ntask = "cfd1d"\nmodel = "FNO"\nsamples = 32\ntb = ["cfd"]\nfrozen = ["cfd"]\n'
    )

    def overview(cells_file):
        return run_overview(cells_file, results, tmp_path / "out")

    done = overview(cells)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "out" / "overview.csv").set_index("arm")
    b = frame.pivot_table(index="seed", columns="method", values="nrmse")
    # lower is better: the gain is the relative reduction of the error
    assert table.loc["TB", "gain"] == pytest.approx(1 - b["tb"].mean() / b["baseline"].mean())
    assert table.loc["frozen", "gain"] > table.loc["TB", "gain"]  # its error is 0.05 lower on every seed
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert summary.startswith("# CFD")
    assert "| task | model | samples | rate | seeds | baseline nrmse | TB vs baseline " in summary
    assert (
        "| cfd1d | FNO | 32 | tuned | 6 |" in summary and "relative reduction of mean test nrmse" in summary
    )

    cells.write_text('[overview]\ndirection = "down"\n[[cell]]\ntask = "t"\ntb = ["cfd"]')
    refused = overview(cells)
    assert refused.returncode != 0 and "direction must be min or max" in refused.stderr
    cells.write_text('[overview]\nmetrics = "nrmse"\n[[cell]]\ntask = "t"\ntb = ["cfd"]')
    refused = overview(cells)
    assert refused.returncode != 0 and "metrics" in refused.stderr
