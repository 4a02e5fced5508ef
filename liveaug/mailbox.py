"""A one-slot, newest-wins mailbox between threads: the hand-off that never grows.

The producer ``put``s without ever blocking; an unread item that is replaced counts as dropped.
The consumer ``get``s the newest item (waiting for one) or ``peek``s at it without taking it.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Latest(Generic[T]):
    """Holds at most one item; ``dropped`` counts items replaced before anyone took them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._fresh = False
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Store ``item``; returns True when it replaced one nobody had taken."""
        with self._cond:
            replaced = self._fresh
            if replaced:
                self.dropped += 1
            self._item = item
            self._fresh = True
            self._cond.notify_all()
            return replaced

    def get(self, timeout: float | None = None) -> T | None:
        """Take the newest unread item, waiting up to ``timeout`` s; None on timeout or close."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._fresh or self._closed, timeout):
                return None
            if not self._fresh:
                return None
            self._fresh = False
            return self._item

    def peek(self) -> T | None:
        """The newest item, read or not (for a display that redraws at its own rate)."""
        with self._cond:
            return self._item

    def close(self) -> None:
        """Wake every waiting ``get`` (they return None)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed
