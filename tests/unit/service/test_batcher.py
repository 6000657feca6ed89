"""The dynamic batcher merges concurrent requests into one pass, bounds its queue, and never splits a
request or loses a caller when a pass fails."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from finsent.service.batcher import Batcher, BatcherStopped, QueueFull


class Recorder:
    """A score function that records each pass's texts (and can be held, or made to fail)."""

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.passes: list[list[str]] = []
        self.delay_s = delay_s
        self.fail = fail
        self.threads: set[str] = set()

    def __call__(self, texts: list[str]):
        self.threads.add(threading.current_thread().name)
        self.passes.append(list(texts))
        time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("model exploded")
        probs = np.array([[len(t), 1.0, 1.0] for t in texts], dtype=float)
        return probs / probs.sum(axis=1, keepdims=True), "m", "7"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_concurrent_requests_share_one_pass_and_get_their_own_rows_back():
    recorder = Recorder()

    async def scenario():
        batcher = Batcher(recorder, max_batch_texts=64, max_wait_s=0.2, max_queue_texts=1000)
        batcher.start()
        texts = [[f"t{i}" * (i + 1)] for i in range(8)] + [["a", "bb", "ccc"]]
        results = await asyncio.gather(*(batcher.score(t) for t in texts))
        await batcher.stop()
        return texts, results

    texts, results = run(scenario())
    assert len(recorder.passes) == 1 and len(recorder.passes[0]) == 11  # all nine requests, one pass
    for sent, got in zip(texts, results):
        assert got.probabilities.shape == (len(sent), 3)
        assert got.model_version == "7"
        expected = np.array([len(t) / (len(t) + 2) for t in sent])
        np.testing.assert_allclose(got.probabilities[:, 0], expected)  # each caller gets its own rows
    assert recorder.threads == {next(iter(recorder.threads))} and next(iter(recorder.threads)).startswith("finsent-score")


def test_a_pass_closes_at_the_batch_size_and_a_request_is_never_split():
    recorder = Recorder()

    async def scenario():
        batcher = Batcher(recorder, max_batch_texts=4, max_wait_s=0.5, max_queue_texts=1000)
        batcher.start()
        started = time.monotonic()
        await asyncio.gather(*(batcher.score(["x", "y"]) for _ in range(4)), batcher.score(["z"] * 9))
        await batcher.stop()
        return time.monotonic() - started

    elapsed = run(scenario())
    sizes = sorted(len(p) for p in recorder.passes)
    assert sizes == [4, 4, 9]  # two full passes of two requests; the big request alone
    assert elapsed < 5


def test_a_lone_request_waits_at_most_max_wait():
    recorder = Recorder()

    async def scenario():
        batcher = Batcher(recorder, max_batch_texts=64, max_wait_s=0.05, max_queue_texts=100)
        batcher.start()
        started = time.monotonic()
        await batcher.score(["only"])
        waited = time.monotonic() - started
        await batcher.stop()
        return waited

    assert run(scenario()) < 2.0


def test_a_full_queue_refuses_at_once_instead_of_growing():
    recorder = Recorder(delay_s=0.3)

    async def scenario():
        batcher = Batcher(recorder, max_batch_texts=2, max_wait_s=0.0, max_queue_texts=4)
        batcher.start()
        first = asyncio.create_task(batcher.score(["a", "b"]))  # taken by the worker
        await asyncio.sleep(0.05)
        queued = [asyncio.create_task(batcher.score(["c", "d"])), asyncio.create_task(batcher.score(["e", "f"]))]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull, match="limit 4"):
            await batcher.score(["g"])
        await asyncio.gather(first, *queued)
        await batcher.stop()

    run(scenario())


def test_a_failing_pass_fails_each_of_its_requests_and_the_next_pass_runs():
    recorder = Recorder(fail=True)

    async def scenario():
        batcher = Batcher(recorder, max_batch_texts=8, max_wait_s=0.05, max_queue_texts=100)
        batcher.start()
        outcomes = await asyncio.gather(batcher.score(["a"]), batcher.score(["b"]), return_exceptions=True)
        recorder.fail = False
        after = await batcher.score(["c"])
        await batcher.stop()
        return outcomes, after

    outcomes, after = run(scenario())
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert after.probabilities.shape == (1, 3)


def test_stop_finishes_what_is_queued_then_refuses():
    recorder = Recorder(delay_s=0.05)

    async def scenario():
        batcher = Batcher(recorder, max_batch_texts=1, max_wait_s=0.0, max_queue_texts=100)
        batcher.start()
        pending = [asyncio.create_task(batcher.score([str(i)])) for i in range(3)]
        await asyncio.sleep(0)
        await batcher.stop()
        results = await asyncio.gather(*pending)
        with pytest.raises(BatcherStopped):
            await batcher.score(["late"])
        return results

    assert len(run(scenario())) == 3
