"""The queue between dump readers and the archive writer holds a bounded number of bytes."""

from __future__ import annotations

import threading
import time

from monarch.engines.mongo.dump import _Pipe


def item(n: int) -> tuple[str, object, bytes]:
    return ("data", None, b"x" * n)


def test_a_reader_waits_while_the_queue_holds_its_budget() -> None:
    pipe = _Pipe(100)
    assert pipe.put(item(60), 60)
    done = threading.Event()

    def second() -> None:
        pipe.put(item(60), 60)
        done.set()

    threading.Thread(target=second, daemon=True).start()
    time.sleep(0.2)
    assert not done.is_set()  # 60 + 60 > 100: it waits

    pipe.get()
    assert done.wait(2)


def test_a_batch_bigger_than_the_budget_still_passes_alone() -> None:
    pipe = _Pipe(10)

    assert pipe.put(item(1000), 1000)
    assert pipe.get()[2] == b"x" * 1000


def test_stop_releases_waiting_readers() -> None:
    pipe = _Pipe(10)
    pipe.put(item(10), 10)
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(pipe.put(item(10), 10)))
    waiter.start()
    time.sleep(0.1)

    pipe.stop()
    waiter.join(2)

    assert results == [False]
