"""``braggtile serve``: the HTTP service (FastAPI under uvicorn) with its Dask cluster."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import uvicorn

from service.auth import RedactSecrets
from service.settings import Limits, Settings
from tiling.cli import add_cluster_arguments

DESCRIPTION = (
    "Serve render jobs over HTTP: submit nanoBragg jobs, follow them as Server-Sent Events, "
    "read tiles, previews and the zarr store while they render. OpenAPI docs at /docs."
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="braggtile serve", description=DESCRIPTION)
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=8000,
        help="TCP port (default 8000; 0: any free port, named in --ready-file)",
    )
    p.add_argument(
        "--data", type=Path, default=Path("braggtile-data"), help="job folders and default DB"
    )
    add_cluster_arguments(p)
    p.add_argument("--database", metavar="URL", help="SQLAlchemy URL (default: SQLite in --data)")
    p.add_argument(
        "--warm",
        choices=["compile", "eager", "off"],
        default="compile",
        help="warm workers at start: compile the kernel (default), eager render only, or not",
    )
    p.add_argument(
        "--max-running-jobs", type=int, default=4, help="jobs rendering at once; the rest queue"
    )
    retention = p.add_argument_group("retention (finished jobs only; never queued or running)")
    retention.add_argument(
        "--retain-days",
        type=float,
        metavar="D",
        help="purge finished jobs unused for D days (default: keep)",
    )
    retention.add_argument(
        "--max-data-bytes",
        type=int,
        metavar="B",
        help="purge the least recently used finished jobs while job folders exceed B bytes",
    )
    limits = p.add_argument_group("limits (over a limit a job is refused with 413 naming it)")
    for name, field in Limits.model_fields.items():
        limits.add_argument(
            "--" + name.replace("_", "-"),
            type=int,
            metavar="N",
            help=f"{field.description} (default {field.default})",
        )
    p.add_argument(
        "--token",
        default=os.environ.get("BRAGGTILE_TOKEN") or None,
        help="bearer token required by every endpoint but /, /healthz, /metrics, /static and the "
        "OpenAPI pages (default: $BRAGGTILE_TOKEN; none)",
    )
    p.add_argument("--log-level", default="info", help="uvicorn log level")
    p.add_argument(
        "--ready-file",
        metavar="PATH",
        help="write the service's URL to PATH once it listens and its cluster is warm, and "
        "remove it when a signal makes it stop taking jobs (a hook for supervisors and tests)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the service until interrupted; returns the exit status."""
    from pydantic import ValidationError

    from service.app import create_app

    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = Settings(
            data=args.data,
            database=args.database,
            workers=args.workers,
            scheduler=args.scheduler,
            cluster=args.cluster,
            jobs=(args.min_jobs, args.max_jobs),
            torch_threads=args.torch_threads,
            warm=args.warm,
            max_running_jobs=args.max_running_jobs,
            token=args.token,
            retain_days=args.retain_days,
            max_data_bytes=args.max_data_bytes,
            limits=Limits(
                **{k: v for k in Limits.model_fields if (v := getattr(args, k)) is not None}
            ),
        )
    except ValidationError as err:
        first = err.errors()[0]
        print(
            f"braggtile serve: error: --{str(first['loc'][-1]).replace('_', '-')}: {first['msg']}",
            file=sys.stderr,
        )
        return 2
    if args.cluster is not None:  # the cluster starts in a thread: import dask-jobqueue here
        from engine.errors import UserInputError
        from tiling.batch import batch_module

        try:
            batch_module(args.cluster)
        except UserInputError as err:
            print(f"braggtile serve: error: {err}", file=sys.stderr)
            return 2
    app = create_app(settings)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level)
    logging.getLogger("uvicorn.access").addFilter(RedactSecrets())  # after uvicorn's set-up
    DrainingServer(config, ready_file=args.ready_file).run()
    return 0


class DrainingServer(uvicorn.Server):
    """uvicorn's server that, on SIGTERM or SIGINT, first stops taking jobs (requests still in
    flight get 503), then shuts down: running renders stop and stay resumable."""

    def __init__(self, config: uvicorn.Config, ready_file: str | None = None):
        super().__init__(config)
        self.ready_file = ready_file

    async def startup(self, sockets: Any = None) -> None:
        """uvicorn's start (lifespan: cluster up and warm; then the sockets listen), then the
        ready file, if asked for: the URL the service listens on (the port it bound, also for
        ``--port 0``)."""
        await super().startup(sockets)
        if self.ready_file and self.started and not self.should_exit:
            path = Path(self.ready_file)
            partial = path.with_name(path.name + ".partial")
            host, port = self.servers[0].sockets[0].getsockname()[:2]  # the bound port
            host = f"[{host}]" if ":" in host else host
            partial.write_text(f"http://{host}:{port}\n")
            partial.replace(path)

    def handle_exit(self, sig: int, frame: Any) -> None:
        service = getattr(self.config.app.state, "service", None)
        if service is not None:
            service.manager.drain()
        if self.ready_file:  # not ready any more: it takes no jobs (the hook's other half)
            Path(self.ready_file).unlink(missing_ok=True)
        super().handle_exit(sig, frame)
