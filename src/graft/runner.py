"""Start the ASGI server chosen in settings. Granian is the default: on this project's
benchmark (bench/README.md) it served more requests per second than uvicorn on the same route
and worker count, and it implements the ASGI `pathsend` extension used for zero-copy files."""

from __future__ import annotations

import os
import shutil

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

    Granian(
        TARGET,
        factory=True,
        address=settings.host,
        port=settings.port,
        workers=settings.workers,
        interface=Interfaces.ASGI,
        log_access=False,
        log_level=settings.log_level,  # type: ignore[arg-type]
    ).serve()
