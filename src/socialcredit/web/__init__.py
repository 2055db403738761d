"""The lab in a browser: ``socialcredit serve`` and :func:`create_app`.

A local web app over one folder of run and sweep folders: browse runs and
sweeps with interactive figures, change the rules of a shipped scenario and
compare the result with the unchanged city (the what-if explorer), and read
any citizen's story. FastAPI, Jinja2 templates and Plotly.js served by the app
itself (no internet access needed). See ``docs/web.md``.

Importing this package imports FastAPI; ``import socialcredit`` does not.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
