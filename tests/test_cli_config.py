"""Bad configuration files: every command that takes ``--config`` exits 2 with a message
that names the file and the dotted key, and never echoes a credential."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = (["run", "--dry-run", "--signals", os.devnull], ["reconcile"], ["status"], ["positions"], ["orders"])


def kimp(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPBIT_", "BINANCE_"))}
    return subprocess.run([sys.executable, "-m", "kimp_fast", *args], capture_output=True, text=True,
                          timeout=60, env=env, stdin=subprocess.DEVNULL)


CASES = {
    "unknown key": ('[capital]\ntrading_ration = "0.9"\n', ["capital.trading_ration", "did you mean trading_ratio"]),
    "out of range": ('[capital]\ntrading_ratio = "1.5"\n', ["capital.trading_ratio", "(0, 1]", "1.5"]),
    "wrong type": ("[one_leg]\nretry_delays = \"fast\"\n", ["one_leg.retry_delays", "list of seconds"]),
    "loss exit without consent": ('[exit]\nmin_net_profit = "-100"\n', ["exit.min_net_profit", "allow_loss_exit"]),
    "unknown section": ("[capitol]\ntrading_ratio = 1\n", ["capitol", "did you mean capital"]),
    "invalid toml": ("[capital\ntrading_ratio = 0.9\n", ["invalid TOML"]),
}


# Every case through ``run``; one case through each of the other commands (same loader).
MATRIX = [(case, COMMANDS[0]) for case in sorted(CASES)] + [("unknown key", c) for c in COMMANDS[1:]]


@pytest.mark.parametrize("case,command", MATRIX, ids=[f"{c[0]}-{case}" for case, c in MATRIX])
def test_bad_config_exits_2_naming_the_key(tmp_path: Path, case: str, command: list[str]):
    body, expected = CASES[case]
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body)
    proc = kimp(*command, "--config", str(cfg))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert str(cfg) in proc.stderr
    for part in expected:
        assert part in proc.stderr, (part, proc.stderr)
    assert "Traceback" not in proc.stderr


def test_a_credential_in_the_file_is_refused_without_echoing_it(tmp_path: Path):
    cfg = tmp_path / "leaky.toml"
    cfg.write_text('[binance]\nsecret_key = "s3cr3t-V4lue-that-must-not-leak"\n')
    for command in (["run", "--dry-run", "--signals", os.devnull], ["reconcile"]):
        proc = kimp(*command, "--config", str(cfg))
        assert proc.returncode == 2
        assert "binance.secret_key" in proc.stderr and "never read from the config file" in proc.stderr
        assert "s3cr3t" not in proc.stderr + proc.stdout


def test_missing_config_file_and_missing_keys(tmp_path: Path):
    proc = kimp("run", "--config", str(tmp_path / "nope.toml"), "--signals", os.devnull)
    assert proc.returncode == 2 and "config file not found" in proc.stderr
    ok = tmp_path / "ok.toml"
    ok.write_text('[upbit]\nbase_url = "http://127.0.0.1:9"\n[binance]\nbase_url = "http://127.0.0.1:9"\n')
    proc = kimp("run", "--config", str(ok), "--signals", os.devnull)
    assert proc.returncode == 2
    assert "upbit.access_key_env" in proc.stderr and "UPBIT_ACCESS_KEY is not set" in proc.stderr


def test_unreachable_exchange_is_a_runtime_error_exit_3(tmp_path: Path):
    cfg = tmp_path / "k.toml"
    cfg.write_text('[upbit]\nbase_url = "http://127.0.0.1:9"\ntimeout_s = 1.0\n'
                   '[binance]\nbase_url = "http://127.0.0.1:9"\ntimeout_s = 1.0\n'
                   f'[journal]\npath = "{tmp_path / "j.sqlite"}"\n')
    env_file = tmp_path / ".env"
    env_file.write_text("UPBIT_ACCESS_KEY=a\nUPBIT_SECRET_KEY=b\nBINANCE_API_KEY=c\nBINANCE_SECRET_KEY=d\n")
    proc = kimp("run", "--config", str(cfg), "--env-file", str(env_file), "--signals", os.devnull)
    assert proc.returncode == 3, proc.stderr
    assert "kimp-fast:" in proc.stderr and "Traceback" not in proc.stderr
