"""Faults, capacity, latency, stats and live control of the simulator."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import urllib.parse

import pytest

from evalfleet.testing import Simulator, SimulatorError

from ._http import call, chat, post_many

CHAT = "/v1/chat/completions"


def only(sim: Simulator, fault: str, **settings: object) -> None:
    """Make every request get `fault`."""
    sim.control(fault_rate=1.0, faults=fault, **settings)


def raw_exchange(base_url: str, body: dict, timeout: float = 5.0) -> bytes:
    """Send one request on a plain socket; return every byte the server sent before EOF."""
    url = urllib.parse.urlsplit(base_url)
    payload = json.dumps(body).encode()
    head = (
        f"POST {CHAT} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    received = b""
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(head + payload)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received


def test_429_has_retry_after_and_openai_error(sim: Simulator) -> None:
    only(sim, "429", retry_after=2)
    reply = call(sim.base_url, CHAT, chat("x"))
    assert reply.status == 429
    assert reply.headers["Retry-After"] == "2"
    error = reply.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert set(error) == {"message", "type", "param", "code"}
    assert sim.stats()["faults"] == {"429": 1}


def test_500_is_openai_server_error(sim: Simulator) -> None:
    only(sim, "500")
    reply = call(sim.base_url, CHAT, chat("x"))
    assert reply.status == 500
    assert reply.json()["error"]["type"] == "server_error"


def test_malformed_is_200_with_a_body_that_is_not_json(sim: Simulator) -> None:
    only(sim, "malformed")
    reply = call(sim.base_url, CHAT, chat("x"))
    assert reply.status == 200
    with pytest.raises(json.JSONDecodeError):
        reply.json()


def test_empty_is_200_with_no_choices(sim: Simulator) -> None:
    only(sim, "empty")
    reply = call(sim.base_url, CHAT, chat("x"))
    assert reply.status == 200
    data = reply.json()
    assert data["choices"] == []
    assert data["object"] == "chat.completion"
    completion = call(sim.base_url, "/v1/completions", {"model": "sim-model", "prompt": "p"})
    assert completion.json()["choices"] == []


def test_drop_closes_the_connection_without_a_response(sim: Simulator) -> None:
    only(sim, "drop")
    assert raw_exchange(sim.base_url, chat("x")) == b""
    many = post_many(sim.base_url, [chat("x")] * 3)
    assert {r.error for r in many.replies} == {"ServerDisconnectedError"}
    stats = sim.stats()
    assert stats["faults"] == {"drop": 4}
    assert stats["by_status"] == {}
    assert stats["in_flight"] == 0


def test_timeout_hangs_for_hang_seconds_then_answers(sim: Simulator) -> None:
    only(sim, "timeout", hang_seconds=0.4)
    start = time.monotonic()
    reply = call(sim.base_url, CHAT, chat("x"))
    assert time.monotonic() - start >= 0.4
    assert reply.status == 200
    assert reply.json()["choices"][0]["message"]["content"] == "echo: x"


def test_a_client_giving_up_on_a_hang_frees_the_slot(sim: Simulator) -> None:
    only(sim, "timeout", hang_seconds=3600, capacity=1)
    many = post_many(sim.base_url, [chat("x")], timeout=0.3)
    assert many.replies[0].error == "TimeoutError"
    deadline = time.monotonic() + 2
    while (stats := sim.stats())["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stats["in_flight"] == 0
    assert stats["cancelled"] == 1
    sim.control(fault_rate=0)
    assert call(sim.base_url, CHAT, chat("x"), timeout=2).status == 200  # the slot is free


def test_fault_rate_over_2000_requests_with_a_seed(sim: Simulator) -> None:
    settings = {
        "fault_rate": 0.3,
        "seed": 1234,
        "hang_seconds": 0.01,
        "faults": "429,500,timeout,malformed,empty,drop",
    }
    bodies = [chat(f"question {i}") for i in range(2000)]

    def run() -> tuple[dict, list]:
        sim.control(**settings)
        sim.reset_stats()
        replies = post_many(sim.base_url, bodies, concurrency=32).replies
        return sim.stats(), replies

    stats, replies = run()
    faults = stats["faults"]
    total = sum(faults.values())
    assert 520 <= total <= 680  # 600 expected, sigma 20.5
    assert set(faults) == {"429", "500", "timeout", "malformed", "empty", "drop"}
    assert all(50 <= n <= 150 for n in faults.values())  # uniform: 100 each expected
    assert stats["requests"] == 2000
    assert stats["by_status"]["429"] == faults["429"] == sum(r.status == 429 for r in replies)
    assert stats["by_status"]["500"] == faults["500"]
    assert sum(r.error is not None for r in replies) == faults["drop"]
    assert (
        stats["completed"]
        == stats["by_status"]["200"]
        == 2000 - faults["429"] - faults["500"] - faults["drop"]
    )
    assert len(stats["by_key"]) == 2000
    again, _ = run()
    assert again["faults"] == faults  # the same seed draws the same faults


def test_capacity_queues_requests(sim: Simulator) -> None:
    sim.control(capacity=4, latency=0.2)
    many = post_many(sim.base_url, [chat(f"q{i}") for i in range(16)], concurrency=16)
    assert {r.status for r in many.replies} == {200}
    assert 0.75 <= many.elapsed < 2.0  # 4 rounds of 0.2 s, not 16
    stats = sim.stats()
    assert stats["max_in_flight"] == 4
    assert stats["in_flight"] == stats["queued"] == 0

    sim.control(capacity=None)
    sim.reset_stats()
    many = post_many(sim.base_url, [chat(f"q{i}") for i in range(16)], concurrency=16)
    assert many.elapsed < 0.7  # one round
    assert sim.stats()["max_in_flight"] == 16


def test_latency_and_jitter(sim: Simulator) -> None:
    sim.control(latency=0.15, latency_jitter=0.1, seed=3)
    many = post_many(sim.base_url, [chat(f"q{i}") for i in range(20)], concurrency=20)
    elapsed = sorted(r.elapsed for r in many.replies)
    assert elapsed[0] >= 0.05
    assert elapsed[-1] < 1.0
    assert elapsed[-1] - elapsed[0] > 0.03  # not all the same


def test_log_normal_latency_has_its_median_and_a_long_tail(sim: Simulator) -> None:
    sim.control(latency=0.1, latency_sigma=0.8, seed=3)
    many = post_many(sim.base_url, [chat(f"q{i}") for i in range(40)], concurrency=40)
    elapsed = sorted(r.elapsed for r in many.replies)
    median = elapsed[len(elapsed) // 2]
    assert 0.05 < median < 0.3
    assert elapsed[-1] > 2 * median and elapsed[0] < median / 1.5  # a spread, both ways
    sim.control(latency_sigma=0.0)


def test_stats_by_key_counts_and_reset(sim: Simulator) -> None:
    call(sim.base_url, CHAT, chat("alpha"))
    call(sim.base_url, CHAT, chat("alpha"))
    call(sim.base_url, "/v1/completions", {"model": "sim-model", "prompt": ["beta", "alpha"]})
    call(sim.base_url, CHAT, {"model": "wrong", "messages": []})  # rejected: counted, no key
    stats = sim.stats()
    sha = hashlib.sha256(b"alpha").hexdigest()
    assert stats["by_key"] == {sha: 3, hashlib.sha256(b"beta").hexdigest(): 1}
    assert sim.requests_for("alpha") == 3
    assert sim.requests_for("never asked") == 0
    assert stats["requests"] == 4
    assert stats["completed"] == 3
    assert stats["by_status"] == {"200": 3, "404": 1}
    assert stats["faults"] == {}
    assert stats["in_flight"] == 0
    assert stats["max_in_flight"] == 1
    sim.reset_stats()
    assert sim.stats() | {"by_key": None} == {
        "requests": 0,
        "completed": 0,
        "by_status": {},
        "faults": {},
        "in_flight": 0,
        "max_in_flight": 0,
        "queued": 0,
        "cancelled": 0,
        "by_key": None,
        "first_request_at": None,
        "last_answer_at": None,
    }
    assert sim.stats()["by_key"] == {}


def test_reset_while_requests_are_in_flight_keeps_in_flight_right(sim: Simulator) -> None:
    sim.control(latency=0.4)
    worker = threading.Thread(target=lambda: call(sim.base_url, CHAT, chat("slow")))
    worker.start()
    time.sleep(0.15)
    sim.reset_stats()
    during = sim.stats()
    assert (during["in_flight"], during["max_in_flight"], during["requests"]) == (1, 1, 0)
    worker.join(5)
    after = sim.stats()
    assert (after["in_flight"], after["completed"]) == (0, 1)


def test_control_updates_settings_live(sim: Simulator) -> None:
    current = call(sim.base_url, "/control").json()
    assert current["model"] == "sim-model"
    assert current["faults"] == ["429", "500", "timeout", "malformed", "empty", "drop"]
    changed = sim.control(latency=0.05, capacity=8, faults=["429"], fault_rate=0.5)
    assert (changed["latency"], changed["capacity"], changed["faults"], changed["fault_rate"]) == (
        0.05,
        8,
        ["429"],
        0.5,
    )
    assert call(sim.base_url, "/control").json() == changed


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"latnecy": 1}, "unknown setting(s): latnecy"),
        ({"fault_rate": 2}, "fault_rate must be between 0 and 1"),
        ({"faults": "429,teapot"}, "unknown fault kind"),
        ({"capacity": -1}, "capacity must be >= 0"),
        ({"answers": "/nonexistent/answers.jsonl"}, "No such file"),
    ],
)
def test_control_rejects_bad_settings(sim: Simulator, changes: dict, needle: str) -> None:
    before = call(sim.base_url, "/control").json()
    with pytest.raises(SimulatorError, match="400") as info:
        sim.control(**changes)
    assert needle in str(info.value)
    assert call(sim.base_url, "/control").json() == before


def test_stats_say_when_the_first_request_came_and_the_last_answer_left(sim: Simulator) -> None:
    sim.reset_stats()
    assert sim.stats()["first_request_at"] is None and sim.stats()["last_answer_at"] is None
    sim.control(latency=0.1)
    before = time.time()
    many = post_many(sim.base_url, [chat(f"q{i}") for i in range(4)], concurrency=2)
    after = time.time()
    assert {r.status for r in many.replies} == {200}
    stats = sim.stats()
    # Two rounds of 0.1 s between the first request and the last answer, within the call.
    assert before <= stats["first_request_at"] < stats["last_answer_at"] <= after
    assert stats["last_answer_at"] - stats["first_request_at"] >= 0.19
    sim.reset_stats()
    assert sim.stats()["first_request_at"] is None
