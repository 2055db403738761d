"""The web app: :func:`create_app` builds it for one served folder.

The app is FastAPI with Jinja2 templates (:mod:`socialcredit.web.pages`), JSON
endpoints for the charts (:mod:`socialcredit.web.api`), its own small script
and style sheet, and Plotly.js served from the installed ``plotly`` package,
so every page works without internet access. Its state (:class:`Lab`) holds
the served folder, the shipped scenarios, the limits, the what-if jobs and the
audit cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from ..errors import RunFolderError
from .data import AuditCache
from .forms import shipped_scenarios
from .guards import LOOPBACK_HOSTS, Guards
from .jobs import JobConflict, Jobs, TooManyJobs
from .paths import NotFound

HERE = Path(__file__).resolve().parent
#: The repository's ``scenarios/`` folder, beside ``src/`` in a source checkout (editable install).
_CHECKOUT_SCENARIOS = HERE.parents[2] / "scenarios"
#: The scenarios of the source checkout; for an installed copy, ``scenarios/`` of the working directory.
DEFAULT_SCENARIOS = _CHECKOUT_SCENARIOS if _CHECKOUT_SCENARIOS.is_dir() else Path("scenarios")


def plotly_js() -> Path:
    """The Plotly.js bundle shipped inside the installed ``plotly`` Python package."""
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


@dataclass
class Lab:
    """Everything the routes share.

    Attributes
    ----------
    root : Path
        The served folder, resolved; the app reads and writes only inside it
        (and reads the shipped scenario files by name).
    scenarios : dict of str to Path
        Shipped scenario files by name.
    max_population, max_jobs : int
        Largest what-if city and most what-if jobs running at once.
    jobs : Jobs
        The what-if jobs.
    audits : AuditCache
        Audits of runs, computed on demand.
    templates : Jinja2Templates
        The page templates.
    """

    root: Path
    scenarios: dict[str, Path]
    max_population: int
    max_jobs: int
    jobs: Jobs
    audits: AuditCache = field(default_factory=AuditCache)
    templates: Any = None


def create_app(root: str | Path, *, max_population: int = 50_000, max_jobs: int = 2,
               scenarios_dir: str | Path | None = DEFAULT_SCENARIOS, max_memory: float | None = None,
               max_body: int = 64 * 1024, allowed_hosts: list[str] | None = None) -> FastAPI:
    """Build the web app serving the run and sweep folders under ``root``.

    Parameters
    ----------
    root : path
        The served folder (created if missing). What-if runs are written to ``root/whatif``.
    max_population : int
        Largest population a what-if may ask for.
    max_jobs : int
        What-if jobs allowed to compute at once; one more is refused (429).
    scenarios_dir : path, optional
        Folder of the shipped scenarios offered by the what-if explorer (default: the
        repository's ``scenarios/``). Only its ``*.toml`` files are read, by name.
    max_memory : float, optional
        Memory limit in bytes for each what-if run's pre-run check (default: what is available).
    max_body : int
        Largest request body in bytes (413 beyond).
    allowed_hosts : list of str, optional
        Host names the app answers for (default: the loopback names; pass ``["*"]`` for any).

    Returns
    -------
    FastAPI
        The app; ``app.state.lab`` is its :class:`Lab`.
    """
    if max_population < 2:
        raise ValueError(f"max_population must be at least 2 (got {max_population})")
    if max_jobs < 1:
        raise ValueError(f"max_jobs must be at least 1 (got {max_jobs})")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    lab = Lab(root=root, scenarios=shipped_scenarios(Path(scenarios_dir) if scenarios_dir else None),
              max_population=max_population, max_jobs=max_jobs, jobs=Jobs(root, max_jobs, max_memory))
    lab.templates = Jinja2Templates(directory=str(HERE / "templates"))
    lab.templates.env.globals["lab"] = lab

    app = FastAPI(title="socialcredit lab", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=_lifespan(lab))
    app.state.lab = lab
    hosts = list(LOOPBACK_HOSTS) if allowed_hosts is None else allowed_hosts
    app.add_middleware(Guards, allowed_hosts=None if "*" in hosts else hosts, max_body=max_body)

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def vendor_plotly() -> FileResponse:
        """Plotly.js from the installed ``plotly`` package (the pages load nothing from elsewhere)."""
        return FileResponse(plotly_js(), media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    from .api import router as api_router
    from .pages import router as pages_router

    app.include_router(api_router)
    app.include_router(pages_router)
    _errors(app, lab)
    return app


def _lifespan(lab: Lab):
    """What happens when the server stops: running what-if jobs are cancelled."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        lab.jobs.shutdown()

    return lifespan


def _errors(app: FastAPI, lab: Lab) -> None:
    """Clear answers for refusals and failures: JSON under /api, a page elsewhere."""

    def answer(request: Request, status: int, detail: str) -> Response:
        """``{"detail": ...}`` for the JSON endpoints, the error page for the others."""
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": detail}, status_code=status)
        titles = {404: "Not found", 409: "Not possible now", 429: "Too many runs", 500: "Something failed"}
        return lab.templates.TemplateResponse(request, "error.html", {
            "status": status, "title": titles.get(status, "Refused"), "detail": detail}, status_code=status)

    @app.exception_handler(NotFound)
    @app.exception_handler(RunFolderError)
    @app.exception_handler(IndexError)
    async def not_found(request: Request, exc: Exception) -> Response:
        return answer(request, 404, str(exc))

    @app.exception_handler(TooManyJobs)
    async def too_many(request: Request, exc: Exception) -> Response:
        return answer(request, 429, str(exc))

    @app.exception_handler(JobConflict)
    async def conflict(request: Request, exc: Exception) -> Response:
        return answer(request, 409, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else "refused"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"there is no page at {request.url.path[:200]}"
        return answer(request, exc.status_code, detail)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> Response:
        return answer(request, 500, f"{exc.__class__.__name__}: {exc}")
