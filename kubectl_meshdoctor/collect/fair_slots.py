"""A counting semaphore that serves its waiters in the order they came.

Why: a sweep bounds its requests in flight with one of these (``--concurrency``) and has more workers
than slots (a worker whose answer is being reduced holds none). threading.Semaphore lets a newly
arriving thread take a freed slot before the ones already waiting, so requests could go out in any
order; the sweep's order matters (one request of each pod per round, server_info first, and a proxy
found refusing config_dump's parameters is remembered before the next pod of its version asks).
Here a freed slot is handed to the longest waiter.
"""

from __future__ import annotations

import collections
import threading


class FairSlots:
    def __init__(self, slots: int):
        self.slots = max(1, slots)
        self._free = self.slots
        self._lock = threading.Lock()
        self._waiters: collections.deque[threading.Lock] = collections.deque()

    def __enter__(self) -> FairSlots:
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return self
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        turn.acquire()  # released by the holder that hands its slot over
        return self

    def in_use(self) -> int:
        """Slots held now (all of them while anyone waits)."""
        with self._lock:
            return self.slots - self._free

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().release()  # the slot passes on without ever being free
            else:
                self._free += 1
