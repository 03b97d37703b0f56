"""Client-side pacing: token buckets in front of AWS's rate-limited APIs, so that a paced
caller is not throttled (``core/quotas.py`` holds the quotas and the arithmetic).

``TokenBucket.acquire`` blocks until the caller's token is there (taken in advance: callers
are served in the order they asked), or returns False at once when waiting would pass its
deadline, or as soon as ``stop`` is set. ``Pacer`` holds one bucket per quota. ``paced(pacer,
stop)`` makes every AWS call of this context (and of the contexts copied from it: the apply's
workers) draw from ``pacer`` first: ``AwsClients`` registers ``before_call`` on botocore's
``before-call`` event of every client, so each attempt (a retry too) takes a token. Calls
made outside such a context (dispatch, the consumer, the watchdog) are not paced here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from reconciler.core.quotas import Bucket, bucket_of, full, take
from reconciler.errors import CronctlError


class PacingStopped(CronctlError):
    """A paced call was not made: its apply is stopping (or the wait would pass a deadline)."""


class TokenBucket:
    """One quota's bucket; thread-safe (``clock`` is replaceable in tests)."""

    def __init__(self, bucket: Bucket, clock: Callable[[], float] = time.monotonic) -> None:
        self.bucket = bucket
        self._clock = clock
        self._lock = threading.Lock()
        self._state = full(bucket, clock())

    def acquire(self, stop: threading.Event | None = None,
                deadline: float | None = None) -> bool:
        """Take a token, waiting for it; False (no token taken) when the wait would end after
        ``deadline`` (on ``clock``) or ``stop`` is set before it ends."""
        return self.wait(stop, deadline) is not None

    def wait(self, stop: threading.Event | None = None,
             deadline: float | None = None) -> float | None:
        """``acquire``, saying how long it waited (None: refused or stopped)."""
        if stop is not None and stop.is_set():
            return None
        with self._lock:
            now = self._clock()
            state, wait = take(self.bucket, self._state, now)
            if wait > 0 and deadline is not None and now + wait > deadline:
                return None
            self._state = state
        if wait <= 0:
            return 0.0
        if stop is None:
            time.sleep(wait)
        elif stop.wait(wait):
            return None
        return wait

    def tokens(self) -> float:
        """Tokens in the bucket now (negative: promised to callers still waiting)."""
        with self._lock:
            now = self._clock()
            state = self._state
            return min(float(self.bucket.burst),
                       state.tokens + max(0.0, now - state.at) * self.bucket.per_s)


class Pacer:
    """A ``TokenBucket`` per quota of ``buckets`` (``core.quotas.configured``)."""

    def __init__(self, buckets: Mapping[str, Bucket],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.buckets = dict(buckets)
        self._token_buckets: dict[str, TokenBucket] = {}
        for bucket in self.buckets.values():
            if bucket.name not in self._token_buckets:
                self._token_buckets[bucket.name] = TokenBucket(bucket, clock)

    def bucket_for(self, key: str) -> TokenBucket | None:
        """The bucket of ``service.Operation`` (botocore's names), or None: not paced."""
        service, _, operation = key.partition(".")
        bucket = bucket_of(service, operation, self.buckets)
        return self._token_buckets.get(bucket.name) if bucket is not None else None

    def acquire(self, key: str, stop: threading.Event | None = None,
                deadline: float | None = None) -> bool:
        return self.wait(key, stop, deadline) is not None

    def wait(self, key: str, stop: threading.Event | None = None,
             deadline: float | None = None) -> float | None:
        """Seconds waited for ``key``'s token (0: not paced or none to wait); None: refused."""
        bucket = self.bucket_for(key)
        return 0.0 if bucket is None else bucket.wait(stop, deadline)

    def tokens(self) -> dict[str, float]:
        """Tokens in each bucket now, by bucket name (what an ETA starts from)."""
        return {name: bucket.tokens() for name, bucket in self._token_buckets.items()}


_Pacing = tuple[Pacer, threading.Event | None, Callable[[], None] | None]
_PACING: ContextVar[_Pacing | None] = ContextVar("cronctl_pacing", default=None)


@contextmanager
def paced(pacer: Pacer, stop: threading.Event | None = None,
          check: Callable[[], None] | None = None) -> Iterator[Pacer]:
    """Pace the AWS calls made in this context (and in contexts copied from it). ``check``
    (the apply's fence) is called again after a call had to wait for its token: what was
    checked before the wait may no longer hold."""
    token = _PACING.set((pacer, stop, check))
    try:
        yield pacer
    finally:
        _PACING.reset(token)


def before_call(event_name: str, **_kwargs) -> None:
    """botocore ``before-call`` hook: wait for the call's token when pacing is on. Returns
    None (a value would be taken as the call's answer)."""
    pacing = _PACING.get()
    if pacing is None:
        return None
    pacer, stop, check = pacing
    parts = event_name.split(".")
    key = ".".join(parts[1:3]) if len(parts) >= 3 else event_name
    waited = pacer.wait(key, stop)
    if waited is None:
        raise PacingStopped(f"{key}: not called, the apply is stopping")
    if waited > 0 and check is not None:
        check()
    return None
