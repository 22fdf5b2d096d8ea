"""configure(): arguments over ROARK_* variables over defaults; bad input fails loudly, early."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

import roark
from roark._config import DEFAULT_BASE_URL, ConfigurationError, resolve


def test_defaults_need_only_a_key() -> None:
    settings = resolve({}, env={"ROARK_API_KEY": "sk-test"})
    assert settings.api_key == "sk-test"
    assert settings.base_url == DEFAULT_BASE_URL
    assert settings.enabled is True
    assert settings.active is True
    assert settings.shutdown_timeout == 8.0


def test_arguments_win_over_environment() -> None:
    env = {"ROARK_API_KEY": "from-env", "ROARK_BASE_URL": "https://env.example.com"}
    settings = resolve({"api_key": "from-arg", "base_url": "https://arg.example.com/"}, env=env)
    assert settings.api_key == "from-arg"
    assert settings.base_url == "https://arg.example.com"


@pytest.mark.parametrize("raw", ["false", "0", "no", "off", "FALSE", " Off "])
def test_kill_switch_values(raw: str) -> None:
    settings = resolve({}, env={"ROARK_API_KEY": "k", "ROARK_OBSERVABILITY_ENABLED": raw})
    assert settings.enabled is False
    assert settings.active is False


def test_no_key_means_inactive() -> None:
    assert resolve({}, env={}).active is False


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://api.roark.ai", True),
        ("http://127.0.0.1:8787", True),
        ("http://localhost:9000/", True),
        ("http://[::1]:9000", True),
        ("http://api.roark.ai", False),
        ("ftp://api.roark.ai", False),
        ("not a url", False),
        ("https://", False),
        ("https://user:pw@api.roark.ai", False),
        ("https://api.roark.ai:99999", False),
    ],
)
def test_base_url_validation(url: str, ok: bool) -> None:
    if ok:
        assert resolve({"base_url": url}, env={}).base_url == url.rstrip("/")
    else:
        with pytest.raises(ConfigurationError, match="base_url"):
            resolve({"base_url": url}, env={})


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="ROARK_BASE_URL"):
        resolve({}, env={"ROARK_BASE_URL": "http://example.com"})
    with pytest.raises(ConfigurationError, match="ROARK_OBSERVABILITY_ENABLED"):
        resolve({}, env={"ROARK_OBSERVABILITY_ENABLED": "maybe"})
    with pytest.raises(ConfigurationError, match="ROARK_SHUTDOWN_TIMEOUT"):
        resolve({}, env={"ROARK_SHUTDOWN_TIMEOUT": "soon"})


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"api_key": 123}, "api_key"),
        ({"enabled": "yes"}, "enabled"),
        ({"shutdown_timeout": "8"}, "shutdown_timeout"),
        ({"shutdown_timeout": -1}, "shutdown_timeout"),
        ({"recording_sample_rate": 44100.0}, "recording_sample_rate"),
        ({"recording_sample_rate": 1000}, "recording_sample_rate"),
        ({"spool_max_bytes": 10}, "spool_max_bytes"),
        ({"redact": ["email", "ssn"]}, "redact"),
        ({"api_key": "has space"}, "api_key"),
        ({"api_key": "sk-ключ-1234"}, "api_key"),  # an HTTP header cannot carry it
        ({"no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_wrong_types_and_values_name_the_setting(kwargs: dict, setting: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve(kwargs, env={})
    assert info.value.setting == setting
    assert setting in str(info.value)
    assert "ключ" not in str(info.value)


def test_key_never_in_repr() -> None:
    settings = resolve({"api_key": "sk-very-secret"}, env={})
    assert "sk-very-secret" not in repr(settings)
    assert "sk-very-secret" not in str(settings)


def test_configure_returns_client_and_warns_once_without_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.delenv("ROARK_API_KEY", raising=False)
    with caplog.at_level(logging.WARNING, logger="roark"):
        client = roark.configure(spool_dir=tmp_path)
    try:
        assert client.active is False
        warnings = [r for r in caplog.records if "ROARK_API_KEY" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        roark.shutdown()


def test_configure_raises_at_import_time_for_bad_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        roark.configure(api_key="k", base_url="http://roark.example.com", spool_dir=tmp_path)


def test_redaction_builtin_patterns() -> None:
    redact = resolve({"redact": True}, env={}).redact
    assert redact is not None
    text = "mail jane.doe@example.com, call +1 415 555 0100, card 4111 1111 1111 1111"
    assert redact(text) == "mail [EMAIL], call [PHONE], card [CARD]"
    only_email = resolve({"redact": ["email"]}, env={}).redact
    assert only_email is not None
    assert only_email("a@b.io 555 0100 1234") == "[EMAIL] 555 0100 1234"


def test_every_setting_is_one_row_of_the_table() -> None:
    from dataclasses import fields

    from roark._config import _SETTINGS, Settings

    assert list(_SETTINGS) and set(_SETTINGS) == {f.name for f in fields(Settings)}


@pytest.mark.parametrize(
    "url",
    [
        "https://ann:s3cr3t-pw@api.roark.ai",  # credentials are refused
        "http://ann:s3cr3t-pw@api.roark.ai/v1",  # ... and plain HTTP to a remote host
        "https://ann:s3cr3t-pw@api.roark.ai:99999",  # ... and a port that cannot be
        "ftp://ann:s3cr3t-pw@api.roark.ai",  # ... and not http(s)
        "https://api.roark.ai/?token=s3cr3t-pw",  # a query can carry a secret too
        "https://api.roark.ai/#s3cr3t-pw",
    ],
)
def test_a_refused_url_is_never_echoed_with_its_secrets(
    url: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigurationError) as info:
        roark.configure(api_key="k", base_url=url, spool_dir=tmp_path)
    message = str(info.value)
    assert "s3cr3t-pw" not in message and "s3cr3t-pw" not in caplog.text
    assert "base_url" in message and "api.roark.ai" in message
    with pytest.raises(ConfigurationError) as from_env:
        resolve({}, env={"ROARK_BASE_URL": url})
    assert "s3cr3t-pw" not in str(from_env.value) and "ROARK_BASE_URL" in str(from_env.value)


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("ROARK_ENABLED", "did you mean ROARK_OBSERVABILITY_ENABLED?"),
        ("ROARK_BASEURL", "did you mean ROARK_BASE_URL?"),
        ("ROARK_KEY", "did you mean ROARK_API_KEY?"),
        ("ROARK_TIMEOUT", "did you mean ROARK_SHUTDOWN_TIMEOUT?"),
        ("ROARK_SPOOL", "did you mean ROARK_SPOOL_DIR?"),
        ("ROARK_REDACT", "redact is set with roark.configure(redact=...)"),
        ("ROARK_CHUNK_BYTES", "chunk_bytes is set with roark.configure(chunk_bytes=...)"),
    ],
)
def test_a_roark_variable_that_is_not_read_is_named_at_configure(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    name: str,
    said: str,
) -> None:
    for variable in [n for n in os.environ if n.startswith("ROARK_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv(name, "false")
    monkeypatch.setenv("ROARK_PROJECT_ID", "p-42")  # another tool's: none of roark's business
    with caplog.at_level(logging.WARNING, logger="roark"):
        roark.configure(api_key="k", enabled=False, spool_dir=tmp_path)
    roark.shutdown()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"{name} is ") and said in warnings[0]
