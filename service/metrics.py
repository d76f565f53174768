"""Prometheus metrics of one service: jobs by status, tiles rendered, tile render seconds."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.models import Status

#: Upper bounds of the tile-seconds histogram, s.
TILE_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _JobsByStatus(Collector):
    """``braggtile_jobs{status=...}``, counted from the database at scrape time."""

    def __init__(self, counts: Callable[[], dict[str, int]]):
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("braggtile_jobs", "Jobs by status", labels=["status"])
        counts = self.counts()
        for status in Status.__args__:
            gauge.add_metric([status], counts.get(status, 0))
        yield gauge


class Metrics:
    """The service's own registry (never the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tiles = Counter(
            "braggtile_tiles_rendered", "Tiles rendered by this service", registry=self.registry
        )
        self.tile_seconds = Histogram(
            "braggtile_tile_seconds",
            "Wall time of one tile on its worker: set-up lookup, render and chunk write (s)",
            buckets=TILE_SECONDS_BUCKETS,
            registry=self.registry,
        )

    def watch_jobs(self, counts: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_JobsByStatus(counts))

    def tile_done(self, seconds: float) -> None:
        self.tiles.inc()
        self.tile_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
