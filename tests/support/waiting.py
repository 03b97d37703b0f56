"""Wait on a condition with a deadline: the only way tests wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
             message: str = "condition") -> T:
    """Return the first truthy value of ``condition()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        pause.wait(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}; last value: {last!r}")
