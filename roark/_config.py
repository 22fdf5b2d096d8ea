"""Settings: ``configure()`` arguments over ``ROARK_*`` variables over defaults, validated once."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Union
from urllib.parse import urlsplit

from . import _redact as redaction
from ._redact import Redactor

DEFAULT_BASE_URL = "https://api.roark.ai"

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


def shown_url(url: str) -> str:
    """``url`` fit for an error message: never the credentials, query or fragment it carries."""
    text = _USERINFO.sub("<credentials>@", url.strip(), count=1)
    text = _QUERY.sub(lambda m: "?<query>" if m.group(0)[0] == "?" else "#<fragment>", text)
    return repr(text if len(text) <= 200 else text[:199] + "…")


_USERINFO = re.compile(r"(?<=//)[^/?#]*@")
_QUERY = re.compile(r"[?#].*$", re.DOTALL)


def validate_base_url(name: str, url: str) -> str:
    """The base URL without a trailing slash; plain HTTP only to loopback hosts."""
    shown = shown_url(url)
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ConfigurationError(name, f"{shown} is not a valid URL (a bad host or port)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(name, f"{shown} is not an http(s) URL with a host")
    if parts.username or parts.password:
        raise ConfigurationError(name, f"{shown} must not carry credentials")
    if parts.query or parts.fragment:
        raise ConfigurationError(name, f"{shown} must not carry a query or fragment")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigurationError(name, f"{shown} uses plain HTTP to a non-loopback host; use https")
    return url.strip().rstrip("/")


def _resolve_redact(value: RedactSetting) -> Redactor | None:
    if value is None or value is False:
        return None
    if callable(value):
        return value
    if not isinstance(value, (bool, str, list, tuple)):
        raise ConfigurationError("redact", "expected True, a kind, a list of kinds or a callable")
    kinds = redaction.KINDS if value is True else (value,) if isinstance(value, str) else value
    kinds = tuple(kinds)
    unknown = [k for k in kinds if not redaction.known_kind(k)]
    if unknown or not kinds:
        raise ConfigurationError(
            "redact",
            f"unknown kinds {unknown!r}; use {list(redaction.KINDS)} (phone:XX for a region other "
            "than the US), True or a callable",
        )
    try:
        return redaction.builtin_redactor(kinds)
    except ImportError:
        raise ConfigurationError(
            "redact",
            "phone numbers are recognised by the phonenumbers package, which is not "
            f"installed: {redaction.INSTALL_HINT}",
        ) from None


def _seconds(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(name, f"expected a number of seconds, got {raw!r}") from None


def _integer(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(name, f"expected an integer, got {raw!r}") from None


def _text(_: str, raw: str) -> str:
    return raw


def _api_key(name: str, key: str) -> str | None:
    key = key.strip()
    if any(c.isspace() for c in key) or not key.isprintable():
        raise ConfigurationError(name, "contains whitespace or control characters")
    if not key.isascii():
        # it goes in HTTP headers: every request would fail to encode, forever
        raise ConfigurationError(name, "contains characters other than ASCII")
    return key or None


def _timeout(name: str, value: float) -> float:
    if not 0 < value <= 3600:
        raise ConfigurationError(name, "must be between 0 and 3600 seconds")
    return value


def _sample_rate(name: str, value: int) -> int:
    if not 8000 <= value <= 96000:
        raise ConfigurationError(name, "must be within 8000..96000 Hz")
    return value


def _worker_threads(name: str, value: int) -> int:
    if not 1 <= value <= 64:
        raise ConfigurationError(name, "must be within 1..64")
    return value


def _spool_max_bytes(name: str, value: int) -> int:
    if value < 1024 * 1024:
        raise ConfigurationError(name, "must be at least 1 MiB")
    return value


def _max_tool_text_chars(name: str, value: int) -> int:
    if value < 256:
        raise ConfigurationError(name, "must be at least 256")
    return value


def _path(_: str, value: str | os.PathLike[str]) -> Path:
    return Path(value).expanduser()


def _chunk_bytes(name: str, value: int) -> int:
    if value < 4096 or value % 4:
        raise ConfigurationError(name, "must be a multiple of 4, at least 4096")
    return value


def _request_timeout(name: str, value: Any) -> tuple[float, float]:
    pair = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if len(pair) != 2 or not all(
        isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in pair
    ):
        raise ConfigurationError(name, "expected seconds or (connect, read)")
    return (float(pair[0]), float(pair[1]))


def _redact(_: str, value: RedactSetting) -> Redactor | None:
    return _resolve_redact(value)


@dataclasses.dataclass(frozen=True)
class _Setting:
    """One row of the table: a setting's type, its variable and how that is read, its check."""

    types: type | tuple[type, ...] | None  # None: the check judges any value
    env: str | None = None
    #: the variable's text as a value (errors name the variable)
    parse: Callable[[str, str], Any] = _text
    #: the value, checked and normalized (errors name the argument, or the variable it came from)
    check: Callable[[str, Any], Any] | None = None


# fmt: off
_SETTINGS: dict[str, _Setting] = {
    "api_key":               _Setting(str, "ROARK_API_KEY", check=_api_key),
    "base_url":              _Setting(str, "ROARK_BASE_URL", check=validate_base_url),
    "enabled":               _Setting(bool, "ROARK_OBSERVABILITY_ENABLED", _env_bool),
    "shutdown_timeout":      _Setting((int, float), "ROARK_SHUTDOWN_TIMEOUT", _seconds, _timeout),
    "retry_deadline":        _Setting((int, float), check=_timeout),
    "recording_sample_rate": _Setting(int, "ROARK_RECORDING_SAMPLE_RATE", _integer, _sample_rate),
    "chunk_bytes":           _Setting(int, check=_chunk_bytes),
    "spool_dir":             _Setting((str, os.PathLike), "ROARK_SPOOL_DIR", check=_path),
    "spool_max_bytes":       _Setting(int, "ROARK_SPOOL_MAX_BYTES", _integer, _spool_max_bytes),
    "max_tool_text_chars":   _Setting(int, check=_max_tool_text_chars),
    "worker_threads":        _Setting(int, check=_worker_threads),
    "request_timeout":       _Setting((tuple, int, float), check=_request_timeout),
    "redact":                _Setting(None, check=_redact),
}
# fmt: on


_PREFIX = "ROARK_"
# how alike a variable's name must be to a setting's to be taken for a misspelling of it
_LIKE = 0.75


def unread_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """What to say of each ``ROARK_*`` variable that looks meant for roark but is not read:
    a misspelt one (``ROARK_ENABLED``), or one for a setting that is an argument only
    (``ROARK_REDACT``). Others (another tool's ``ROARK_*``) are none of roark's business."""
    env = os.environ if env is None else env
    read = {s.env: field for field, s in _SETTINGS.items() if s.env}
    arguments = {_PREFIX + field.upper(): field for field, s in _SETTINGS.items() if not s.env}
    found = []
    for name in sorted(n for n in env if n.startswith(_PREFIX) and n not in read):
        if name in arguments:
            found.append(
                f"{name} is not read: {arguments[name]} is set with "
                f"roark.configure({arguments[name]}=...)"
            )
        elif meant := _meant(name, list(read)):
            found.append(f"{name} is not a roark variable and is ignored; did you mean {meant}?")
    return found


def _meant(name: str, known: list[str]) -> str | None:
    """The known variable ``name`` is a misspelling of: alike as a whole, or sharing a word
    of the name after the prefix (``ROARK_ENABLED``: ``ROARK_OBSERVABILITY_ENABLED``)."""
    words = set(name[len(_PREFIX) :].split("_"))
    ranked = sorted(known, key=lambda k: -difflib.SequenceMatcher(None, name, k).ratio())
    for candidate in ranked:
        alike = difflib.SequenceMatcher(None, name, candidate).ratio() >= _LIKE
        if alike or words & set(candidate[len(_PREFIX) :].split("_")):
            return candidate
    return None


def resolve(overrides: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from explicit ``overrides`` (not None) over ``env`` over defaults."""
    env = os.environ if env is None else env
    unknown = set(overrides) - set(_SETTINGS)
    if unknown:
        raise ConfigurationError(", ".join(sorted(unknown)), "unknown setting")
    # every variable is read first, then every type checked, then every value checked: of
    # several mistakes, a variable that cannot be read is reported first
    given = {
        field: source
        for field, setting in _SETTINGS.items()
        if (source := _source(field, setting, overrides, env)) is not None
    }
    for field, (name, value) in given.items():
        types = _SETTINGS[field].types
        if types is not None:
            _check_type(name, value, types)
    values = {}
    for field, (name, value) in given.items():
        check = _SETTINGS[field].check
        values[field] = check(name, value) if check else value
    return Settings(**values)


def _source(
    field: str, setting: _Setting, overrides: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[str, Any] | None:
    """(the name an error gives, the value) of ``field``; None when it keeps its default."""
    from_env = None
    raw = env.get(setting.env) if setting.env else None
    if setting.env and raw is not None and raw.strip():
        # a variable that cannot be read is an error even when an argument overrides it
        from_env = (setting.env, setting.parse(setting.env, raw))
    if overrides.get(field) is not None:
        return field, overrides[field]
    return from_env
