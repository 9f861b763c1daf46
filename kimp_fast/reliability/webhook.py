"""A Discord-compatible webhook receiver on 127.0.0.1 that records every post.

The engine's :class:`~kimp_fast.notify.DiscordNotifier` posts to it exactly as it would
to Discord (``POST /api/webhooks/<id>/<token>``, JSON with ``embeds``), so a test can
check that a ``manual_required`` really produced a critical alert on the wire.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

__all__ = ["WebhookReceiver"]


class WebhookReceiver:
    """``async with WebhookReceiver(token="…") as hook: hook.url`` → the webhook URL.

    :attr:`posts` holds every JSON payload received, :attr:`embeds` every embed with the
    time it arrived (``_received``). Posts to any other path are answered 404 and
    recorded in :attr:`stray`.
    """

    def __init__(self, *, token: str = "soak-token", webhook_id: str = "4242") -> None:
        self.token = token
        self.webhook_id = webhook_id
        self.posts: list[dict[str, Any]] = []
        self.embeds: list[dict[str, Any]] = []
        self.stray: list[str] = []
        self.raw: list[bytes] = []
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/webhooks/{self.webhook_id}/{self.token}"

    async def __aenter__(self) -> "WebhookReceiver":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.method != "POST" or request.path != f"/api/webhooks/{self.webhook_id}/{self.token}":
            self.stray.append(f"{request.method} {request.path}")
            return web.Response(status=404)
        self.raw.append(body)
        try:
            payload = await request.json()
        except ValueError:
            return web.json_response({"message": "Cannot send an empty message", "code": 50006}, status=400)
        now = time.time()
        self.posts.append(payload)
        for e in payload.get("embeds") or []:
            self.embeds.append(dict(e, _received=now))
        self._changed.set()
        return web.Response(status=204)

    def criticals(self) -> list[dict[str, Any]]:
        """Embeds of critical notifications (the notifier titles them ``CRITICAL: …``)."""
        return [e for e in self.embeds if str(e.get("title", "")).startswith("CRITICAL")]

    def find(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        return next((e for e in self.embeds if predicate(e)), None)

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any] | None:
        """The first embed matching ``predicate``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            hit = self.find(predicate)
            if hit is not None:
                return hit
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    def critical_for(self, signal_id: str) -> dict[str, Any] | None:
        """A critical embed that names ``signal_id``."""
        return self.find(lambda e: str(e.get("title", "")).startswith("CRITICAL") and signal_id in str(e.get("description", "")))
