"""Executors with real processes: worker processes and a local Ray cluster give the sequential sweep's numbers
bitwise; a worker killed mid-run is retried once, then recorded as failed, and the sweep resumes; an interrupt
stops the workers; bad options fail in one line."""

import multiprocessing
import sys

import pandas as pd
import pytest
import torch

from modelbalance.experiments import executors
from modelbalance.experiments.config import ExperimentConfig
from modelbalance.experiments.executors import (
    ProcessExecutor,
    SequentialExecutor,
    make_executor,
)
from modelbalance.experiments.plan import RunSpec
from modelbalance.experiments.ray_executor import RayExecutor, check_ray_address
from modelbalance.experiments.registry import METHODS, load_plugin
from modelbalance.experiments.runner import prepare, run_experiment

# A method that SIGKILLs its own process at the first optimizer step of its first ``deaths`` attempts (counted
# by marker files), then trains as the baseline. A .py plug-in: workers load it as the driver did.
PLUGIN = """
import os, signal
from pathlib import Path
from modelbalance.experiments.methods import Attachment, Method
from modelbalance.experiments.registry import METHODS


class _Die(Attachment):
    def __init__(self, optimizer, markers, deaths):
        def hook(*_):
            if len(list(markers.iterdir())) < deaths:
                (markers / str(os.getpid())).touch()
                os.kill(os.getpid(), signal.SIGKILL)
        self.handle = optimizer.register_step_post_hook(hook)

    def remove(self):
        self.handle.remove()


class DyingMethod(Method):
    def __init__(self, markers, deaths=2):
        self.markers, self.deaths = Path(markers), deaths

    def attach(self, model, optimizer, context):
        return _Die(optimizer, self.markers, self.deaths)


@METHODS.register("die_test")
def build_dying(markers, deaths=2):
    return DyingMethod(markers, deaths)
"""
LR = 1e-3


def tiny_config(out, **changes) -> ExperimentConfig:
    values = dict(
        task="toy",
        model="mlp",
        fractions=(0.5,),
        seeds=(0, 1),
        methods=("baseline", "tb"),
        lrs=(LR,),
        epochs=2,
        analyze_layers=False,
        task_params={"n_samples": 32, "n_test": 8, "resolution": 16},
        out=str(out),
    )
    values.update(changes)
    return ExperimentConfig(**values)


def spec(seed, method) -> RunSpec:
    return RunSpec(0.5, seed, method, (("lr", LR),))


def metrics(folder) -> pd.DataFrame:
    """results.csv without what may differ between places (timings)."""
    frame = pd.read_csv(f"{folder}/results.csv")
    return frame.drop(columns=["train_time_s"]).sort_values(["method", "seed"]).reset_index(drop=True)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("sequential")
        run_experiment(tiny_config(out), progress=False, plots=False)
    finally:
        torch.set_num_threads(threads)
    return metrics(out)


@pytest.fixture(scope="module")
def pool():
    with ProcessExecutor(2, threads_per_worker=1) as executor:
        yield executor


@pytest.fixture
def dying(tmp_path):
    path = tmp_path / "executor_test_plugin.py"
    path.write_text(PLUGIN)
    load_plugin(str(path))
    (tmp_path / "markers").mkdir()
    yield tmp_path / "markers"
    METHODS.unregister("die_test")
    sys.modules.pop("modelbalance_plugin_executor_test_plugin", None)


def test_worker_processes_give_the_sequential_results(tmp_path, sequential, pool):
    steps = []
    outcome = run_experiment(tiny_config(tmp_path), progress=False, plots=False, executor=pool)
    assert outcome.n_new == 4 and outcome.n_failed == 0
    pd.testing.assert_frame_equal(metrics(tmp_path), sequential, check_exact=True)
    # the steps stream back from the workers: 2 epochs x 2 batches of 13 samples per run
    prepared = prepare(tiny_config(tmp_path / "again"))
    pool.run(prepared, [spec(0, "baseline")], on_record=lambda *_: None, on_step=steps.append)
    assert steps == [1] * prepared.run_steps(0.5, spec(0, "baseline").params)


