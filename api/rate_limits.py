"""Rate limits per credential: a token bucket for each, in this process.

Each credential has a bucket of `burst` tokens refilled at `rate_per_s`; a request takes one token or is
refused with the time until one is back (the 429's `Retry-After`). The buckets live in this process only:
behind a load balancer of N instances a credential gets up to N times the rate, which is the price of
not touching the database on every request.
"""

import math
import threading
import time
import uuid
from collections.abc import Callable


class TokenBuckets:
    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        assert rate_per_s > 0 and burst >= 1
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        # credential id → (tokens left, when last refilled)
        self._buckets: dict[uuid.UUID, tuple[float, float]] = {}

    def take(self, credential_id: uuid.UUID) -> int:
        """0 when the request may proceed (one token taken), else whole seconds until a token is back."""
        with self._lock:
            now = self._clock()
            tokens, refilled_at = self._buckets.get(credential_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - refilled_at) * self.rate_per_s)
            if tokens >= 1.0:
                self._buckets[credential_id] = (tokens - 1.0, now)
                return 0
            self._buckets[credential_id] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self.rate_per_s))
