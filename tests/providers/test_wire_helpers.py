"""Shared wire helpers: JSON objects and WebSocket close codes."""

from __future__ import annotations

import pytest
from trio_websocket import CloseReason, ConnectionClosed

from providers.exceptions import ProtocolError
from providers.wire import close_of, json_object


@pytest.mark.parametrize(("text", "message"),
                         [("{nope", "not JSON"), (b"[1, 2]", "not a JSON object")])
def test_json_object_refuses_what_is_not_an_object(text: str | bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as caught:
        json_object(text, vendor="v")
    assert caught.value.vendor == "v"
    assert json_object(b'{"a": 1}', vendor="v") == {"a": 1}


def test_close_of_reads_code_and_reason_and_a_drop_is_1006() -> None:
    assert close_of(ConnectionClosed(CloseReason(1011, "NET-0000 oops"))) == (1011, "NET-0000 oops")
    assert close_of(ConnectionClosed(CloseReason(1000, ""))) == (1000, None)
    assert close_of(ConnectionClosed(None)) == (1006, None)
