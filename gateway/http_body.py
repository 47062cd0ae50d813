"""The HTTP request around a GraphQL operation, before and after the schema sees it:
refusals answered as GraphQL error bodies, the body read within `MAX_BODY_BYTES` and
`BODY_TIMEOUT`, JSON decoded within `MAX_JSON_DEPTH`, and response bodies encoded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

import orjson
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive

MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32  # of the body and of GET's `variables` / `extensions`
BODY_TIMEOUT = 10.0  # seconds a client may take to send its body (408 after)


class Refusal(Exception):
    """A request refused before GraphQL runs, answered as a GraphQL error response."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self, request_id: str) -> Response:
        body = {"errors": [{"message": self.message, "extensions": {"code": self.code}}]}
        headers = {**self.headers, "X-Request-Id": request_id}
        # ASCII JSON: a message quoting the caller's text may carry a lone surrogate,
        # which only an escape can represent.
        return Response(
            json.dumps(body),
            status_code=self.status,
            headers=headers,
            media_type="application/json",
        )


def content_length(request: Request) -> int:
    text = request.headers.get("content-length") or "0"
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise Refusal(400, "BAD_REQUEST", "malformed Content-Length")
    return int(text)


def authorization(request: Request) -> str | None:
    """The one Authorization header; two are refused (which one counts is not ours to
    guess: a proxy may have added one)."""
    values = request.headers.getlist("authorization")
    if len(values) > 1:
        raise Refusal(400, "BAD_REQUEST", "send one Authorization header")
    return values[0] if values else None


def encode_json(data: object) -> bytes:
    """A response body: orjson, or the standard library for what orjson refuses (a lone
    surrogate quoted from the caller's text, an integer past 64 bits), escaped to ASCII."""
    try:
        return orjson.dumps(data)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(data, separators=(",", ":")).encode()


def decode_json(data: str | bytes) -> object:
    """JSON as the endpoint accepts it: an object or a list, nested at most
    `MAX_JSON_DEPTH` deep; anything else is a 400. (Strings no database can store,
    NUL or a lone surrogate, are the ledger's to refuse, as INVALID_INPUT on the field.)"""
    try:
        value = json.loads(data)
    except RecursionError:
        raise HTTPException(400, "the JSON is nested too deeply") from None
    except ValueError:  # not JSON, or bytes that are not UTF-8
        raise HTTPException(400, "Unable to parse request body as JSON") from None
    if not isinstance(value, dict | list):
        raise HTTPException(400, "the JSON must be an object")
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise HTTPException(400, f"the JSON is nested more than {MAX_JSON_DEPTH} deep")
        if isinstance(item, dict):
            pending.extend((key, depth) for key in item)
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
    return value


async def read_body(receive: Receive) -> bytes:
    """The body, within `MAX_BODY_BYTES` and `BODY_TIMEOUT` (a client that trickles
    its body is cut off)."""
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            return await receive_whole_body(receive)
    except TimeoutError:
        raise Refusal(408, "REQUEST_TIMEOUT", "the request body took too long") from None


async def receive_whole_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refusal(400, "BAD_REQUEST", "the client went away")
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            raise Refusal(413, "BAD_REQUEST", f"request body over {MAX_BODY_BYTES} bytes")
        if not message.get("more_body", False):
            return bytes(body)


def replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive
