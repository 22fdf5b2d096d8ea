"""Settings: ``configure()`` arguments over ``ROARK_*`` variables over defaults, validated once."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Union
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://api.roark.ai"

Redactor = Callable[[str], str]
RedactSetting = Union[bool, str, "list[str]", "tuple[str, ...]", Redactor, None]

_FALSE = {"false", "0", "no", "off"}
_TRUE = {"true", "1", "yes", "on"}


class ConfigurationError(ValueError):
    """A setting given to :func:`roark.configure` (or its ``ROARK_*`` variable) is invalid."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"roark: invalid {setting}: {problem}")
        self.setting = setting


def _default_spool_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "roark" / "spool"


@dataclasses.dataclass(frozen=True)
class Settings:
    """The resolved, validated configuration. Immutable; build it with :func:`resolve`."""

    api_key: str | None = dataclasses.field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    enabled: bool = True
    #: budget for delivering a call at job shutdown; LiveKit kills the job process 10 s after
    #: shutdown starts, so this stays below that
    shutdown_timeout: float = 8.0
    #: (connect, read) timeouts of one HTTP request
    request_timeout: tuple[float, float] = (3.05, 10.0)
    #: how long one record may be retried while the process lives, before it is left in the spool
    retry_deadline: float = 60.0
    #: None: the agent output's rate
    recording_sample_rate: int | None = None
    chunk_bytes: int = 256 * 1024
    spool_dir: Path = dataclasses.field(default_factory=_default_spool_dir)
    spool_max_bytes: int = 512 * 1024 * 1024
    #: longest tool argument/result text kept; longer is cut with a marker
    max_tool_text_chars: int = 16_000
    redact: Redactor | None = dataclasses.field(default=None, repr=False)
    worker_threads: int = 4

    @property
    def active(self) -> bool:
        """Whether calls are observed at all (enabled and a key is set)."""
        return self.enabled and bool(self.api_key)

    def __repr__(self) -> str:  # the key never appears, only whether one is set
        fields = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.name not in ("api_key", "redact")
        )
        return f"Settings(api_key={'<set>' if self.api_key else None}, {fields})"


def _env_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _FALSE:
        return False
    if value in _TRUE or value == "":
        return True
    raise ConfigurationError(name, f"expected true/false, 1/0, yes/no or on/off, got {raw!r}")


