"""The HTTP routes of ``finsent api`` (FastAPI): scoring, explanations, news ingest, the sentiment
index, alerts, health, readiness and Prometheus metrics.

Limits are checked before any work: a body over ``service.max_body_bytes`` is refused while it is
read (413), more texts than ``service.max_texts_per_request`` or a text over ``monitor.max_text_chars``
is 413, a malformed body 422 (without echoing the input back). A full queue or no model yet is 503 with
``Retry-After``; a store that is down is 503 naming the store. Anything unexpected is a 500 whose body
says only that; its traceback goes to the service's log, never to the client.

An explanation (``POST /v1/explain``) runs the model about ``explain.n_steps`` times forward and back,
so it never goes through the scoring batcher: it runs on a worker thread, on a private copy of the
model the follower holds (made once per version: Captum hooks the embedding layer while it runs), one
at a time; at most ``explain.max_pending`` are admitted at once and the next is answered 503 with
``Retry-After``, so a burst of explanations cannot pile up behind each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from finsent import tracking, utc
from finsent.config import Params
from finsent.errors import FinsentError
from finsent.explain.attributions import Explanation, explain, private_copy
from finsent.monitoring import alerts, sentiment_index, store, webhooks
from finsent.monitoring.champion import load_version
from finsent.monitoring.store import StoreError, open_store, read_predictions
from finsent.registry import versions
from finsent.service import ingest
from finsent.service.batcher import Batcher, BatcherStopped, QueueFull, Scored
from finsent.service.follower import ChampionFollower, Loaded
from finsent.service.metrics import CONTENT_TYPE, ServiceMetrics
from finsent.training.model import choose_device, cpu_multiplies_bf16, serving_precision
from finsent.training.score import Scorer
from finsent.vocabulary import LABELS

log = logging.getLogger("finsent.service")

INDEX_DEFAULT_DAYS = 30  # GET /v1/index without a start reads this many days before its end


# --- the wire format ------------------------------------------------------------------------------


class PredictRequest(BaseModel):
    text: str | None = Field(default=None, description="one text; or use texts")
    texts: list[str] | None = Field(default=None, description="several texts, scored together")


class Prediction(BaseModel):
    label: str = Field(description=f"the most probable class: one of {list(LABELS)}")
    probabilities: dict[str, float] = Field(description="class -> probability; they sum to 1")
    model_version: str


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[Prediction]


class ExplainRequest(BaseModel):
    text: str
    top_k: int | None = Field(default=None, ge=1, le=100, description="top words listed (default explain.top_k)")


class ExplainedWord(BaseModel):
    word: str
    start: int = Field(description="character offset of the word in the text")
    end: int
    score: float = Field(description="attribution toward the label: > 0 pushes toward it, < 0 against it")
    tokens: int = Field(description="model tokens the word was read as (0: cut off by the model's length limit)")


class ExplainResponse(BaseModel):
    model_name: str
    model_version: str
    text: str
    label: str = Field(description="the class explained: the predicted one")
    predicted: str
    probability: float = Field(description="the label's (calibrated) probability")
    probabilities: dict[str, float]
    words: list[ExplainedWord] = Field(description="the whitespace words of the text, in order")
    top_words: list[str] = Field(description="the words that push most toward the label, strongest first")
    baseline_gap: float = Field(description="the label's probability on the text minus on an all-[PAD] baseline: what the scores add up to")
    convergence_delta: float = Field(description="sum of the scores minus baseline_gap: the integration error")
    relative_delta: float | None = Field(description="|convergence_delta| / |baseline_gap| (null when the gap is 0)")
    n_steps: int
    truncated: bool = Field(description="the text is longer than the model reads; the words past the limit score 0")


class NewsItem(BaseModel):
    text: str
    published_at: str = Field(description="ISO 8601 time; naive times are UTC")
    ticker: str | None = Field(default=None, description='e.g. "AAPL" or "AAPL,MSFT"; $cashtags and company names in the text count too')
    source: str | None = None
    id: str | None = Field(default=None, description="the client's id: a retried post with the same id is stored once")


class NewsRequest(BaseModel):
    # An item that is not a valid NewsItem still parses (as a plain object), so that it can be refused
    # alone, with its reason, while the rest of the post is kept.
    items: list[NewsItem | dict[str, Any]]


class NewsResponse(BaseModel):
    model_name: str | None
    model_version: str | None
    stored: int
    duplicates: int
    rejected: int
    items: list[dict[str, Any]] = Field(description="one per posted item, in order: status stored | duplicate | rejected (with reason)")
    alerts: list[dict[str, Any]] = Field(description="alerts this post raised (each is sent to the configured webhooks)")


class ErrorBody(BaseModel):
    detail: Any


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or wrong bearer token (write routes, when a token is set)"},
    413: {"model": ErrorBody, "description": "body, text count or text length over the service's limits"},
    422: {"model": ErrorBody, "description": "malformed request"},
    503: {"model": ErrorBody, "description": "no model loaded yet, queue full or store down; see Retry-After"},
}


# --- the service's parts --------------------------------------------------------------------------


@dataclass
class Service:
    """What the routes share: params, the champion follower, the batcher, the store and the metrics."""

    p: Params
    root: Path
    follower: ChampionFollower
    metrics: ServiceMetrics
    token: str | None
    batcher: Batcher | None = None
    _engine: Engine | None = None
    store_error: str | None = None
    delivery_wanted: asyncio.Event = field(default_factory=asyncio.Event)
    _engine_lock: threading.Lock = field(default_factory=threading.Lock)
    explaining: asyncio.Lock = field(default_factory=asyncio.Lock)  # one explanation runs at a time
    explain_pending: int = 0  # admitted explanations (running or waiting): read and written on the event loop only
    _explainer: tuple[str, Scorer] | None = None  # (version, its private copy), on the explanation thread only

    def engine(self) -> Engine:
        """The predictions store, opened on first use (the service starts and scores without it), once:
        the first posts arrive together, on several threads."""
        with self._engine_lock:
            if self._engine is None:
                try:
                    self._engine = open_store(self.p.monitor, self.root)
                except FinsentError as exc:
                    self.store_error = str(exc)
                    raise
                self.store_error = None
            return self._engine

    def score_texts(self, texts: list[str]) -> tuple[np.ndarray, str, str]:
        """On the scoring thread: one pass on the model current when it starts."""
        loaded = self.follower.current
        if loaded is None:
            raise NotReady(self.follower.load_error or self.follower.poll_error or "the champion is still loading")
        return loaded.champion.scorer.predict_proba(texts), loaded.champion.name, loaded.version

    def explain_text(self, text: str) -> tuple[str, Explanation]:
        """On a worker thread, one at a time: the explanation by the model current when it starts, on a
        private copy of it (made when the version changes), so scoring on the batcher goes on untouched."""
        loaded = self.follower.current
        if loaded is None:
            raise NotReady(self.follower.load_error or self.follower.poll_error or "the champion is still loading")
        if self._explainer is None or self._explainer[0] != loaded.version:
            self._explainer = None  # the old copy goes before the new one is made: one extra model in memory at most
            self._explainer = (loaded.version, private_copy(loaded.champion.scorer))
        explained = explain(
            self._explainer[1],
            text,
            n_steps=self.p.explain.n_steps,
            internal_batch_size=self.p.explain.internal_batch_size,
            model_version=loaded.version,
        )
        return loaded.champion.name, explained


class NotReady(FinsentError):
    """No model is loaded yet."""


def registry_follower(p: Params, root: Path, metrics: ServiceMetrics) -> ChampionFollower:
    """A follower of ``register.model_name``'s champion alias in the configured registry."""
    client = None

    def connected():
        nonlocal client
        if client is None:
            client = tracking.connect(p.register, root)
        return client

    def on_swap(loaded: Loaded) -> None:
        metrics.set_model(loaded.champion.name, loaded.version)
        metrics.model_swaps.inc()
        metrics.model_load_failing.set(0)

    def on_failure(version: str, error: str) -> None:
        metrics.model_load_failures.inc()
        metrics.model_load_failing.set(1)

    precision = serving_precision(p.service.precision, choose_device(p.train.device), cpu_bf16=cpu_multiplies_bf16())
    log.info("scoring in %s (service.precision: %s)", precision, p.service.precision)
    return ChampionFollower(
        lambda: versions.alias_version(connected(), p.register.model_name, versions.CHAMPION),
        lambda version: load_version(p, connected(), version, precision=precision),
        p.service.poll_s,
        on_swap=on_swap,
        on_load_failure=on_failure,
        on_poll_error=lambda error: metrics.registry_errors.inc(),
    )


