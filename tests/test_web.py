"""The web app (``socialcredit serve``) through FastAPI's TestClient: pages, data, the what-if explorer, guard rails.

Small cities (a few hundred to a few thousand citizens) keep it fast; the what-if jobs run in real child
processes. The browser and the load test are in test_web_browser.py and test_web_load.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import socialcredit as sc
from socialcredit.scenario import load_scenario, scenario_schema
from socialcredit.sweep import sweep
from socialcredit.web import create_app
from socialcredit.web.app import plotly_js
from socialcredit.web.paths import jsonable
from socialcredit.web.serve import background

with warnings.catch_warnings():  # starlette's note about a future httpx successor
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
LIMIT = 5_000
BIG = 45_000  # a what-if that computes for a few seconds (for cancel, kill and 429)


@pytest.fixture(scope="module")
def served(tmp_path_factory, reference_path):
    """A served folder: a 1,500-citizen reference run ``ref`` and a small two-cell sweep ``sweeps/kappa``."""
    root = tmp_path_factory.mktemp("served")
    sc.run(load_scenario(reference_path, ["population.size=1500"]), out=root / "ref")
    sweep(reference_path, {"coupling.kappa": [0.2, 0.5]}, 2, root / "sweeps" / "kappa", workers=1, progress=False,
          overrides=["population.size=200", "days=56"])
    return root


def _client(root: Path, **limits) -> TestClient:
    limits.setdefault("max_population", LIMIT)
    return TestClient(create_app(root, scenarios_dir=SCENARIOS, **limits), base_url="http://127.0.0.1")


@pytest.fixture(scope="module")
def client(served):
    with _client(served) as c:
        yield c


def _wait(client: TestClient, job: str, until=lambda s: s["status"] != "running", timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/api/jobs/{job}").json()
        if until(status):
            return status
        assert time.monotonic() < deadline, f"job {job} still {status}"
        time.sleep(0.05)


def _computing(status: dict) -> bool:
    return status["status"] != "running" or (status.get("stage") in ("base", "variant") and status.get("day", 0) > 0)


class _Inputs(HTMLParser):
    """Every <input> of a page as a dict of its attributes, and the text of elements by id."""

    def __init__(self):
        super().__init__()
        self.inputs: list[dict] = []

    def handle_starttag(self, tag, attrs):
        if tag == "input":
            self.inputs.append(dict(attrs))


# --- listing, run and sweep pages -------------------------------------------------------------------------------

def test_home_lists_runs_and_sweeps_with_their_facts(client, served):
    page = client.get("/")
    assert page.status_code == 200
    assert 'href="/runs/ref"' in page.text and 'href="/sweeps/sweeps/kappa"' in page.text
    listing = client.get("/api/runs").json()
    assert listing["sweeps"] == ["sweeps/kappa"]
    (run,) = [r for r in listing["runs"] if r["name"] == "ref"]
    manifest = json.loads((served / "ref" / "manifest.json").read_text())
    last = pq.read_table(served / "ref" / "metrics.parquet").to_pylist()[-1]
    assert (run["scenario"], run["citizens"], run["days"]) == ("reference", 1500, manifest["days"])
    assert run["blacklisted"] == last["blacklisted"] and run["blacklisted"] > 0
    assert f"{last['blacklisted']:,}" in page.text


def test_run_page_has_the_figures_and_serves_every_script_itself(client):
    page = client.get("/runs/ref")
    assert page.status_code == 200
    for chart in ("chart-grades", "chart-causes", "chart-groups", "chart-ties", "chart-criticism"):
        assert f'id="{chart}"' in page.text
    sources = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', page.text)
    assert "/static/vendor/plotly.min.js" in sources and "/static/app.js" in sources
    assert all(s.startswith("/") or s.startswith("data:") for s in sources), sources
    plotly = client.get("/static/vendor/plotly.min.js")
    assert plotly.status_code == 200 and plotly.headers["content-type"].startswith("text/javascript")
    assert hashlib.sha256(plotly.content).digest() == hashlib.sha256(plotly_js().read_bytes()).digest()
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_metrics_json_agrees_with_metrics_parquet(client, served):
    data = client.get("/api/runs/ref/metrics").json()
    table = pq.read_table(served / "ref" / "metrics.parquet")
    assert list(data["columns"]) == table.column_names
    for name in table.column_names:
        assert data["columns"][name] == jsonable(table[name].to_pylist()), name
    assert data["meta"]["citizens"] == 1500 and data["meta"]["criticism"] == ["online_criticism", "petition"]
    assert [g["name"] for g in data["meta"]["grades"]] == ["AAA", "AA", "A", "B", "C", "D"]


def test_audit_is_computed_once_per_run_and_matches_the_library(client, served, monkeypatch):
    import socialcredit.audit as audit_module

    calls = []
    real = audit_module.audit
    monkeypatch.setattr(audit_module, "audit", lambda run, **kw: calls.append(run) or real(run, **kw))
    first = client.get("/api/runs/ref/audit").json()
    second = client.get("/api/runs/ref/audit").json()
    assert first == second and len(calls) <= 1  # one computation (none if an earlier request cached it)
    assert first == jsonable(real(served / "ref"))


def test_black_list_by_cause_agrees_with_the_citizens_table(client, served):
    citizens = pq.read_table(served / "ref" / "citizens.parquet").to_pylist()
    black = [c for c in citizens if c["blacklisted"]]
    data = client.get("/api/runs/ref/blacklist?limit=5000").json()
    assert data["total"] == len(black)
    for cause in ("record", "error", "association"):
        mine = sorted(c["citizen"] for c in black if c["black_cause"] == cause)
        assert data["causes"][cause]["count"] == len(mine)
        assert sorted(r["citizen"] for r in data["causes"][cause]["shown"]) == mine
    page = client.get("/runs/ref/citizens").text
    first = data["causes"]["record"]["shown"][0]["citizen"]
    assert f'href="/runs/ref/citizens/{first}"' in page


def test_citizen_story_timeline_and_ego_network(client, served):
    from socialcredit.explain import explain

    citizens = pq.read_table(served / "ref" / "citizens.parquet").to_pylist()
    she = next(c for c in citizens if c["blacklisted"] and c["degree_start"] > c["degree_end"])
    cid = she["citizen"]
    page = client.get(f"/runs/ref/citizens/{cid}")
    assert page.status_code == 200
    assert "BLACK list" in page.text and f"cause: {she['black_cause']}" in page.text
    assert 'id="chart-timeline"' in page.text and 'id="chart-ego"' in page.text
    data = client.get(f"/api/runs/ref/citizens/{cid}").json()
    assert data["story"] == jsonable(explain(served / "ref", cid))
    ties = pq.read_table(served / "ref" / "ties.parquet").to_pylist()
    mine = {(t["target"] if t["source"] == cid else t["source"]): t["cut_day"] for t in ties if cid in (t["source"], t["target"])}
    ego = data["ego"]
    assert ego["degree"] == she["degree_start"] == len(mine)
    assert {n["citizen"]: n["cut_day"] for n in ego["neighbours"]} == mine
    assert sum(n["cut_day"] is None for n in ego["neighbours"]) == she["degree_end"]
    for nb in ego["neighbours"]:
        assert nb["grade"] == citizens[nb["citizen"]]["grade"]
    search = client.get(f"/runs/ref/citizens?id={cid}", follow_redirects=False)
    assert search.status_code == 303 and search.headers["location"] == f"/runs/ref/citizens/{cid}"


@pytest.mark.parametrize("bad", ["1500", "99999", "-1", "abc", "1e3"])
def test_citizen_out_of_range_is_a_clear_404(client, bad):
    page = client.get(f"/runs/ref/citizens/{bad}")
    assert page.status_code == 404
    assert "not in this run" in page.text or "not a citizen id" in page.text
    api = client.get(f"/api/runs/ref/citizens/{bad}")
    assert api.status_code == 404 and api.json()["detail"]
    search = client.get(f"/runs/ref/citizens?id={bad}")
    assert search.status_code == 404 and 'class="field-error"' in search.text


def test_sweep_page_summary_and_series(client, served):
    page = client.get("/sweeps/sweeps/kappa")
    assert page.status_code == 200 and 'id="chart-cells"' in page.text and 'id="summary"' in page.text
    data = client.get("/api/sweeps/sweeps/kappa/summary").json()
    summary = pq.read_table(served / "sweeps" / "kappa" / "summary.parquet")
    assert data["rows"] == jsonable(summary.to_pylist())
    assert data["params"] == ["coupling.kappa"] and "blacklisted" in data["measures"]
    assert (data["finished"], data["expected"]) == (4, 4)
    series = client.get("/api/sweeps/sweeps/kappa/series?measure=blacklisted").json()
    from socialcredit.sweep import read_metrics

    rows = read_metrics(served / "sweeps" / "kappa").to_pylist()
    for cell in series["cells"]:
        for day, mean in zip(cell["day"], cell["mean"]):
            values = [r["blacklisted"] for r in rows if r["cell"] == cell["cell"] and r["day"] == day]
            assert mean == pytest.approx(sum(values) / len(values))


# --- the what-if form -------------------------------------------------------------------------------------------

def _schema_field(schema: dict, index_path: str) -> tuple[dict, bool]:
    """The schema of one field, walked here independently of the app."""
    node, nullable = schema, False

    def follow(n):
        nonlocal nullable
        while "$ref" in n or "anyOf" in n:
            if "$ref" in n:
                n = schema["$defs"][n["$ref"].split("/")[-1]]
            else:
                options = [o for o in n["anyOf"] if o.get("type") != "null"]
                nullable = nullable or len(options) < len(n["anyOf"])
                n = options[0]
        return n

    for part in re.findall(r"[^.\[\]]+|\[\d+\]", index_path):
        node = follow(node)
        node = node["items"] if part.startswith("[") else node["properties"][part]
    return follow(node), nullable


@pytest.mark.parametrize("scenario", ["reference", "rongcheng", "seed-articles", "no-system"])
def test_form_bounds_and_defaults_come_from_the_schema_and_the_scenario(client, scenario):
    page = client.get(f"/whatif?scenario={scenario}")
    assert page.status_code == 200
    parser = _Inputs()
    parser.feed(page.text)
    inputs = [i for i in parser.inputs if i.get("data-schema-path")]
    schema = scenario_schema()
    resolved = load_scenario(SCENARIOS / f"{scenario}.toml").to_dict()
    names = {i["name"] for i in inputs}
    assert {"population.size", "days", "seed", "coupling.kappa", "network.cut_probability"} <= names
    assert {f"record_types.{t['name']}.points" for t in resolved["record_types"] if t["category"] == "criticism"} <= names
    assert {f"agencies.{a['name']}.false_rate" for a in resolved["agencies"]} <= names
    assert {f"scoring.grades.{g['name']}.min" for g in resolved["scoring"]["grades"]} <= names
    for field in inputs:
        prop, nullable = _schema_field(schema, field["data-schema-path"])
        expect_max = prop.get("maximum")
        if field["name"] == "population.size":
            expect_max = min(expect_max, LIMIT)
        for attr, expected in (("min", prop.get("minimum")), ("max", expect_max),
                               ("data-exclusive-min", prop.get("exclusiveMinimum")),
                               ("data-exclusive-max", prop.get("exclusiveMaximum"))):
            got = field.get(attr)
            assert (None if got is None else float(got)) == (None if expected is None else float(expected)), \
                (field["name"], attr)
        assert field["data-type"] == ("integer" if prop["type"] == "integer" else "number")
        assert field["step"] == ("1" if prop["type"] == "integer" else "any")
        assert ("required" not in field) == nullable, field["name"]
        value = _value(resolved, field["data-schema-path"])
        if field["name"] == "population.size":
            value = min(value, 20_000, LIMIT)
        assert field["value"] == ("" if value is None else str(value)), field["name"]
    spec = client.get(f"/api/scenarios/{scenario}/form").json()
    assert [c["name"] for c in spec["controls"]] == [i["name"] for i in inputs]


def _value(data, index_path):
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", index_path):
        data = data[int(part[1:-1])] if part.startswith("[") else data.get(part)
    return data


def test_form_follows_a_changed_schema(client, monkeypatch):
    import copy

    import socialcredit.web.forms as forms

    changed = copy.deepcopy(scenario_schema())
    changed["$defs"]["Coupling"]["properties"]["kappa"]["exclusiveMaximum"] = 0.75
    changed["$defs"]["Agency"]["properties"]["false_rate"]["maximum"] = 3.5
    monkeypatch.setattr(forms, "scenario_schema", lambda: changed)
    parser = _Inputs()
    parser.feed(client.get("/whatif?scenario=reference").text)
    by_name = {i["name"]: i for i in parser.inputs if i.get("name")}
    assert by_name["coupling.kappa"]["data-exclusive-max"] == "0.75"
    assert by_name["agencies.bank.false_rate"]["max"] == "3.5"


@pytest.mark.parametrize("field, value, words", [
    ("coupling.kappa", "1.5", "less than 1"),
    ("network.cut_probability", "-0.1", "greater than or equal to 0"),
    ("agencies.bank.false_rate", "lots", "not a number"),
    ("scoring.grades.AA.min", "1100", "strictly descending"),
    ("days", "2.5", "whole number"),
    ("record_types.petition.points", "inf", "finite"),
    ("seed", "", "enter a number"),
    ("network.kinds.friend.cut_probability", "1.2", "less than or equal to 1"),
])
def test_bad_field_gets_422_with_its_message(client, served, field, value, words):
    jobs_before = sorted((served / "whatif").glob("2*")) if (served / "whatif").exists() else []
    answer = client.post("/api/whatif", data={"scenario": "reference", "population.size": "300", field: value})
    assert answer.status_code == 422
    errors = answer.json()["errors"]
    assert list(errors) == [field] and words in errors[field], errors
    page = client.post("/whatif", data={"scenario": "reference", "population.size": "300", field: value})
    assert page.status_code == 422
    box = re.search(rf'<p class="field-error" id="error-{re.escape(field)}" role="alert">([^<]*)</p>', page.text)
    assert box and words in box.group(1)
    assert 'value="{}"'.format(value) in page.text  # the input keeps what was typed
    jobs_after = sorted((served / "whatif").glob("2*")) if (served / "whatif").exists() else []
    assert jobs_after == jobs_before  # nothing started


def test_population_over_the_limit_and_unknown_input_are_refused(client):
    answer = client.post("/api/whatif", data={"scenario": "reference", "population.size": str(LIMIT + 1)})
    assert answer.status_code == 422
    assert "at most 5,000 citizens" in answer.json()["errors"]["population.size"]
    answer = client.post("/api/whatif", json={"scenario": "nowhere"})
    assert answer.status_code == 422 and "reference" in answer.json()["errors"]["scenario"]
    answer = client.post("/api/whatif", json={"scenario": "reference", "population.size": 300, "effects": "[]"})
    assert answer.status_code == 422 and "not a control" in answer.json()["errors"]["effects"]
    answer = client.post("/api/whatif", json={"scenario": "reference", "population.size": 300, "days": 3})
    assert answer.status_code == 422
    assert answer.json()["errors"] == {"_form": "scoring.every_days: longer than the run (3 days) (got 7). "
                                                "Fix: score at least once: lower every_days or raise days"}


# --- what-if jobs -----------------------------------------------------------------------------------------------

def test_whatif_shares_the_city_and_an_unchanged_variant_equals_the_base(client, served):
    city = {"scenario": "reference", "population.size": "600", "seed": "7"}
    same = client.post("/api/whatif", data=city)
    assert same.status_code == 202
    job = _wait(client, same.json()["job"])
    assert job["status"] == "done", job
    base, variant = served / job["base"], served / job["variant"]
    for table in ("metrics", "citizens", "records", "ties", "standing"):
        assert pq.read_table(base / f"{table}.parquet").equals(pq.read_table(variant / f"{table}.parquet")), table
    assert all(row["difference"] == 0 for row in job["result"]["compare"]["aggregate"])

    changed = client.post("/api/whatif", data={**city, "coupling.kappa": "0", "record_types.petition.points": "-300"})
    assert changed.status_code == 202
    job2 = _wait(client, changed.json()["job"])
    assert job2["status"] == "done", job2
    assert job2["base"] == job["base"] and job2["result"]["base_cached"]  # the base ran once
    assert job2["changes"] == {"coupling.kappa": 0.0, "record_types.petition.points": -300.0}
    assert job2["defaults"] == {"coupling.kappa": 0.5, "record_types.petition.points": -50.0}
    variant2 = served / job2["variant"]
    cols = ["citizen", "group"]
    assert pq.read_table(base / "citizens.parquet", columns=cols).equals(pq.read_table(variant2 / "citizens.parquet", columns=cols))
    tie_cols = ["source", "target", "kind", "weight"]
    assert pq.read_table(base / "ties.parquet", columns=tie_cols).equals(pq.read_table(variant2 / "ties.parquet", columns=tie_cols))
    result = job2["result"]["compare"]
    assert result["same_city"] and not result["notes"]
    assert not pq.read_table(base / "metrics.parquet").equals(pq.read_table(variant2 / "metrics.parquet"))
    assert json.loads((variant2 / "manifest.json").read_text())["scenario"]["coupling"]["kappa"] == 0.0
    page = client.get(f"/whatif/{job2['id']}")
    assert page.status_code == 200 and "coupling.kappa" in page.text and f'href="/runs/{job2["variant"]}"' in page.text
    assert client.get(f"/runs/{job2['variant']}").status_code == 200
    assert client.get(f"/api/runs/{job2['base']}/metrics").status_code == 200
    again = client.get(f"/whatif?again={job2['id']}").text
    assert 'name="coupling.kappa"' in again and 'value="0.0"' in again
    assert job2["id"] in client.get("/").text


def test_too_many_jobs_cancel_and_a_free_slot(served):
    with _client(served, max_population=50_000, max_jobs=1) as client:
        first = client.post("/api/whatif", data={"scenario": "reference", "population.size": str(BIG), "seed": "11"})
        assert first.status_code == 202
        job = first.json()["job"]
        refused = client.post("/api/whatif", data={"scenario": "reference", "population.size": "300"})
        assert refused.status_code == 429 and "--max-jobs 1" in refused.json()["detail"]
        status = _wait(client, job, until=_computing)
        assert status["status"] == "running", status
        pid = client.app.state.lab.jobs._live[job].pid
        cancelled = client.post(f"/api/jobs/{job}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert not _alive(pid)
        folder = served / "whatif" / job
        assert not (folder / "variant").exists()
        leftovers = [p.name for place in (folder, served / "whatif" / "bases") for p in place.iterdir() if p.name.startswith(".")]
        assert leftovers == []
        assert client.post(f"/api/jobs/{job}/cancel").status_code == 409
        page = client.get(f"/whatif/{job}")
        assert "was cancelled" in page.text
        small = client.post("/api/whatif", data={"scenario": "reference", "population.size": "300"})
        assert small.status_code == 202
        assert _wait(client, small.json()["job"])["status"] == "done"


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_failed_run_shows_its_error_and_the_app_keeps_working(served):
    with _client(served, max_memory=1) as client:  # every run needs more than one byte: refused in the child
        answer = client.post("/api/whatif", data={"scenario": "reference", "population.size": "300"})
        assert answer.status_code == 202
        job = _wait(client, answer.json()["job"])
        assert job["status"] == "failed" and job["error"].startswith("ResourceError")
        page = client.get(f"/whatif/{job['id']}")
        assert page.status_code == 200 and "This what-if failed" in page.text and "ResourceError" in page.text
        assert client.get("/").status_code == 200 and client.get("/api/runs/ref/metrics").status_code == 200


def test_a_killed_run_process_is_a_failed_job(served):
    with _client(served, max_population=50_000) as client:
        answer = client.post("/api/whatif", data={"scenario": "reference", "population.size": str(BIG), "seed": "12"})
        job = answer.json()["job"]
        _wait(client, job, until=_computing)
        os.kill(client.app.state.lab.jobs._live[job].pid, signal.SIGKILL)
        status = _wait(client, job)
        assert status["status"] == "failed" and "killed by signal 9" in status["error"]
        leftovers = [p.name for place in (served / "whatif" / job, served / "whatif" / "bases") for p in place.iterdir()
                     if "partial" in p.name]
        assert leftovers == []
        assert client.get("/").status_code == 200
        again = client.post("/api/whatif", data={"scenario": "reference", "population.size": "300"})
        assert again.status_code == 202 and _wait(client, again.json()["job"])["status"] == "done"


def test_a_job_left_by_a_stopped_server_reads_as_interrupted_or_done(served):
    from socialcredit.web.paths import write_json

    folder = served / "whatif" / "20000101-000000-abcdef"
    folder.mkdir(parents=True)
    write_json(folder / "job.json", {"id": folder.name, "scenario": "reference", "city": {"population.size": 300},
                                     "changes": {}, "base": "whatif/bases/x", "variant": f"whatif/{folder.name}/variant"})
    with _client(served) as client:  # a new server: it did not start this job
        status = client.get(f"/api/jobs/{folder.name}").json()
        assert status["status"] == "interrupted" and "run it again" in status["error"]
        assert client.post(f"/api/jobs/{folder.name}/cancel").status_code == 409
        write_json(folder / "result.json", {"base_cached": False, "seconds": {}, "compare": {}})
        assert client.get(f"/api/jobs/{folder.name}").json()["status"] == "done"
    shutil.rmtree(folder)


# --- guard rails: paths, hosts, origins, sizes ------------------------------------------------------------------

SECRET = "TOP-SECRET-OUTSIDE-THE-SERVED-FOLDER"


@pytest.fixture(scope="module")
def trap(served, tmp_path_factory):
    """Links planted in the served folder: one to a run outside, one inside a run to a file outside."""
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text(SECRET)
    shutil.copytree(served / "ref", outside / "elsewhere")
    (served / "escape").symlink_to(outside / "elsewhere", target_is_directory=True)
    shutil.copytree(served / "ref", served / "leaky")
    (served / "leaky" / "report.html").symlink_to(outside / "secret.txt")
    (served / "alias").symlink_to(served / "ref", target_is_directory=True)
    shutil.copytree(served / "ref", served / "reported")
    (served / "reported" / "report.html").write_text("<html><body>the report</body></html>")
    return outside


ATTACKS = [
    "/runs/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/runs/..%2f..%2fetc%2fpasswd", "/runs/%252e%252e%252fetc%252fpasswd",
    "/runs/%2fetc%2fpasswd", "/runs//etc/passwd", "/runs/ref%2f..%2f..%2f..%2fetc%2fpasswd", "/runs/ref%5c..%5csecret",
    "/runs/ref%00", "/runs/.hidden", "/runs/escape", "/runs/escape/report.html", "/runs/leaky", "/runs/leaky/report.html",
    "/api/runs/escape/metrics", "/api/runs/%2e%2e%2foutside/metrics", "/api/runs/..%2f..%2f/citizens/1",
    "/sweeps/..%2f..%2fetc", "/sweeps/ref", "/runs/sweeps/kappa", "/api/sweeps/%2fetc/summary",
    "/static/..%2f..%2f..%2fpyproject.toml", "/static/%2e%2e/%2e%2e/web/app.py", "/static/vendor/..%2f..%2fapp.py",
    "/api/jobs/..%2f..%2fetc", "/whatif/..%2fref", "/runs/C:%5cwindows", "/whatif?again=..%2f..%2fref",
]


@pytest.mark.parametrize("url", ATTACKS)
def test_path_traversal_is_refused(client, trap, url):
    answer = client.get(url)
    assert answer.status_code in (400, 404), (url, answer.status_code)
    for leak in (SECRET, "root:", "[build-system]", "def create_app", '"sha256"'):
        assert leak not in answer.text, (url, leak)


def test_links_inside_the_folder_are_served_and_links_out_are_not_listed(client, trap):
    names = {r["name"] for r in client.get("/api/runs").json()["runs"]}
    assert "escape" not in names and "leaky" not in names
    assert client.get("/runs/alias").status_code == 200  # a link whose target stays inside is fine
    report = client.get("/runs/reported/report.html")
    assert report.status_code == 200 and "the report" in report.text
    assert "default-src 'none'" in report.headers["content-security-policy"]


def _raw(base: str, line: str) -> str:
    host, port = base.split("//")[1].rstrip("/").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {line} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("latin-1")


@pytest.mark.parametrize("line", ["/runs/../../../../etc/passwd", "/runs/ref/../../../../etc/passwd",
                                  "/static/../../../../etc/passwd", "/static/../../web/app.py",
                                  "/api/runs/../../escape/metrics", "/runs/escape/../leaky/report.html"])
def test_raw_dot_dot_paths_on_a_live_server(served, trap, line):
    with background(create_app(served, scenarios_dir=SCENARIOS)) as base:
        answer = _raw(base, line)
    status = int(answer.split(" ", 2)[1])
    assert status in (400, 404), answer[:200]
    assert SECRET not in answer and "root:" not in answer and "def create_app" not in answer


def test_foreign_host_origin_and_large_body_are_refused(client):
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400
    cross = client.post("/api/whatif", data={"scenario": "reference"}, headers={"origin": "http://evil.example"})
    assert cross.status_code == 403
    big = client.post("/api/whatif", content=b"x" * (65 * 1024), headers={"content-type": "application/json"})
    assert big.status_code == 413 and "bytes" in big.json()["detail"]
    assert client.post(f"/api/jobs/{'2' * 8}-000000-abcdef/cancel").status_code == 404


# --- the command ------------------------------------------------------------------------------------------------

def test_serve_prints_its_address_and_answers(served):
    proc = subprocess.Popen([sys.executable, "-m", "socialcredit.cli", "serve", str(served), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        match = re.fullmatch(rf"Serving {re.escape(str(served))} at (http://127\.0\.0\.1:(\d+)/)", line)
        assert match, line
        import httpx

        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(match.group(1), timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert answer.status_code == 200 and "Runs and sweeps" in answer.text
    finally:
        proc.terminate()
        proc.wait(30)


def test_serve_warns_when_not_on_loopback(served, monkeypatch):
    from click.testing import CliRunner

    import socialcredit.web.serve as serving
    from socialcredit.cli import main

    seen = {}

    def fake(app, host, port, announce):
        seen.update(host=host, port=port, hosts=app.state.lab.max_jobs)
        announce(f"http://{host}:{port}/")

    monkeypatch.setattr(serving, "serve", fake)
    result = CliRunner().invoke(main, ["serve", str(served), "--host", "0.0.0.0", "--port", "8123", "--max-jobs", "3"])
    assert result.exit_code == 0, result.output
    assert "visible to the network" in result.output
    assert f"Serving {served} at http://0.0.0.0:8123/" in result.output
    assert seen == {"host": "0.0.0.0", "port": 8123, "hosts": 3}
    bad = CliRunner().invoke(main, ["serve", str(served), "--max-population", "1"])
    assert bad.exit_code == 2 and "--max-population" in bad.output


def test_import_socialcredit_stays_light():
    code = ("import sys, socialcredit, socialcredit.cli; "
            "assert not {'fastapi', 'uvicorn', 'plotly', 'jinja2'} & set(sys.modules), 'web imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