def _check_type(name: str, value: Any, types: type | tuple[type, ...]) -> None:
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ConfigurationError(name, f"expected {types}, got a bool")
    if not isinstance(value, types):
        expected = (
            " or ".join(t.__name__ for t in types) if isinstance(types, tuple) else types.__name__
        )
        raise ConfigurationError(name, f"expected {expected}, got {type(value).__name__}")


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_base_url(name: str, url: str) -> str:
    """The base URL without a trailing slash; plain HTTP only to loopback hosts."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise ConfigurationError(name, f"{url!r} is not a valid URL ({exc})") from None
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(name, f"{url!r} is not an http(s) URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(name, f"{url!r} must not carry credentials, a query or fragment")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigurationError(name, f"{url!r} uses plain HTTP to a non-loopback host; use https")
    return url.strip().rstrip("/")


_PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    "card": re.compile(r"\b(?:\d[ -]?){12,18}\d\b"),
    "phone": re.compile(r"(?<![\w])\+?\d[\d ().-]{6,}\d(?![\w])"),
}


def builtin_redactor(kinds: tuple[str, ...]) -> Redactor:
    """A redactor masking the named built-in kinds (``email``, ``card``, ``phone``)."""
    # cards before phones: a card number also looks like a long phone number
    ordered = [k for k in ("email", "card", "phone") if k in kinds]

    def redact(text: str) -> str:
        for kind in ordered:
            text = _PATTERNS[kind].sub(f"[{kind.upper()}]", text)
        return text

    return redact


def _resolve_redact(value: RedactSetting) -> Redactor | None:
    if value is None or value is False:
        return None
    if value is True:
        return builtin_redactor(tuple(_PATTERNS))
    if callable(value):
        return value
    kinds = (value,) if isinstance(value, str) else tuple(value)
    unknown = [k for k in kinds if k not in _PATTERNS]
    if unknown or not all(isinstance(k, str) for k in kinds):
        raise ConfigurationError(
            "redact", f"unknown kinds {unknown!r}; use {sorted(_PATTERNS)}, True or a callable"
        )
    return builtin_redactor(kinds)


_ENV = {
    "api_key": "ROARK_API_KEY",
    "base_url": "ROARK_BASE_URL",
    "enabled": "ROARK_OBSERVABILITY_ENABLED",
    "shutdown_timeout": "ROARK_SHUTDOWN_TIMEOUT",
    "recording_sample_rate": "ROARK_RECORDING_SAMPLE_RATE",
    "spool_dir": "ROARK_SPOOL_DIR",
    "spool_max_bytes": "ROARK_SPOOL_MAX_BYTES",
}


def _from_env(field: str, raw: str) -> Any:
    name = _ENV[field]
    if field == "enabled":
        return _env_bool(name, raw)
    if field in ("shutdown_timeout",):
        try:
            return float(raw)
        except ValueError:
            raise ConfigurationError(name, f"expected a number of seconds, got {raw!r}") from None
    if field in ("recording_sample_rate", "spool_max_bytes"):
        try:
            return int(raw)
        except ValueError:
            raise ConfigurationError(name, f"expected an integer, got {raw!r}") from None
    return raw


def resolve(overrides: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from explicit ``overrides`` (not None) over ``env`` over defaults."""
    env = os.environ if env is None else env
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = set(overrides) - known
    if unknown:
        raise ConfigurationError(", ".join(sorted(unknown)), "unknown setting")

    values: dict[str, Any] = {}
    for field, var in _ENV.items():
        raw = env.get(var)
        if raw is not None and (raw.strip() or field == "api_key"):
            values[field] = _from_env(field, raw)
    for key, value in overrides.items():
        if value is not None:
            values[key] = value
    names = {
        k: (k if k in overrides and overrides[k] is not None else _ENV.get(k, k)) for k in values
    }

    def check(field: str, types: type | tuple[type, ...]) -> None:
        if field in values:
            _check_type(names[field], values[field], types)

    check("api_key", str)
    check("base_url", str)
    check("enabled", bool)
    check("shutdown_timeout", (int, float))
    check("retry_deadline", (int, float))
    check("recording_sample_rate", int)
    check("chunk_bytes", int)
    check("spool_dir", (str, os.PathLike))
    check("spool_max_bytes", int)
    check("max_tool_text_chars", int)
    check("worker_threads", int)
    check("request_timeout", (tuple, int, float))

    if "api_key" in values:
        key = values["api_key"].strip()
        if any(c.isspace() for c in key) or not key.isprintable():
            raise ConfigurationError(names["api_key"], "contains whitespace or control characters")
        values["api_key"] = key or None
    if "base_url" in values:
        values["base_url"] = validate_base_url(names["base_url"], values["base_url"])
    for field in ("shutdown_timeout", "retry_deadline"):
        if field in values and not 0 < values[field] <= 3600:
            raise ConfigurationError(names[field], "must be between 0 and 3600 seconds")
    if "recording_sample_rate" in values and not 8000 <= values["recording_sample_rate"] <= 96000:
        raise ConfigurationError(names["recording_sample_rate"], "must be within 8000..96000 Hz")
    if "chunk_bytes" in values and (values["chunk_bytes"] < 4096 or values["chunk_bytes"] % 4):
        raise ConfigurationError("chunk_bytes", "must be a multiple of 4, at least 4096")
    if "spool_dir" in values:
        values["spool_dir"] = Path(values["spool_dir"]).expanduser()
    if "spool_max_bytes" in values and values["spool_max_bytes"] < 1024 * 1024:
        raise ConfigurationError(names["spool_max_bytes"], "must be at least 1 MiB")
    if "worker_threads" in values and not 1 <= values["worker_threads"] <= 64:
        raise ConfigurationError("worker_threads", "must be within 1..64")
    if "max_tool_text_chars" in values and values["max_tool_text_chars"] < 256:
        raise ConfigurationError("max_tool_text_chars", "must be at least 256")
    if "request_timeout" in values:
        timeout = values["request_timeout"]
        pair = (timeout, timeout) if isinstance(timeout, (int, float)) else tuple(timeout)
        if len(pair) != 2 or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in pair
        ):
            raise ConfigurationError("request_timeout", "expected seconds or (connect, read)")
        values["request_timeout"] = (float(pair[0]), float(pair[1]))
    if "redact" in values:
        values["redact"] = _resolve_redact(values["redact"])
    return Settings(**values)