def _error(status: int, detail: str, retry_after: int | None = None) -> HTTPException:
    return HTTPException(status, detail=detail, headers={"Retry-After": str(retry_after)} if retry_after else None)


async def _score(service: Service, texts: list[str]) -> Scored:
    assert service.batcher is not None
    retry = service.p.service.retry_after_s
    if service.follower.current is None:
        raise _error(
            503, f"no model loaded yet: {service.follower.load_error or service.follower.poll_error or 'the champion is loading'}", retry
        )
    try:
        scored = await service.batcher.score(texts)
    except QueueFull as exc:
        service.metrics.rejected_full.inc()
        raise _error(503, f"busy: {exc}; retry later", retry) from exc
    except (NotReady, BatcherStopped) as exc:
        raise _error(503, str(exc), retry) from exc
    counts = np.bincount(scored.probabilities.argmax(axis=1), minlength=len(LABELS))
    for label, count in zip(LABELS, counts):
        if count:
            service.metrics.predicted.labels(label=label).inc(int(count))
    return scored


def _check_count(service: Service, n: int, what: str) -> None:
    limit = service.p.service.max_texts_per_request
    if n > limit:
        raise _error(413, f"{n} {what} in one request; the limit is {limit} (service.max_texts_per_request)")


# --- ASGI middleware ------------------------------------------------------------------------------


