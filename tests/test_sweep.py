"""Sweeps: cells and seeds by index, bit-identical at any worker count, resumable, fault tolerant.

The Dask tests share one 2-worker ``LocalCluster`` (module fixture) to keep
start-up costs down; the 1-worker sweep and the killed sweep use the embedded
cluster that ``run_cells`` starts itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from socialcredit.errors import ResumeError, ScenarioError
from socialcredit.sweep import (
    expand_grid,
    load_sweep_file,
    read_metrics,
    read_runs,
    replicate_seed,
    run_cells,
    summarise,
    sweep,
    write_sweep_file,
)

SMALL = ["population.size=400", "days=28"]
GRID = {"coupling.kappa": [0.2, 0.6]}
REPLICATES = 3
SEED = 7


def parquet_hashes(out: Path) -> dict[str, str]:
    """SHA-256 of every Parquet file of a sweep folder (hidden files included, to catch leftovers)."""
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != "sweep.json"}


@pytest.fixture(scope="module")
def cluster():
    """The address of a 2-worker LocalCluster (one thread, one process each)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c.scheduler_address


@pytest.fixture(scope="module")
def two_worker_sweep(cluster, tmp_path_factory, reference_path):
    """The reference sweep (2 cells x 3 replicates) on the 2-worker cluster, undisturbed."""
    out = tmp_path_factory.mktemp("sweeps") / "two-workers"
    table = sweep(reference_path, GRID, REPLICATES, out, seed=SEED, scheduler=cluster, progress=False,
                  overrides=SMALL)
    return out, table


# -- (4) cells and seeds ----------------------------------------------------------

