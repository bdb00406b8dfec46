"""HellaSwag (lm-evaluation-harness.hellaswag) on the log-likelihood path, end to end
through `evalfleet eval --job`: the two fixture rows downloaded from the local mirror, 4
completions requests per item sent to the endpoint simulator, whose oracle makes one
ending's tokens likelier than the others'.

Most tests run it 0-shot (`task_options.num_fewshot: 0`) so that the prompts the simulator
is told about can be written out here by hand from the fixture rows (lm-eval's
preprocessing applied on paper), never taken from the task: a task that built other
prompts would find no oracle entry and score by the simulator's default logprobs. The
default 10-shot prompts are proven identical to lm-eval's own in
tests/references/test_lm_eval_loglikelihood.py; here they only run end to end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from evalfleet.testing import run_simulator
from tests import datafixtures as fx
from tests.conftest import REPO
from tests.helpers import cache_rows
from tests.tasks.test_catalog_oracle import run_job
from tests.tasks.test_catalog_oracle import write_job as _write_job

# lm-eval's query (activity_label + ": " + ctx_a + " " + ctx_b.capitalize(), preprocessed)
# and its choices, each sent as query + " " + choice.
QUERIES = {
    "hellaswag/0": "Removing ice from car: Then, the man writes over the snow covering the "
    "window of a car, and a woman wearing winter clothes smiles. Then",
    "hellaswag/1": "Baking cookies: A woman mixes flour and sugar in a bowl. She",
}
CHOICES = {
    "hellaswag/0": [
        ", the man adds wax to the windshield and cuts it.",
        ", a person board a ski lift, while two men supporting the head of the person wearing "
        "winter clothes snow as the we girls sled.",
        ", the man puts on a christmas coat, knitted with netting.",
        ", the man continues removing the snow on his car.",
    ],
    "hellaswag/1": [
        "pours the batter into a tray and bakes it.",
        "throws the bowl out of the window.",
        "paints the bowl blue. then sings.",  # "[title]" became ". ", the double space one
        "drives the car to the lake.",
    ],
}
GOLD = {f"hellaswag/{i}": int(row["label"]) for i, row in enumerate(fx.HELLASWAG)}
PAIRS = sum(len(choices) for choices in CHOICES.values())


def write_job(
    directory: Path, base_url: str, task: str, endpoint_type: str, shots: int = 0
) -> Path:
    """A job running `task` with `num_fewshot` = shots (0 unless a test asks otherwise)."""
    return _write_job(directory, base_url, task, endpoint_type, options={"num_fewshot": shots})


def prompt(sample_id: str, choice: int) -> str:
    return QUERIES[sample_id] + " " + CHOICES[sample_id][choice]


def likeliest(picks: dict[str, int], logprob: float = 0.0) -> dict[str, dict[str, float]]:
    """Oracle entries: each token of the picked ending scores `logprob` (the rest -0.5)."""
    return {prompt(sid, choice): {"token_logprob": logprob} for sid, choice in picks.items()}


@pytest.fixture
def pinned(data_mirror, monkeypatch):
    fx.pin_fixture_hashes(monkeypatch)
    return data_mirror


# `evalfleet` in its own process (to be killed), accepting the fixture parquet as the
# `pinned` fixture does in this one.
PINNED_EVAL = """
import dataclasses, hashlib, sys
from evalfleet.cli.main import main
from evalfleet.datasets.sources import SOURCES
from tests.datafixtures import encode
source = SOURCES["hellaswag-validation"]
digest = hashlib.sha256(encode(source)).hexdigest()
SOURCES[source.name] = dataclasses.replace(source, sha256=digest)
sys.exit(main(sys.argv[1:]))
"""


def samples_of(job: Path) -> dict[str, dict]:
    lines = (job.parent / "samples.jsonl").read_text().splitlines()
    return {record["id"]: record for record in map(json.loads, lines)}


def test_gold_ending_likeliest_scores_one_a_wrong_one_zero(pinned, cli, tmp_path):
    wrong = {sid: (gold + 1) % 4 for sid, gold in GOLD.items()}
    for picks, expected in ((GOLD, 1.0), (wrong, 0.0)):
        with run_simulator(answers=likeliest(picks)) as sim:
            job = write_job(tmp_path / f"run-{expected}", sim.base_url, "hellaswag", "completions")
            results = run_job(cli, job)
            stats = sim.stats()
        assert results["headline_metric"] == "acc_norm"
        for metric in ("acc_norm", "acc"):
            assert results["metrics"][metric] == {
                "value": expected, "stderr": 0.0, "ci95": [expected, expected], "n": 2,
            }  # fmt: skip
        assert stats["requests"] == PAIRS and max(stats["by_key"].values()) == 1
        assert cache_rows(job.parent / "cache.sqlite") == PAIRS
        for sid, record in samples_of(job).items():
            assert record["error"] is None and record["score"] == expected
            assert record["extracted"] == str(picks[sid])
            continuations = [entry["continuation"] for entry in record["loglikelihoods"]]
            assert continuations == [" " + choice for choice in CHOICES[sid]]
            picked = record["loglikelihoods"][picks[sid]]
            assert picked["logprob"] == 0.0 and picked["is_greedy"] is True
    # The cache alone (the simulator is gone) gives the same metrics.
    assert run_job(cli, job, "--rescore")["metrics"] == results["metrics"]


def test_acc_norm_divides_by_the_ending_length_acc_does_not(pinned, cli, tmp_path):
    """Item 1's gold ending is its longest (9 words, 42 characters): at -0.4 a token it sums
    to -3.6, below the 6-word endings' -3.0 (acc picks "paints…"), but per character
    (-0.086) it beats them all (-3.0/33 = -0.091 is the next best), so acc_norm picks gold."""
    picks = {"hellaswag/0": GOLD["hellaswag/0"]}
    answers = {**likeliest(picks), **likeliest({"hellaswag/1": 0}, logprob=-0.4)}
    with run_simulator(answers=answers) as sim:
        job = write_job(tmp_path / "norm", sim.base_url, "hellaswag", "completions")
        results = run_job(cli, job)
    assert results["metrics"]["acc_norm"]["value"] == 1.0
    assert results["metrics"]["acc"]["value"] == 0.5
    record = samples_of(job)["hellaswag/1"]
    assert record["metrics"] == {"acc": 0.0} and record["score"] == 1.0
    assert record["loglikelihoods"][0]["logprob"] == pytest.approx(-3.6)
    assert record["loglikelihoods"][2]["logprob"] == pytest.approx(-3.0)


def test_killed_run_resends_only_the_pairs_it_lacks(pinned, cli, tmp_path):
    with run_simulator(answers=likeliest(GOLD), latency=0.3) as sim:
        # Uninterrupted first: the results a resumed run must reproduce.
        reference = run_job(
            cli, write_job(tmp_path / "ref", sim.base_url, "hellaswag", "completions")
        )
        sim.reset_stats()
        job = write_job(tmp_path / "killed", sim.base_url, "hellaswag", "completions")
        spec = json.loads(job.read_text())
        spec["params"]["parallelism"] = 1
        job.write_text(json.dumps(spec))
        process = subprocess.Popen(
            [sys.executable, "-c", PINNED_EVAL, "eval", "--job", str(job), "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        # Killed once three answers are stored (the engine commits an answer at the end of
        # its event-loop turn, so the simulator's count of completed requests can run ahead).
        cache = job.parent / "cache.sqlite"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sim.stats()["completed"] >= 3 and cache.exists() and cache_rows(cache) >= 3:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        kept = cache_rows(job.parent / "cache.sqlite")
        assert 3 <= kept < PAIRS
        assert not (job.parent / "results.json").exists()

        sim.reset_stats()
        results = run_job(cli, job)
        stats = sim.stats()
    assert stats["requests"] == PAIRS - kept, "only the pairs without an answer may be sent"
    assert max(stats["by_key"].values()) == 1
    assert cache_rows(job.parent / "cache.sqlite") == PAIRS
    assert results["metrics"]["acc_norm"]["value"] == 1.0
    assert results["metrics"] == reference["metrics"]
    assert results["counts"] == reference["counts"] == {
        "samples": 2, "responses": 2, "scored": 2, "scored_samples": 2, "errors": 0,
        "truncated": 0, "unfinished_reasoning": 0,
    }  # fmt: skip


def test_an_endpoint_that_refuses_echo_stops_the_run_in_one_line(pinned, cli, tmp_path):
    with run_simulator(refuse_echo=True) as sim:
        job = write_job(tmp_path / "refused", sim.base_url, "hellaswag", "completions")
        result = cli("eval", "--job", str(job), "-q")
        sent = sim.stats()["requests"]
    assert result.code == 1
    message = result.err.strip()
    assert "\n" not in message and "Traceback" not in message
    assert "task hellaswag" in message and "log-likelihood" in message
    assert "echo: true, logprobs: 1" in message and "/v1/completions" in message
    assert "HTTP 400" in message and "echo is not supported" in message
    assert sent <= 4, "the first refusal stops the run"  # parallelism 4: those in flight


def test_a_chat_endpoint_is_refused_before_any_request(pinned, cli, tmp_path):
    with run_simulator() as sim:
        job = write_job(tmp_path / "chat", sim.base_url, "hellaswag", "chat")
        result = cli("eval", "--job", str(job), "-q")
        assert sim.stats()["requests"] == 0
    assert result.code == 2
    assert "endpoint.type" in result.err and "hellaswag" in result.err
    assert "'chat'" in result.err


class _NoLogprobs(BaseHTTPRequestHandler):
    """A completions endpoint that ignores echo and logprobs (answers the text alone)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"choices": [{"index": 0, "text": " it", "finish_reason": "length"}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the engine hangs up on the requests in flight once it stops: expected


def test_an_endpoint_that_ignores_echo_stops_the_run_in_one_line(pinned, cli, tmp_path):
    server = _Server(("127.0.0.1", 0), _NoLogprobs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        job = write_job(tmp_path / "ignored", url, "hellaswag", "completions")
        result = cli("eval", "--job", str(job), "-q")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert result.code == 1
    message = result.err.strip()
    assert "\n" not in message and "task hellaswag" in message
    assert "echo: true, logprobs: 1" in message
    assert "the answer has no logprobs" in message
    assert not (job.parent / "results.json").exists()


def test_the_default_ten_shot_prompts_run_end_to_end(pinned, cli, tmp_path):
    """10 examples from the train split before each query (their identity with lm-eval's
    is the reference test's); the fixture's train rows make 4 x 2 requests."""
    with run_simulator() as sim:
        job = write_job(tmp_path / "ten", sim.base_url, "hellaswag", "completions", shots=10)
        results = run_job(cli, job)
        assert sim.stats()["requests"] == PAIRS
    assert results["metrics"]["acc_norm"]["n"] == 2
    for sid, record in samples_of(job).items():
        shown = record["prompt"]
        assert shown.endswith("\n\n" + QUERIES[sid]) and shown.count("\n\n") == 10
        continuations = [entry["continuation"] for entry in record["loglikelihoods"]]
        assert continuations == [" " + choice for choice in CHOICES[sid]]
