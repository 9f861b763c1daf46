"""Notifications: a local log always, a Discord webhook when configured.

The engine calls :meth:`Notifier.notify` from inside order paths, so ``notify`` is a plain
function that costs microseconds: it logs the message locally (the durable, local record),
appends it to an in-memory queue and returns. It never awaits, never blocks on the network
and never raises. A background task posts the queue to Discord.

Delivery rules (:class:`DiscordNotifier`)
-----------------------------------------
* Order is preserved. Messages waiting together are batched into one post (up to 10 embeds,
  within Discord's size limits), so a burst does not turn into a long backlog.
* Posts are at least ``min_interval_s`` apart. A 429 waits for Discord's ``retry_after`` (JSON
  body, else the ``Retry-After`` header) and does not use up a retry; ``X-RateLimit-Remaining:
  0`` with ``X-RateLimit-Reset-After`` delays the next post before Discord has to say no.
* 5xx answers, timeouts and connection errors are retried with exponential backoff, up to
  ``retries`` times; other 4xx answers (a deleted webhook, a bad payload) are not retried.
  Either way the message is already in the local log.
* The queue is bounded by ``max_queue``. When it is full the oldest INFO message is dropped
  first, then the oldest WARNING; CRITICAL messages are never dropped, so only CRITICAL
  messages can take the queue past ``max_queue``. The next post says how many were dropped.
* :meth:`DiscordNotifier.close` drains what it can within its timeout; what is left is
  counted and reported in the local log.
* The webhook URL contains the webhook's token: it is a :class:`~kimp_fast.config.Secret`,
  never logged (logs say "discord webhook"), and scrubbed from any error text.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import itertools
import json
import logging
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import aiohttp

from .config import Secret

if TYPE_CHECKING:  # pragma: no cover
    from .config import EngineConfig

__all__ = [
    "DiscordNotifier",
    "LoggingNotifier",
    "Notifier",
    "Severity",
    "make_notifier",
]

LOGGER_NAME = "kimp_fast.notify"
_delivery_log = logging.getLogger("kimp_fast.notify.discord")


class Severity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    def __str__(self) -> str:
        return self.value


_LEVELS = {Severity.INFO: logging.INFO, Severity.WARNING: logging.WARNING, Severity.CRITICAL: logging.CRITICAL}
# Discord embed colours: blue, orange, red.
COLOURS = {Severity.INFO: 0x3498DB, Severity.WARNING: 0xF39C12, Severity.CRITICAL: 0xE74C3C}
_BY_NAME = {s.value: s for s in Severity} | {"warn": Severity.WARNING, "error": Severity.CRITICAL}


def _severity(value: object) -> Severity:
    """Severity from an enum or a name; an unknown value becomes WARNING (never an error)."""
    if isinstance(value, Severity):
        return value
    if isinstance(value, str):
        return _BY_NAME.get(value.strip().lower(), Severity.WARNING)
    return Severity.WARNING


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break notify()
        return f"<unprintable {type(value).__name__}>"


def _record(severity: object, title: object, message: object, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "ts": time.time(),
        "severity": _severity(severity).value,
        "title": _text(title),
        "message": _text(message) if message else "",
        "fields": fields,
    }


@runtime_checkable
class Notifier(Protocol):
    """What the engine needs from a notifier."""

    def notify(self, severity: Severity | str, title: str, message: str = "", **fields: Any) -> None:
        """Queue a message. Never blocks, never raises."""

    async def start(self) -> None:
        """Start background delivery (idempotent)."""

    async def close(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout`` seconds, then stop."""


# --------------------------------------------------------------------------- logging only


