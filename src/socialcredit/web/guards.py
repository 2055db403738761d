"""Guard rails around every request: host names, origins, body size and security headers.

:class:`Guards` is a small ASGI middleware that

* answers 400 when the ``Host`` header is not one the server was started for
  (a page on another site cannot reach the app through DNS rebinding);
* answers 403 to a state-changing request (``POST`` and the like) sent from a
  page of another origin (a cross-site form cannot start or cancel runs);
* answers 413 when a request body is larger than ``max_body`` bytes;
* adds a Content-Security-Policy (scripts only from the app itself: the app
  works without internet access and loads nothing from elsewhere),
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy`` and
  ``X-Frame-Options`` to every response that does not set its own.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def _host_name(value: str) -> str:
    """``example.org:8000`` -> ``example.org``; ``[::1]:80`` -> ``::1``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guards:
    """ASGI middleware (see the module docstring).

    Parameters
    ----------
    app : ASGI app
        The wrapped application.
    allowed_hosts : sequence of str or None
        Host names accepted in the ``Host`` header; None accepts any (a server on all interfaces).
    max_body : int
        Largest request body in bytes.
    """

    def __init__(self, app: Any, allowed_hosts: list[str] | None, max_body: int):
        self.app = app
        self.allowed = None if allowed_hosts is None else {_host_name(h) for h in allowed_hosts}
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if self.allowed is not None and _host_name(host) not in self.allowed:
            await _refuse(send, 400, f"this server does not answer for host {host[:100]!r}; "
                                     "open it at the address it printed when it started")
            return
        if scope["method"] in UNSAFE:
            origin = headers.get("origin")
            if origin and origin != "null" and urlsplit(origin).netloc.lower() != host.lower():
                await _refuse(send, 403, "a page of another site cannot send requests to this server")
                return
            if headers.get("sec-fetch-site") == "cross-site":
                await _refuse(send, 403, "a page of another site cannot send requests to this server")
                return
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                await _refuse(send, 413, f"the request body is larger than this server accepts "
                                         f"({self.max_body:,} bytes)")
                return
            body, more = bytearray(), True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > self.max_body:
                    await _refuse(send, 413, f"the request body is larger than this server accepts "
                                             f"({self.max_body:,} bytes)")
                    return
            receive = _replay(bytes(body), receive)
        await self.app(scope, receive, _with_headers(send))


def _replay(body: bytes, receive: Any) -> Any:
    """An ASGI ``receive`` that hands the already-read body to the app, then defers to the real one."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_headers(send: Any) -> Any:
    """An ASGI ``send`` that adds the security headers a response does not set itself."""
    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {k.lower() for k, _ in headers}
            for name, value in ((b"content-security-policy", CSP), (b"x-content-type-options", "nosniff"),
                                (b"referrer-policy", "same-origin"), (b"x-frame-options", "DENY")):
                if name not in present:
                    headers.append((name, value.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


async def _refuse(send: Any, status: int, detail: str) -> None:
    """Answer ``status`` with ``{"detail": detail}`` without calling the app."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
