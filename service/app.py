"""The FastAPI application: ``create_app(settings)`` wires the database, the Dask cluster, the
job manager and the routers; the cluster starts (and its workers warm) before the first request.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
from distributed import Client
from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine

from service import db
from service.auth import Tickets, TokenGate, require
from service.bodylimit import BodyLimit
from service.errors import add_exception_handlers
from service.events import Hub
from service.jobs import JobManager
from service.metrics import Metrics
from service.models import ErrorBody
from service.routers import exports, jobs, ops, pixels, processes, zarr
from service.settings import Settings
from tiling.cluster import connect
from tiling.store import software_version
from tiling.warm import warm_cluster

log = logging.getLogger("braggtile.service")
STATIC = Path(__file__).resolve().parent / "static"
T = TypeVar("T")


def hold(factory: Callable[[], AbstractContextManager[T]]) -> tuple[T, Callable[[], None]]:
    """Enter ``factory()`` in a thread of its own; returns its value and a function that exits
    it in that same thread (Dask's Client must leave the context it entered)."""
    entered: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue()
    stop = threading.Event()

    def body() -> None:
        started = False
        try:
            with factory() as value:
                started = True
                entered.put((value, None))
                stop.wait()
        except BaseException as err:  # noqa: BLE001 - reported to the caller or logged
            if started:
                log.exception("closing %s failed", factory)
            else:
                entered.put((None, err))

    thread = threading.Thread(target=body, name="braggtile-cluster", daemon=True)
    thread.start()
    value, error = entered.get()
    if error is not None:
        thread.join()
        raise error

    def release() -> None:
        stop.set()
        thread.join()

    return value, release


@dataclass
class Service:
    """Everything one running service holds; ``start`` and ``stop`` run in a worker thread."""

    settings: Settings
    engine: Engine
    client: Client
    manager: JobManager
    hub: Hub
    metrics: Metrics
    stack: ExitStack = field(default_factory=ExitStack)

    @classmethod
    def start(cls, settings: Settings) -> Service:
        settings.data.mkdir(parents=True, exist_ok=True)
        stack = ExitStack()
        try:
            engine = db.connect(settings.database_url)
            stack.callback(engine.dispose)
            client, release = hold(
                lambda: connect(
                    settings.scheduler,
                    settings.workers,
                    settings.torch_threads,
                    cluster=settings.cluster,
                    jobs=settings.jobs,
                )
            )
            stack.callback(release)
            timings = warm_cluster(client, settings.warm)
            log.info("workers warmed: %s", timings)
            hub, metrics = Hub(), Metrics()
            manager = JobManager(settings, engine, client, hub, metrics)
            metrics.watch_jobs(manager.status_counts)
            resumed = manager.recover()
            if resumed:
                log.info("resuming %d job(s) of a previous run: %s", len(resumed), resumed)
        except BaseException:
            stack.close()
            raise
        return cls(settings, engine, client, manager, hub, metrics, stack)

    def stop(self) -> None:
        self.manager.close()
        self.stack.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The braggtile HTTP service for ``settings`` (default: ./braggtile-data, local cluster)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await anyio.to_thread.run_sync(Service.start, settings)
        service.hub.bind(asyncio.get_running_loop())
        app.state.service = service
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(service.stop)

    app = FastAPI(
        title="braggtile",
        version=software_version(),
        description=(
            "Render nanoBragg diffraction images tile by tile on Dask workers; follow jobs as "
            "Server-Sent Events; read tiles, previews, C's file formats and the OME-Zarr store."
        ),
        lifespan=lifespan,
    )
    add_exception_handlers(app)
    app.state.tickets = Tickets()
    app.add_middleware(BodyLimit, limit=settings.limits.max_body_bytes)
    app.add_middleware(TokenGate, token=settings.token, tickets=app.state.tickets)  # outermost
    for module in (jobs, pixels, exports, zarr):
        app.include_router(
            module.router, dependencies=[Depends(require)], responses={401: {"model": ErrorBody}}
        )
    app.include_router(ops.router)  # /healthz, /metrics, the viewer page: open (auth.OPEN_PATHS)
    app.include_router(processes.router)  # OGC API - Processes (landing page, conformance open)
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    return app
