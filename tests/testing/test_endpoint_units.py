"""The simulator's pure parts (text shaping, settings, the capacity gate) and `build_app`."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from evalfleet.testing import SimulatorSettings, build_app
from evalfleet.testing import _sim_openai as oa
from evalfleet.testing._sim_server import Gate, load_answers
from evalfleet.testing.endpoint import _parser


@pytest.mark.parametrize(
    ("answer", "stop", "max_tokens", "expected"),
    [
        ("a b c", (), None, ("a b c", "stop")),
        ("a  b\nc d", (), 3, ("a  b\nc", "length")),
        ("a b c", (), 3, ("a b c", "stop")),
        ("a b c", (), 0, ("", "length")),
        ("  lead b", (), 1, ("  lead", "length")),
        ("x END y STOP", ("STOP", "END"), None, ("x ", "stop")),
        ("x y z", ("q",), 2, ("x y", "length")),
    ],
)
def test_finish(
    answer: str, stop: tuple[str, ...], max_tokens: int | None, expected: tuple
) -> None:
    assert oa.finish(answer, oa.Sampling(1, max_tokens, stop)) == expected


@pytest.mark.parametrize("text", ["", "one", " two  words ", "tab\tand\nnewline\n\n"])
def test_legacy_logprob_tokens_rebuild_the_text(text: str) -> None:
    lp = json.loads(oa.legacy_logprobs("p q", text, 0))
    full = "p q" + text
    assert "".join(lp["tokens"]) == full
    assert all(
        full[off : off + len(tok)] == tok
        for tok, off in zip(lp["tokens"], lp["text_offset"], strict=True)
    )
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"])


def test_settings_normalise_and_validate() -> None:
    s = SimulatorSettings(faults="429, drop", capacity=0, latency=1, seed="5")
    assert (s.faults, s.capacity, s.latency, s.seed) == (("429", "drop"), None, 1.0, 5)
    for bad in (
        {"latency": -0.1},
        {"fault_rate": 1.01},
        {"faults": "oops"},
        {"model": ""},
        {"reasoning": "yes"},
    ):
        with pytest.raises(ValueError):
            SimulatorSettings(**bad)


def test_settings_round_trip_through_the_command_line() -> None:
    s = SimulatorSettings(
        model="m",
        latency=0.1,
        capacity=2,
        fault_rate=0.5,
        faults=("500",),
        seed=3,
        answers="a.jsonl",
        default_answer="[[8]]",
        require_api_key="k",
        reasoning=True,
        hang_seconds=1.5,
        retry_after=0.5,
    )
    args = vars(_parser().parse_args(["--port", "0", *s.to_argv()]))
    del args["host"], args["port"]
    assert SimulatorSettings(**args) == s
    assert SimulatorSettings().to_argv() == []


def test_gate_queues_fifo_and_resizes_live() -> None:
    async def scenario() -> list[str]:
        gate = Gate(1)
        order: list[str] = []

        async def worker(name: str, hold: float) -> None:
            if not gate.try_acquire():
                await gate.acquire()
            order.append(name)
            await asyncio.sleep(hold)
            gate.release()

        tasks = [asyncio.create_task(worker(n, 0.05)) for n in "abc"]
        await asyncio.sleep(0.01)
        assert (gate.active, len(gate.waiters)) == (1, 2)
        gate.resize(None)  # unlimited: both waiters get in at once
        assert (gate.active, len(gate.waiters)) == (3, 0)
        await asyncio.gather(*tasks)
        assert gate.active == 0

        gate.resize(1)
        blocker = asyncio.create_task(worker("d", 0.1))
        cancelled = asyncio.create_task(worker("never", 0))
        last = asyncio.create_task(worker("e", 0))
        await asyncio.sleep(0.01)
        cancelled.cancel()  # a waiter that gives up leaves the queue
        await asyncio.gather(blocker, last, return_exceptions=True)
        assert gate.active == 0 and not gate.waiters
        return order

    assert asyncio.run(scenario()) == ["a", "b", "c", "d", "e"]


def test_build_app_serves_the_same_routes_in_process() -> None:
    async def scenario() -> None:
        app = build_app(SimulatorSettings(model="m"))
        async with TestClient(TestServer(app)) as client:
            resp = await client.post(
                "/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hey"}]},
            )
            assert resp.status == 200
            assert (await resp.json())["choices"][0]["message"]["content"] == "echo: hey"
            resp = await client.post("/control", json={"reasoning": True})
            assert (await resp.json())["reasoning"] is True
            stats = await (await client.get("/stats")).json()
            assert (stats["requests"], stats["completed"]) == (1, 1)
            assert (await client.get("/health")).status == 200

    asyncio.run(scenario())


def test_oracle_token_logprob_lines(tmp_path) -> None:
    path = tmp_path / "oracle.jsonl"
    rows = [
        {"prompt": "a", "response": "A"},
        {"prompt": "b", "token_logprob": 0},
        {"prompt": "c", "response": "C", "token_logprob": -1.5},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert load_answers(str(path)) == ({"a": "A", "c": "C"}, {"b": 0.0, "c": -1.5})
    for bad, message in (
        ({"prompt": "d"}, "'response' or 'token_logprob'"),
        ({"prompt": "d", "token_logprob": 0.5}, "must be a number <= 0"),
        ({"prompt": "d", "token_logprob": "high"}, "must be a number <= 0"),
    ):
        path.write_text(json.dumps(bad) + "\n")
        with pytest.raises(ValueError, match=message):
            load_answers(str(path))


def test_echoed_prompt_tokens_take_the_oracle_logprob() -> None:
    lp = json.loads(oa.legacy_logprobs("ctx and more", " gen", 1, -0.25))
    assert lp["token_logprobs"] == [None, -0.25, -0.25, oa.LOGPROB]
    assert lp["top_logprobs"][1] == {" and": -0.25}


def test_refuse_echo_is_a_flag() -> None:
    assert SimulatorSettings(refuse_echo=True).to_argv() == ["--refuse-echo"]
    with pytest.raises(ValueError):
        SimulatorSettings(refuse_echo="yes")
