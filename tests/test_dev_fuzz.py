"""Random, malformed requests at ``roark dev``'s ingest: the same answers as the test
fixture's local Roark, never a server error, and the viewer serves every page afterwards."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from roark.dev.server import DevServer
from roark.testing.server import EVENT_PATH, UPLOAD_URL_PATH, LocalRoark

from .browser import chromium_browser, why_no_browser
from .test_local_roark import KEY, auth, ended, started, stereo_pcm

_NO_BROWSER = why_no_browser()

REQUESTS = 400
IDS = [
    "RM_fuzz",
    "RM_other",
    "../../etc/passwd",
    "a/b\\c",
    ".hidden",
    "Grüße ☎ 東京",
    "x" * 300,
    "<script>alert(1)</script>",
    " ",
    "RM_\u0000nul",
]
ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**70,
    1.5,
    float("nan"),
    float("inf"),
    "",
    "x" * 5000,
    "\ud83d\ude00 ☎",
    [],
    [1, "a", None],
    {},
    {"nested": {"deep": [1, {"x": None}]}},
]


def _mutate(body: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """``body`` with a few of its fields dropped, replaced by odd values, or added."""
    body = json.loads(json.dumps(body))
    for _ in range(rng.randint(1, 3)):
        target = body
        inner = body.get(rng.choice(["transcript", "toolCalls", "metrics", "metadata"]))
        if isinstance(inner, list) and inner and rng.random() < 0.5:
            inner = rng.choice(inner)
        if isinstance(inner, dict) and rng.random() < 0.5:
            target = inner
        action, key = rng.random(), rng.choice([*target, "extra"])
        if action < 0.3:
            target.pop(key, None)
        elif action < 0.9:
            target[key] = copy.deepcopy(rng.choice(ODD_VALUES))
        else:
            target[key] = rng.choice(IDS)
    return body


def _body(rng: random.Random, cid: str) -> tuple[str, bytes]:
    """A request's path and body: a valid one now and then, mostly a broken one."""
    kind = rng.random()
    if kind < 0.35:
        made = started(cid)
        path = EVENT_PATH
    elif kind < 0.7:
        made = ended(cid, audio=rng.random() < 0.5)
        path = EVENT_PATH
    else:
        made = {"livekitCallId": cid, "chunkIndex": rng.randint(0, 3), "contentType": "audio/pcm"}
        path = UPLOAD_URL_PATH
    shape = rng.random()
    if shape < 0.25:
        return path, json.dumps(made).encode()
    if shape < 0.85:
        return path, json.dumps(_mutate(made, rng)).encode()
    if shape < 0.93:
        return path, json.dumps(made).encode()[: rng.randint(0, 40)]
    return path, rng.randbytes(rng.randint(0, 64))


def _headers(rng: random.Random) -> dict[str, str]:
    headers = {**auth(), "Content-Type": "application/json"}
    odd = rng.random()
    if odd < 0.05:
        headers.pop("x-roark-api-key")
    elif odd < 0.1:
        headers["Content-Type"] = rng.choice(["text/plain", "application/json; charset=latin-1"])
    elif odd < 0.13:
        headers = {**auth("nope"), "Content-Type": "application/json"}
    return headers


class Twin:
    """One client talking to both servers, with each one's own upload URLs."""

    def __init__(self, base_urls: list[str]) -> None:
        self.base_urls = base_urls
        self.uploads: list[list[str]] = [[] for _ in base_urls]

    def each(self, send: Callable[[int, str], requests.Response]) -> list[requests.Response]:
        replies = [send(i, url) for i, url in enumerate(self.base_urls)]
        for i, reply in enumerate(replies):
            if reply.status_code == 200 and reply.request.path_url == UPLOAD_URL_PATH:
                self.uploads[i].append(reply.json()["data"]["uploadUrl"])
        return replies


