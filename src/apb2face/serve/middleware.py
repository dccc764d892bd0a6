"""ASGI middleware: the bearer token on every route, and the request-body limit (413 before the body is read)."""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from apb2face.serve.errors import error_response

COOKIE = "apb2face_token"

Scope = dict[str, Any]


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def presented_tokens(scope: Scope) -> list[str]:
    """Tokens a request carries: `Authorization: Bearer T`, `?token=T` (for links and WebSockets) or the cookie the
    page sets once it was opened with `?token=T`."""
    headers = _headers(scope)
    found = []
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        found.append(auth[7:].strip())
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    found += query.get("token", [])
    if "cookie" in headers:
        cookie = SimpleCookie()
        try:
            cookie.load(headers["cookie"])
        except Exception:  # a malformed cookie header authorises nothing
            return found
        if COOKIE in cookie:
            found.append(cookie[COOKIE].value)
    return found


class TokenAuth:
    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    def authorized(self, scope: Scope) -> bool:
        expected = self.token.encode()
        return any(hmac.compare_digest(t.encode(), expected) for t in presented_tokens(scope))

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self.token is None or scope["type"] not in ("http", "websocket") or self.authorized(scope):
            await self.app(scope, receive, send)
            return
        response = error_response(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        if scope["type"] == "http" or "websocket.http.response" in scope.get("extensions", {}):
            await response(scope, receive, send)  # on a WebSocket: the HTTP denial response extension
        else:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})


class BodyLimit:
    """Refuse HTTP request bodies over `limit` bytes with 413: at once when Content-Length says so, otherwise as
    soon as the streamed body passes the limit (the app's answer is then replaced by the 413)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body is larger than the limit of {self.limit} bytes"
        length = _headers(scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await error_response(413, message)(scope, receive, send)
            return
        state = {"received": 0, "over": False, "started": False}

        async def counted_receive() -> dict:
            if state["over"]:
                return {"type": "http.disconnect"}
            event = await receive()
            if event["type"] == "http.request":
                state["received"] += len(event.get("body", b""))
                if state["received"] > self.limit:
                    state["over"] = True
                    return {"type": "http.disconnect"}
            return event

        async def guarded_send(event: dict) -> None:
            if state["over"]:
                if event["type"] == "http.response.start" and not state["started"]:
                    state["started"] = True
                    await error_response(413, message)(scope, receive, send)
                return
            await send(event)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not state["over"]:
                raise
            if not state["started"]:
                state["started"] = True
                await error_response(413, message)(scope, receive, send)
