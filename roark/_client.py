"""The process-wide client: built by ``configure()``, flushed at exit, rebuilt after ``fork``."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from typing import Any

from ._config import RedactSetting, Settings, resolve, unread_variables
from ._failures import guard, use
from ._handoff.channel import CallChannel
from ._threads.worker import Worker

logger = logging.getLogger("roark.client")

_lock = threading.Lock()
_client: Client | None = None
_process_hooks_installed = False
# when the process must be gone (time.monotonic()): set once a job of this process shuts down
_exit_deadline: float | None = None


class Client:
    """What ``configure()`` returns: the settings and, when observing, the worker threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker: Worker | None = Worker(settings) if settings.active else None

    @property
    def active(self) -> bool:
        return self.worker is not None

    def __repr__(self) -> str:
        return f"Client(active={self.active}, base_url={self.settings.base_url!r})"

    def stats(self) -> dict[str, int]:
        """What roark did and what failed inside it so far, by name (empty when inactive)."""
        return self.worker.stats.snapshot() if self.worker is not None else {}

    def open_call(self) -> CallChannel | None:
        """A new call's channel to the worker threads; None when calls are not observed."""
        return self.worker.open_call() if self.worker is not None else None

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every ended call is delivered; False if ``timeout`` ran out first."""
        if self.worker is None:
            return True
        return self.worker.flush(self.settings.shutdown_timeout if timeout is None else timeout)

    def shutdown(self, timeout: float | None = None, *, bounded: bool = False) -> None:
        """Deliver what can be within ``timeout`` and stop the threads; the rest stays spooled.

        ``bounded``: the process exits right after, so nothing waits beyond ``timeout``."""
        worker, self.worker = self.worker, None
        if worker is not None:
            budget = self.settings.shutdown_timeout if timeout is None else timeout
            worker.stop(budget, bounded=bounded)


def configure(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    enabled: bool | None = None,
    shutdown_timeout: float | None = None,
    recording_sample_rate: int | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    spool_max_bytes: int | None = None,
    redact: RedactSetting = None,
    **advanced: Any,
) -> Client:
    """Configure roark for this process and return the client. Call it once, at import time.

    Every argument falls back to its ``ROARK_*`` environment variable, then to the default;
    only the API key must be set (``ROARK_API_KEY``). Invalid settings raise
    :class:`roark.ConfigurationError` naming the setting. Calling it again replaces the
    previous configuration (after delivering what the old one still held).

    Example::

        import roark
        roark.configure()  # reads ROARK_API_KEY, ROARK_BASE_URL, ...
    """
    settings = resolve(
        {
            "api_key": api_key,
            "base_url": base_url,
            "enabled": enabled,
            "shutdown_timeout": shutdown_timeout,
            "recording_sample_rate": recording_sample_rate,
            "spool_dir": spool_dir,
            "spool_max_bytes": spool_max_bytes,
            "redact": redact,
            **advanced,
        }
    )
    for problem in unread_variables():
        logger.warning(problem)
    if not settings.enabled:
        logger.info("roark observability is disabled (ROARK_OBSERVABILITY_ENABLED)")
    elif not settings.api_key:
        logger.warning("ROARK_API_KEY is not set: calls are not observed")
    return install(settings)


def install(settings: Settings) -> Client:
    """Make a client of already resolved ``settings`` the process's client."""
    new = Client(settings)
    global _client
    with _lock:
        old, _client = _client, new
        _install_process_hooks()
    if old is not None:
        old.shutdown(timeout=min(2.0, old.settings.shutdown_timeout))
    if new.worker is not None:
        use(new.worker.stats)
        from ._loop.observe import install_session_hook

        install_session_hook()
    return new


def get_client() -> Client | None:
    return _client


def flush(timeout: float | None = None) -> bool:
    """Wait (blocking) until every call that has ended is delivered, at most ``timeout`` s."""
    client = _client
    return True if client is None else client.flush(timeout)


def shutdown(timeout: float | None = None) -> None:
    """Deliver what can be within ``timeout`` and stop roark's threads (what is left stays
    spooled for the next process). Observation is off afterwards until ``configure()``."""
    global _client
    with _lock:
        client, _client = _client, None
    if client is not None:
        client.shutdown(timeout)


def limit_exit(deadline: float) -> None:
    """This process is about to exit (its job is shutting down; LiveKit kills the process
    soon after): the at-exit flush waits at most until ``deadline`` (``time.monotonic()``)."""
    global _exit_deadline
    _exit_deadline = deadline if _exit_deadline is None else min(_exit_deadline, deadline)


def _at_exit() -> None:
    global _client
    with guard("shutting down at exit"):
        with _lock:
            client, _client = _client, None
        if client is None:
            return
        deadline = _exit_deadline
        if deadline is None:
            client.shutdown()
        else:
            client.shutdown(max(0.0, deadline - time.monotonic()), bounded=True)


def _after_fork_in_child() -> None:
    global _exit_deadline
    _exit_deadline = None  # the parent's job is not this process's
    client = _client
    if client is not None and client.worker is not None:
        client.worker.after_fork_in_child()


def _install_process_hooks() -> None:
    global _process_hooks_installed
    if _process_hooks_installed:
        return
    _process_hooks_installed = True
    atexit.register(_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
