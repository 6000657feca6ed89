"""Prometheus metrics of one service process, in their own registry (not the library's global one), so
that two apps in one process (tests, or an app re-created) never collide over metric names.

Route labels are route templates (``/v1/predict``), never raw paths, so a scan of random URLs cannot
grow the number of series without limit.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from finsent.vocabulary import LABELS

# Loopback requests take about 1-30 ms on CPU; a queue under load pushes them toward seconds.
LATENCY_BUCKETS_S = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("finsent_requests", "HTTP requests by route, method and status", ["route", "method", "status"], registry=r)
        self.errors = Counter(
            "finsent_request_errors", "Requests answered 4xx or 5xx, by route and status", ["route", "status"], registry=r
        )
        self.latency = Histogram("finsent_request_seconds", "Request latency by route", ["route"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.batch_texts = Histogram("finsent_batch_texts", "Texts per forward pass (merged requests)", buckets=BATCH_BUCKETS, registry=r)
        self.batch_requests = Histogram(
            "finsent_batch_requests", "Requests merged into one forward pass", buckets=BATCH_BUCKETS, registry=r
        )
        self.queue_texts = Gauge("finsent_queue_texts", "Texts waiting to be scored", registry=r)
        self.rejected_full = Counter("finsent_queue_rejections", "Requests refused with 503 because the queue was full", registry=r)
        self.predicted = Counter("finsent_predictions", "Texts scored, by predicted class", ["label"], registry=r)
        for label in LABELS:  # every class shows from the start, at 0
            self.predicted.labels(label=label)
        self.model = Info("finsent_model", "The model version serving now", registry=r)
        self.model_swaps = Counter("finsent_model_swaps", "Times a new champion was swapped in", registry=r)
        self.model_load_failures = Counter("finsent_model_load_failures", "Champion versions that failed to load", registry=r)
        self.model_load_failing = Gauge(
            "finsent_model_load_failing", "1 while the registry's champion could not be loaded (an older one serves)", registry=r
        )
        self.registry_errors = Counter(
            "finsent_registry_poll_errors", "Champion alias checks that could not reach the registry", registry=r
        )
        self.news_items = Counter("finsent_news_items", "Items posted to /v1/news, by outcome", ["status"], registry=r)
        self.alerts = Counter("finsent_alerts_recorded", "Alerts recorded by ingests", registry=r)
        self.explain_rejected = Counter(
            "finsent_explain_rejections", "Explanations refused with 503 because explain.max_pending were admitted", registry=r
        )

    def set_model(self, name: str, version: str) -> None:
        self.model.info({"name": name, "version": version})

    def observe_batch(self, texts: int, requests: int) -> None:
        self.batch_texts.observe(texts)
        self.batch_requests.observe(requests)

    def render(self) -> bytes:
        return generate_latest(self.registry)
