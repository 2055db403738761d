"""The run folder: tables and columns, readers, atomic writes, force, memory check, reproducibility."""

from __future__ import annotations

import hashlib
import json

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

import socialcredit as sc
from socialcredit.errors import ResourceError, RunFolderError
from socialcredit.resources import check_memory, estimate_memory
from socialcredit.runfolder import TABLES, read_manifest, read_table
from socialcredit.scenario import load_scenario


def _expected_columns(scenario) -> dict[str, list[str]]:
    metrics = ["step", "day"] + [f"grade_{g}" for g in scenario.grade_names] + [
        "blacklisted", "redlisted", "black_by_record", "black_by_error", "black_by_association",
        "ties_cut", "ties_cut_cum", "ties_active"]
    for t in scenario.type_names:
        metrics += [f"acts_{t}", f"acts_{t}_cum", f"true_records_{t}", f"false_records_{t}", f"overturned_{t}"]
    for g in scenario.group_names:
        metrics += [f"mean_score_{g}", f"median_score_{g}", f"blacklist_rate_{g}"]
    return {
        "metrics": metrics,
        "citizens": ["citizen", "group", "points", "score", "grade", "blacklisted", "redlisted", "black_cause",
                     "true_records", "false_records", "sanction_days", "degree_start", "degree_end"],
        "records": ["citizen", "type", "agency", "act_day", "effective_day", "points", "is_false", "overturned_day"],
        "ties": ["source", "target", "kind", "cut_day"],
        "standing": ["citizen", "step", "day", "grade", "blacklisted", "redlisted", "black_cause"],
    }


def test_all_five_tables_with_documented_columns(small_reference_run):
    run = small_reference_run.path
    scenario = small_reference_run.engine.scenario
    assert sorted(p.name for p in run.iterdir()) == sorted([f"{t}.parquet" for t in TABLES] + ["manifest.json"])
    for name, columns in _expected_columns(scenario).items():
        present = pq.read_schema(run / f"{name}.parquet").names
        missing = [c for c in columns if c not in present]
        assert not missing, (name, missing)


@pytest.mark.parametrize("table", TABLES)
def test_tables_readable_by_pandas_polars_duckdb(small_reference_run, table):
    path = small_reference_run.path / f"{table}.parquet"
    arrow = read_table(small_reference_run.path, table)
    frame = pd.read_parquet(path)
    polar = pl.read_parquet(path)
    count = duckdb.sql(f"select count(*) from read_parquet('{path}')").fetchall()[0][0]
    assert len(frame) == polar.height == count == arrow.num_rows
    assert list(frame.columns) == polar.columns == arrow.column_names
    assert arrow.num_rows > 0


def test_column_encodings_are_the_chosen_ones_and_read_back_plain(small_reference_run):
    # few-valued numbers in dictionary pages, near-random ones uncompressed; readers see plain types
    def chunk(table, column):
        meta = pq.ParquetFile(small_reference_run.path / f"{table}.parquet").metadata
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        return meta.row_group(0).column(names.index(column))

    assert "RLE_DICTIONARY" in chunk("ties", "weight").encodings
    assert "RLE_DICTIONARY" in chunk("records", "effective_day").encodings
    assert "RLE_DICTIONARY" not in chunk("ties", "source").encodings
    assert chunk("ties", "target").compression == "UNCOMPRESSED"
    assert chunk("standing", "score").compression == "UNCOMPRESSED"
    assert chunk("citizens", "score").compression == "UNCOMPRESSED"
    assert chunk("citizens", "points").compression == chunk("ties", "source").compression == "ZSTD"
    # min/max statistics where a filter can use them to skip row groups, not on measures
    assert chunk("records", "citizen").is_stats_set and chunk("ties", "cut_day").is_stats_set
    assert not chunk("citizens", "score").is_stats_set and not chunk("standing", "points").is_stats_set
    assert not chunk("citizens", "acts_" + small_reference_run.engine.scenario.type_names[0]).is_stats_set
    ties = read_table(small_reference_run.path, "ties")
    assert str(ties.schema.field("weight").type) in ("float", "double")
    assert str(ties.schema.field("cut_day").type) == "int32"
    engine = small_reference_run.engine
    np.testing.assert_array_equal(ties["weight"].to_numpy(), engine.ties.weight)


