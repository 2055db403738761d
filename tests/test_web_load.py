"""A bounded load test on loopback: 20 concurrent page and data requests while a what-if computes, all answered."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

import socialcredit as sc
from socialcredit.scenario import load_scenario
from socialcredit.web import create_app
from socialcredit.web.serve import background

ROOT = Path(__file__).resolve().parents[1]
CONCURRENT = 20
BOUND_S = 30.0
CITY = 50_000  # rongcheng at this size computes for about ten seconds per run


@pytest.fixture(scope="module")
def server(tmp_path_factory, reference_path):
    root = tmp_path_factory.mktemp("load-served")
    sc.run(load_scenario(reference_path, ["population.size=1500"]), out=root / "ref")
    with background(create_app(root, max_population=CITY, scenarios_dir=ROOT / "scenarios")) as base:
        yield base


def _urls(job: str) -> list[str]:
    """A mix of pages and JSON data, ``api/jobs/<job>`` twice among them."""
    mix = ["", "runs/ref", "api/runs/ref/metrics", "api/runs/ref/blacklist", "runs/ref/citizens/5",
           "api/runs/ref/citizens/5", f"api/jobs/{job}", "whatif", "static/app.js", "api/runs", "api/runs/ref/audit"]
    return [mix[i % len(mix)] for i in range(CONCURRENT)]


async def _fire(base: str, urls: list[str]) -> list[tuple[str, int, float, str]]:
    async with httpx.AsyncClient(base_url=base, timeout=BOUND_S) as client:
        async def one(url: str):
            t0 = time.perf_counter()
            answer = await client.get("/" + url)
            status = answer.json().get("status") if url.startswith("api/jobs/") else ""
            return url, answer.status_code, time.perf_counter() - t0, status

        return await asyncio.wait_for(asyncio.gather(*(one(u) for u in urls)), BOUND_S)


def test_twenty_concurrent_requests_while_a_run_computes(server):
    with httpx.Client(base_url=server, timeout=30) as client:
        started = client.post("/api/whatif", data={"scenario": "rongcheng", "population.size": str(CITY), "seed": "5"})
        assert started.status_code == 202, started.text
        job = started.json()["job"]
        deadline = time.monotonic() + 120
        while True:  # wait until the child process is simulating days
            status = client.get(f"/api/jobs/{job}").json()
            if status["status"] != "running" or (status.get("stage") == "base" and status.get("day", 0) > 0):
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        assert status["status"] == "running" and status["stage"] == "base", status
        t0 = time.perf_counter()
        answers = asyncio.run(_fire(server, _urls(job)))
        elapsed = time.perf_counter() - t0
        after = client.get(f"/api/jobs/{job}").json()
        print(f"{len(answers)} requests answered in {elapsed:.2f} s while the job was at {after.get('stage')} "
              f"day {after.get('day')}; slowest {max(a[2] for a in answers):.2f} s")
        for url, code, took, _ in sorted(answers, key=lambda a: -a[2])[:6]:
            print(f"  {took:.2f} s  {code}  /{url}")
        assert len(answers) == CONCURRENT
        assert all(code == 200 for _, code, _, _ in answers), answers
        assert elapsed < BOUND_S
        # the load really overlapped the computation: the job was still running when all were answered
        assert after["status"] == "running", after
        assert [s for url, _, _, s in answers if url.startswith("api/jobs/")] == ["running"] * 2
        cancelled = client.post(f"/api/jobs/{job}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
