"""Prometheus metrics of one server (own registry, so several apps in one process don't collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("r2d_requests_total", "Chat completion requests answered, by HTTP status",
                                ["policy", "stream", "status"], registry=r)
        self.errors = Counter("r2d_errors_total", "Requests that ended in an error, by kind", ["kind"], registry=r)
        self.latency = Histogram("r2d_request_latency_seconds", "Chat completion latency (request to last byte)",
                                 ["policy", "stream"], buckets=LATENCY_BUCKETS, registry=r)
        self.prompt_tokens = Counter("r2d_prompt_tokens_total", "Prompt tokens", registry=r)
        self.completion_tokens = Counter("r2d_completion_tokens_total", "Completion tokens", registry=r)
        self.verdicts = Counter("r2d_verdicts_total", "Replies by policy and the model's own verdict "
                                "(unsafe: an [UNSAFE] pivot, safe: pivots without one, none: no pivot)",
                                ["policy", "verdict", "policy_changed"], registry=r)
        self.in_flight = Gauge("r2d_requests_in_flight", "Requests admitted and not yet answered", registry=r)
        self.batch_size = Histogram("r2d_batch_size", "Requests per generate call (dynamic batching)",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.batch_seconds = Histogram("r2d_batch_seconds", "Seconds per generate call", buckets=LATENCY_BUCKETS,
                                       registry=r)

    def on_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
