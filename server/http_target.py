"""Request targets, read strictly and without surprises (both ports use this).

``split_target`` takes the request line's target as the HTTP parser gave it and
returns the path and the decoded query pairs, or raises ``RequestError(400)``.
It never lets a foreign parser's exception escape: ``urllib.parse.urlsplit``
raises ``ValueError`` on targets such as ``//[x/media`` or ``http://[::1/media``,
so it is not used here at all.

Accepted forms (RFC 9112 §3.2): origin-form ``/path?query`` and absolute-form
``scheme://authority/path?query`` (whose authority is ignored). A fragment is
dropped. The path is compared as sent (no percent-decoding). The query must be
``application/x-www-form-urlencoded`` UTF-8: bad percent-escapes or invalid
UTF-8 are refused, as are more than ``MAX_QUERY_FIELDS`` fields.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from server.exceptions import RequestError

__all__ = ["MAX_QUERY_FIELDS", "split_target"]

#: A stream URL carries a rate and up to three custom parameters; a handful more
#: is lenience, thousands are an attack on the parser.
MAX_QUERY_FIELDS = 32


def split_target(target: str) -> tuple[str, list[tuple[str, str]]]:
    """``(path, query pairs)`` of a request target; ``RequestError(400)`` if malformed.

    A bare key gives the pair ``(key, "")``; repeated keys are kept in order.
    """
    if target.startswith("/"):
        rest = target
    elif "://" in target:
        _, _, after_scheme = target.partition("://")
        slash = after_scheme.find("/")
        query_at = after_scheme.find("?")
        if slash < 0 or 0 <= query_at < slash:  # no path: "http://host" or "http://host?q"
            rest = "/" + (after_scheme[query_at:] if query_at >= 0 else "")
        else:
            rest = after_scheme[slash:]
    else:
        raise RequestError(400, "request target is neither a path nor an absolute URL")
    rest = rest.partition("#")[0]
    path, _, query = rest.partition("?")
    if not query:
        return path, []
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False,
                          errors="strict", max_num_fields=MAX_QUERY_FIELDS)
    except UnicodeDecodeError as exc:
        raise RequestError(400, "query string is not UTF-8") from exc
    except ValueError as exc:  # too many fields
        raise RequestError(400, "query string has too many fields") from exc
    return path, pairs