class BodyLimit:
    """Refuse a body over ``max_bytes`` with 413: by its Content-Length before reading, and while reading
    (a chunked body has none), so an oversized request is never held in memory whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = f"the request body is over {self.max_bytes} bytes (service.max_body_bytes)"
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            status, detail = (413, too_large) if declared.isdigit() else (400, "Content-Length is not a number")
            await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, detail=too_large)
            return message

        await self.app(scope, limited, send)


class Measured:
    """Count and time every request by route template and status (Prometheus)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "other")
            self.metrics.requests.labels(route=route, method=scope["method"], status=str(status)).inc()
            self.metrics.latency.labels(route=route).observe(time.perf_counter() - start)
            if status >= 400:
                self.metrics.errors.labels(route=route, status=str(status)).inc()


# --- the app --------------------------------------------------------------------------------------


def create_app(p: Params, root: str | Path, *, follower: ChampionFollower | None = None) -> FastAPI:
    root = Path(root).resolve()
    metrics = ServiceMetrics()
    service = Service(
        p=p,
        root=root,
        follower=follower or registry_follower(p, root, metrics),
        metrics=metrics,
        token=os.environ.get(p.service.token_env) or None,
    )

    async def deliver_alerts() -> None:
        """Post pending alerts now and then, and at once after an ingest raised one."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(service.delivery_wanted.wait(), p.alerts.redeliver_every_s)
            service.delivery_wanted.clear()
            try:
                await run_in_threadpool(webhooks.deliver_pending, service.engine(), p.alerts)
            except Exception as exc:  # noqa: BLE001 - a store that is down: the deliveries wait in it
                log.warning("alert delivery round failed: %s", exc)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.batcher = Batcher(
            service.score_texts,
            max_batch_texts=p.service.max_batch_size,
            max_wait_s=p.service.max_wait_ms / 1000,
            max_queue_texts=p.service.max_queue_texts,
            on_batch=metrics.observe_batch,
        )
        service.batcher.start()
        service.follower.start()
        delivery = asyncio.create_task(deliver_alerts(), name="finsent-alert-delivery") if p.alerts.webhooks else None
        try:
            yield
        finally:
            if delivery is not None:
                delivery.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await delivery
            await service.batcher.stop()
            service.follower.stop()

    app = FastAPI(
        title="finsent",
        summary="Financial-news sentiment: live scoring, news ingest, sentiment index and alerts",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes each bad value back ("input"): not for a megabyte of text.
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()[:20]]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StoreError)
    async def store_down(request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(p.service.retry_after_s)})

    @app.exception_handler(FinsentError)
    async def refused(request: Request, exc: FinsentError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the service's log has the details"}, status_code=500)

    def writer(request: Request) -> None:
        """The write routes need the bearer token when one is set."""
        if service.token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, credential = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credential.strip().encode(), service.token.encode()):
            raise HTTPException(401, detail="this route needs Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"})

    @app.post("/v1/predict", response_model=PredictResponse, responses=ERRORS, summary="Score texts; nothing is stored")
    async def predict(body: PredictRequest) -> PredictResponse:
        if (body.text is None) == (body.texts is None):
            raise _error(422, 'send either "text" (one string) or "texts" (a list of strings)')
        texts = [body.text] if body.text is not None else list(body.texts or [])
        if not texts:
            raise _error(422, '"texts" is empty: nothing to score')
        _check_count(service, len(texts), "texts")
        limit = p.monitor.max_text_chars
        for i, text in enumerate(texts):
            if not text.strip():
                raise _error(422, f"text {i} is empty")
            if len(text) > limit:
                raise _error(413, f"text {i} has {len(text)} characters; the limit is {limit} (monitor.max_text_chars)")
        scored = await _score(service, texts)
        return PredictResponse(
            model_name=scored.model_name,
            model_version=scored.model_version,
            predictions=[Prediction(**ingest.prediction(row, scored.model_version)) for row in scored.probabilities],
        )

    @app.post(
        "/v1/explain",
        response_model=ExplainResponse,
        responses=ERRORS,
        summary="Why the model gives a text its class: each word's attribution (integrated gradients)",
    )
    async def explain_route(body: ExplainRequest) -> ExplainResponse:
        text, limit, retry = body.text, p.monitor.max_text_chars, p.service.retry_after_s
        if not text.strip():
            raise _error(422, "text is empty")
        if len(text) > limit:
            raise _error(413, f"the text has {len(text)} characters; the limit is {limit} (monitor.max_text_chars)")
        if service.follower.current is None:
            raise _error(
                503,
                f"no model loaded yet: {service.follower.load_error or service.follower.poll_error or 'the champion is loading'}",
                retry,
            )
        if service.explain_pending >= p.explain.max_pending:
            metrics.explain_rejected.inc()
            raise _error(503, f"busy: {service.explain_pending} explanations admitted (explain.max_pending); retry later", retry)
        service.explain_pending += 1
        try:
            async with service.explaining:
                name, explained = await run_in_threadpool(service.explain_text, text)
        except NotReady as exc:
            raise _error(503, str(exc), retry) from exc
        finally:
            service.explain_pending -= 1
        return ExplainResponse(model_name=name, **explained.to_dict(top_k=body.top_k or p.explain.top_k))

    @app.post(
        "/v1/news", response_model=NewsResponse, responses=ERRORS, dependencies=[Depends(writer)], summary="Score and store news items"
    )
    async def news(body: NewsRequest) -> JSONResponse:
        _check_count(service, len(body.items), "items")
        items: list[dict] = []
        invalid: dict[int, str] = {}
        for i, item in enumerate(body.items):
            if isinstance(item, NewsItem):
                items.append(item.model_dump())
                continue
            items.append({})
            try:
                NewsItem.model_validate(item)
            except ValidationError as exc:
                first = exc.errors()[0]
                invalid[i] = f"invalid: {'.'.join(str(x) for x in first['loc'])}: {first['msg']}"
        checked = ingest.check_items(items, p.monitor, invalid)
        engine = await run_in_threadpool(service.engine)  # a store that is down fails the post before scoring
        checked = ingest.drop_known(checked, await run_in_threadpool(store.known_news_keys, engine, checked.keys))
        scored_frame, stored, raised, name, version = None, [], [], None, None
        if len(checked.frame):
            scored = await _score(service, checked.frame["text"].tolist())
            name, version = scored.model_name, scored.model_version
            scored_frame = ingest.scored_frame(checked.frame, scored.probabilities)
            stored = await run_in_threadpool(
                ingest.store, engine, scored_frame, checked.keys, len(items), model_name=name, model_version=version
            )
            tickers, days = ingest.touched(scored_frame, checked.keys, stored)
            if tickers:
                raised = await run_in_threadpool(alerts.record_sentiment_alerts, engine, p, tickers, days)
                if raised:
                    metrics.alerts.inc(len(raised))
                    service.delivery_wanted.set()
        results = ingest.item_results(items, checked, scored_frame, stored, version or "")
        counts = {status: sum(r["status"] == status for r in results) for status in ("stored", "duplicate", "rejected")}
        for status, n in counts.items():
            metrics.news_items.labels(status=status).inc(n)
        payload = NewsResponse(
            model_name=name,
            model_version=version,
            stored=counts["stored"],
            duplicates=counts["duplicate"],
            rejected=counts["rejected"],
            items=results,
            alerts=raised,
        )
        # Only refused items: the post as a whole is unusable (422), each item still says why.
        return JSONResponse(payload.model_dump(), status_code=422 if results and counts["rejected"] == len(results) else 200)

    @app.get("/v1/index", responses=ERRORS, summary="Net sentiment per ticker and day, from the store")
    async def index(
        ticker: str | None = Query(default=None, description="one ticker, e.g. AAPL; all when omitted"),
        start: str | None = Query(default=None, description=f"ISO date or time (inclusive); default: {INDEX_DEFAULT_DAYS} days before end"),
        end: str | None = Query(default=None, description="ISO date or time (exclusive); default: now"),
    ) -> dict:
        end_at = utc.parse(end, "end") if end else utc.now()
        start_at = utc.parse(start, "start") if start else end_at - timedelta(days=INDEX_DEFAULT_DAYS)
        if start_at >= end_at:
            raise _error(422, f"the window is empty: start {start_at.isoformat()} is not before end {end_at.isoformat()}")

        wanted = ticker.strip().lstrip("$").upper() if ticker else None

        def read() -> dict:
            frame = read_predictions(service.engine(), start_at, end_at, tickers=[wanted] if wanted else None)
            daily = sentiment_index.daily_index(frame, p.monitor.index_from)
            if wanted:
                daily = daily[daily["ticker"] == wanted]  # the store's filter is a superset
            return {
                "start": start_at.isoformat(),
                "end": end_at.isoformat(),
                "index_from": p.monitor.index_from,
                "series": sentiment_index.index_records(daily),
            }

        return await run_in_threadpool(read)

    @app.get("/v1/alerts", responses=ERRORS, summary="Recorded alerts, newest first, with their webhook deliveries")
    async def list_alerts(
        kind: str | None = Query(default=None, description="sentiment | drift | promotion"),
        ticker: str | None = None,
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> dict:
        found = await run_in_threadpool(lambda: alerts.read_alerts(service.engine(), kind=kind, ticker=ticker, limit=limit))
        return {"alerts": found}

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="Ready once a model is loaded; says which, and what the registry wants")
    async def readyz() -> JSONResponse:
        loaded = service.follower.current
        body = {
            "ready": loaded is not None,
            "model": {
                "name": loaded.champion.name,
                "version": loaded.version,
                "loaded_at": loaded.loaded_at,
                "precision": loaded.champion.scorer.precision,
            }
            if loaded
            else None,
            "champion_version": service.follower.wanted,
            "load_error": service.follower.load_error,
            "registry_error": service.follower.poll_error,
            "store_error": service.store_error,
            "queue_texts": service.batcher.queued_texts if service.batcher else 0,
        }
        return JSONResponse(body, status_code=200 if loaded else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        metrics.queue_texts.set(service.batcher.queued_texts if service.batcher else 0)
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    app.add_middleware(BodyLimit, max_bytes=p.service.max_body_bytes)
    app.add_middleware(Measured, metrics=metrics)
    return app
