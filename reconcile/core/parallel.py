"""Independent outside requests at once, up to a connection's limit, answers in order.

Real APIs answer in 100-300 ms; sent one after another, a partner's 6,000 requests take half
an hour. Requests that do not depend on each other (the additions of each agreement, pages
2..N once page 1 told how many there are, pushes to distinct lines) go through `in_parallel`:
a bounded pool of threads sharing the adapter's httpx client (thread-safe, one connection
pool) and its pyrate-limiter Limiter (thread-safe), so the request budget and the retries stay
exactly as they are. Answers come back in the order of the items, so an import's order and its
all-pages-or-nothing rule do not change; the first request that fails after its retries stops
the rest (nothing not yet started is sent) and is raised.
"""

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor


def in_parallel(fn: Callable, items: Iterable, limit: int) -> Iterator:
    """`fn(item)` for each item, at most `limit` running at once, yielded in the items' order.

    The pool works at most `2 * limit` items ahead of the consumer, so a long list is never
    all in memory. A failure is raised as soon as it happens (not when its turn comes), after
    the items not yet started are cancelled; those already running finish (each is bounded
    by the client's timeout) and are dropped.
    """
    if limit <= 1:
        yield from map(fn, items)
        return
    changed = threading.Event()
    window: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="outside") as pool:
        try:
            for item in items:
                future = pool.submit(fn, item)
                future.add_done_callback(lambda _: changed.set())
                window.append(future)
                if len(window) >= 2 * limit:
                    yield _head(window, changed)
            while window:
                yield _head(window, changed)
        finally:
            for future in window:
                future.cancel()


def _head(window: deque[Future], changed: threading.Event):
    """The oldest item's result, raising any failure among those in flight first."""
    while True:
        for future in window:
            if future.done() and future.exception() is not None:
                raise future.exception()
        if window[0].done():
            return window.popleft().result()
        changed.wait()
        changed.clear()


def numbered_pages(fetch: Callable[[int], tuple[list, int]], limit: int) -> Iterator:
    """(number, last, records) of every page of a list paged by number. `fetch(n)` gives page
    n's records and the last page number it announces; page 1's is believed, and pages 2..last
    are fetched at once, `limit` at a time. An empty page ends the list."""
    records, last = fetch(1)
    yield 1, last, records
    if not records:
        return
    for number, (records, _) in enumerate(in_parallel(fetch, range(2, last + 1), limit), start=2):
        yield number, last, records
        if not records:
            return
