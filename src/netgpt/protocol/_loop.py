"""A private event loop in a daemon thread, for sync callers and for connections that must outlive any caller's loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

T = TypeVar("T")


class LoopThread:
    """Started on first use, stopped by :meth:`close`; safe to use from any thread or event loop."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None

    @property
    def portal(self) -> BlockingPortal:
        with self._lock:
            if self._portal is None:
                self._cm = start_blocking_portal(name=self._name)
                self._portal = self._cm.__enter__()
            return self._portal

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(*args)`` on the private loop and block until it returns."""
        return self.portal.call(fn, *args)

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await ``fn(*args)`` on the private loop from the caller's asyncio loop without blocking it."""
        return await asyncio.wrap_future(self.portal.start_task_soon(fn, *args))

    def close(self) -> None:
        with self._lock:
            cm, self._cm, self._portal = self._cm, None, None
        if cm is not None:
            cm.__exit__(None, None, None)