def test_expand_grid_order():
    cells = expand_grid({"a": [1, 2], "b": ["x", "y", "z"]})
    assert cells == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
                     {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"}]
    assert expand_grid({}) == [{}]
    with pytest.raises(ScenarioError, match="non-empty list"):
        expand_grid({"a": []})


def test_replicate_seed_is_pinned_and_by_index():
    assert replicate_seed(0, 0) == 4334430513956379144  # pinned: changing it changes every stored sweep
    assert replicate_seed(7, 2) == int(np.random.SeedSequence(7, spawn_key=(2,)).generate_state(1, np.uint64)[0] >> 1)
    seeds = [replicate_seed(7, r) for r in range(50)]
    assert len(set(seeds)) == 50 and all(0 <= s < 2**63 for s in seeds)
    assert replicate_seed(8, 0) != replicate_seed(7, 0)
    with pytest.raises(ValueError):
        replicate_seed(-1, 0)


# -- (1) bit-identical at any worker count ----------------------------------------------

def test_one_worker_equals_two_workers_bit_for_bit(two_worker_sweep, tmp_path, reference_path):
    two, table = two_worker_sweep
    one = tmp_path / "one-worker"
    sweep(reference_path, GRID, REPLICATES, one, seed=SEED, workers=1, progress=False, overrides=SMALL)
    hashes = parquet_hashes(one)
    expected = {f"{kind}/cell={k}/replicate={r}.parquet" for kind in ("metrics", "runs")
                for k in range(2) for r in range(REPLICATES)} | {"summary.parquet"}
    assert set(hashes) == expected
    assert hashes == parquet_hashes(two)

    # the summary: one row per cell, parameters, runs, mean and t-interval of every measure
    assert table.equals(pq.read_table(two / "summary.parquet"))
    assert table.column("cell").to_pylist() == [0, 1]
    assert table.column("coupling.kappa").to_pylist() == [0.2, 0.6]
    assert table.column("runs").to_pylist() == [REPLICATES, REPLICATES]
    wanted = {"blacklisted_mean", "blacklisted_ci_low", "blacklisted_ci_high", "ties_cut_cum_mean"}
    assert wanted <= set(table.column_names)
    assert "step_mean" not in table.column_names and "seed_mean" not in table.column_names

    # common random numbers: replicate r runs on the same seed in every cell
    runs = read_runs(two)
    assert runs.num_rows == 2 * REPLICATES
    assert runs.column("seed").to_pylist() == [replicate_seed(SEED, r) for r in range(REPLICATES)] * 2
    from scipy.stats import t

    x = np.array(runs.column("blacklisted").to_pylist()[:REPLICATES], dtype=float)
    half = t.ppf(0.975, REPLICATES - 1) * x.std(ddof=1) / np.sqrt(REPLICATES)
    assert table.column("blacklisted_mean")[0].as_py() == pytest.approx(x.mean())
    assert table.column("blacklisted_ci_high")[0].as_py() == pytest.approx(x.mean() + half)
    spec = json.loads((two / "sweep.json").read_text())
    assert spec["cells"] == [{"coupling.kappa": 0.2}, {"coupling.kappa": 0.6}] and spec["seed"] == SEED
    assert spec["scenario_resolved"]["population"]["size"] == 400


def _kernels_loaded() -> bool:
    from socialcredit import kernels
    return kernels._kernels is not None


def test_workers_with_several_runs_load_the_kernels(two_worker_sweep, cluster):
    """6 runs on 2 workers: each worker loads the compiled kernels, which its small cities then use."""
    from distributed import Client

    with Client(cluster) as client:
        loaded = client.run(_kernels_loaded)
    assert len(loaded) == 2 and all(loaded.values())


def test_summarise_one_replicate_ci_is_the_mean():
    runs = pa.table({"cell": pa.array([1, 0, 0], pa.int32()), "replicate": pa.array([0, 1, 0], pa.int32()),
                     "seed": [5, 6, 5], "x": [1.5, 2.0, 4.0], "step": [3, 3, 3], "blacklisted": [10, 20, 40]})
    table = summarise(runs, ["x"])
    assert table.column("cell").to_pylist() == [0, 1]
    assert table.column("x").to_pylist() == [4.0, 1.5]  # parameter of each cell, not summarised
    assert table.column("runs").to_pylist() == [2, 1]
    assert table.column("blacklisted_mean").to_pylist() == [30.0, 10.0]
    assert table.column("blacklisted_ci_low")[1].as_py() == table.column("blacklisted_ci_high")[1].as_py() == 10.0
    assert table.column("blacklisted_ci_low")[0].as_py() < 30.0 < table.column("blacklisted_ci_high")[0].as_py()
    assert [c for c in table.column_names if c.startswith(("step", "seed", "x_"))] == []


def test_cell_labels_name_the_parameter_columns(cluster, tmp_path, reference_path):
    cells = [{"coupling.kappa": np.float64(0.25), "population.size": np.int64(300)},
             {"coupling.kappa": np.float64(0.5), "population.size": np.int64(200)}]  # as a sampler gives them
    labels = [{"sample": 0, "kappa": 0.25}, {"sample": 1, "kappa": 0.5}]
    table = run_cells(reference_path, cells, 1, tmp_path / "labelled", scheduler=cluster, progress=False,
                      overrides=["days=14"], cell_labels=labels)
    assert table.column_names[:4] == ["cell", "sample", "kappa", "runs"]
    assert table.column("sample").type == pa.int64() and table.column("kappa").to_pylist() == [0.25, 0.5]
    assert table.column("blacklisted_mean").to_pylist() == table.column("blacklisted_ci_low").to_pylist()
    runs = read_runs(tmp_path / "labelled")
    assert "coupling.kappa" not in runs.column_names and runs.column("sample").to_pylist() == [0, 1]
    assert json.loads((tmp_path / "labelled" / "sweep.json").read_text())["cells"][1] == {
        "coupling.kappa": 0.5, "population.size": 200}


# -- (2) a killed sweep resumes without losing or repeating runs -------------------------

DRIVER = """
import sys
from socialcredit.sweep import sweep

if __name__ == "__main__":
    sweep(sys.argv[1], {grid!r}, {replicates}, sys.argv[2], seed={seed}, workers=1, progress=False,
          overrides={overrides!r})
"""


def test_killed_sweep_resumes(cluster, tmp_path, reference_path):
    grid, replicates, overrides = {"coupling.kappa": [0.3, 0.7]}, 5, ["population.size=1000", "days=182"]
    total = len(grid["coupling.kappa"]) * replicates
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER.format(grid=grid, replicates=replicates, seed=SEED, overrides=overrides)))
    out = tmp_path / "killed"
    log = tmp_path / "driver.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, str(driver), str(reference_path), str(out)], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("runs/cell=*/replicate=*.parquet"))) < 2:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the sweep never finished two runs"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its worker processes, at once
        proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in out.glob("runs/cell=*/replicate=*.parquet")}
    finished_metrics = {p: p.stat().st_mtime_ns for p in out.glob("metrics/cell=*/replicate=*.parquet")
                        if (out / "runs" / p.relative_to(out / "metrics")).exists()}
    assert 2 <= len(finished) < total, "kill the sweep earlier: it had (nearly) finished"
    assert not (out / "summary.parquet").exists()

    sweep(reference_path, grid, replicates, out, seed=SEED, scheduler=cluster, progress=False, overrides=overrides)
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # not recomputed
    assert {p: p.stat().st_mtime_ns for p in finished_metrics} == finished_metrics
    assert not list(out.rglob(".*")), "temporary files left behind"

    runs = read_runs(out)
    pairs = list(zip(runs.column("cell").to_pylist(), runs.column("replicate").to_pylist()))
    assert len(pairs) == total == len(set(pairs))
    metrics = read_metrics(out)
    keys = list(zip(*(metrics.column(c).to_pylist() for c in ("cell", "replicate", "step"))))
    assert len(keys) == len(set(keys)) == total * (182 // 7)

    fresh = tmp_path / "uninterrupted"
    sweep(reference_path, grid, replicates, fresh, seed=SEED, scheduler=cluster, progress=False, overrides=overrides)
    assert (out / "summary.parquet").read_bytes() == (fresh / "summary.parquet").read_bytes()
    assert parquet_hashes(out) == parquet_hashes(fresh)


# -- (3) a worker killed mid-task ------------------------------------------------

def test_worker_killed_mid_task_is_retried(cluster, two_worker_sweep, tmp_path, reference_path):
    import psutil

    marker = tmp_path / "chaos-marker"
    out = tmp_path / "chaos"
    run_cells(reference_path, expand_grid(GRID), REPLICATES, out, seed=SEED, scheduler=cluster, progress=False,
              overrides=SMALL, _chaos=marker)
    victim = int(marker.read_text())
    assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == psutil.STATUS_ZOMBIE
    assert parquet_hashes(out) == parquet_hashes(two_worker_sweep[0])
    runs = read_runs(out)
    assert runs.num_rows == 2 * REPLICATES


# -- (5) a bad value fails before anything runs ---------------------------------------

def test_bad_grid_value_fails_before_anything_runs(tmp_path, reference_path):
    out = tmp_path / "bad"
    with pytest.raises(ScenarioError) as info:
        sweep(reference_path, {"coupling.kappa": [0.5, 2]}, 2, out, overrides=SMALL, progress=False)
    assert info.value.path == "coupling.kappa"
    assert "cell 1" in str(info.value) and "2" in str(info.value)
    assert not out.exists()
    with pytest.raises(ScenarioError, match="population.size"):
        sweep(reference_path, GRID, 2, out, overrides=["population.size=-3"], progress=False)
    with pytest.raises(ScenarioError, match="seed"):
        sweep(reference_path, {"seed": [1, 2]}, 2, out, progress=False)
    with pytest.raises(ScenarioError) as info:
        sweep(reference_path, {"coupling.kapa": [0.1]}, 2, out, progress=False)
    assert "coupling.kapa" in str(info.value)
    assert not out.exists()


# -- (6) sweep files ------------------------------------------------------------

def test_sweep_file_round_trips_and_rejects_unknown_keys(tmp_path, reference_path):
    (tmp_path / "scenarios").mkdir()
    scenario = tmp_path / "scenarios" / "reference.toml"
    scenario.write_bytes(reference_path.read_bytes())
    path = tmp_path / "kappa.toml"
    path.write_text(textwrap.dedent("""
        scenario = "scenarios/reference.toml"
        replicates = 4
        seed = 11
        set = ["population.size=400", "days=28"]

        [grid]
        "coupling.kappa" = [0.0, 0.5]
        network.cut_probability = [0.0, 0.1]
        "record_types.petition.deterrence" = [{}, { B = 0.5 }]
    """))
    spec = load_sweep_file(path)
    assert spec == {
        "scenario": tmp_path / "scenarios" / "reference.toml",
        "replicates": 4,
        "seed": 11,
        "grid": {"coupling.kappa": [0.0, 0.5], "network.cut_probability": [0.0, 0.1],
                 "record_types.petition.deterrence": [{}, {"B": 0.5}]},
        "overrides": ["population.size=400", "days=28"],
    }
    again = load_sweep_file(write_sweep_file(tmp_path / "copy.toml", spec))
    assert again == spec
    assert 'scenario = "scenarios/reference.toml"' in (tmp_path / "copy.toml").read_text()

    bad = tmp_path / "bad.toml"
    bad.write_text("repliactes = 4\n" + path.read_text())
    with pytest.raises(ScenarioError) as info:
        load_sweep_file(bad)
    assert info.value.path == "repliactes" and "unknown key" in str(info.value)
    for text, key in (('scenario = "s.toml"\nreplicates = 2\n[grid]\na = 1\n', "grid.a"),
                      ('scenario = "s.toml"\n[grid]\na = [1]\n', "replicates"),
                      ('scenario = "s.toml"\nreplicates = 0\n[grid]\na = [1]\n', "replicates"),
                      ('scenario = "s.toml"\nreplicates = 2\nset = "days=3"\n[grid]\n', "set")):
        bad.write_text(text)
        with pytest.raises(ScenarioError) as info:
            load_sweep_file(bad)
        assert info.value.path == key


# -- (7) resuming into a different sweep ------------------------------------------------

def test_resume_into_a_different_sweep_is_refused(two_worker_sweep, tmp_path, reference_path):
    out = two_worker_sweep[0]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    same = dict(seed=SEED, progress=False, overrides=SMALL)
    for change, what in (({"seed": SEED + 1}, "seed is 7 there, 8 here"),
                         ({"overrides": [*SMALL, "population.size=401"]}, "population.size"),
                         ({"grid": {"coupling.kappa": [0.2, 0.7]}}, "grid differs")):
        kwargs = {**same, "grid": GRID, **change}
        with pytest.raises(ResumeError, match=what) as info:
            sweep(reference_path, replicates=REPLICATES, out=out, **kwargs)
        assert "another --out" in str(info.value)
    with pytest.raises(ResumeError, match="replicates is 3 there, 4 here"):
        sweep(reference_path, GRID, 4, out, **same)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before

    other = tmp_path / "not-a-sweep"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ResumeError, match="not a sweep folder"):
        sweep(reference_path, GRID, 1, other, **same)


def test_resume_of_a_finished_sweep_runs_nothing(two_worker_sweep, reference_path):
    out, table = two_worker_sweep
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/cell=*/*.parquet")}
    again = sweep(reference_path, GRID, REPLICATES, out, seed=SEED, progress=False, overrides=SMALL)
    assert again.equals(table)
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_import_loads_no_dask():
    code = "import sys, socialcredit.sweep; print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