def test_table_contents_agree_with_the_engine(small_reference_run):
    eng = small_reference_run.engine
    run = small_reference_run.path
    scenario = eng.scenario
    last = eng.metrics[-1]
    cit = pd.read_parquet(run / "citizens.parquet")
    assert len(cit) == 1000 and cit["citizen"].tolist() == list(range(1000))
    np.testing.assert_array_equal(cit["points"], eng.standing.points)
    np.testing.assert_array_equal(cit["score"], eng.standing.score)
    assert cit["grade"].astype(str).tolist() == [scenario.grade_names[g] for g in eng.standing.grade]
    assert int(cit["blacklisted"].sum()) == last["blacklisted"]
    assert int(cit["redlisted"].sum()) == last["redlisted"]
    assert not (cit["blacklisted"] & cit["redlisted"]).any()
    causes = cit["black_cause"].astype(str)
    assert (causes != "none").sum() == cit["blacklisted"].sum() == last["blacklisted"]
    for cause in ("record", "error", "association"):
        assert int((causes == cause).sum()) == last[f"black_by_{cause}"]
    assert last["black_by_record"] + last["black_by_error"] + last["black_by_association"] == last["blacklisted"]
    # the metrics table is the engine's metrics
    met = pd.read_parquet(run / "metrics.parquet")
    assert met.to_dict("records") == eng.metrics
    # ties: cut_day null while active
    ties = pl.read_parquet(run / "ties.parquet")
    assert ties["cut_day"].null_count() == last["ties_active"]
    assert ties.height - ties["cut_day"].null_count() == last["ties_cut_cum"]
    # degrees
    deg_end = np.bincount(np.concatenate([ties.filter(pl.col("cut_day").is_null())["source"].to_numpy(),
                                          ties.filter(pl.col("cut_day").is_null())["target"].to_numpy()]),
                          minlength=1000)
    np.testing.assert_array_equal(cit["degree_end"], deg_end)
    # records: true records never overturned; counts per citizen
    rec = duckdb.sql(f"""select is_false, count(*) as n, count(overturned_day) as overturned
                         from read_parquet('{run / 'records.parquet'}')
                         group by is_false order by is_false""").fetchall()
    assert rec[0][0] is False and rec[0][2] == 0
    assert rec[1][0] is True and 0 < rec[1][2] < rec[1][1]
    n_true = duckdb.sql(f"select sum(true_records) from read_parquet('{run / 'citizens.parquet'}')").fetchall()[0][0]
    assert n_true == rec[0][1]
    # sanction days: reference has only surveillance effects (C, D), counted as sanctions
    assert (cit["sanction_days"] >= 0).all()


def test_manifest_hashes_match_files(small_reference_run):
    run = small_reference_run.path
    manifest = read_manifest(run)
    assert manifest["seed"] == 1 and manifest["citizens"] == 1000 and manifest["steps"] == 52
    assert set(manifest["sha256"]) == {f"{t}.parquet" for t in TABLES}
    for name, digest in manifest["sha256"].items():
        assert hashlib.sha256((run / name).read_bytes()).hexdigest() == digest
    assert manifest["scenario"]["population"]["size"] == 1000
    assert sc.Results.open(run) == manifest
    assert small_reference_run.table("citizens").num_rows == 1000
    with pytest.raises(ValueError):
        read_table(run, "nope")


def test_same_seed_bit_identical_different_seed_differs(reference_path, tmp_path):
    scenario = load_scenario(reference_path, ["population.size=1000"])
    a = sc.run(scenario, out=tmp_path / "a").path
    b = sc.run(scenario, out=tmp_path / "b").path
    c = sc.run(scenario, seed=2, out=tmp_path / "c").path
    ma, mb, mc = (json.loads((p / "manifest.json").read_text()) for p in (a, b, c))
    assert ma["sha256"] == mb["sha256"]
    for table in TABLES:
        assert (a / f"{table}.parquet").read_bytes() == (b / f"{table}.parquet").read_bytes(), table
    assert ma["scenario"] == mb["scenario"]
    for table in ("metrics", "citizens", "records", "ties"):
        assert mc["sha256"][f"{table}.parquet"] != ma["sha256"][f"{table}.parquet"], table


