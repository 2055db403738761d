"""The HTML pages: the run list, a run, a sweep, a citizen, the what-if explorer and a what-if job.

Pages are rendered from Jinja2 templates with what is quick to read (names,
facts, tables); their charts are drawn in the browser by ``static/app.js``
from the JSON endpoints of :mod:`socialcredit.web.api`, so no page waits for
a slow computation such as an audit.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from ..runfolder import read_manifest
from . import data
from .api import FormErrors, citizen_id, form_spec, lab_of, list_all, start_whatif
from .paths import NotFound, job_folder, run_file, run_folder, sweep_folder

router = APIRouter()
HEADLINE = ("blacklisted", "black_by_record", "black_by_error", "black_by_association", "ties_cut_cum")
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"


def url(*parts: str) -> str:
    """A URL path from parts, each quoted (slashes inside a run name are kept)."""
    return "/" + "/".join(quote(str(p), safe="/") for p in parts)


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """Render a page template with the shared helpers."""
    lab = lab_of(request)
    return lab.templates.TemplateResponse(request, template, {"url": url, **context}, status_code=status)


@router.get("/")
def index(request: Request) -> Response:
    """Every run, sweep and what-if job of the served folder."""
    listing = list_all(request)
    return render(request, "index.html", page="index", root=lab_of(request).root, **listing)


@router.get("/runs/{name:path}/report.html")
def report(request: Request, name: str) -> Response:
    """The run's static HTML report, if ``socialcredit report`` wrote one into the folder."""
    root = lab_of(request).root
    path = run_file(root, run_folder(root, name), "report.html")
    return FileResponse(path, media_type="text/html", headers={"Content-Security-Policy": REPORT_CSP})


@router.get("/runs/{name:path}/citizens/{citizen}")
def citizen_page(request: Request, name: str, citizen: str) -> Response:
    """One citizen's story: the explanation, her timeline and her ego network."""
    run = run_folder(lab_of(request).root, name)
    cid = citizen_id(citizen)
    from ..explain import explain

    story = explain(run, cid)
    return render(request, "citizen.html", page="citizen", name=name, story=story,
                  meta=data.meta(read_manifest(run)),
                  page_data={"api": url("api", "runs", name, "citizens", str(cid)), "run": name,
                             "citizen_base": url("runs", name, "citizens") + "/"})


@router.get("/runs/{name:path}/citizens")
def citizens_page(request: Request, name: str, id: str | None = None) -> Response:
    """Find a citizen: search by id, or pick one from the black list by cause."""
    run = run_folder(lab_of(request).root, name)
    manifest = read_manifest(run)
    message = None
    if id is not None:
        try:
            cid = citizen_id(id)
            if cid >= manifest["citizens"]:
                raise NotFound(f"citizen {cid} is not in this run (ids 0..{manifest['citizens'] - 1})")
            return RedirectResponse(url("runs", name, "citizens", str(cid)), status_code=303)
        except NotFound as exc:
            message = str(exc)
    return render(request, "citizens.html", status=404 if message else 200, page="citizens", name=name,
                  meta=data.meta(manifest), blacklist=data.blacklist(run, 200), message=message, query=id)


@router.get("/runs/{name:path}")
def run_page(request: Request, name: str) -> Response:
    """A run: its facts, interactive versions of the report's figures, its audit and black list."""
    root = lab_of(request).root
    run = run_folder(root, name)
    summary = data.run_summary(root, run)
    manifest = read_manifest(run)
    return render(request, "run.html", page="run", name=name, summary=summary, meta=data.meta(manifest),
                  blacklist=data.blacklist(run, 20),
                  page_data={"metrics": url("api", "runs", name, "metrics"), "audit": url("api", "runs", name, "audit"),
                             "citizen_base": url("runs", name, "citizens") + "/"})


@router.get("/sweeps/{name:path}")
def sweep_page(request: Request, name: str) -> Response:
    """A sweep: the summary table (mean and 95 % CI per cell) and a chart comparing the cells."""
    folder = sweep_folder(lab_of(request).root, name)
    summary = data.sweep(folder)
    shown = [m for m in HEADLINE if m in summary["measures"]]
    return render(request, "sweep.html", page="sweep", name=name, summary=summary, shown=shown,
                  page_data={"summary": url("api", "sweeps", name, "summary"),
                             "series": url("api", "sweeps", name, "series")})


@router.get("/whatif")
def whatif_page(request: Request, scenario: str | None = None, again: str | None = None) -> Response:
    """The what-if explorer's form, for a shipped scenario (optionally filled in from an earlier job)."""
    lab = lab_of(request)
    values: dict[str, Any] = {}
    if again:
        job = lab.jobs.status(job_folder(lab.root, again))
        scenario = scenario or job.get("scenario")
        values = {**(job.get("city") or {}), **(job.get("changes") or {})}
    return _form(request, scenario, values, {}, 200)


def _form(request: Request, scenario: str | None, values: dict[str, Any], errors: dict[str, str],
          status: int) -> Response:
    lab = lab_of(request)
    names = sorted(lab.scenarios)
    if not names:
        return render(request, "whatif.html", status=status, page="whatif", scenarios=[], spec=None,
                      values={}, errors=errors)
    if scenario not in lab.scenarios:
        scenario = "reference" if "reference" in lab.scenarios else names[0]
    spec = form_spec(lab, scenario)
    return render(request, "whatif.html", status=status, page="whatif", scenarios=names, spec=spec,
                  values=values, errors=errors, running=lab.jobs.running())


@router.post("/whatif")
async def whatif_submit(request: Request) -> Response:
    """The form posted without script: start the job, or show the form again with each message beside its field."""
    from starlette.concurrency import run_in_threadpool

    submitted = dict((await request.form()).items())
    try:
        job_id = await run_in_threadpool(start_whatif, lab_of(request), submitted)
    except FormErrors as exc:
        return _form(request, str(submitted.get("scenario")), submitted, exc.errors, 422)
    return RedirectResponse(url("whatif", job_id), status_code=303)


@router.get("/whatif/{job_id}")
def job_page(request: Request, job_id: str) -> Response:
    """A what-if job: progress and cancel while it computes, then the two runs side by side."""
    lab = lab_of(request)
    job = lab.jobs.status(job_folder(lab.root, job_id))
    return render(request, "job.html", page="job", job=job,
                  page_data={"status": url("api", "jobs", job_id), "cancel": url("api", "jobs", job_id, "cancel"),
                             "base_metrics": url("api", "runs", job["base"] or "", "metrics"),
                             "variant_metrics": url("api", "runs", job["variant"] or "", "metrics")})
