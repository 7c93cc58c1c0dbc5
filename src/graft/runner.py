"""Start the ASGI server chosen in settings, and the zero-copy blob server when configured.

Granian is the default: on this project's benchmark (bench/README.md) it served more requests
per second than uvicorn on the same route and worker count. It sends files (ASGI `pathsend`)
by copying them through user space, though, so large blobs can go by `graft.blobserver`
(sendfile) on `blob_server_port` instead.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import os
import shutil
import socket
import time

from graft.settings import Settings

TARGET = "graft.server:app_factory"


def _prepare_metrics_dir(settings: Settings) -> None:
    # Several worker processes: each writes its metrics to files that /metrics sums up.
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        path = settings.data_dir / "prometheus"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def run_server(settings: Settings) -> None:
    _prepare_metrics_dir(settings)
    blob_servers = _start_blob_server(settings)
    try:
        _run_asgi(settings)
    finally:
        for proc in blob_servers:
            proc.terminate()
        for proc in blob_servers:
            proc.join(timeout=10)


def _start_blob_server(settings: Settings) -> list[multiprocessing.process.BaseProcess]:
    """The blob server: one process (gunicorn's arbiter) that runs one sending worker process
    per Graft worker on the blob port."""
    if settings.blob_server_port is None:
        return []
    from graft.blobs.urls import load_or_create_key
    from graft.blobserver import run_blob_server

    load_or_create_key(settings.keys_dir)  # before any worker or the blob server reads it
    # spawn, not fork: a fresh interpreter, nothing of this process's state
    proc = multiprocessing.get_context("spawn").Process(
        target=run_blob_server, name="graft-blob-server", daemon=True
    )
    proc.start()
    _wait_listening(proc, settings.host, settings.blob_server_port)
    return [proc]


def _wait_listening(proc: multiprocessing.process.BaseProcess, host: str, port: int) -> None:
    """Start serving only once the blob server accepts connections (or stop if it died)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not proc.is_alive():
            raise SystemExit(f"the blob server did not start (port {port}); see the log above")
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise SystemExit(f"the blob server did not listen on port {port} within 30 s")


def _run_asgi(settings: Settings) -> None:
    if settings.server == "uvicorn":
        import uvicorn

        uvicorn.run(
            TARGET,
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            access_log=False,  # Graft writes its own structured access log
            log_level=settings.log_level,
            proxy_headers=False,
        )
        return

    from granian import Granian
    from granian.constants import Interfaces

    rsgi = settings.granian_interface == "rsgi"
    Granian(
        "graft.server:rsgi_app_factory" if rsgi else TARGET,
        factory=True,
        address=settings.host,
        port=settings.port,
        workers=settings.workers,
        interface=Interfaces.RSGI if rsgi else Interfaces.ASGI,
        log_access=False,
        log_level=settings.log_level,  # type: ignore[arg-type]
    ).serve()
