"""No secret leaves the process through logs, the journal, errors, reprs or notifications.

A short fault soak runs with distinctive keys (the simulator is started with them) and a
webhook URL carrying a token, on the production path (the engine builds its adapters from
the config and reads the keys from the environment it is given). Everything the run
produced is then searched for the secrets:

* every log record at DEBUG, from every logger (message, arguments, exception text);
* the journal file (and its WAL/SHM files) byte for byte;
* the text and repr of every exception an operator could see (reports' reasons, a
  start-up failure with a wrong secret, a webhook URL that is not a URL);
* the reprs/str of the engine, its adapters, config, notifier, journal and status view;
* the webhook posts as received on the wire.

The API secrets and the webhook token must never appear. The access key / API key are
identifiers the exchanges receive in clear on every request; we still keep them out of
logs, journal, errors and reprs (checked here too), so a log excerpt pasted into a chat
cannot link the account.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from pathlib import Path
from typing import Any

import pytest

from adapters_direct.sim import SimServer
from kimp_fast.config import ConfigError, EngineConfig
from kimp_fast.engine import KimpEngine
from kimp_fast.reliability.setup import ENV, SIM_KWARGS, HarnessTimings, config_sections, harness_environ
from kimp_fast.reliability.soak import SoakOptions, jsonable, run_soak

UPBIT_ACCESS = "UpbitAccessIdentQ7w2E9r4T6y1U3i5O8p0"
UPBIT_SECRET = "UpbitSecretNeverLeakZx81Cv72Bn63Mm54"
BINANCE_KEY = "BinanceApiKeyIdent" + "K3y9" * 11 + "ZZ"  # 64 characters, like a real one
BINANCE_SECRET = "BinanceSecretNeverLeak" + "s7Q1" * 10 + "XY"
WEBHOOK_TOKEN = "hookTokenNeverLeak-Hh3Jj4Kk5Ll6"
WRONG_SECRET = "WrongSecretAlsoNeverLeak-0Oo9Ii8Uu"

SECRETS = {"upbit secret": UPBIT_SECRET, "binance secret": BINANCE_SECRET, "webhook token": WEBHOOK_TOKEN,
           "wrong secret": WRONG_SECRET}
IDENTIFIERS = {"upbit access key": UPBIT_ACCESS, "binance api key": BINANCE_KEY}


def _find(texts: dict[str, str | bytes], needles: dict[str, str]) -> list[str]:
    hits = []
    for where, text in texts.items():
        blob = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
        for name, value in needles.items():
            if value.encode() in blob:
                hits.append(f"{name} found in {where}")
    return hits


def _exc_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


async def test_no_secret_in_logs_journal_errors_reprs_or_notifications(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    texts: dict[str, str | bytes] = {}
    journal = tmp_path / "journal.sqlite"

    def inspect(d: dict[str, Any]) -> None:
        engine, cfg, hook = d["engine"], d["config"], d["webhook"]
        texts["repr(engine)"] = repr(engine)
        texts["engine.status()"] = json.dumps(jsonable(engine.status()), default=str)
        texts["repr(upbit adapter)"] = repr(engine.upbit) + str(engine.upbit)
        texts["repr(binance adapter)"] = repr(engine.binance) + str(engine.binance)
        texts["repr(config)"] = repr(cfg) + str(cfg)
        texts["config.redacted()"] = json.dumps(cfg.redacted(), default=str)
        texts["repr(notifier)"] = repr(engine._notifier)  # noqa: SLF001 - the object a user could print
        texts["repr(journal)"] = repr(engine.journal)
        texts["repr(keys)"] = repr(cfg.upbit_keys(engine._environ)) + repr(cfg.binance_keys(engine._environ))  # noqa: SLF001
        texts["repr(webhook url)"] = repr(cfg.discord_webhook_url(engine._environ))  # noqa: SLF001
        texts["webhook posts"] = b"\n".join(hook.raw)
        assert hook.posts, "the soak produced no notifications"

    async with SimServer(seed=21, port=0, upbit_keys=(UPBIT_ACCESS, UPBIT_SECRET),
                         binance_keys=(BINANCE_KEY, BINANCE_SECRET), **SIM_KWARGS) as sim:
        result = await run_soak(SoakOptions(
            signals=40, seed=21, fault_rate=0.8, sim=sim, webhook_token=WEBHOOK_TOKEN,
            timings=HarnessTimings(client_timeout_s=0.3), fast_limits=False, journal_path=str(journal),
            inspect=inspect,
        ))
        assert result["violations"] == []
        assert sum(result["faults_injected"].values()) > 10
        texts["soak result (reports, reasons, operator actions)"] = json.dumps(jsonable(result))

        # A wrong secret: the exchange refuses, the engine does not start; the error is typed.
        timings = HarnessTimings()
        cfg = EngineConfig.from_dict(config_sections(sim.url, str(tmp_path / "other.sqlite"), timings, webhook=False),
                                     source="<secrets>")
        env = harness_environ(sim.upbit_keys, sim.binance_keys)
        env[ENV["binance_secret"]] = WRONG_SECRET
        with pytest.raises(Exception) as err:
            async with KimpEngine(cfg, environ=env):
                pass
        texts["start-up error (wrong Binance secret)"] = _exc_text(err.value)
        env = harness_environ(sim.upbit_keys, sim.binance_keys)
        env[ENV["upbit_secret"]] = WRONG_SECRET
        with pytest.raises(Exception) as err:
            async with KimpEngine(cfg, environ=env):
                pass
        texts["start-up error (wrong Upbit secret)"] = _exc_text(err.value)

    # A webhook variable that is not a URL: the error names the variable, not the value.
    cfg = EngineConfig.from_dict(config_sections("http://127.0.0.1:9", str(tmp_path / "x.sqlite"), HarnessTimings()),
                                 source="<secrets>")
    with pytest.raises(ConfigError) as cerr:
        cfg.discord_webhook_url({ENV["webhook"]: f"not a url {WEBHOOK_TOKEN}"})
    texts["webhook ConfigError"] = _exc_text(cerr.value)

    records = []
    for r in caplog.records:
        records.append(f"{r.name} {r.levelname} {r.getMessage()} {r.args!r} {r.exc_text or ''} "
                       f"{getattr(r, 'kimp_fields', '')}")
    texts["log records"] = "\n".join(records)
    texts["caplog text"] = caplog.text
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(journal) + suffix)
        if p.exists():
            texts[f"journal file {p.name}"] = p.read_bytes()
    assert any(k.startswith("journal file") for k in texts)
    assert len(records) > 10, "too few log records to mean anything"

    assert _find(texts, SECRETS) == []
    # ``upbit_keys()``/``binance_keys()`` hand out the identifier itself (a plain str, the
    # Secret beside it stays redacted): everywhere else it must not appear.
    assert _find({k: v for k, v in texts.items() if k != "repr(keys)"}, IDENTIFIERS) == []
    # and the test itself can find a secret where one is: the needle search works
    assert _find({"probe": f"x{UPBIT_SECRET}y"}, SECRETS) == ["upbit secret found in probe"]
    assert os.environ.get(ENV["upbit_secret"]) is None  # the keys never went through os.environ
