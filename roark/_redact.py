"""The built-in redaction: email addresses, payment cards and phone numbers, masked.

``redact`` covers what the caller and the model said: transcript text, tool arguments and
tool results. The developer's own fields (metadata, agent prompt and name, ids) are theirs
and go as given. It runs on roark's processor thread, before anything is spooled or sent.

Each kind is recognised by what it is, not by looking like digits:

- ``email``: an address ``name@domain.tld``;
- ``card``: 12 to 19 digits (spaces or dashes between groups) whose Luhn check passes and
  whose leading digits and length are those of a card network (Visa, Mastercard, Amex,
  Discover, Diners, JCB, UnionPay, Maestro);
- ``phone``: a number valid in its country's numbering plan, found by ``phonenumbers``
  (Google's libphonenumber; the ``roark[redact]`` extra): international numbers (``+44 ...``)
  anywhere, national ones of the kind's region (``phone`` is the US; ``phone:GB`` Britain).

So dates, times, amounts, order and ticket numbers, ZIP codes, IP addresses, years, epoch
timestamps and versions stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

Redactor = Callable[[str], str]

KINDS = ("email", "card", "phone")
DEFAULT_REGION = "US"
INSTALL_HINT = 'pip install "roark[redact]"'

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# 12-19 digits, groups split by single spaces or dashes; not part of a longer number
_CARD_CANDIDATE = re.compile(r"(?<![\d.,/:-])\d(?:[ -]?\d){11,18}(?![\d]|[.,/:-]\d)")

# (leading digits, from, to, lengths) of the card networks' number ranges
_CARD_RANGES: tuple[tuple[int, int, int, tuple[int, ...]], ...] = (
    (1, 4, 4, (13, 16, 19)),  # Visa
    (2, 51, 55, (16,)),  # Mastercard
    (4, 2221, 2720, (16,)),  # Mastercard
    (2, 34, 34, (15,)),  # American Express
    (2, 37, 37, (15,)),
    (3, 300, 305, (14, 16)),  # Diners Club
    (2, 36, 36, (14, 16)),
    (2, 38, 39, (14, 16)),
    (4, 6011, 6011, (16, 17, 18, 19)),  # Discover
    (3, 644, 649, (16, 17, 18, 19)),
    (2, 65, 65, (16, 17, 18, 19)),
    (4, 3528, 3589, (16, 17, 18, 19)),  # JCB
    (2, 62, 62, (16, 17, 18, 19)),  # UnionPay
    (2, 50, 50, (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
    (2, 56, 69, (12, 13, 14, 15, 16, 17, 18, 19)),
)


def luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def is_card_number(digits: str) -> bool:
    """Whether ``digits`` could be a payment card's number: a network's range and length,
    and a passing Luhn check."""
    in_range = any(
        low <= int(digits[:width]) <= high and len(digits) in lengths
        for width, low, high, lengths in _CARD_RANGES
    )
    return in_range and luhn_ok(digits)


def _cards(text: str) -> str:
    def mask(match: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", match.group(0))
        return "[CARD]" if is_card_number(digits) else match.group(0)

    return _CARD_CANDIDATE.sub(mask, text)


def _emails(text: str) -> str:
    return _EMAIL.sub("[EMAIL]", text)


def phone_redactor(region: str) -> Redactor:
    """Masks the phone numbers in a text (``phonenumbers`` must be importable)."""
    import phonenumbers

    leniency = phonenumbers.Leniency.STRICT_GROUPING

    def phones(text: str) -> str:
        if not any(c.isdigit() for c in text):
            return text
        spans = [(m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(text, region, leniency)]
        for start, end in reversed(spans):
            text = text[:start] + "[PHONE]" + text[end:]
        return text

    return phones


def phone_region(kind: str) -> str | None:
    """The region of a ``phone`` or ``phone:XX`` kind (None: not a phone kind)."""
    if kind == "phone":
        return DEFAULT_REGION
    if kind.startswith("phone:") and re.fullmatch(r"[A-Z]{2}", kind[6:]):
        return kind[6:]
    return None


def known_kind(kind: Any) -> bool:
    return isinstance(kind, str) and (kind in KINDS or phone_region(kind) is not None)


def builtin_redactor(kinds: Iterable[str]) -> Redactor:
    """A redactor masking the named kinds; ``ImportError`` when a phone kind is asked for and
    ``phonenumbers`` is not installed."""
    kinds = tuple(kinds)
    # emails first (they hold digits), cards before phones (a card's groups look dialable)
    steps: list[Redactor] = []
    if "email" in kinds:
        steps.append(_emails)
    if "card" in kinds:
        steps.append(_cards)
    regions = dict.fromkeys(r for r in map(phone_region, kinds) if r is not None)
    steps += [phone_redactor(region) for region in regions]

    def redact(text: str) -> str:
        for step in steps:
            text = step(text)
        return text

    return redact
