"""The committed study configs stay runnable, fair, and in step with the results published from them."""

import json
from pathlib import Path

import pytest

from modelbalance.experiments.config import ExperimentConfig
from modelbalance.experiments.registry import MODELS, TASKS, load_builtins
from modelbalance.experiments.runner import check_method_options

ROOT = Path(__file__).resolve().parents[2]
# TOML files under benchmarks/ that are not experiment configs (the overviews' lists of cells)
NOT_CONFIGS = {ROOT / "benchmarks" / study / "overview.toml" for study in ("nlp_study", "pde_study")}
CONFIGS = sorted(set((ROOT / "benchmarks").rglob("*.toml")) - NOT_CONFIGS)
RESULTS = sorted(p.parent for p in (ROOT / "docs" / "results").glob("*/config.json"))


def _config_of(results: Path) -> Path:
    """docs/results/nlp_NAME <- benchmarks/nlp_study/NAME.toml; docs/results/NAME <- benchmarks/pde_study/NAME.toml."""
    name = results.name
    if name.startswith("nlp_"):
        return ROOT / "benchmarks" / "nlp_study" / f"{name[4:]}.toml"
    return ROOT / "benchmarks" / "pde_study" / f"{name}.toml"


def test_there_are_study_configs_and_results():
    assert len(CONFIGS) >= 10 and len(RESULTS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_study_config_names_and_options_are_valid(path):
    load_builtins()
    config = ExperimentConfig.from_file(path)  # refuses unequal tuning budgets unless a config opts out
    assert not config.allow_unequal_budget, f"{path.name}: a study must give every method the same budget"
    assert config.task in TASKS and config.model in MODELS
    check_method_options(config)  # every method built at every grid point: unknown or bad options raise


@pytest.mark.parametrize("results", RESULTS, ids=lambda p: p.name)
def test_published_results_come_from_the_committed_config(results):
    """Re-running the config of the same name reproduces the published sweep (same runs, same hashes)."""
    path = _config_of(results)
    assert path.is_file(), f"{results.name} has no config at {path.relative_to(ROOT)}"
    saved = ExperimentConfig.from_dict(json.loads((results / "config.json").read_text()))
    assert ExperimentConfig.from_file(path).differences(saved) == []
