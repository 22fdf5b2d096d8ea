"""Redaction: what ``redact`` masks reaches neither Roark nor the spool on disk; it masks
emails, payment cards and phone numbers, and nothing that only looks like digits."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

import roark
from roark._config import ConfigurationError, resolve
from roark.testing import LocalRoark
from roark.testing.scripted import CallScript, LLMReply, ToolCallStep, UserTurn

from .calls import GREETING, ObservedRun


def test_redaction_reaches_neither_the_wire_nor_the_disk(
    roark_server: LocalRoark, tmp_path: Path
) -> None:
    spool = tmp_path / "redact-spool"
    roark.configure(
        api_key=roark_server.api_key,
        base_url=roark_server.base_url,
        spool_dir=spool,
        redact=True,
        shutdown_timeout=1.0,
    )
    card = "4111 1111 1111 1111"
    script = CallScript(
        greeting=GREETING,
        user_turns=[UserTurn("Mail me at jane.doe@example.com please", at=1.2, duration=0.8)],
        llm_replies=[
            LLMReply(tool_calls=(ToolCallStep("lookup_order", {"order_id": card}, "call_1"),)),
            LLMReply("Done."),
        ],
    )
    # the developer's own fields are theirs: not redacted; the agent's instructions, which
    # LiveKit records and may be built from what the caller said, are
    run = ObservedRun(
        script,
        agent_instructions="Help the caller, whose address is ann.lee@example.org.",
        agent_prompt="Escalate to help@shop.example",
        support_line="+1 415 555 2671",
    )
    roark_server.set_faults(error_rate=1.0)  # keep everything in the spool for a look
    asyncio.run(run.run())
    # every text file of the spool (the PCM chunks hold audio, where any byte pattern occurs)
    on_disk = b"".join(
        p.read_bytes() for p in spool.rglob("*") if p.is_file() and p.suffix != ".pcm"
    )
    assert b"[EMAIL]" in on_disk and b"[CARD]" in on_disk
    assert b"jane.doe@example.com" not in on_disk and b"ann.lee@example.org" not in on_disk
    # (not a bare b"4111": a latency of 0.04111 s in the metrics is no card number)
    assert card.encode() not in on_disk and b"4111 1111" not in on_disk
    assert b"4111111111111111" not in on_disk

    roark_server.clear_faults()
    received = roark_server.wait_for_call(run.room_sid, timeout=30)
    assert received.transcript[1]["content"] == "Mail me at [EMAIL] please"
    call, result = received.tool_calls
    assert call["arguments"] == '{"order_id": "[CARD]"}'
    assert "[CARD]" in result["content"] and "4111" not in result["content"]
    (config,) = [m for m in received.metrics if m["kind"] == "agent_config_update"]
    assert config["extra"]["instructions"] == "Help the caller, whose address is [EMAIL]."
    assert received.started["agentPrompt"] == "Escalate to help@shop.example"
    assert received.metadata == {"support_line": "+1 415 555 2671"}


# (text, as redacted)
POSITIVES = [
    # emails
    ("mail jane.doe@example.com please", "mail [EMAIL] please"),
    ("JOHN_SMITH+billing@corp.co.uk", "[EMAIL]"),
    ("write to a.b-c@sub.domain.io.", "write to [EMAIL]."),
    ("contact: support@shop.example, thanks", "contact: [EMAIL], thanks"),
    ("my email is maria93@gmail.com", "my email is [EMAIL]"),
    ("x_y@z.travel or q@w.de", "[EMAIL] or [EMAIL]"),
    ("<ann@example.org>", "<[EMAIL]>"),
    ("name%tag@example.net", "[EMAIL]"),
    # payment cards (the networks' published test numbers)
    ("card 4111 1111 1111 1111", "card [CARD]"),
    ("visa 4012888888881881 exp", "visa [CARD] exp"),
    ("old visa 4222222222222", "old visa [CARD]"),
    ("mc 5555 5555 5555 4444", "mc [CARD]"),
    ("5105-1051-0510-5100", "[CARD]"),
    ("2223 0031 2200 3222.", "[CARD]."),
    ("amex 3782 822463 10005", "amex [CARD]"),
    ("amex 371449635398431", "amex [CARD]"),
    ("discover 6011 1111 1111 1117", "discover [CARD]"),
    ("6011000990139424", "[CARD]"),
    ("diners 3056 9309 0259 04", "diners [CARD]"),
    ("jcb 3530 1113 3330 0000", "jcb [CARD]"),
    ("unionpay 6200000000000005", "unionpay [CARD]"),
    ("the card is 4000-0566-5566-5556, ok?", "the card is [CARD], ok?"),
    # phone numbers
    ("call (415) 555-2671", "call [PHONE]"),
    ("415-555-2671", "[PHONE]"),
    ("415.555.2671", "[PHONE]"),
    ("my number is 4155552671", "my number is [PHONE]"),
    ("+1 415 555 2671", "[PHONE]"),
    ("toll free 1-800-275-2273.", "toll free [PHONE]."),
    ("+1 (212) 555-0199", "[PHONE]"),
    ("call 212 555 0199 now", "call [PHONE] now"),
    ("london +44 20 7946 0958", "london [PHONE]"),
    ("mobile +44 7911 123456", "mobile [PHONE]"),
    ("berlin +49 30 901820", "berlin [PHONE]"),
    ("paris +33 1 42 68 53 00", "paris [PHONE]"),
    ("tokyo +81 3-1234-5678", "tokyo [PHONE]"),
    ("sydney +61 2 9374 4000", "sydney [PHONE]"),
    ("+91 98765 43210", "[PHONE]"),
    ("madrid +34 912 34 56 78", "madrid [PHONE]"),
    ("rome +39 06 1234 5678", "rome [PHONE]"),
    ("+55 11 91234-5678", "[PHONE]"),
    ("dublin +353 1 234 5678", "dublin [PHONE]"),
    ("+31 20 123 4567", "[PHONE]"),
    ("either 415-555-2671 or ann@example.org", "either [PHONE] or [EMAIL]"),
]
# texts that stay as they are
NEGATIVES = [
    # dates
    "on 2026-12-01",
    "12/01/2026",
    "01.12.2026",
    "2026/12/01",
    "1 Dec 2026",
    "20261201",
    "2026-12-01T14:30:00Z",
    "from 2026-12-01 to 2027-01-15",
    # times
    "at 14:30",
    "2:45:10 pm",
    "14:30:00.123",
    "from 09:00 to 17:30",
    # amounts
    "$1,234.56",
    "€2.500,00",
    "1 234 567 kr",
    "USD 12,345,678.90",
    "19.99 each",
    # order and ticket numbers
    "order 4217",
    "order #A-10234",
    "ORD-2026-000123",
    "ticket 98765432",
    "JIRA-12345",
    "case 00123456",
    "invoice INV-2026-0042",
    "tracking 1Z999AA10123456784",
    # ids
    "room RM_a1b2c3d4e5",
    "job-1234567890",
    "550e8400-e29b-41d4-a716-446655440000",
    # ZIP and post codes
    "94107",
    "94107-1234",
    "SW1A 1AA",
    "10115 Berlin",
    # IP addresses
    "192.168.1.20",
    "10.0.0.1",
    "2001:db8::1",
    "172.16.254.1:8080",
    # years
    "(2024)",
    "in (1999)",
    "1999-2005",
    "born 1987",
    # epoch timestamps
    "1764547200",
    "1764547200123",
    "ts=1764547200.123",
    # versions
    "1.8.9",
    "v10.0.19045",
    "Python 3.11.7",
    "build 20261201.3",
    # digits that are no card: the Luhn check fails, or no network issues such numbers
    "4111 1111 1111 1112",
    "1234 5678 9012 3456",
    "0000 0000 0000 0000",
    # measures and counts
    "latency 0.04111 s",
    "42 items at 3.50 each",
    "ISBN 978-3-16-148410-0",
]


@pytest.fixture(scope="module")
def redact_all() -> roark._config.Redactor:
    redact = resolve({"redact": True}, env={}).redact
    assert redact is not None
    return redact


@pytest.mark.parametrize(("text", "redacted"), POSITIVES, ids=[t for t, _ in POSITIVES])
def test_what_is_an_email_a_card_or_a_phone_number_is_masked(
    redact_all: roark._config.Redactor, text: str, redacted: str
) -> None:
    assert redact_all(text) == redacted


@pytest.mark.parametrize("text", NEGATIVES)
def test_what_only_looks_like_digits_stays(redact_all: roark._config.Redactor, text: str) -> None:
    assert redact_all(text) == text


def test_the_table_has_forty_of_each() -> None:
    assert len(POSITIVES) >= 40 and len(NEGATIVES) >= 40


def test_kinds_pick_what_is_masked_and_a_region_its_national_numbers() -> None:
    only_email = resolve({"redact": ["email"]}, env={}).redact
    assert only_email is not None
    assert (
        only_email("a@b.io 415-555-2671 4111111111111111")
        == "[EMAIL] 415-555-2671 4111111111111111"
    )
    cards = resolve({"redact": "card"}, env={}).redact
    assert cards is not None and cards("4111111111111111 415-555-2671") == "[CARD] 415-555-2671"
    british = resolve({"redact": ["phone:GB"]}, env={}).redact
    us = resolve({"redact": ["phone"]}, env={}).redact
    assert british is not None and us is not None
    assert british("ring 07911 123456") == "ring [PHONE]"
    assert us("ring 07911 123456") == "ring 07911 123456"  # no US number
    assert us("ring +44 7911 123456") == "ring [PHONE]"  # international ones anywhere


@pytest.mark.parametrize("setting", [True, "phone", ["email", "phone:GB"]])
def test_phones_without_phonenumbers_fail_at_configure_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, setting: object
) -> None:
    monkeypatch.setitem(sys.modules, "phonenumbers", None)  # import phonenumbers fails
    with pytest.raises(ConfigurationError) as info:
        roark.configure(api_key="k", spool_dir=tmp_path, redact=setting)
    assert info.value.setting == "redact"
    assert 'pip install "roark[redact]"' in str(info.value)
    # emails and cards need nothing more
    assert resolve({"redact": ["email", "card"]}, env={}).redact is not None


@pytest.mark.parametrize("setting", [["email", "ssn"], "phone:gb", [], 5])
def test_an_unknown_kind_names_the_setting(setting: object) -> None:
    with pytest.raises(ConfigurationError, match="redact"):
        resolve({"redact": setting}, env={})
