"""Control HTTP over a real loopback socket: health, readiness, metrics, Exotel URL."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import trio

from server.calls.server import parse_target
from server.config import BasicAuth, ServerConfig
from server.control.app import ControlApp, custom_parameters, stream_url
from server.control.http import serve_control
from server.metrics import ServerMetrics
from server.store.records import LeadContext


@dataclass
class Control:
    base: str
    state: dict[str, bool]
    metrics: ServerMetrics
    announced: list[tuple[dict[str, str], int]]


@pytest.fixture
async def control() -> AsyncIterator[Control]:
    config = ServerConfig(control_port=0, our_base_url="https://KEY:TOKEN@bot.example.com",
                          control_auth=BasicAuth("exotel", "pw"))
    metrics = ServerMetrics()
    state = {"ready": True}
    announced: list[tuple[dict[str, str], int]] = []
    app = ControlApp(config, metrics, lambda: state["ready"],
                     on_announce=lambda params, rate: announced.append((dict(params), rate)))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_control, app, config)
        yield Control(f"http://127.0.0.1:{port}", state, metrics, announced)
        nursery.cancel_scope.cancel()


async def _request(method: str, url: str, *, auth: tuple[str, str] | None = ("exotel", "pw"),
                   **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(auth=auth) as client:
        return await client.request(method, url, **kwargs)  # type: ignore[arg-type]


async def test_healthz_and_readyz_follow_the_drain_state(control: Control) -> None:
    assert (await _request("GET", control.base + "/healthz")).status_code == 200
    assert (await _request("GET", control.base + "/readyz")).status_code == 200
    control.state["ready"] = False
    answer = await _request("GET", control.base + "/readyz")
    assert answer.status_code == 503
    assert (await _request("GET", control.base + "/healthz")).status_code == 200


async def test_metrics_expose_every_server_metric(control: Control) -> None:
    control.metrics.handshake_rejections.labels(reason="busy").inc()
    answer = await _request("GET", control.base + "/metrics")
    assert answer.status_code == 200
    text = answer.text
    for name in (
        "voicebot_active_calls", "voicebot_calls_total", "voicebot_frames_in_total",
        "voicebot_frames_out_total", "voicebot_bad_frames_total",
        "voicebot_outbound_lead_seconds", "voicebot_event_loop_lag_seconds",
        "voicebot_outbound_lateness_seconds",
    ):
        assert name in text
    assert 'voicebot_handshake_rejections_total{reason="busy"} 1.0' in text


async def test_exotel_url_get_carries_call_details_as_custom_parameters(
    control: Control,
) -> None:
    answer = await _request(
        "GET", control.base + "/exotel/url",
        params={"CallSid": "c" * 32, "From": "+919812345678", "To": "08047110000",
                "CustomField": "lead-42", "campaign": "diwali"},
    )
    assert answer.status_code == 200
    url = urlsplit(answer.json()["url"])
    assert url.scheme == "wss"
    assert url.netloc == "KEY:TOKEN@bot.example.com"
    assert url.path == "/media"
    query = dict(parse_qsl(url.query))
    assert query == {"sample-rate": "8000", "call_sid": "c" * 32, "lead_id": "lead-42",
                     "campaign_id": "diwali"}
    # What the call server makes of that URL is what the store records.
    _, rate, params = parse_target(f"{url.path}?{url.query}")
    lead = LeadContext(params=params)
    assert (lead.lead_id, lead.campaign_id) == ("lead-42", "diwali")
    # ...and what the call is announced with (its greeting rendered ahead).
    assert control.announced == [(params, rate)]


async def test_only_an_answered_exotel_url_announces_the_call(control: Control) -> None:
    refused = await _request("GET", control.base + "/exotel/url", params={"CallSid": "a"},
                             auth=("exotel", "wrong"))
    malformed = await _request("POST", control.base + "/exotel/url", content=b"{",
                               headers={"content-type": "application/json"})
    assert (refused.status_code, malformed.status_code) == (401, 400)
    assert control.announced == []
    answered = await _request("POST", control.base + "/exotel/url", data={"CallSid": "b"})
    assert answered.status_code == 200
    assert control.announced == [({"call_sid": "b"}, 8000)]


async def test_exotel_url_post_form_and_json_bodies(control: Control) -> None:
    form = await _request("POST", control.base + "/exotel/url",
                          data={"CallSid": "abc", "lead_id": "x" * 300, "campaign": "c:1"})
    query = dict(parse_qsl(urlsplit(form.json()["url"]).query))
    assert query["call_sid"] == "abc"
    # Ids the call would refuse ([A-Za-z0-9._-]{1,128}) are replaced, as the call does.
    assert re.fullmatch(r"lead_id-[0-9a-f]{16}", query["lead_id"])
    assert re.fullmatch(r"campaign_id-[0-9a-f]{16}", query["campaign_id"])
    body = await _request("POST", control.base + "/exotel/url",
                          content=json.dumps({"CallSid": "def"}),
                          headers={"content-type": "application/json"})
    assert dict(parse_qsl(urlsplit(body.json()["url"]).query))["call_sid"] == "def"
    bad = await _request("POST", control.base + "/exotel/url", content=b"[1]",
                         headers={"content-type": "application/json"})
    assert bad.status_code == 400


@pytest.mark.parametrize(("call_sid", "given"), [
    ("919876543210", "******3210"),  # a phone number: masked
    ("+91 98765-43210", "******3210"),
    ("\x1b[31mX\nY", "\\x1b[31mX\\x0aY"),  # not an id: escaped
])
async def test_exotel_url_replaces_phone_like_and_invalid_call_sids_as_the_call_does(
    control: Control, caplog: pytest.LogCaptureFixture, call_sid: str, given: str,
) -> None:
    """The call path's rule (``server.redact.wire_id``): the URL and the log carry
    a generated id, the original is logged masked (or escaped) once."""
    caplog.set_level(logging.INFO, logger="server.control.app")
    answer = await _request("GET", control.base + "/exotel/url", params={"CallSid": call_sid})
    assert answer.status_code == 200
    used = dict(parse_qsl(urlsplit(answer.json()["url"]).query))["call_sid"]
    assert re.fullmatch(r"call_sid-[0-9a-f]{16}", used)
    lines = [(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records]
    assert lines == [
        (lines[0][0], {"kind": "call_sid", "given": given, "used": used}),
        ("dynamic stream url issued", {"call_sid": used}),
    ]
    assert "98765" not in answer.text + repr(lines)


async def test_unknown_paths_wrong_methods_and_oversized_bodies(control: Control) -> None:
    assert (await _request("GET", control.base + "/nope")).status_code == 404
    assert (await _request("POST", control.base + "/healthz")).status_code == 405
    big = await _request("POST", control.base + "/exotel/url", content=b"a=" + b"b" * 40_000,
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert big.status_code == 413


async def test_garbage_request_gets_400(control: Control) -> None:
    port = int(control.base.rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"NOT HTTP AT ALL\r\n\r\n")
        data = b""
        while chunk := await stream.receive_some():
            data += chunk
    assert data.startswith(b"HTTP/1.1 400")


def test_stream_url_maps_schemes_and_keeps_base_query() -> None:
    assert stream_url("http://h:8080/base/", "/media", {}) == "ws://h:8080/base/media?sample-rate=8000"
    url = stream_url("wss://h/?token=s3cret", "/media", custom_parameters({"callsid": "z"}),
                     sample_rate=16000)
    assert url == "wss://h/media?token=s3cret&sample-rate=16000&call_sid=z"


def test_readyz_follows_the_store_and_control_auth_guards_metrics() -> None:
    from server.metrics import ServerMetrics as Metrics

    store = {"up": True}
    app = ControlApp(ServerConfig(control_auth=BasicAuth("c", "p")), Metrics(), lambda: True,
                     lambda: store["up"])
    assert app.respond("GET", "/readyz", {}, b"").status == 200
    store["up"] = False  # the embedded redis-server died
    assert app.respond("GET", "/readyz", {}, b"") == app.respond("GET", "/readyz", {}, b"")
    assert app.respond("GET", "/readyz", {}, b"").status == 503
    assert app.respond("GET", "/healthz", {}, b"").status == 200
    assert app.respond("GET", "/metrics", {}, b"").status == 401
    ok = app.respond("GET", "/metrics", {"authorization": "Basic Yzpw"}, b"")
    assert ok.status == 200
    assert b"voicebot_redis_up" in ok.body