def test_tables_written_one_at_a_time_or_in_parallel_have_the_same_bytes(reference_path, tmp_path, monkeypatch):
    import concurrent.futures

    from socialcredit import runfolder

    scenario = load_scenario(reference_path, ["population.size=1000"])
    workers = []
    real_pool = concurrent.futures.ThreadPoolExecutor

    def counting_pool(max_workers=None, **kwargs):
        workers.append(max_workers)
        return real_pool(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(runfolder, "ThreadPoolExecutor", counting_pool)
    monkeypatch.setattr(runfolder.os, "cpu_count", lambda: 4)
    parallel = sc.run(scenario, out=tmp_path / "parallel").path
    monkeypatch.setattr(runfolder.os, "cpu_count", lambda: 1)
    sequential = sc.run(scenario, out=tmp_path / "sequential").path
    assert workers == [4, 1]
    for table in TABLES:
        assert (parallel / f"{table}.parquet").read_bytes() == (sequential / f"{table}.parquet").read_bytes(), table


def test_existing_folder_refused_without_force_and_replaced_with_force(reference_path, tmp_path):
    scenario = load_scenario(reference_path, ["population.size=100", "days=14"])
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("from a previous run")
    calls = []
    with pytest.raises(RunFolderError) as err:
        sc.run(scenario, out=out, progress=lambda d, t: calls.append(d))
    assert isinstance(err.value, FileExistsError)
    assert "--force" in str(err.value)
    assert calls == [], "refused before the run starts"
    assert (out / "old.txt").exists()
    sc.run(scenario, out=out, force=True)
    assert not (out / "old.txt").exists()
    assert (out / "manifest.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no partial or old folders left"


def test_file_in_the_way_is_refused_even_with_force(reference_path, tmp_path):
    scenario = load_scenario(reference_path, ["population.size=100", "days=14"])
    blocker = tmp_path / "run"
    blocker.write_text("not a folder")
    with pytest.raises(RunFolderError):
        sc.run(scenario, out=blocker, force=True)


def _failing_writer(monkeypatch, fail_on: int):
    real = pq.write_table
    calls = {"n": 0}

    def write_table(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == fail_on:
            raise OSError("disk full (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(pq, "write_table", write_table)
    return calls


def test_run_killed_mid_write_leaves_no_complete_looking_folder(reference_path, tmp_path, monkeypatch):
    scenario = load_scenario(reference_path, ["population.size=100", "days=14"])
    out = tmp_path / "run"
    calls = _failing_writer(monkeypatch, fail_on=3)
    with pytest.raises(OSError, match="simulated"):
        sc.run(scenario, out=out)
    assert calls["n"] >= 3  # tables are written in parallel: the others may finish
    assert not out.exists()
    assert not list(tmp_path.rglob("manifest.json"))
    with pytest.raises(RunFolderError):
        read_manifest(out)
    # a later run to the same destination succeeds and is complete
    monkeypatch.undo()
    sc.run(scenario, out=out)
    assert read_manifest(out)["steps"] == 2


def test_failed_forced_rewrite_keeps_the_previous_run(reference_path, tmp_path, monkeypatch):
    scenario = load_scenario(reference_path, ["population.size=100", "days=14"])
    out = tmp_path / "run"
    sc.run(scenario, out=out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _failing_writer(monkeypatch, fail_on=2)
    with pytest.raises(OSError):
        sc.run(scenario, seed=5, out=out, force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_memory_check_refuses_with_the_estimate(reference_path, tmp_path):
    scenario = load_scenario(reference_path)
    est = estimate_memory(scenario)
    assert est["total"] == pytest.approx(sum(v for k, v in est.items() if k != "total"))
    with pytest.raises(ResourceError) as err:
        check_memory(scenario, limit_bytes=1000)
    assert isinstance(err.value, MemoryError)
    assert f"{est['total'] / 2**30:.1f} GiB" in str(err.value)
    assert check_memory(scenario, limit_bytes=est["total"] * 2) == est
    with pytest.raises(ResourceError):
        sc.run(scenario, out=tmp_path / "never", max_memory=1000)
    assert not (tmp_path / "never").exists()


def test_memory_estimate_grows_with_the_city(reference_path):
    small = estimate_memory(load_scenario(reference_path, ["population.size=1000"]))
    mid = estimate_memory(load_scenario(reference_path, ["population.size=100000"]))
    big = estimate_memory(load_scenario(reference_path, ["population.size=1000000"]))
    assert big["total"] > mid["total"] > small["total"]
    assert mid["citizens"] == pytest.approx(100 * small["citizens"])
    assert big["records"] == pytest.approx(1000 * small["records"])
    # from 300,000 citizens on, the books of a step hold one more standing while they are written
    assert 1000 * small["citizens"] < big["citizens"] < 1.2 * 1000 * small["citizens"]
    huge = load_scenario(reference_path, ["population.size=2000000000"])
    with pytest.raises(ResourceError):
        check_memory(huge, limit_bytes=64 * 2**30)


def _documented_order(scenario):
    metrics = ["step", "day"] + [f"grade_{g}" for g in scenario.grade_names]
    metrics += ["blacklisted", "redlisted", "black_by_record", "black_by_error", "black_by_association"]
    metrics += [f"list_{nl.name}" for nl in scenario.lists.named]
    for counter in ("acts", "true_records", "false_records", "overturned"):
        for t in scenario.type_names:
            metrics += [f"{counter}_{t}", f"{counter}_{t}_cum"]
    metrics += ["ties_cut", "ties_cut_cum", "ties_active", "mean_points", "mean_score"]
    for g in scenario.group_names:
        metrics += [f"mean_score_{g}", f"median_score_{g}", f"blacklist_rate_{g}"]
    metrics += [f"effect_{e.name}" for e in scenario.effects]
    metrics += [f"scheme_mean_{s.name}" for s in scenario.schemes]
    metrics += ["solver_iterations"]
    citizens = ["citizen", "group", "points", "score", "grade", "blacklisted", "redlisted", "black_cause"]
    citizens += [f"list_{nl.name}" for nl in scenario.lists.named]
    citizens += [f"score_{s.name}" for s in scenario.schemes]
    citizens += [f"acts_{t}" for t in scenario.type_names]
    citizens += ["true_records", "false_records"] + [f"days_{e.name}" for e in scenario.effects]
    citizens += ["sanction_days", "privilege_days", "degree_start", "degree_end"]
    return {
        "metrics": metrics,
        "citizens": citizens,
        "records": ["citizen", "type", "agency", "act_day", "effective_day", "points", "is_false", "overturned_day"],
        "ties": ["source", "target", "kind", "weight", "cut_day"],
        "standing": ["citizen", "step", "day", "points", "score", "grade", "blacklisted", "redlisted", "black_cause"],
    }


def test_columns_in_documented_order_with_every_family(scenarios_dir, tmp_path):
    """docs/outputs.md: exact column lists and order, on rongcheng.toml (named list, scheme, effects)."""
    scenario = load_scenario(scenarios_dir / "rongcheng.toml", ["population.size=1500", "days=28"])
    run = sc.run(scenario, out=tmp_path / "r").path
    for table, columns in _documented_order(scenario).items():
        assert pq.read_schema(run / f"{table}.parquet").names == columns, table
    cit = pq.read_table(run / "citizens.parquet")
    days = sum(cit[f"days_{e.name}"].to_numpy() for e in scenario.effects if e.kind != "privilege")
    np.testing.assert_array_equal(cit["sanction_days"].to_numpy(), days)
    # records ordered by citizen, then act day; standing by citizen, then step
    rec = pd.read_parquet(run / "records.parquet")
    assert rec.equals(rec.sort_values(["citizen", "act_day"], kind="stable"))
    st = pd.read_parquet(run / "standing.parquet")
    assert st.equals(st.sort_values(["citizen", "step"], kind="stable"))
    assert not st.duplicated(["citizen", "step"]).any()


def test_acts_columns_add_up_to_the_metrics(small_reference_run):
    cit = pd.read_parquet(small_reference_run.path / "citizens.parquet")
    last = small_reference_run.metrics[-1]
    for name in small_reference_run.engine.scenario.type_names:
        assert int(cit[f"acts_{name}"].sum()) == last[f"acts_{name}_cum"]


@pytest.mark.parametrize("row_group", [97, 1 << 17])
def test_streamed_standing_table_is_the_change_log_sorted_whole(scenarios_dir, tmp_path, monkeypatch, row_group):
    """The standing table written slice by slice has the bytes of the whole log sorted by citizen at once."""
    from socialcredit import runfolder

    monkeypatch.setattr(runfolder, "ROW_GROUP", row_group)
    scenario = load_scenario(scenarios_dir / "rongcheng.toml", ["population.size=700", "days=56"])
    eng = sc.run(scenario).engine
    chunks = eng.changes.chunks
    cols = [np.concatenate([c[i] for c in chunks]) for i in range(len(runfolder.STANDING_DTYPES))]
    order = np.argsort(cols[0], kind="stable")
    whole = runfolder._standing_slice([c[order] for c in cols], scenario.grade_names)
    assert whole.num_rows > 5 * 97  # several slices, most starting inside a citizen's history
    runfolder.write_table(whole, tmp_path / "whole.parquet", "standing")
    runfolder.write_standing(eng, tmp_path / "streamed.parquet")
    assert (tmp_path / "streamed.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    assert pq.ParquetFile(tmp_path / "streamed.parquet").num_row_groups == -(-whole.num_rows // row_group)
    assert runfolder._standing_table(eng).equals(whole)