def _one(twin: Twin, rng: random.Random) -> tuple[str, list[requests.Response]]:
    if rng.random() < 0.2 and all(twin.uploads):
        data = (
            stereo_pcm(0.2).tobytes()
            if rng.random() < 0.7
            else rng.randbytes(rng.choice([0, 3, 6, 10]))
        )
        content_type = "audio/pcm" if rng.random() < 0.9 else "application/octet-stream"
        pick = rng.randrange(len(twin.uploads[0]))
        return "PUT chunk", twin.each(
            lambda i, _: requests.put(
                twin.uploads[i][pick % len(twin.uploads[i])],
                data=data,
                headers={"Content-Type": content_type},
                timeout=10,
            )
        )
    path, body = _body(rng, rng.choice(IDS[:2]) if rng.random() < 0.8 else rng.choice(IDS))
    headers = _headers(rng)
    what = f"POST {path} {body[:120]!r}"
    return what, twin.each(
        lambda _, url: requests.post(url + path, data=body, headers=headers, timeout=10)
    )


@dataclass
class Fuzzed:
    dev: DevServer
    answers: list[tuple[str, requests.Response, requests.Response]]  # (what, fixture, dev)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    folder = tmp_path_factory.mktemp("dev-fuzz")
    rng = random.Random(14)
    with (
        LocalRoark(api_key=KEY, recordings_dir=folder / "fixture") as fixture,
        DevServer(folder / ".roark", api_key=KEY) as dev,
    ):
        twin = Twin([fixture.base_url, dev.base_url])
        answers = []
        for _ in range(REQUESTS):
            what, (want, got) = _one(twin, rng)
            answers.append((what, want, got))
        yield Fuzzed(dev, answers)


def test_fuzzed_ingest_answers_as_the_fixture_and_never_fails(fuzzed: Fuzzed) -> None:
    for what, want, got in fuzzed.answers:
        assert got.status_code == want.status_code, what
        assert got.status_code < 500, what
        if got.status_code != 200:
            assert got.content == want.content, what
    assert {got.status_code for _, _, got in fuzzed.answers} >= {200, 400, 401, 403}


def test_after_the_fuzz_the_viewer_serves_every_page(fuzzed: Fuzzed) -> None:
    _the_viewer_serves_every_page(fuzzed.dev)


@pytest.mark.skipif(_NO_BROWSER is not None, reason=f"browser tests: {_NO_BROWSER}")
def test_after_the_fuzz_every_page_renders_in_the_browser(fuzzed: Fuzzed) -> None:
    listed = requests.get(fuzzed.dev.base_url + "/api/calls", timeout=10).json()["calls"]
    errors: list[str] = []
    with chromium_browser() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("dialog", lambda d: errors.append(f"a dialog opened: {d.message}"))
        for path in ["/", *(row["url"] for row in listed)]:
            page.goto(fuzzed.dev.base_url + path)
            page.wait_for_selector("body[data-ready='1']", timeout=15_000)
        assert page.locator("h1").first.inner_text() != ""
    assert errors == []


def _the_viewer_serves_every_page(dev: DevServer) -> None:
    def get(path: str) -> requests.Response:
        answer = requests.get(dev.base_url + path, timeout=30)
        assert answer.status_code == 200, (path, answer.text[:200])
        return answer

    listed = get("/api/calls").json()["calls"]
    assert {row["id"] for row in listed} >= {"RM_fuzz", "RM_other"}
    get("/")
    for row in listed:
        get(row["url"])
        page = get(f"/api/calls/{quote(row['key'])}").json()
        assert page["call"]["id"] == row["id"]
        if page["audio"] is not None:
            assert get(page["audio"]["peaks"]).content
            assert get(page["audio"]["url"]).headers["Content-Type"] == "audio/wav"
        for link in page["downloads"].values():
            if link is not None:
                get(link)


@pytest.mark.parametrize("path", ["/api/calls/%00", "/api/calls/..%2F..%2Findex.sqlite3"])
def test_odd_call_keys_are_not_found(tmp_path: Path, path: str) -> None:
    with DevServer(tmp_path / ".roark", api_key=KEY) as dev:
        for suffix in ("", "/peaks", "/recording.wav", "/call-ended.json"):
            answer = requests.get(dev.base_url + path + suffix, timeout=10)
            assert answer.status_code == 404, suffix
        assert requests.get(dev.base_url + "/api/calls", timeout=10).status_code == 200
