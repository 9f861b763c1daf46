"""Plain http only to this machine unless a section says ``allow_insecure_http``; no
credential of a refused URL is ever echoed."""

from __future__ import annotations

import logging
import socket
import time
from decimal import Decimal as D

import pytest

from kimp_fast.config import ConfigError, EngineConfig
from kimp_fast.engine import KimpEngine
from kimp_fast.models import Signal
from kimp_fast.notify import LoggingNotifier
from tests.fixtures.engine import sim_environ


@pytest.mark.parametrize("section", ["upbit", "binance"])
@pytest.mark.parametrize("url", ["http://api.upbit.com", "http://10.0.0.5:8080", "http://[2001:db8::1]:80",
                                 "http://localhost.evil.example"])
def test_plain_http_to_another_machine_is_refused(section, url):
    with pytest.raises(ConfigError, match=rf"{section}\.base_url: plain http:// .*allow_insecure_http"):
        EngineConfig.from_dict({section: {"base_url": url}})


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://127.1.2.3", "http://localhost:9000",
                                 "http://[::1]:8080", "https://api.upbit.com", "https://10.0.0.5"])
def test_https_and_loopback_http_are_accepted(url):
    cfg = EngineConfig.from_dict({"upbit": {"base_url": url}, "binance": {"base_url": url}})
    assert cfg.upbit.base_url == url and cfg.insecure_http_warnings() == []


def test_allow_insecure_http_accepts_it_per_section_and_warns():
    cfg = EngineConfig.from_dict({"upbit": {"base_url": "http://10.0.0.5:8080", "allow_insecure_http": True},
                                  "binance": {"base_url": "https://fapi.example"}})
    warnings = cfg.insecure_http_warnings()
    assert len(warnings) == 1 and "upbit.base_url is plain http:// to 10.0.0.5" in warnings[0]
    with pytest.raises(ConfigError, match="binance.base_url"):  # the other section is not affected
        EngineConfig.from_dict({"upbit": {"allow_insecure_http": True}, "binance": {"base_url": "http://10.0.0.5"}})


@pytest.mark.parametrize("url", ["https://user:hunter2secret@api.upbit.com", "http://admin:hunter2secret@10.0.0.5/x",
                                 "user:hunter2secret@host", "ftp://u:hunter2secret@h"])
def test_a_refused_url_never_echoes_its_credentials(url):
    with pytest.raises(ConfigError) as info:
        EngineConfig.from_dict({"binance": {"base_url": url}})
    assert "hunter2secret" not in str(info.value) and "hunter2" not in repr(info.value)
    assert "***@" in str(info.value) or "user" not in str(info.value)


def test_the_webhook_url_follows_the_same_rule():
    base = {"notify": {"discord_webhook_url_env": "HOOK"}}
    cfg = EngineConfig.from_dict(base)
    with pytest.raises(ConfigError, match="plain http:// URL .*notify.allow_insecure_http") as info:
        cfg.discord_webhook_url({"HOOK": "http://discord.example/api/webhooks/1/tok3nsecret"})
    assert "tok3nsecret" not in str(info.value)
    assert cfg.discord_webhook_url({"HOOK": "http://127.0.0.1:9/api/webhooks/1/t"}) is not None
    allowed = EngineConfig.from_dict({"notify": {"discord_webhook_url_env": "HOOK", "allow_insecure_http": True}})
    env = {"HOOK": "http://discord.example/api/webhooks/1/tok3nsecret"}
    assert allowed.discord_webhook_url(env) is not None
    assert any("webhook" in w and "tok3n" not in w for w in allowed.insecure_http_warnings(env))


def _own_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: only picks the outgoing interface
            ip = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") else ip


async def test_an_allowed_insecure_url_is_warned_at_every_start(sim_factory, tmp_path, caplog):
    ip = _own_address()
    if ip is None:
        pytest.skip("this machine has no non-loopback IPv4 address to serve the simulator on")
    sim = await sim_factory(host=ip)
    assert sim.url.startswith(f"http://{ip}:")
    keys = {"upbit": {"base_url": sim.url, "access_key_env": "SIM_UPBIT_ACCESS", "secret_key_env": "SIM_UPBIT_SECRET"},
            "binance": {"base_url": sim.url, "api_key_env": "SIM_BINANCE_KEY", "secret_key_env": "SIM_BINANCE_SECRET"},
            "journal": {"path": str(tmp_path / "j.sqlite")}, "risk": {"check_interval_s": 3600.0}}
    with pytest.raises(ConfigError, match="upbit.base_url: plain http://"):
        EngineConfig.from_dict(keys)
    keys["upbit"]["allow_insecure_http"] = True
    keys["binance"]["allow_insecure_http"] = True
    cfg = EngineConfig.from_dict(keys)
    with caplog.at_level(logging.WARNING, logger="kimp_fast.engine"):
        async with KimpEngine(cfg, environ=sim_environ(sim), notifier=LoggingNotifier()) as engine:
            rep = await engine.submit(Signal(id="insecure-1", action="ENTER", coin="BTC", qty=D("0.01"),
                                             ts_ms=int(time.time() * 1000), ttl_ms=10_000))
            assert rep.status == "filled", rep.reason
    text = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"upbit.base_url is plain http:// to {ip}" in t for t in text)
    assert any(f"binance.base_url is plain http:// to {ip}" in t for t in text)
