"""The simulator as a process: the READY line, options, clean shutdown, `run_simulator`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from evalfleet.testing import SimulatorError, run_simulator

from ._http import call, chat

COMMAND = [sys.executable, "-m", "evalfleet.testing.endpoint", "--port", "0"]


def start(*options: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [*COMMAND, *options],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_ready_line_then_clean_exit_on_signal(sig: signal.Signals) -> None:
    proc, line = start("--fault-rate", "1", "--faults", "timeout")
    try:
        match = re.fullmatch(r"READY (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, line
        assert int(match.group(2)) > 0
        # a request hanging in the handler must not hold up the exit
        outcome: list[BaseException] = []

        def hang() -> None:
            try:
                call(match.group(1), "/v1/chat/completions", chat("x"), timeout=10)
            except OSError as exc:  # the server went away: expected
                outcome.append(exc)

        hanging = threading.Thread(target=hang, daemon=True)
        hanging.start()
        time.sleep(0.2)
        start_stop = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
        hanging.join(5)
        assert len(outcome) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert time.monotonic() - start_stop < 3
    assert out == ""  # READY was the only line
    assert err == ""


def test_command_line_options_become_settings(tmp_path: Path) -> None:
    oracle = tmp_path / "oracle.jsonl"
    oracle.write_text(json.dumps({"prompt": "q", "response": "the answer"}) + "\n")
    options = [
        *("--model", "m1", "--latency", "0.01", "--latency-jitter", "0.005"),
        *("--latency-sigma", "0.3"),
        *("--capacity", "3", "--fault-rate", "0.25", "--faults", "429,500"),
        *("--retry-after", "5", "--hang-seconds", "2", "--seed", "9"),
        *("--answers", str(oracle), "--require-api-key", "K", "--reasoning-field"),
        *("--default-answer", "[[8]]"),
        "--refuse-echo",
    ]
    proc, line = start(*options)
    try:
        url = line.split()[1]
        settings = call(url, "/control").json()
        assert settings == {
            "model": "m1",
            "latency": 0.01,
            "latency_jitter": 0.005,
            "latency_sigma": 0.3,
            "capacity": 3,
            "fault_rate": 0.25,
            "faults": ["429", "500"],
            "retry_after": 5.0,
            "hang_seconds": 2.0,
            "seed": 9,
            "answers": str(oracle),
            "default_answer": "[[8]]",
            "require_api_key": "K",
            "reasoning": False,
            "reasoning_field": True,
            "refuse_echo": True,
        }
        call(url, "/control", {"fault_rate": 0})
        body = {**chat("q"), "model": "m1"}
        message = call(url, "/v1/chat/completions", body, headers={"Authorization": "Bearer K"})
        assert message.json()["choices"][0]["message"]["content"] == "the answer"
        echo = {"model": "m1", "prompt": "q", "echo": True, "logprobs": 1, "max_tokens": 1}
        refused = call(url, "/v1/completions", echo, headers={"Authorization": "Bearer K"})
        assert refused.status == 400
        assert refused.json()["error"]["param"] == "echo"
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["--faults", "429,teapot"], "unknown fault kind"),
        (["--fault-rate", "1.5"], "fault_rate must be between 0 and 1"),
        (["--answers", "missing.jsonl"], "No such file"),
    ],
)
def test_bad_options_exit_2_before_ready(options: list[str], needle: str) -> None:
    result = subprocess.run([*COMMAND, *options], capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert result.stdout == ""
    assert needle in result.stderr


def test_run_simulator_starts_and_stops_a_process() -> None:
    with run_simulator(answers={"2+2?": "4"}, latency=0.01) as sim:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sim.base_url)
        os.kill(sim.pid, 0)  # alive
        reply = call(sim.base_url, "/v1/chat/completions", chat("2+2?"))
        assert reply.json()["choices"][0]["message"]["content"] == "4"
        assert sim.requests_for("2+2?") == 1
        assert sim.control(latency=0)["latency"] == 0
    assert sim.process.returncode == 0


def test_run_simulator_reports_a_failed_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "no response"}\n')
    with (
        pytest.raises(SimulatorError, match=r"exited with 2: .*bad\.jsonl:2"),
        run_simulator(answers=bad),
    ):
        pass


def test_run_simulator_rejects_bad_settings_before_starting() -> None:
    with pytest.raises(ValueError, match="latency must be >= 0"), run_simulator(latency=-1):
        pass
    with pytest.raises(TypeError, match="lantency"), run_simulator(lantency=1):
        pass
