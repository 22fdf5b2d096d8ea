"""Fault injection: errors, dropped connections, latency and hangs, drawn per request."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from .contract import ENDPOINTS


@dataclass(frozen=True)
class Faults:
    """The faults in force (none by default); ``ValueError`` names a bad value."""

    error_rate: float = 0.0
    error_status: int = 503
    drop_rate: float = 0.0
    latency: float = 0.0
    hang: bool = False
    endpoints: frozenset[str] = frozenset()
    retry_after: float | None = None

    def __post_init__(self) -> None:
        unknown = self.endpoints - ENDPOINTS
        if unknown:
            raise ValueError(f"endpoints: unknown {sorted(unknown)}; use {sorted(ENDPOINTS)}")
        for name, rate in (("error_rate", self.error_rate), ("drop_rate", self.drop_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {rate!r}")
        if not 100 <= self.error_status <= 599:
            raise ValueError(f"error_status must be an HTTP status, got {self.error_status!r}")
        if self.latency < 0 or (self.retry_after is not None and self.retry_after < 0):
            raise ValueError("latency and retry_after must not be negative")


@dataclass(frozen=True)
class Plan:
    """What happens to one request."""

    latency: float = 0.0
    hang: threading.Event | None = None
    action: str | None = None  # "drop" or "error"
    status: int = 503
    retry_after: float | None = None


NO_PLAN = Plan()


class FaultInjector:
    """Draws a :class:`Plan` per request from the faults in force. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults = Faults()
        self._rng = random.Random(0)
        self._hang_event = threading.Event()

    def set(self, faults: Faults, seed: int | None) -> None:
        """Replace the faults; a hang holds requests until :meth:`clear` or :meth:`release`."""
        with self._lock:
            self._faults = faults
            self._rng = random.Random(seed)
            if faults.hang:
                if self._hang_event.is_set():
                    self._hang_event = threading.Event()
            else:
                self._hang_event.set()

    def clear(self) -> None:
        """No faults from now on; hanging requests are released."""
        with self._lock:
            self._faults = Faults()
            self._hang_event.set()

    def release(self) -> None:
        """Release hanging requests (the server is stopping)."""
        with self._lock:
            self._hang_event.set()

    def draw(self, endpoint: str) -> Plan:
        with self._lock:
            faults = self._faults
            if endpoint not in faults.endpoints:
                return NO_PLAN
            action = None
            if faults.drop_rate > 0 and self._rng.random() < faults.drop_rate:
                action = "drop"
            elif faults.error_rate > 0 and self._rng.random() < faults.error_rate:
                action = "error"
            return Plan(
                latency=faults.latency,
                hang=self._hang_event if faults.hang else None,
                action=action,
                status=faults.error_status,
                retry_after=faults.retry_after,
            )
