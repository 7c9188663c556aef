"""Prometheus metrics: one registry per app (built in `create_app`, served at ``/metrics``).

The edge middleware counts every request and times it by route template and status. Other code adds its
own through `MetricsDep`::

    redemptions = metrics.counter("amiyan_redemptions", "Voucher redemptions answered", ["result"])
    redemptions.labels(result="ok").inc()

`counter`, `gauge` and `histogram` return the same metric for the same name, so a route may ask on every
request. `sample_on_scrape` registers a gauge whose value is read when Prometheus scrapes (the audit
integration lag is one: the age of the oldest event waiting in the inbox).
"""

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Final, TypeVar

from fastapi import Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest as exposition_text
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# From 1 ms to 10 s: a redemption should take a few ms; anything past a second is an incident.
LATENCY_BUCKETS_S: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MetricT = TypeVar("MetricT", Counter, Gauge, Histogram)


class _SampledGauge(Collector):
    def __init__(self, name: str, documentation: str, sample: Callable[[], float | None]) -> None:
        self.name, self.documentation, self.sample = name, documentation, sample

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterable[Metric]:
        value = self.sample()
        return [] if value is None else [GaugeMetricFamily(self.name, self.documentation, value=value)]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._metrics: dict[str, Counter | Gauge | Histogram] = {}
        self._creating = threading.Lock()
        labels = ["method", "route", "status"]
        self.requests = self.counter("amiyan_http_requests", "HTTP requests answered", labels)
        self.latency = self.histogram(
            "amiyan_http_request_duration_seconds",
            "Time from the request's arrival to its response's start",
            labels,
            LATENCY_BUCKETS_S,
        )

    def observe_request(self, method: str, route: str, status: int, duration_s: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(duration_s)

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        return self._get_or_create(Counter, name, documentation, labels)

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        return self._get_or_create(Gauge, name, documentation, labels)

    def histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS_S,
    ) -> Histogram:
        return self._get_or_create(Histogram, name, documentation, labels, buckets=buckets)

    def sample_on_scrape(self, name: str, documentation: str, sample: Callable[[], float | None]) -> None:
        """A gauge read at each scrape; `sample` returning None leaves it out of that scrape."""
        self.registry.register(_SampledGauge(name, documentation, sample))

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return exposition_text(self.registry), CONTENT_TYPE_LATEST

    def _get_or_create(
        self, kind: type[MetricT], name: str, documentation: str, labels: Sequence[str], **options: Any
    ) -> MetricT:
        with self._creating:
            existing = self._metrics.get(name)
            if existing is None:
                existing = self._metrics[name] = kind(
                    name, documentation, labels, registry=self.registry, **options
                )
        if not isinstance(existing, kind):
            raise ValueError(f"metric {name} exists as a {type(existing).__name__}")
        return existing


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]