def test_killed_worker_is_retried_once_then_failed_and_the_sweep_resumes(tmp_path, dying, pool, sequential):
    config = tiny_config(
        tmp_path,
        seeds=(0,),
        methods=("baseline", "die_test"),
        method_options={"die_test": {"markers": str(dying)}},
    )
    outcome = run_experiment(config, progress=False, plots=False, executor=pool)
    by_method = {record["method"]: record for record in outcome.records}
    assert by_method["die_test"]["status"] == "failed"
    assert "WorkerDied" in by_method["die_test"]["error"] and "SIGKILL" in by_method["die_test"]["error"]
    assert len(list(dying.iterdir())) == 2  # the first attempt and its one retry
    assert by_method["baseline"]["status"] == "ok"  # the other run is unaffected
    expected = sequential.query("method == 'baseline' and seed == 0")["nrmse"].item()
    assert by_method["baseline"]["nrmse"] == expected
    # no partial record: the folder holds the two runs' records, one of them the failure
    assert len(list((tmp_path / "runs").glob("*.json"))) == 2

    resumed = run_experiment(config, progress=False, plots=False, executor=pool, retry_failed=True)
    assert resumed.n_new == 1 and resumed.n_failed == 0  # only the failed run trains again (third attempt)
    die = next(record for record in resumed.records if record["method"] == "die_test")
    assert die["nrmse"] == expected  # it trains as the baseline once it survives


def test_interrupt_stops_the_workers(tmp_path, pool):
    prepared = prepare(tiny_config(tmp_path))
    records = []

    def interrupt(_step):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pool.run(
            prepared, [spec(0, "baseline"), spec(1, "baseline")], on_record=records.append, on_step=interrupt
        )
    assert records == []
    workers = [p for p in multiprocessing.active_children() if p.name.startswith("modelbalance-worker")]
    assert workers == []


def test_local_ray_cluster_gives_the_sequential_results(tmp_path, sequential, dying):
    pytest.importorskip("ray")
    ray_executor = RayExecutor(num_cpus=2, threads_per_run=1)
    try:
        assert ray_executor.startup_s > 0 and not ray_executor.reports_steps
        run_experiment(tiny_config(tmp_path / "sweep"), progress=False, plots=False, executor=ray_executor)
        pd.testing.assert_frame_equal(metrics(tmp_path / "sweep"), sequential, check_exact=True)

        config = tiny_config(tmp_path / "die", seeds=(0,), methods=("die_test",))
        config = config.replace(method_options={"die_test": {"markers": str(dying)}})
        records = []
        ray_executor.run(prepare(config), [spec(0, "die_test")], on_record=lambda s, r: records.append(r))
        assert records[0]["status"] == "failed" and "WorkerDied" in records[0]["error"]
        assert len(list(dying.iterdir())) == 2  # Ray retried the task once
    finally:
        ray_executor.close()


def test_sequential_executor_runs_in_order(tmp_path, one_thread):
    prepared = prepare(tiny_config(tmp_path))
    order = []
    with SequentialExecutor() as executor:
        executor.run(prepared, [spec(1, "tb"), spec(0, "baseline")], on_record=lambda s, r: order.append(s))
    assert order == [spec(1, "tb"), spec(0, "baseline")]


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(workers=0), "--workers must be at least 1, got 0"),
        (dict(workers=-2), "--workers must be at least 1"),
        (dict(workers=3), "--workers 3 needs 3 CPU cores, this process may use 2"),
        (dict(workers=2, threads=2), "--workers 2 x --threads 2 needs 4 CPU cores"),
        (dict(workers=2, runs_per_gpu=0), "--runs-per-gpu must be at least 1"),
        (dict(executor="dask"), "--executor must be local or ray"),
        (dict(ray_address="auto"), "--ray-address needs --executor ray"),
    ],
)
def test_bad_options_fail_in_one_line(monkeypatch, options, message):
    monkeypatch.setattr(executors, "available_cores", lambda: 2)
    with pytest.raises(ValueError, match=message.replace("+", r"\+")) as err:
        make_executor(**options)
    assert "\n" not in str(err.value)


def test_workers_are_limited_by_the_gpus(monkeypatch):
    monkeypatch.setattr(executors, "available_cores", lambda: 16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"--workers 6 is more than 2 GPU\(s\) x --runs-per-gpu 2 .* to 3"):
        make_executor(workers=6, runs_per_gpu=2)
    assert isinstance(make_executor(workers=6, runs_per_gpu=3), ProcessExecutor)
    assert isinstance(make_executor(workers=6, device="cpu"), ProcessExecutor)  # CPU runs: cores only
    assert make_executor(workers=4, device="cpu").threads_per_worker == 4


def test_ray_missing_or_unreachable(monkeypatch):
    with pytest.raises(ValueError, match="no Ray cluster reachable there"):
        check_ray_address("127.0.0.1:1")
    with pytest.raises(ValueError, match="expected auto or HOST:PORT"):
        check_ray_address("nowhere")
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if not installed
    with pytest.raises(ValueError, match=r"pip install 'modelbalance\[ray\]'"):
        make_executor(executor="ray")