class LoggingNotifier:
    """Logs every message to ``logging.getLogger("kimp_fast.notify")`` at its severity's level.

    The last ``keep`` messages are kept in :attr:`sent` (dicts with ``ts``, ``severity``,
    ``title``, ``message``, ``fields``) for status views and tests.
    """

    def __init__(self, *, keep: int = 200, logger: logging.Logger | None = None) -> None:
        self._sent: collections.deque[dict[str, Any]] = collections.deque(maxlen=max(1, keep))
        self._log = logger or logging.getLogger(LOGGER_NAME)

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The most recent messages, oldest first."""
        return list(self._sent)

    def notify(self, severity: Severity | str, title: str, message: str = "", **fields: Any) -> None:
        try:
            self._emit(_record(severity, title, message, fields))
        except Exception:  # noqa: BLE001 - notify() never raises
            pass

    def _emit(self, rec: dict[str, Any]) -> None:
        self._sent.append(rec)
        level = _LEVELS[Severity(rec["severity"])]
        if self._log.isEnabledFor(level):
            extra = f" ({', '.join(f'{k}={_text(v)}' for k, v in rec['fields'].items())})" if rec["fields"] else ""
            sep = " - " if rec["message"] else ""
            self._log.log(
                level,
                "[%s] %s%s%s%s",
                rec["severity"].upper(),
                rec["title"],
                sep,
                rec["message"],
                extra,
                extra={"kimp_severity": rec["severity"], "kimp_fields": rec["fields"]},
            )

    async def start(self) -> None:
        return None

    async def close(self, timeout: float = 5.0) -> None:
        return None

    async def __aenter__(self) -> LoggingNotifier:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<LoggingNotifier kept={len(self._sent)}>"


# --------------------------------------------------------------------------- Discord

# Discord limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
_MAX_EMBEDS = 10
_MAX_EMBED_CHARS = 5800  # the documented total is 6000 per message; keep a margin
_MAX_CONTENT = 2000


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Retryable(Exception):
    """A 5xx answer: worth another try."""


class DiscordNotifier:
    """Posts notifications to a Discord webhook from a background task (see module docstring).

    Parameters
    ----------
    webhook_url : Secret or str
        The webhook URL (it contains the webhook's token; treated as a secret).
    min_interval_s : float
        Minimum seconds between two posts.
    max_queue : int
        Messages kept waiting; see the drop policy in the module docstring.
    timeout_s : float
        Timeout of one HTTP request.
    retries : int
        Retries after a 5xx / timeout / connection error.
    username : str or None
        Display name of the webhook's messages (None keeps the webhook's own).
    keep : int
        Messages kept in :attr:`sent` (the local log's memory).
    """

    def __init__(
        self,
        webhook_url: Secret | str,
        *,
        min_interval_s: float = 1.0,
        max_queue: int = 1000,
        timeout_s: float = 5.0,
        retries: int = 3,
        username: str | None = "kimp-fast",
        keep: int = 200,
        logger: logging.Logger | None = None,
        backoff_s: float = 0.5,
        max_retry_after_s: float = 60.0,
        max_rate_limit_waits: int = 10,
    ) -> None:
        self._url = webhook_url if isinstance(webhook_url, Secret) else Secret(webhook_url)
        self.min_interval_s = float(min_interval_s)
        self.max_queue = max(1, int(max_queue))
        self.timeout_s = float(timeout_s)
        self.retries = max(0, int(retries))
        self.username = username
        self.backoff_s = float(backoff_s)
        self.max_retry_after_s = float(max_retry_after_s)
        self.max_rate_limit_waits = int(max_rate_limit_waits)
        self._local = LoggingNotifier(keep=keep, logger=logger)
        # One deque per severity keeps "drop the oldest INFO" O(1); the sequence number
        # restores the global order when messages are taken for delivery.
        self._queues: dict[Severity, collections.deque[tuple[int, dict[str, Any]]]] = {
            s: collections.deque() for s in Severity
        }
        self._seq = itertools.count()
        self._dropped_unreported = 0
        self._stats = {"delivered": 0, "failed": 0, "dropped": 0, "posts": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wakeup: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._session: aiohttp.ClientSession | None = None
        self._worker: asyncio.Task[None] | None = None
        self._next_post_at = 0.0
        self._in_flight = 0  # messages of the post under way
        self._closing = False
        self._closed = False

    # ---- the hot-path API

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The most recent messages notified (whether or not Discord has them yet)."""
        return self._local.sent

    def notify(self, severity: Severity | str, title: str, message: str = "", **fields: Any) -> None:
        try:
            rec = _record(severity, title, message, fields)
            self._local._emit(rec)
            if self._closed:
                self._stats["dropped"] += 1  # logged locally; nothing will post it any more
                return
            self._enqueue(rec)
            if self._loop is not None:
                if threading.get_ident() == self._loop_thread:
                    self._kick()
                else:
                    self._loop.call_soon_threadsafe(self._kick)
        except Exception:  # noqa: BLE001 - notify() never raises
            pass

    def _enqueue(self, rec: dict[str, Any]) -> None:
        sev = Severity(rec["severity"])
        q = self._queues
        if self.queued >= self.max_queue:
            if q[Severity.INFO]:
                q[Severity.INFO].popleft()
            elif sev is Severity.INFO:
                self._count_drop()
                return
            elif q[Severity.WARNING]:
                q[Severity.WARNING].popleft()
            elif sev is Severity.WARNING:
                self._count_drop()
                return
            else:  # a CRITICAL message and a queue full of CRITICAL ones: keep everything
                q[sev].append((next(self._seq), rec))
                return
            self._count_drop()
        q[sev].append((next(self._seq), rec))

    def _count_drop(self) -> None:
        self._stats["dropped"] += 1
        self._dropped_unreported += 1

    def _kick(self) -> None:
        if self._idle is not None:
            self._idle.clear()
        if self._wakeup is not None:
            self._wakeup.set()

    # ---- lifecycle

    async def start(self) -> None:
        """Open the HTTP session and start the delivery task (idempotent)."""
        if self._worker is not None or self._closed:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers={"User-Agent": "kimp-fast notifier"},
        )
        self._worker = self._loop.create_task(self._run(), name="kimp-fast discord notifier")
        if self.queued:
            self._kick()

    async def close(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout`` seconds, then stop.

        Messages notified after ``close`` are only logged locally.
        """
        if self._closed:
            return
        if self._worker is None and self.queued:
            await self.start()  # never started but has messages: try to deliver them
        self._closed = True
        self._closing = True
        worker = self._worker
        try:
            if worker is not None:
                self._kick()
                try:
                    await asyncio.wait_for(asyncio.shield(worker), max(0.0, timeout))
                except asyncio.TimeoutError:
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
        finally:
            left = self.queued + self._in_flight
            self._in_flight = 0
            if left:
                for q in self._queues.values():
                    q.clear()
                self._stats["dropped"] += left
                _delivery_log.warning(
                    "discord webhook: %d message(s) not delivered before close (they are in the local log)",
                    left,
                )
            if self._session is not None:
                await self._session.close()
                self._session = None
            if self._idle is not None:
                self._idle.set()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued message has been posted (or given up). True if idle."""
        if self._idle is None:
            return not self.queued
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def __aenter__(self) -> DiscordNotifier:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- views

    @property
    def queued(self) -> int:
        """Messages waiting for delivery."""
        return sum(len(q) for q in self._queues.values())

    def pending(self) -> list[dict[str, Any]]:
        """The queued messages, in delivery order."""
        items = [item for q in self._queues.values() for item in q]
        return [rec for _, rec in sorted(items, key=lambda it: it[0])]

    def stats(self) -> dict[str, int]:
        """Counters: delivered, failed (given up), dropped (queue full / closed), posts, queued."""
        return {**self._stats, "queued": self.queued}

    def __repr__(self) -> str:
        return f"<DiscordNotifier discord webhook queued={self.queued}>"

    # ---- delivery task

    async def _run(self) -> None:
        assert self._wakeup is not None and self._idle is not None
        while True:
            if not self.queued:
                self._idle.set()
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._idle.clear()
            try:
                await self._pace()
                batch = self._take_batch()
                if batch:
                    # Left set if close() cancels the post, so close() can count it as lost.
                    self._in_flight = len(batch)
                    await self._deliver(batch)
                    self._in_flight = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the task must outlive any bug
                self._stats["failed"] += self._in_flight
                self._in_flight = 0
                _delivery_log.error("discord webhook: delivery task error: %s", self._describe(exc))

    async def _pace(self) -> None:
        assert self._loop is not None
        wait = self._next_post_at - self._loop.time()
        if wait > 0:
            await asyncio.sleep(wait)

    def _pop_next(self) -> dict[str, Any] | None:
        heads = [q for q in self._queues.values() if q]
        if not heads:
            return None
        q = min(heads, key=lambda d: d[0][0])
        return q.popleft()[1]

    def _peek_next(self) -> dict[str, Any] | None:
        heads = [q[0] for q in self._queues.values() if q]
        return min(heads, key=lambda it: it[0])[1] if heads else None

    def _take_batch(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        chars = 0
        while len(batch) < _MAX_EMBEDS:
            rec = self._peek_next()
            if rec is None:
                break
            embed = self._embed(rec)
            size = _embed_chars(embed)
            if batch and chars + size > _MAX_EMBED_CHARS:
                break
            self._pop_next()
            rec = dict(rec, _embed=embed)
            batch.append(rec)
            chars += size
        return batch

    def _embed(self, rec: dict[str, Any]) -> dict[str, Any]:
        sev = Severity(rec["severity"])
        embed: dict[str, Any] = {
            "title": _clip(f"{sev.value.upper()}: {rec['title']}", 256),
            "color": COLOURS[sev],
            "timestamp": datetime.fromtimestamp(rec["ts"], timezone.utc).isoformat(),
            "footer": {"text": "kimp-fast"},
        }
        if rec["message"]:
            embed["description"] = _clip(rec["message"], 4000)
        if rec["fields"]:
            embed["fields"] = [
                {"name": _clip(_text(k), 256), "value": _clip(_text(v), 1024) or "-", "inline": True}
                for k, v in itertools.islice(rec["fields"].items(), 25)
            ]
        # One embed must fit a message on its own: shed fields, then shorten the text.
        while embed.get("fields") and _embed_chars(embed) > _MAX_EMBED_CHARS:
            embed["fields"].pop()
        excess = _embed_chars(embed) - _MAX_EMBED_CHARS
        if excess > 0 and "description" in embed:
            embed["description"] = _clip(embed["description"], max(1, len(embed["description"]) - excess))
        return embed

    def _payload(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        lines = [f"**{r['severity'].upper()}** {r['title']}" for r in batch]
        if self._dropped_unreported:
            lines.append(f"({self._dropped_unreported} earlier notification(s) dropped: queue full; see the local log)")
            self._dropped_unreported = 0
        payload: dict[str, Any] = {
            "content": _clip("\n".join(lines), _MAX_CONTENT),
            "embeds": [r["_embed"] for r in batch],
            "allowed_mentions": {"parse": []},  # a message text can never ping @everyone
        }
        if self.username:
            payload["username"] = self.username
        return payload

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        assert self._session is not None and self._loop is not None
        body = json.dumps(self._payload(batch), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        failures = 0
        rate_limited = 0
        while True:
            self._stats["posts"] += 1
            try:
                async with self._session.post(self._url.get(), data=body, headers=headers) as resp:
                    status = resp.status
                    if 200 <= status < 300:
                        self._stats["delivered"] += len(batch)
                        self._schedule_next(resp.headers)
                        return
                    if status == 429:
                        wait = await self._retry_after(resp)
                        rate_limited += 1
                        if rate_limited > self.max_rate_limit_waits:
                            self._give_up(batch, f"rate-limited {rate_limited} times")
                            return
                        _delivery_log.warning("discord webhook: rate-limited (429), waiting %.3f s", wait)
                        self._next_post_at = self._loop.time() + wait
                        await self._pace()
                        continue
                    detail = self._scrub((await resp.text())[:200])
                    if status >= 500:
                        raise _Retryable(f"HTTP {status}")
                    self._give_up(batch, f"HTTP {status}: {detail}")
                    self._schedule_next(resp.headers)
                    return
            except (asyncio.TimeoutError, OSError, _Retryable, aiohttp.ClientError) as exc:
                failures += 1
                if failures > self.retries:
                    self._give_up(batch, f"{self._describe(exc)} after {failures} attempt(s)")
                    self._schedule_next({})
                    return
                delay = min(self.backoff_s * 2 ** (failures - 1), 30.0)
                _delivery_log.warning(
                    "discord webhook: %s; retry %d/%d in %.2f s",
                    self._describe(exc),
                    failures,
                    self.retries,
                    delay,
                )
                await asyncio.sleep(delay)

    def _give_up(self, batch: list[dict[str, Any]], why: str) -> None:
        self._stats["failed"] += len(batch)
        _delivery_log.error(
            "discord webhook: %d message(s) not delivered (%s); they are in the local log",
            len(batch),
            why,
        )

    def _schedule_next(self, headers: Mapping[str, str]) -> None:
        assert self._loop is not None
        now = self._loop.time()
        nxt = now + self.min_interval_s
        if headers.get("X-RateLimit-Remaining") == "0":
            reset = _seconds(headers.get("X-RateLimit-Reset-After"))
            if reset is not None:
                nxt = max(nxt, now + min(reset, self.max_retry_after_s))
        self._next_post_at = nxt

    async def _retry_after(self, resp: aiohttp.ClientResponse) -> float:
        wait: float | None = None
        try:
            data = await resp.json(content_type=None)
            if isinstance(data, Mapping):
                wait = _seconds(data.get("retry_after"))
        except Exception:  # noqa: BLE001 - a body that is not JSON: use the header
            wait = None
        if wait is None:
            wait = _seconds(resp.headers.get("Retry-After"))
        if wait is None:
            wait = 1.0
        return max(self.min_interval_s, min(wait, self.max_retry_after_s))

    def _scrub(self, text: str) -> str:
        url = self._url.get()
        if url:
            text = text.replace(url, "discord webhook")
            path = url.split("://", 1)[-1].partition("/")[2]
            if path:
                text = text.replace(path, "…")
        return text

    def _describe(self, exc: BaseException) -> str:
        detail = self._scrub(_text(exc))
        return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if f >= 0 and f == f and f != float("inf") else None


def _embed_chars(embed: Mapping[str, Any]) -> int:
    n = len(embed.get("title", "")) + len(embed.get("description", "")) + len(embed["footer"]["text"])
    return n + sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", ()))


# --------------------------------------------------------------------------- factory


def make_notifier(cfg: EngineConfig, environ: Mapping[str, str] | None = None) -> Notifier:
    """A :class:`DiscordNotifier` when ``notify.discord_webhook_url_env`` is set, else logging only.

    Raises ConfigError when the named environment variable is missing or not a URL.
    """
    url = cfg.discord_webhook_url(environ)
    if url is None:
        return LoggingNotifier()
    n = cfg.notify
    return DiscordNotifier(
        url,
        min_interval_s=n.min_interval_s,
        max_queue=n.max_queue,
        timeout_s=n.timeout_s,
        retries=n.retries,
    )
