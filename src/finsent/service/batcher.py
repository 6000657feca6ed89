"""Dynamic batching: concurrent requests merged into one forward pass, off the event loop.

A forward pass over 32 headlines costs little more than over one on CPU (the weights are read once),
so under load the service scores many requests for the price of one. The first waiting request holds
its batch open at most ``max_wait_s`` for others; a batch closes early at ``max_batch_texts``. A
request is never split: one larger than a batch is scored alone (the scorer batches it itself), so all
its texts carry one model version. The queue is bounded in texts: past ``max_queue_texts`` a request is
refused at once (``QueueFull``, answered 503 with Retry-After) rather than waiting without limit.

The model runs on one worker thread: torch already uses every core within a pass, and one thread
keeps passes whole (a swap of the model between passes, never inside one).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from finsent.errors import FinsentError


class QueueFull(FinsentError):
    """More texts are waiting than the queue holds; the client should retry later."""


class BatcherStopped(FinsentError):
    """The service is shutting down: nothing more is scored."""


@dataclass(frozen=True)
class Scored:
    probabilities: np.ndarray  # (n, classes), in the request's order
    model_name: str
    model_version: str


# What the worker thread calls: texts -> (probabilities, model name, model version). It reads the current
# model once per call, so a pass runs wholly on the model it started with.
ScoreFn = Callable[[list[str]], tuple[np.ndarray, str, str]]


@dataclass
class _Waiting:
    texts: Sequence[str]
    future: asyncio.Future
    arrived: float


class Batcher:
    def __init__(
        self,
        score: ScoreFn,
        *,
        max_batch_texts: int,
        max_wait_s: float,
        max_queue_texts: int,
        on_batch: Callable[[int, int], None] | None = None,  # (texts, requests) per pass, for metrics
    ) -> None:
        self._score = score
        self.max_batch_texts = max_batch_texts
        self.max_wait_s = max_wait_s
        self.max_queue_texts = max_queue_texts
        self._on_batch = on_batch
        self._waiting: deque[_Waiting] = deque()
        self.queued_texts = 0
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finsent-score")
        self._task: asyncio.Task | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="finsent-batcher")

    async def stop(self) -> None:
        """Finish what is queued, then stop the worker."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    async def score(self, texts: Sequence[str]) -> Scored:
        if self._stopping:
            raise BatcherStopped("the service is shutting down")
        if self.queued_texts + len(texts) > self.max_queue_texts:
            raise QueueFull(f"{self.queued_texts} texts are waiting to be scored (limit {self.max_queue_texts})")
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(texts, future, time.monotonic()))
        self.queued_texts += len(texts)
        self._wakeup.set()
        return await future

    def _take_batch(self) -> list[_Waiting]:
        batch = [self._waiting.popleft()]
        size = len(batch[0].texts)
        while self._waiting and size + len(self._waiting[0].texts) <= self.max_batch_texts:
            size += len(self._waiting[0].texts)
            batch.append(self._waiting.popleft())
        self.queued_texts -= size
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting:
                if self._stopping:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Hold the batch open until it is full or its first request has waited max_wait_s.
            deadline = self._waiting[0].arrived + self.max_wait_s
            while self.queued_texts < self.max_batch_texts and not self._stopping and (left := deadline - time.monotonic()) > 0:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), left)
            batch = self._take_batch()
            texts = [t for w in batch for t in w.texts]
            try:
                probs, name, version = await loop.run_in_executor(self._executor, self._score, texts)
            except Exception as exc:  # noqa: BLE001 - every waiting request hears why, none hangs
                for w in batch:
                    if not w.future.done():
                        w.future.set_exception(exc)
                continue
            if self._on_batch is not None:
                self._on_batch(len(texts), len(batch))
            start = 0
            for w in batch:
                if not w.future.done():  # a client that went away leaves a cancelled future
                    w.future.set_result(Scored(probs[start : start + len(w.texts)], name, version))
                start += len(w.texts)
