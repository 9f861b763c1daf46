"""EngineConfig: defaults, the example file, validation messages, credentials from the env."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import re
from decimal import Decimal
from pathlib import Path

import pytest

from kimp_fast.config import (
    SECTIONS,
    BinanceConfig,
    CapitalConfig,
    CircuitConfig,
    ConfigError,
    EngineConfig,
    OneLegConfig,
    Secret,
    read_env_file,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "kimp.example.toml"
ENV_EXAMPLE = ROOT / "config" / ".env.example"


def write(tmp_path: Path, text: str, name: str = "kimp.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error_for(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        EngineConfig.from_dict(data)
    return info.value


# --------------------------------------------------------------------------- defaults


def test_defaults_match_spec_section_5():
    cfg = EngineConfig.default()
    assert cfg.performance.use_uvloop is True and cfg.performance.use_orjson is True
    assert cfg.performance.compiled == "auto"
    assert cfg.capital.trading_ratio == Decimal("0.95") and cfg.capital.reserve_ratio == Decimal("0.05")
    assert cfg.exit.min_net_profit == 0 and cfg.exit.include_funding and not cfg.exit.allow_loss_exit
    assert cfg.one_leg.max_retries == 3 and cfg.one_leg.retry_delays == (1.0, 2.0, 4.0)
    assert cfg.one_leg.emergency_hedge is True
    assert cfg.circuit.failure_threshold == 5 and cfg.circuit.recovery_timeout == 30.0
    assert cfg.upbit.base_url is None and cfg.binance.base_url is None
    assert cfg.upbit.key_env_names == ("UPBIT_ACCESS_KEY", "UPBIT_SECRET_KEY")
    assert cfg.binance.key_env_names == ("BINANCE_API_KEY", "BINANCE_SECRET_KEY")
    assert cfg.upbit.jwt_alg == "HS256" and cfg.upbit.order_rate_per_sec == 8
    assert cfg.binance.leverage == 2 and cfg.binance.margin_type == "CROSSED"
    assert cfg.binance.recv_window_ms == 5000
    assert cfg.execution.coins == ("BTC",) and cfg.execution.upbit_buy_mode == "limit_ioc"
    assert cfg.execution.max_slippage_bps == Decimal("30") and cfg.execution.max_order_krw is None
    assert (cfg.execution.fx_venue, cfg.execution.fx_symbol) == ("upbit", "KRW-USDT")
    assert cfg.journal.path == "kimp-journal.sqlite" and cfg.journal.synchronous == "NORMAL"
    assert cfg.notify.discord_webhook_url_env is None
    assert cfg.risk.margin_ratio_warning < cfg.risk.margin_ratio_critical
    assert EngineConfig.from_dict({}) == cfg == EngineConfig()


def test_sections_are_frozen():
    cfg = EngineConfig.default()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.capital.trading_ratio = Decimal("1")  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.capital = CapitalConfig()  # type: ignore[misc]


# --------------------------------------------------------------------------- the example file


def test_example_file_loads_to_the_defaults():
    cfg = EngineConfig.load(EXAMPLE)
    # The one intended difference: a relative journal path is anchored at the file's directory.
    assert cfg.journal.path == str(EXAMPLE.parent / "kimp-journal.sqlite")
    assert cfg == EngineConfig.default(journal={"path": cfg.journal.path})
    assert cfg.source == str(EXAMPLE)


def _sections_of(text: str) -> dict[str, set[str]]:
    """Keys written in each section of the example, commented-out ones included."""
    out: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"\[(\w+)\]", line)
        if m:
            current = m.group(1)
            out[current] = set()
            continue
        m = re.match(r"#?\s*(\w+)\s*=", line)
        if m and current is not None:
            out[current].add(m.group(1))
    return out


def test_example_file_documents_every_key_with_a_comment():
    text = EXAMPLE.read_text(encoding="utf-8")
    documented = _sections_of(text)
    assert list(documented) == list(SECTIONS)
    for name, cls in SECTIONS.items():
        assert documented[name] == {f.name for f in dataclasses.fields(cls)}, name
    for line in text.splitlines():
        if re.match(r"#?\s*\w+\s*=", line):
            assert " # " in line, f"key without a one-line comment: {line!r}"


def test_example_file_with_optional_keys_uncommented_is_valid(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    uncommented = re.sub(r"(?m)^# (\w+ = )", r"\1", text)
    cfg = EngineConfig.load(write(tmp_path, uncommented))
    assert cfg.upbit.base_url == "http://127.0.0.1:8080"
    assert cfg.notify.discord_webhook_url_env == "KIMP_DISCORD_WEBHOOK_URL"
    assert cfg.execution.max_order_krw == Decimal("5000000")


def test_env_example_names_every_env_var_the_config_uses():
    env = read_env_file(ENV_EXAMPLE)
    text = EXAMPLE.read_text(encoding="utf-8")
    cfg = EngineConfig.default()
    named = {*cfg.upbit.key_env_names, *cfg.binance.key_env_names}
    named |= set(re.findall(r'discord_webhook_url_env = "(\w+)"', text))
    assert set(env) == named
    # The placeholders are usable as an environ mapping.
    cfg = EngineConfig.default(notify={"discord_webhook_url_env": "KIMP_DISCORD_WEBHOOK_URL"})
    assert cfg.upbit_keys(env)[0] == "your-upbit-access-key"
    assert cfg.discord_webhook_url(env) is not None


# --------------------------------------------------------------------------- loading


def test_load_full_file_with_strings_floats_and_ints(tmp_path):
    path = write(
        tmp_path,
        """
        [upbit]
        base_url = "http://127.0.0.1:9999/"
        jwt_alg = "hs512"
        order_rate_per_sec = 12
        [binance]
        base_url = "http://127.0.0.1:9999"
        leverage = 3
        margin_type = "isolated"
        [capital]
        trading_ratio = 0.9
        reserve_ratio = "0.1"
        [exit]
        min_net_profit = 1000
        [one_leg]
        retry_delays = [0, 0.01]
        [execution]
        coins = ["btc", "ETH"]
        max_slippage_bps = 12.5
        max_order_krw = "2000000"
        fx_source = "upbit:KRW-USDC"
        [journal]
        path = "data/j.sqlite"
        synchronous = "full"
        [performance]
        compiled = false
        """,
    )
    cfg = EngineConfig.load(path)
    assert cfg.upbit.base_url == "http://127.0.0.1:9999"  # trailing slash dropped
    assert cfg.upbit.jwt_alg == "HS512" and cfg.upbit.order_rate_per_sec == 12.0
    assert cfg.binance.leverage == 3 and cfg.binance.margin_type == "ISOLATED"
    # TOML floats become the decimal they were written as, not the binary float's expansion.
    assert cfg.capital.trading_ratio == Decimal("0.9") and str(cfg.capital.trading_ratio) == "0.9"
    assert cfg.capital.reserve_ratio == Decimal("0.1")
    assert cfg.exit.min_net_profit == Decimal(1000)
    assert cfg.one_leg.retry_delays == (0.0, 0.01)
    assert cfg.execution.coins == ("BTC", "ETH")
    assert cfg.execution.max_slippage_bps == Decimal("12.5")
    assert cfg.execution.max_order_krw == Decimal("2000000")
    assert (cfg.execution.fx_venue, cfg.execution.fx_symbol) == ("upbit", "KRW-USDC")
    assert cfg.journal.path == str(tmp_path / "data" / "j.sqlite")
    assert cfg.journal.synchronous == "FULL"
    assert cfg.performance.compiled == "off"


def test_journal_path_absolute_memory_and_dict_are_not_moved(tmp_path):
    absolute = tmp_path / "abs.sqlite"
    cfg = EngineConfig.load(write(tmp_path, f'[journal]\npath = "{absolute}"\n'))
    assert cfg.journal.path == str(absolute)
    cfg = EngineConfig.load(write(tmp_path, '[journal]\npath = ":memory:"\n'))
    assert cfg.journal.path == ":memory:"
    # from_dict has no file, so a relative path stays relative unless base_dir is given.
    assert EngineConfig.from_dict({"journal": {"path": "j.sqlite"}}).journal.path == "j.sqlite"
    cfg = EngineConfig.from_dict({"journal": {"path": "j.sqlite"}}, base_dir=tmp_path)
    assert cfg.journal.path == str(tmp_path / "j.sqlite")


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="not found") as info:
        EngineConfig.load(tmp_path / "nope.toml")
    assert info.value.key is None and "nope.toml" in str(info.value)
    with pytest.raises(ConfigError, match="invalid TOML.*line 2"):
        EngineConfig.load(write(tmp_path, "[capital]\ntrading_ratio = = 1\n"))
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe[capital]")
    with pytest.raises(ConfigError, match="UTF-8"):
        EngineConfig.load(p)


def test_error_from_a_file_names_the_file_and_the_key(tmp_path):
    path = write(tmp_path, '[capital]\ntrading_ratio = "1.5"\n')
    with pytest.raises(ConfigError) as info:
        EngineConfig.load(path)
    err = info.value
    assert err.key == "capital.trading_ratio" and err.source == str(path)
    assert str(err).startswith(f"{path}: capital.trading_ratio: ")
    assert "(0, 1]" in str(err) and "1.5" in str(err)


# --------------------------------------------------------------------------- validation


def test_unknown_key_suggests_the_right_one():
    err = error_for({"capital": {"trading_ration": "0.9"}})
    assert err.key == "capital.trading_ration"
    assert str(err) == "capital.trading_ration: unknown key; did you mean trading_ratio?"


def test_unknown_key_without_a_close_match_lists_the_keys():
    err = error_for({"circuit": {"zzz": 1}})
    assert "expected one of ['failure_threshold', 'recovery_timeout']" in str(err)


def test_unknown_section_and_top_level_key():
    err = error_for({"captial": {"trading_ratio": "0.9"}})
    assert err.key == "captial" and "did you mean capital?" in str(err)
    err = error_for({"leverage": 3})
    assert err.key == "leverage" and "[section]" in str(err)
    err = error_for({"capital": 0.9})
    assert err.key == "capital" and "expected a table" in str(err)


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        ({"capital": {"trading_ratio": "abc"}}, "capital.trading_ratio", "expected a decimal in (0, 1]"),
        ({"capital": {"trading_ratio": True}}, "capital.trading_ratio", "expected a decimal"),
        ({"capital": {"trading_ratio": [1]}}, "capital.trading_ratio", "got list"),
        ({"capital": {"trading_ratio": "NaN"}}, "capital.trading_ratio", "finite"),
        ({"capital": {"trading_ratio": 0}}, "capital.trading_ratio", "(0, 1]"),
        ({"capital": {"trading_ratio": "0.96"}}, "capital.reserve_ratio", "must be <= 1"),
        ({"binance": {"leverage": 25}}, "binance.leverage", "expected an integer in [1, 20], got 25"),
        ({"binance": {"leverage": 2.0}}, "binance.leverage", "expected an integer in [1, 20]"),
        ({"binance": {"leverage": True}}, "binance.leverage", "expected an integer"),
        ({"binance": {"margin_type": "cross"}}, "binance.margin_type", "['CROSSED', 'ISOLATED']"),
        ({"binance": {"recv_window_ms": 70000}}, "binance.recv_window_ms", "[1, 60000]"),
        ({"upbit": {"jwt_alg": "RS256"}}, "upbit.jwt_alg", "['HS256', 'HS512']"),
        ({"upbit": {"adapter": "rest"}}, "upbit.adapter", "['direct', 'ccxt']"),
        ({"upbit": {"timeout_s": 0}}, "upbit.timeout_s", "a number in (0.0, 120.0]"),
        ({"upbit": {"timeout_s": "5"}}, "upbit.timeout_s", "expected a number"),
        ({"upbit": {"base_url": "ftp://x"}}, "upbit.base_url", "http(s) URL"),
        ({"upbit": {"base_url": "https://user:pw@host"}}, "upbit.base_url", "without credentials"),
        ({"exit": {"include_funding": "yes"}}, "exit.include_funding", "true or false"),
        ({"exit": {"min_net_profit": -1}}, "exit.min_net_profit", "allow_loss_exit"),
        ({"one_leg": {"retry_delays": "1,2,4"}}, "one_leg.retry_delays", "list of seconds"),
        ({"one_leg": {"retry_delays": [1, -2]}}, "one_leg.retry_delays[1]", "[0.0, 3600.0], got -2.0"),
        ({"one_leg": {"retry_delays": []}}, "one_leg.retry_delays", "at least one delay"),
        ({"one_leg": {"max_retries": -1}}, "one_leg.max_retries", "[0, 20]"),
        ({"circuit": {"failure_threshold": 0}}, "circuit.failure_threshold", "[1, 1000]"),
        ({"circuit": {"recovery_timeout": float("inf")}}, "circuit.recovery_timeout", "finite"),
        ({"execution": {"coins": "BTC"}}, "execution.coins", "list of coins"),
        ({"execution": {"coins": []}}, "execution.coins", "non-empty list"),
        ({"execution": {"coins": ["BTC", "btc"]}}, "execution.coins", "listed twice"),
        ({"execution": {"coins": ["BTC", "KRW-ETH"]}}, "execution.coins[1]", "ticker"),
        ({"execution": {"upbit_buy_mode": "market"}}, "execution.upbit_buy_mode", "limit_ioc"),
        ({"execution": {"fx_source": "binance:USDTKRW"}}, "execution.fx_source", "upbit:KRW-<ASSET>"),
        ({"execution": {"fx_source": "upbit:USDT"}}, "execution.fx_source", "upbit:KRW-<ASSET>"),
        ({"execution": {"max_order_krw": 0}}, "execution.max_order_krw", "> 0"),
        ({"execution": {"max_slippage_bps": "2000"}}, "execution.max_slippage_bps", "[0, 1000]"),
        ({"risk": {"margin_ratio_warning": "0.9"}}, "risk.margin_ratio_warning", "below margin_ratio_critical"),
        ({"risk": {"liquidation_distance_warning": 1}}, "risk.liquidation_distance_warning", "(0, 1)"),
        ({"journal": {"path": "  "}}, "journal.path", "non-empty string"),
        ({"journal": {"synchronous": "OFF"}}, "journal.synchronous", "['NORMAL', 'FULL']"),
        ({"notify": {"max_queue": 0}}, "notify.max_queue", "[1, 1000000]"),
        ({"performance": {"compiled": "yes"}}, "performance.compiled", "['auto', 'on', 'off']"),
        ({"upbit": {"access_key_env": "SAME", "secret_key_env": "SAME"}}, "upbit.secret_key_env", "different variable"),
        ({"binance": {"secret_key_env": "UPBIT_SECRET_KEY"}}, "binance.secret_key_env", "same environment variable"),
    ],
)
def test_bad_values_name_the_key_and_the_expected_form(data, key, expected):
    err = error_for(data)
    assert err.key == key
    assert str(err).startswith(f"{key}: ")
    assert expected in str(err)


def test_sections_validate_when_built_in_python_too():
    with pytest.raises(ConfigError, match=r"^capital\.trading_ratio: "):
        CapitalConfig(trading_ratio=Decimal("2"))
    with pytest.raises(ConfigError, match=r"^binance\.leverage: "):
        BinanceConfig(leverage=0)
    with pytest.raises(ConfigError, match=r"^circuit\.recovery_timeout: "):
        EngineConfig.default(circuit={"recovery_timeout": -1})
    assert CapitalConfig(trading_ratio="0.8").trading_ratio == Decimal("0.8")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^capital: expected CapitalConfig or a mapping"):
        EngineConfig(capital=0.9)  # type: ignore[arg-type]


def test_default_and_replace_accept_mappings_and_sections():
    cfg = EngineConfig.default(one_leg={"retry_delays": [0.01]}, circuit=CircuitConfig(failure_threshold=2))
    assert cfg.one_leg.retry_delays == (0.01,) and cfg.one_leg.max_retries == 3
    assert cfg.circuit.failure_threshold == 2
    # replace merges onto the current section, not the defaults.
    cfg2 = cfg.replace(one_leg={"max_retries": 1})
    assert cfg2.one_leg == OneLegConfig(max_retries=1, retry_delays=(0.01,))
    assert cfg.one_leg.max_retries == 3  # the original is unchanged
    with pytest.raises(ConfigError, match="did you mean circuit"):
        cfg.replace(circut={})
    with pytest.raises(ConfigError, match="did you mean failure_threshold"):
        cfg.replace(circuit={"failure_treshold": 1})


def test_retry_delays_last_value_repeats():
    one = OneLegConfig(max_retries=5, retry_delays=(1.0, 2.0))
    assert [one.delay_before(n) for n in range(1, 6)] == [1.0, 2.0, 2.0, 2.0, 2.0]
    assert [OneLegConfig().delay_before(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert OneLegConfig(max_retries=0, retry_delays=()).delay_before(1) == 0.0
    with pytest.raises(ValueError):
        one.delay_before(0)


# --------------------------------------------------------------------------- credentials

SECRET_VALUE = "sk-live-7f3a9c1d2e"  # what someone might paste into the file


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("upbit", "secret_key"),
        ("upbit", "access_key"),
        ("binance", "api_key"),
        ("binance", "secret"),
        ("binance", "api_secret"),
        ("notify", "discord_webhook_url"),
        ("notify", "webhook_url"),
    ],
)
def test_credentials_in_the_file_are_refused_without_echoing_them(tmp_path, section, key):
    path = write(tmp_path, f'[{section}]\n{key} = "{SECRET_VALUE}"\n')
    with pytest.raises(ConfigError) as info:
        EngineConfig.load(path)
    err = info.value
    assert err.key == f"{section}.{key}"
    assert "never read from the config file" in str(err) and "environment variable" in str(err)
    assert SECRET_VALUE not in str(err) and SECRET_VALUE not in repr(err)
    chain = [err, err.__cause__, err.__context__]
    assert all(SECRET_VALUE not in repr(e) for e in chain) and err.__suppress_context__


def test_top_level_credential_is_refused():
    err = error_for({"binance_secret_key": SECRET_VALUE})
    assert "never read from the config file" in str(err) and SECRET_VALUE not in str(err)


def test_a_key_pasted_into_an_env_name_field_is_not_echoed():
    err = error_for({"upbit": {"secret_key_env": "abc+/xyz=" + SECRET_VALUE}})
    assert err.key == "upbit.secret_key_env" and "NAME of an environment variable" in str(err)
    assert SECRET_VALUE not in str(err)
    url = "https://discord.com/api/webhooks/1/" + SECRET_VALUE
    err = error_for({"notify": {"discord_webhook_url_env": url}})
    assert "looks like a URL" in str(err) and SECRET_VALUE not in str(err)


def test_keys_come_from_the_named_environment_variables():
    cfg = EngineConfig.default(binance={"api_key_env": "MY_BN_KEY", "secret_key_env": "MY_BN_SECRET"})
    environ = {
        "UPBIT_ACCESS_KEY": "up-access",
        "UPBIT_SECRET_KEY": " up-secret\n",
        "MY_BN_KEY": "bn-key",
        "MY_BN_SECRET": "bn-secret",
    }
    access, secret = cfg.upbit_keys(environ)
    assert access == "up-access" and isinstance(secret, Secret) and secret.get() == "up-secret"
    api, bsecret = cfg.binance_keys(environ)
    assert api == "bn-key" and bsecret.get() == "bn-secret"


def test_keys_default_to_os_environ(monkeypatch):
    monkeypatch.setenv("UPBIT_ACCESS_KEY", "a")
    monkeypatch.setenv("UPBIT_SECRET_KEY", "b")
    assert EngineConfig.default().upbit_keys() == ("a", Secret("b"))


@pytest.mark.parametrize("environ", [{}, {"BINANCE_API_KEY": "k", "BINANCE_SECRET_KEY": "  "}])
def test_missing_or_empty_key_names_the_env_var(environ):
    with pytest.raises(ConfigError) as info:
        EngineConfig.default().binance_keys(environ)
    err = info.value
    var = "BINANCE_API_KEY" if not environ else "BINANCE_SECRET_KEY"
    assert var in str(err) and ("is not set" in str(err) or "is empty" in str(err))
    assert err.key == ("binance.api_key_env" if not environ else "binance.secret_key_env")


def test_discord_webhook_url():
    cfg = EngineConfig.default()
    assert cfg.discord_webhook_url({"KIMP_DISCORD_WEBHOOK_URL": "https://x/y"}) is None  # not configured
    cfg = cfg.replace(notify={"discord_webhook_url_env": "HOOK"})
    url = "https://discord.com/api/webhooks/1/" + SECRET_VALUE
    got = cfg.discord_webhook_url({"HOOK": url})
    assert isinstance(got, Secret) and got.get() == url
    with pytest.raises(ConfigError, match="HOOK is not set"):
        cfg.discord_webhook_url({})
    with pytest.raises(ConfigError, match="http\\(s\\) webhook URL") as info:
        cfg.discord_webhook_url({"HOOK": SECRET_VALUE})
    assert SECRET_VALUE not in str(info.value)


def test_redacted_shows_env_names_and_plain_values_only():
    cfg = EngineConfig.default(notify={"discord_webhook_url_env": "HOOK"})
    red = cfg.redacted()
    assert list(red) == ["source", *SECTIONS]
    assert red["upbit"]["secret_key_env"] == "UPBIT_SECRET_KEY"
    assert red["notify"]["discord_webhook_url_env"] == "HOOK"
    assert red["capital"]["trading_ratio"] == "0.95"
    assert red["one_leg"]["retry_delays"] == [1.0, 2.0, 4.0]
    json.dumps(red)  # plain data
    # No value from the environment can be in it: the config never holds one.
    assert SECRET_VALUE not in json.dumps(red) + repr(cfg)


# --------------------------------------------------------------------------- Secret


def test_secret_hides_its_value():
    s = Secret(SECRET_VALUE)
    assert repr(s) == str(s) == f"{s}" == "****" and f"{s:>6}" == "  ****"
    assert SECRET_VALUE not in repr([s, {"k": s}])
    assert s.get() == SECRET_VALUE and bool(s) and not Secret("")
    assert s == Secret(SECRET_VALUE) and s == SECRET_VALUE and s != Secret("other") and s != 1
    assert hash(s) == hash(Secret(SECRET_VALUE))
    assert copy.copy(s) is s and copy.deepcopy({"s": s})["s"] is s
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(TypeError):
        json.dumps({"secret": s})
    with pytest.raises(AttributeError):
        s._value = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
    err = ConfigError("expected x", key="a.b", source="f.toml")
    assert str(err) == "f.toml: a.b: expected x" and err.detail == "expected x"


# --------------------------------------------------------------------------- secrets file


def test_read_env_file(tmp_path):
    p = write(
        tmp_path,
        "# comment\n\nexport A=1\nB = 'two words'\nC=\"x#y\"\nD=plain # trailing comment\nE=\n",
        name=".env",
    )
    assert read_env_file(p) == {"A": "1", "B": "two words", "C": "x#y", "D": "plain", "E": ""}


def test_read_env_file_errors_do_not_show_content(tmp_path):
    p = write(tmp_path, f"A=1\n{SECRET_VALUE}\n", name=".env")
    with pytest.raises(ConfigError, match="line 2") as info:
        read_env_file(p)
    assert SECRET_VALUE not in str(info.value)
    with pytest.raises(ConfigError, match="not found"):
        read_env_file(tmp_path / "missing.env")
