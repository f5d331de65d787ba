"""Once the server has started, its startup objects leave the garbage collector's
generations and the youngest generation is collected less often (conversations.runs.lifecycle)."""

import asyncio
import gc

import pytest

from conversations.runs import lifecycle


@pytest.fixture
def collector_as_it_was():
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


async def _no_runtime():
    return None


async def test_the_lifespan_startup_settles_the_collector_before_it_completes(collector_as_it_was, monkeypatch):
    monkeypatch.setattr(lifecycle, "get_runtime", _no_runtime)
    app = lifecycle.RuntimeLifecycle(app=None)
    received = asyncio.Queue()
    await received.put({"type": "lifespan.startup"})
    sent = []

    async def send(message):
        if message["type"] == "lifespan.startup.complete":
            sent.append((gc.get_freeze_count(), gc.get_threshold()[0]))
            await received.put({"type": "lifespan.shutdown"})

    monkeypatch.setattr(lifecycle, "close_runtime", _no_runtime)
    await app({"type": "lifespan"}, received.get, send)
    frozen, young_threshold = sent[0]
    assert frozen > 10_000  # Django, LangGraph and this test run's modules
    assert young_threshold == lifecycle.YOUNG_COLLECTION_THRESHOLD


async def test_under_daphne_it_is_settled_once_the_runtime_started(collector_as_it_was):
    task = asyncio.ensure_future(_no_runtime())
    await task
    lifecycle._started(task)
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] == lifecycle.YOUNG_COLLECTION_THRESHOLD
