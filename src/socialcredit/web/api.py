"""The JSON endpoints: what the pages' charts and the what-if explorer fetch.

Every name in a URL goes through :mod:`socialcredit.web.paths`; refusals are
JSON ``{"detail": message}`` with 404 (unknown or unsafe name), 409 (a job
that cannot be cancelled), 413 (a body too large), 422 (bad form input, as
``{"errors": {field: message}}``) or 429 (too many runs computing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from . import data
from .forms import SECTIONS, build_form, read_form
from .paths import NotFound, job_folder, jsonable, run_folder, scan, sweep_folder

router = APIRouter(prefix="/api")


class FormErrors(ValueError):
    """A what-if form with bad input: ``errors`` maps each input name to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def lab_of(request: Request) -> Any:
    """The app's :class:`~socialcredit.web.app.Lab`."""
    return request.app.state.lab


def scenario_file(lab: Any, name: str) -> Any:
    """The shipped scenario file called ``name``; :class:`NotFound` for any other name."""
    if name not in lab.scenarios:
        raise NotFound(f"no shipped scenario is called {str(name)[:60]!r}; use one of {sorted(lab.scenarios)}")
    return lab.scenarios[name]


def form_spec(lab: Any, scenario: str) -> dict[str, Any]:
    """The what-if form of a scenario: its controls (bounds from the schema) and the server's limits."""
    controls = build_form(scenario_file(lab, scenario), lab.max_population)
    return {"scenario": scenario, "sections": SECTIONS, "controls": [c.to_dict() for c in controls],
            "limits": {"max_population": lab.max_population, "max_jobs": lab.max_jobs}}


def start_whatif(lab: Any, submitted: Mapping[str, Any]) -> str:
    """Validate a submitted what-if form and start its job; :class:`FormErrors` on bad input."""
    name = str(submitted.get("scenario", ""))
    if name not in lab.scenarios:
        raise FormErrors({"scenario": f"choose one of the shipped scenarios: {', '.join(sorted(lab.scenarios))}"})
    path = lab.scenarios[name]
    controls = build_form(path, lab.max_population)
    city, changes, errors = read_form(path, controls, submitted, lab.max_population)
    if errors:
        raise FormErrors(errors)
    defaults = {c.name: c.value for c in controls if c.name in changes}
    return lab.jobs.submit(name, path, city, changes, defaults)


@router.get("/runs")
def list_all(request: Request) -> dict[str, Any]:
    """Every run, sweep and what-if job of the served folder."""
    lab = lab_of(request)
    found = scan(lab.root)
    runs = []
    for name in found["runs"]:
        try:
            runs.append(data.run_summary(lab.root, run_folder(lab.root, name)))
        except (NotFound, OSError, ValueError):
            continue  # a folder that is not servable is not listed
    return jsonable({"runs": runs, "sweeps": found["sweeps"], "jobs": lab.jobs.list()})


@router.get("/runs/{name:path}/metrics")
def run_metrics(request: Request, name: str) -> dict[str, Any]:
    """``metrics.parquet`` of a run, column by column, with what the charts need to know."""
    return data.metrics(run_folder(lab_of(request).root, name))


@router.get("/runs/{name:path}/audit")
def run_audit(request: Request, name: str) -> dict[str, Any]:
    """The audit of a run (computed on the first request, then cached)."""
    lab = lab_of(request)
    return lab.audits.get(run_folder(lab.root, name))


@router.get("/runs/{name:path}/blacklist")
def run_blacklist(request: Request, name: str, limit: int = 100) -> dict[str, Any]:
    """The black list at the end of a run by cause (``limit`` citizens of each, at most 2,000)."""
    return data.blacklist(run_folder(lab_of(request).root, name), max(0, min(limit, 2000)))


@router.get("/runs/{name:path}/citizens/{citizen}")
def run_citizen(request: Request, name: str, citizen: str) -> dict[str, Any]:
    """A citizen's story, ego network and the run's grades."""
    run = run_folder(lab_of(request).root, name)
    return data.citizen(run, citizen_id(citizen))


def citizen_id(text: str) -> int:
    """A citizen id from a URL; :class:`NotFound` if it is not a whole number."""
    text = str(text).strip()
    if not text.isdigit() or len(text) > 12:
        raise NotFound(f"{text[:40]!r} is not a citizen id; ids are whole numbers from 0")
    return int(text)


@router.get("/sweeps/{name:path}/summary")
def sweep_summary(request: Request, name: str) -> dict[str, Any]:
    """A sweep's summary table: mean and 95 % CI of every measure per cell."""
    return data.sweep(sweep_folder(lab_of(request).root, name))


@router.get("/sweeps/{name:path}/series")
def sweep_series(request: Request, name: str, measure: str = "blacklisted") -> dict[str, Any]:
    """Mean of one metric over the replicates, per cell and step."""
    return data.sweep_series(sweep_folder(lab_of(request).root, name), measure)


@router.get("/scenarios")
def scenarios(request: Request) -> dict[str, Any]:
    """The shipped scenarios the what-if explorer offers."""
    return {"scenarios": sorted(lab_of(request).scenarios)}


@router.get("/scenarios/{scenario}/form")
def scenario_form(request: Request, scenario: str) -> dict[str, Any]:
    """The what-if form of a scenario (see :func:`form_spec`)."""
    return jsonable(form_spec(lab_of(request), scenario))


@router.post("/whatif")
async def whatif(request: Request) -> JSONResponse:
    """Start a what-if job from a JSON object or a form; 202 with its id, 422 with field messages."""
    lab = lab_of(request)
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            submitted = await request.json()
        except ValueError:
            return JSONResponse({"errors": {"_form": "the body is not valid JSON"}}, status_code=422)
        if not isinstance(submitted, dict):
            return JSONResponse({"errors": {"_form": "send a JSON object of field: value"}}, status_code=422)
        submitted = {str(k): "" if v is None else str(v) for k, v in submitted.items()}
    else:
        submitted = dict((await request.form()).items())
    try:
        from starlette.concurrency import run_in_threadpool

        job_id = await run_in_threadpool(start_whatif, lab, submitted)
    except FormErrors as exc:
        return JSONResponse({"errors": exc.errors}, status_code=422)
    return JSONResponse({"job": job_id, "url": f"/whatif/{job_id}", "status_url": f"/api/jobs/{job_id}"},
                        status_code=202)


@router.get("/jobs/{job_id}")
def job_status(request: Request, job_id: str) -> dict[str, Any]:
    """A what-if job: status, progress, error, and when done its comparison."""
    lab = lab_of(request)
    return jsonable(lab.jobs.status(job_folder(lab.root, job_id)))


@router.post("/jobs/{job_id}/cancel")
def job_cancel(request: Request, job_id: str) -> dict[str, Any]:
    """Cancel a running job (409 if it is not running)."""
    lab = lab_of(request)
    return jsonable(lab.jobs.cancel(job_folder(lab.root, job_id)))
