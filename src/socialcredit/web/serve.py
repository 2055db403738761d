"""Running the app: on a chosen or free port, in the foreground or in a background thread.

:func:`serve` is what ``socialcredit serve`` calls: it binds the socket first
(so ``port=0`` picks a free port and the real address can be printed before
the server starts), then runs uvicorn on it. :func:`background` runs a server
in a thread of the current process and yields its address, for notebooks and
tests.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port=0``: a free port chosen by the system)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(128)
    return sock


def address(sock: socket.socket, host: str) -> str:
    """The URL a browser opens for a server on ``sock``."""
    port = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host.strip("[]") else host
    return f"http://{shown}:{port}/"


def _server(app: Any, log_level: str):
    """A uvicorn server for ``app`` (no access log; running jobs are cancelled at shutdown)."""
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


def serve(app: Any, host: str, port: int, announce: Callable[[str], None] = print, log_level: str = "warning") -> None:
    """Bind ``host:port``, call ``announce`` with the address, then serve until interrupted."""
    sock = bind(host, port)
    announce(address(sock, host))
    _server(app, log_level).run(sockets=[sock])


@contextmanager
def background(app: Any, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` in a background thread; yields its address and stops the server on exit."""
    sock = bind(host, port)
    server = _server(app, "warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="socialcredit-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the web server did not start")
        time.sleep(0.02)
    try:
        yield address(sock, host)
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
