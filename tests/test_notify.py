"""Notifiers against a real local webhook receiver (aiohttp on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from aiohttp import web

from kimp_fast.config import ConfigError, EngineConfig, Secret
from kimp_fast.notify import (
    COLOURS,
    DiscordNotifier,
    LoggingNotifier,
    Notifier,
    Severity,
    make_notifier,
)

TOKEN = "tok-3bX9secretWebhookToken"


class Receiver:
    """A Discord-like webhook endpoint. ``script`` holds the answers to the next requests.

    Answers: ``"ok"`` (204), ``("429", retry_after)`` (JSON body), ``("429h", seconds)``
    (``Retry-After`` header, text body), ``500``/``502``/``404`` (the 404 body echoes the
    request path, as a hostile or careless server might), ``"hang"`` (no answer until
    :attr:`release` is set), ``("ok-limited", reset_after)`` (204 with
    ``X-RateLimit-Remaining: 0``).
    """

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.requests: list[dict[str, Any]] = []  # {"t": loop time, "body": json}
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()
        self.url = ""

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests]

    @property
    def delivered_titles(self) -> list[str]:
        """Embed titles of the posts that got a 2xx, in arrival order."""
        return [e["title"] for r in self.requests if r["status"] < 300 for e in r["body"]["embeds"]]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        entry = {"t": asyncio.get_running_loop().time(), "body": body, "status": 0}
        self.requests.append(entry)
        self.arrived.set()
        action = self.script.pop(0) if self.script else "ok"
        if action == "hang":
            await self.release.wait()
            action = "ok"
        if isinstance(action, tuple) and action[0] == "429":
            entry["status"] = 429
            return web.json_response({"message": "You are being rate limited.", "retry_after": action[1], "global": False}, status=429)
        if isinstance(action, tuple) and action[0] == "429h":
            entry["status"] = 429
            return web.Response(status=429, text="slow down", headers={"Retry-After": str(action[1])})
        if isinstance(action, tuple) and action[0] == "ok-limited":
            entry["status"] = 204
            return web.Response(status=204, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": str(action[1])})
        if action == 404:
            entry["status"] = 404
            return web.json_response({"message": f"Unknown Webhook {request.path}", "code": 10015}, status=404)
        if isinstance(action, int):
            entry["status"] = action
            return web.Response(status=action, text="upstream error")
        entry["status"] = 204
        return web.Response(status=204)


@pytest.fixture
async def receiver():
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/api/webhooks/{id}/{token}", rec.handle)
    runner = web.AppRunner(app, access_log=None)  # the server side is not under test
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rec.url = f"http://{host}:{port}/api/webhooks/123/{TOKEN}"
    yield rec
    rec.release.set()
    await runner.cleanup()


@pytest.fixture
async def notifiers():
    """Builds DiscordNotifiers (fast test defaults) and closes them all afterwards."""
    made: list[DiscordNotifier] = []

    def make(url: str, **kw: Any) -> DiscordNotifier:
        kw.setdefault("min_interval_s", 0.0)
        kw.setdefault("backoff_s", 0.01)
        n = DiscordNotifier(Secret(url), **kw)
        made.append(n)
        return n

    yield make
    for n in made:
        await n.close(timeout=0.5)


async def wait_until(predicate, timeout: float = 5.0) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(loop(), timeout)


# --------------------------------------------------------------------------- delivery


async def test_payload_shape_and_severity_colours(receiver, notifiers):
    n = notifiers(receiver.url)
    n.notify(Severity.INFO, "filled", "ENTER BTC 0.01", signal="sig-1", qty="0.01")
    n.notify("warning", "breaker open", "binance: 5 consecutive failures")
    n.notify(Severity.CRITICAL, "manual intervention required")
    await n.start()
    assert await n.flush(5)
    (body,) = receiver.bodies  # waiting messages are batched into one post
    assert body["content"].splitlines() == [
        "**INFO** filled",
        "**WARNING** breaker open",
        "**CRITICAL** manual intervention required",
    ]
    assert body["allowed_mentions"] == {"parse": []} and body["username"] == "kimp-fast"
    e1, e2, e3 = body["embeds"]
    assert (e1["title"], e1["description"], e1["color"]) == ("INFO: filled", "ENTER BTC 0.01", COLOURS[Severity.INFO])
    assert e1["fields"] == [
        {"name": "signal", "value": "sig-1", "inline": True},
        {"name": "qty", "value": "0.01", "inline": True},
    ]
    assert e2["color"] == COLOURS[Severity.WARNING] and e3["color"] == COLOURS[Severity.CRITICAL]
    assert "description" not in e3 and e3["timestamp"].endswith("+00:00")
    assert n.stats() == {"delivered": 3, "failed": 0, "dropped": 0, "posts": 1, "queued": 0}


async def test_messages_arrive_in_order(receiver, notifiers):
    n = notifiers(receiver.url)
    await n.start()
    expected = []
    for i in range(25):
        sev = (Severity.INFO, Severity.WARNING, Severity.CRITICAL)[i % 3]
        n.notify(sev, f"m{i}")
        expected.append(f"{sev.value.upper()}: m{i}")
        if i % 7 == 0:
            await asyncio.sleep(0)  # let some go out alone, others batch up
    assert await n.flush(5)
    assert receiver.delivered_titles == expected
    assert all(len(b["embeds"]) <= 10 for b in receiver.bodies)


async def test_min_interval_between_posts(receiver, notifiers):
    n = notifiers(receiver.url, min_interval_s=0.2)
    await n.start()
    n.notify("info", "first")
    assert await n.flush(5)
    n.notify("info", "second")
    assert await n.flush(5)
    t0, t1 = (r["t"] for r in receiver.requests)
    assert t1 - t0 >= 0.19


async def test_429_retry_after_from_json_is_honoured_without_using_a_retry(receiver, notifiers):
    receiver.script = [("429", 0.3), "ok"]
    n = notifiers(receiver.url, retries=0)
    await n.start()
    n.notify("critical", "must arrive")
    assert await n.flush(5)
    first, second = receiver.requests
    assert first["status"] == 429 and second["status"] == 204
    assert second["t"] - first["t"] >= 0.29
    assert first["body"] == second["body"]
    assert n.stats()["delivered"] == 1 and n.stats()["failed"] == 0


async def test_429_retry_after_header_is_honoured(receiver, notifiers):
    receiver.script = [("429h", 0.25), "ok"]
    n = notifiers(receiver.url)
    await n.start()
    n.notify("info", "x")
    assert await n.flush(5)
    first, second = receiver.requests
    assert second["t"] - first["t"] >= 0.24


async def test_rate_limit_headers_delay_the_next_post(receiver, notifiers):
    receiver.script = [("ok-limited", 0.3), "ok"]
    n = notifiers(receiver.url)
    await n.start()
    n.notify("info", "a")
    assert await n.flush(5)
    n.notify("info", "b")
    assert await n.flush(5)
    first, second = receiver.requests
    assert second["t"] - first["t"] >= 0.29
    assert receiver.delivered_titles == ["INFO: a", "INFO: b"]


async def test_5xx_is_retried_with_backoff(receiver, notifiers):
    receiver.script = [500, 502, "ok"]
    n = notifiers(receiver.url, retries=3)
    await n.start()
    n.notify("warning", "retry me")
    assert await n.flush(5)
    assert [r["status"] for r in receiver.requests] == [500, 502, 204]
    assert n.stats()["delivered"] == 1 and n.stats()["posts"] == 3


async def test_retries_exhausted_then_later_messages_still_go(receiver, notifiers, caplog):
    receiver.script = [500, 500]
    n = notifiers(receiver.url, retries=1)
    await n.start()
    with caplog.at_level(logging.WARNING, logger="kimp_fast.notify"):
        n.notify("info", "lost")
        assert await n.flush(5)
        n.notify("info", "next")
        assert await n.flush(5)
    assert [r["status"] for r in receiver.requests] == [500, 500, 204]
    assert receiver.delivered_titles == ["INFO: next"]
    assert n.stats()["failed"] == 1 and n.stats()["delivered"] == 1
    assert "1 message(s) not delivered (_Retryable: HTTP 500 after 2 attempt(s))" in caplog.text


async def test_4xx_is_not_retried(receiver, notifiers, caplog):
    receiver.script = [404]
    n = notifiers(receiver.url, retries=3)
    await n.start()
    with caplog.at_level(logging.ERROR, logger="kimp_fast.notify"):
        n.notify("info", "gone")
        assert await n.flush(5)
    assert [r["status"] for r in receiver.requests] == [404]
    assert n.stats()["failed"] == 1
    assert "HTTP 404" in caplog.text


async def test_timeout_is_retried(receiver, notifiers):
    receiver.script = ["hang", "ok"]
    n = notifiers(receiver.url, timeout_s=0.2, retries=2)
    await n.start()
    n.notify("critical", "x")
    assert await n.flush(5)
    assert len(receiver.requests) == 2 and receiver.requests[1]["status"] == 204
    assert n.stats()["delivered"] == 1


async def test_a_hanging_receiver_never_delays_notify(receiver, notifiers):
    receiver.script = ["hang"]
    n = notifiers(receiver.url, timeout_s=30)
    await n.start()
    n.notify("info", "m0")
    await asyncio.wait_for(receiver.arrived.wait(), 5)
    # The post of m0 is stuck in the receiver. notify() is a plain call that returns at
    # once: 100 more are queued while the network is blocked.
    for i in range(1, 101):
        assert n.notify("info", f"m{i}") is None
    assert n.queued == 100 and len(receiver.requests) == 1
    assert not await n.flush(0.05)
    receiver.release.set()
    assert await n.flush(5)
    assert receiver.delivered_titles == [f"INFO: m{i}" for i in range(101)]


async def test_close_drains_the_queue(receiver, notifiers):
    n = notifiers(receiver.url, min_interval_s=0.02)
    await n.start()
    for i in range(30):
        n.notify("info", f"m{i}")
    await n.close(timeout=5)
    assert receiver.delivered_titles == [f"INFO: m{i}" for i in range(30)]
    assert n.stats()["delivered"] == 30 and n.queued == 0


async def test_close_without_start_still_delivers(receiver, notifiers):
    n = notifiers(receiver.url)
    n.notify("critical", "before start")
    await n.close(timeout=5)
    assert receiver.delivered_titles == ["CRITICAL: before start"]


async def test_close_gives_up_after_its_timeout(receiver, notifiers, caplog):
    receiver.script = ["hang"]
    n = notifiers(receiver.url, timeout_s=30)
    await n.start()
    n.notify("critical", "stuck")
    n.notify("info", "behind it")
    await asyncio.wait_for(receiver.arrived.wait(), 5)
    with caplog.at_level(logging.WARNING, logger="kimp_fast.notify"):
        await asyncio.wait_for(n.close(timeout=0.3), 5)
    assert n.stats()["dropped"] == 2 and n.queued == 0
    assert "2 message(s) not delivered before close" in caplog.text
    # After close, notify still logs locally and never raises.
    n.notify("critical", "after close")
    assert n.sent[-1]["title"] == "after close"


async def test_queue_bound_drops_info_first_and_never_critical(receiver, notifiers):
    n = notifiers(receiver.url, max_queue=3)
    for sev, title in [
        ("info", "i1"),
        ("info", "i2"),
        ("warning", "w1"),
        ("critical", "c1"),  # full: drops i1
        ("info", "i3"),  # drops i2
        ("warning", "w2"),  # drops i3
        ("info", "i4"),  # no INFO left to drop: the new INFO is dropped
        ("critical", "c2"),  # drops w1
        ("critical", "c3"),  # drops w2
        ("critical", "c4"),  # only CRITICAL queued: kept beyond the bound
        ("warning", "w3"),  # dropped
    ]:
        n.notify(sev, title)
    assert [r["title"] for r in n.pending()] == ["c1", "c2", "c3", "c4"]
    assert n.stats()["dropped"] == 7
    assert len(n.sent) == 11  # every message is in the local log
    await n.start()
    assert await n.flush(5)
    assert receiver.delivered_titles == [f"CRITICAL: c{i}" for i in range(1, 5)]
    assert "7 earlier notification(s) dropped" in receiver.bodies[0]["content"]


async def test_notify_from_another_thread(receiver, notifiers):
    n = notifiers(receiver.url)
    await n.start()
    t = threading.Thread(target=n.notify, args=("warning", "from a thread"))
    t.start()
    t.join()
    await wait_until(lambda: receiver.delivered_titles)
    assert receiver.delivered_titles == ["WARNING: from a thread"]


async def test_the_webhook_url_never_appears_in_logs(receiver, notifiers, caplog):
    receiver.script = [404, 500, 500]
    dead_url = f"http://127.0.0.1:9/api/webhooks/456/{TOKEN}-dead"  # discard port: refused
    with caplog.at_level(logging.DEBUG):
        n = notifiers(receiver.url, retries=1)
        dead = notifiers(dead_url, retries=1)
        await n.start()
        await dead.start()
        n.notify("info", "refused with the path echoed")
        assert await n.flush(5)
        n.notify("critical", "server errors")
        dead.notify("warning", "connection refused")
        assert await n.flush(5) and await dead.flush(5)
        await n.close()
        await dead.close()
    assert n.stats()["failed"] == 2 and dead.stats()["failed"] == 1
    assert "discord webhook" in caplog.text
    texts = [caplog.text, repr(n), repr(dead), str(n.stats())]
    texts += [r.getMessage() for r in caplog.records] + [str(r.exc_text) for r in caplog.records]
    for text in texts:
        assert TOKEN not in text and "/api/webhooks/" not in text


async def test_bad_arguments_never_raise(receiver, notifiers):
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    n = notifiers(receiver.url)
    await n.start()
    n.notify(None, Unprintable(), Unprintable(), field=Unprintable())  # type: ignore[arg-type]
    n.notify("no-such-severity", "unknown severity becomes warning")
    assert await n.flush(5)
    titles = receiver.delivered_titles
    assert titles[0] == "WARNING: <unprintable Unprintable>"
    assert titles[1] == "WARNING: unknown severity becomes warning"


# --------------------------------------------------------------------------- logging notifier


def test_logging_notifier_logs_at_the_matching_level(caplog):
    n = LoggingNotifier(keep=2)
    with caplog.at_level(logging.DEBUG, logger="kimp_fast.notify"):
        n.notify(Severity.INFO, "filled", "ENTER BTC", qty="0.01")
        n.notify("warning", "breaker open")
        n.notify("CRITICAL", "halted", "manual intervention required")
    levels = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "kimp_fast.notify"]
    assert levels == [
        (logging.INFO, "[INFO] filled - ENTER BTC (qty=0.01)"),
        (logging.WARNING, "[WARNING] breaker open"),
        (logging.CRITICAL, "[CRITICAL] halted - manual intervention required"),
    ]
    assert [m["title"] for m in n.sent] == ["breaker open", "halted"]  # the last `keep`
    assert n.sent[-1]["severity"] == "critical" and n.sent[-1]["fields"] == {}


async def test_logging_notifier_lifecycle_and_protocol():
    n = LoggingNotifier()
    async with n:
        n.notify("info", "x")
    assert isinstance(n, Notifier)
    assert isinstance(DiscordNotifier("https://example.invalid/api/webhooks/1/x"), Notifier)


def test_discord_notifier_also_logs_locally(caplog):
    n = DiscordNotifier(Secret(f"http://127.0.0.1:9/api/webhooks/1/{TOKEN}"))
    with caplog.at_level(logging.INFO, logger="kimp_fast.notify"):
        n.notify("warning", "margin warning", "ratio 0.55")
    assert "[WARNING] margin warning - ratio 0.55" in caplog.text
    assert n.sent[-1]["title"] == "margin warning" and n.queued == 1


# --------------------------------------------------------------------------- factory


def test_make_notifier_chooses_by_config():
    cfg = EngineConfig.default()
    assert isinstance(make_notifier(cfg, {}), LoggingNotifier)
    cfg = cfg.replace(notify={"discord_webhook_url_env": "HOOK", "retries": 5, "min_interval_s": 2, "max_queue": 10})
    n = make_notifier(cfg, {"HOOK": f"https://discord.com/api/webhooks/1/{TOKEN}"})
    assert isinstance(n, DiscordNotifier)
    assert (n.retries, n.min_interval_s, n.max_queue, n.timeout_s) == (5, 2.0, 10, 5.0)
    assert TOKEN not in repr(n)
    with pytest.raises(ConfigError, match="HOOK is not set"):
        make_notifier(cfg, {})
