"""The adapter proxy against the real endpoint simulator, driven by a plain synchronous
HTTP client the way a harness drives it."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evalfleet.engine.cache import ResponseCache
from evalfleet.engine.interceptors import build_interceptors
from evalfleet.harness.proxy import AdapterProxy, Upstream, start_proxy_thread
from evalfleet.testing import run_simulator

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
CHAT = {"model": "sim-model", "messages": [{"role": "user", "content": "What is 2+2?"}]}


def call(
    url: str, body: Any = None, *, headers: dict[str, str] | None = None
) -> tuple[int, str, bytes]:
    """(status, content type, body) of a POST (a GET without a body), errors included."""
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with _OPENER.open(request, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def post_json(url: str, body: Any, **kwargs: Any) -> tuple[int, Any]:
    status, _, raw = call(url, body, **kwargs)
    return status, json.loads(raw)


def without_ids(reply: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in reply.items() if k not in ("id", "created")}


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def sim() -> Iterator[Any]:
    with run_simulator(seed=7) as simulator:
        yield simulator


def test_chat_and_completions_bodies_reach_the_endpoint_as_sent(sim, tmp_path):
    body = {**CHAT, "n": 2, "max_tokens": 1, "temperature": 0.5}
    prompt = {"model": "sim-model", "prompt": "Once upon a time", "max_tokens": 2, "echo": True}
    direct_chat = post_json(f"{sim.base_url}/v1/chat/completions", body)
    direct_text = post_json(f"{sim.base_url}/v1/completions", prompt)
    chat = Upstream(f"{sim.base_url}/v1/chat/completions")
    text = Upstream(f"{sim.base_url}/v1/completions")
    with (
        start_proxy_thread(chat, cache=tmp_path / "chat.sqlite") as chat_proxy,
        start_proxy_thread(text, cache=tmp_path / "text.sqlite") as text_proxy,
    ):
        # Whatever path the harness appends, the one upstream URL answers.
        via_chat = post_json(f"{chat_proxy.url}/v1/chat/completions", body)
        via_root = post_json(chat_proxy.url, body)
        via_text = post_json(f"{text_proxy.url}/completions", prompt)
    assert direct_chat[0] == via_chat[0] == via_root[0] == 200
    # n and max_tokens arrived: two choices cut at one token, as the direct answer has.
    assert len(via_chat[1]["choices"]) == 2
    assert via_chat[1]["choices"][0]["finish_reason"] == "length"
    assert without_ids(via_chat[1]) == without_ids(via_root[1]) == without_ids(direct_chat[1])
    assert via_text[0] == 200
    assert without_ids(via_text[1]) == without_ids(direct_text[1])
    assert via_text[1]["choices"][0]["text"].startswith("Once upon a time")  # echo arrived
    assert sim.requests_for("What is 2+2?") == 3
    assert sim.requests_for("Once upon a time") == 2


def test_repeated_bodies_each_get_an_answer_and_a_rerun_gets_them_all_from_the_cache(sim, tmp_path):
    cache = tmp_path / "cache.sqlite"
    upstream = Upstream(f"{sim.base_url}/v1/chat/completions")
    other = {**CHAT, "messages": [{"role": "user", "content": "Another question"}]}
    with start_proxy_thread(upstream, cache=cache) as proxy:
        first = [post_json(proxy.url, CHAT)[1]["id"] for _ in range(3)]
        post_json(proxy.url, other)
        assert proxy.stats()["forwarded"] == 4
    assert len(set(first)) == 3  # three upstream answers, not one answer three times
    assert sim.stats()["requests"] == 4

    with start_proxy_thread(upstream, cache=cache, log_path=tmp_path / "s.jsonl") as proxy:
        again = [post_json(proxy.url, CHAT)[1]["id"] for _ in range(3)]
        post_json(proxy.url, other)
        assert sim.stats()["requests"] == 4  # the whole rerun: nothing sent upstream
        stats = proxy.stats()
        assert (stats["cached"], stats["forwarded"], stats["answered"]) == (4, 0, 4)
        assert stats["usage"]["total_tokens"] > 0  # the job's usage counts cached answers
        fourth = post_json(proxy.url, CHAT)[1]["id"]  # a fourth repeat was never answered
    assert sorted(again) == sorted(first)
    assert fourth not in first
    assert sim.stats()["requests"] == 5
    logged = lines(tmp_path / "s.jsonl")
    assert [line["cached"] for line in logged] == [True, True, True, True, False]


def test_throttling_and_server_errors_are_retried_until_the_harness_gets_its_answer(sim, tmp_path):
    sim.control(fault_rate=0.5, faults="429,500", retry_after=0)
    upstream = Upstream(
        f"{sim.base_url}/v1/chat/completions", max_retries=20, backoff_s=0.001, parallelism=4
    )
    with start_proxy_thread(upstream, cache=tmp_path / "c.sqlite") as proxy:
        statuses = [
            post_json(proxy.url, {**CHAT, "messages": [{"role": "user", "content": f"q{i}"}]})[0]
            for i in range(16)
        ]
        stats = proxy.stats()
    assert statuses == [200] * 16
    by_status = sim.stats()["by_status"]
    assert by_status.get("429", 0) > 0 and by_status.get("500", 0) > 0
    assert stats["retries"] == by_status["429"] + by_status["500"]
    assert stats["throttled"] == by_status["429"]
    assert (stats["answered"], stats["errors"]) == (16, 0)


def test_retries_spent_give_a_502_with_the_reason(sim, tmp_path):
    sim.control(fault_rate=1.0, faults="500")
    upstream = Upstream(f"{sim.base_url}/v1/chat/completions", max_retries=1, backoff_s=0.001)
    with start_proxy_thread(
        upstream, cache=tmp_path / "c.sqlite", log_path=tmp_path / "s.jsonl"
    ) as proxy:
        status, reply = post_json(proxy.url, CHAT)
        assert proxy.stats()["errors"] == 1
    assert status == 502
    message = reply["error"]["message"]
    assert "HTTP 500" in message and "gave up after 2 attempts" in message
    assert "\n" not in message
    assert sim.stats()["requests"] == 2
    (line,) = lines(tmp_path / "s.jsonl")
    assert (line["status"], line["response"]) == (502, None)
    assert "HTTP 500" in line["error"]


def test_an_error_no_retry_mends_reaches_the_harness_in_the_endpoints_words(sim, tmp_path):
    bad = {"model": "sim-model"}  # no messages
    direct = post_json(f"{sim.base_url}/v1/chat/completions", bad)
    upstream = Upstream(f"{sim.base_url}/v1/chat/completions", backoff_s=0.001)
    with start_proxy_thread(
        upstream, cache=tmp_path / "c.sqlite", log_path=tmp_path / "s.jsonl"
    ) as proxy:
        first = post_json(proxy.url, bad)
        second = post_json(proxy.url, bad)  # not cached: asked again
        wrong_model = post_json(proxy.url, {**CHAT, "model": "other"})
    assert direct[0] == first[0] == second[0] == 400
    assert first[1] == direct[1]
    assert "Missing required parameter: 'messages'" in first[1]["error"]["message"]
    assert wrong_model[0] == 404 and wrong_model[1]["error"]["code"] == "model_not_found"
    assert sim.stats()["requests"] == 4  # direct + 2 + 1: no retries of a 400 or a 404
    logged = lines(tmp_path / "s.jsonl")
    assert [line["status"] for line in logged] == [400, 400, 404]
    assert logged[0]["response"] == direct[1]
    assert logged[0]["error"].startswith("HTTP 400: Missing required parameter")


def test_judge_requests_go_to_the_judge_endpoint_without_the_models_interceptors(sim, tmp_path):
    interceptors = build_interceptors({"system_prompt": "Answer in one word please"})
    with run_simulator(model="judge-model") as judge_sim:
        model = Upstream(f"{sim.base_url}/v1/chat/completions")
        judge = Upstream(f"{judge_sim.base_url}/v1/chat/completions")
        with start_proxy_thread(
            model, judge=judge, cache=tmp_path / "c.sqlite", interceptors=interceptors
        ) as proxy:
            assert proxy.judge_url == f"{proxy.url}/judge"
            judged = post_json(
                f"{proxy.judge_url}/chat/completions", {**CHAT, "model": "judge-model"}
            )
            answered = post_json(proxy.url, CHAT)
            assert proxy.stats()["judge_requests"] == 1
        # The same body to the model and to the judge are cached apart.
        with start_proxy_thread(model, judge=judge, cache=tmp_path / "c.sqlite") as proxy:
            post_json(proxy.judge_url, {**CHAT, "model": "sim-model"})
        assert judge_sim.stats()["requests"] == 2
    assert judged[0] == answered[0] == 200
    assert judged[1]["model"] == "judge-model"
    assert judged[1]["usage"]["prompt_tokens"] == 3  # no system prompt added
    assert answered[1]["usage"]["prompt_tokens"] == 3 + 5
    assert sim.stats()["requests"] == 1

    with start_proxy_thread(model, cache=tmp_path / "other.sqlite") as proxy:
        assert proxy.judge_url is None
        status, reply = post_json(f"{proxy.url}/judge/chat/completions", CHAT)
    assert status == 404 and "no judge endpoint" in reply["error"]["message"]


def test_interceptors_edit_requests_and_strip_reasoning_from_answers(tmp_path):
    interceptors = build_interceptors(
        {
            "system_prompt": {"mode": "replace", "text": "Be brief."},
            "reasoning": True,
            "request_params": {"add": {"max_tokens": 1}},
        }
    )
    with run_simulator(reasoning=True) as sim:
        chat = Upstream(f"{sim.base_url}/v1/chat/completions")
        text = Upstream(f"{sim.base_url}/v1/completions")
        log = tmp_path / "s.jsonl"
        with (
            start_proxy_thread(
                chat, cache=tmp_path / "a.sqlite", interceptors=interceptors, log_path=log
            ) as chat_proxy,
            start_proxy_thread(
                text, cache=tmp_path / "b.sqlite", interceptors=interceptors
            ) as text_proxy,
        ):
            status, reply = post_json(chat_proxy.url, {**CHAT, "max_tokens": 50})
            post_json(text_proxy.url, {"model": "sim-model", "prompt": "hello"})
        # A rerun from the cache is stripped the same way (the cache keeps the original).
        with start_proxy_thread(
            chat, cache=tmp_path / "a.sqlite", interceptors=interceptors, log_path=log
        ) as chat_proxy:
            cached = post_json(chat_proxy.url, {**CHAT, "max_tokens": 50})
        assert sim.requests_for("Be brief.\n\nhello") == 1  # the completions prompt, edited
    assert status == 200
    message = reply["choices"][0]["message"]
    # The simulator answers "<think>simulated reasoning</think>echo: ...", cut to max_tokens=1
    # by the added parameter: the answer is what follows the reasoning.
    assert reply["choices"][0]["finish_reason"] == "length"
    assert message["reasoning_content"] == "simulated reasoning"
    assert "<think>" not in message["content"] and "</think>" not in message["content"]
    assert reply["usage"]["prompt_tokens"] == 2 + 3  # "Be brief." + "What is 2+2?"
    assert cached[1]["choices"][0]["message"] == message
    first, second = lines(log)
    assert first["request"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert first["request"]["max_tokens"] == 1
    assert first["response"]["choices"][0]["message"] == message
    assert second["cached"] is True


def test_the_endpoint_gets_its_api_key_whatever_the_harness_sends(tmp_path):
    with run_simulator(require_api_key="sekrit") as sim:
        url = f"{sim.base_url}/v1/chat/completions"
        with (
            start_proxy_thread(Upstream(url, api_key="sekrit"), cache=tmp_path / "a") as keyed,
            start_proxy_thread(Upstream(url), cache=tmp_path / "b") as keyless,
        ):
            ok = post_json(keyed.url, CHAT, headers={"Authorization": "Bearer evalfleet-proxy"})
            models = call(f"{keyed.url}/v1/models")
            refused = post_json(keyless.url, CHAT)
    assert ok[0] == 200
    assert models[0] == 200 and json.loads(models[2])["data"][0]["id"] == "sim-model"
    assert refused[0] == 401


def test_a_streamed_request_gets_the_whole_answer_as_one_event(sim, tmp_path):
    upstream = Upstream(f"{sim.base_url}/v1/chat/completions")
    with start_proxy_thread(upstream, cache=tmp_path / "c.sqlite") as proxy:
        status, content_type, raw = call(
            f"{proxy.url}/chat/completions",
            {**CHAT, "stream": True, "stream_options": {"include_usage": True}},
        )
        plain = post_json(proxy.url, CHAT)  # the same request, not streamed: its own answer
    assert status == 200 and content_type.startswith("text/event-stream")
    events = [part for part in raw.decode().split("\n\n") if part]
    assert events[-1] == "data: [DONE]" and len(events) == 2
    chunk = json.loads(events[0].removeprefix("data: "))
    assert chunk["object"] == "chat.completion.chunk"
    assert chunk["choices"][0]["delta"]["content"] == plain[1]["choices"][0]["message"]["content"]
    assert chunk["usage"]["total_tokens"] > 0
    assert sim.stats()["by_status"] == {"200": 2}  # sent upstream without `stream`


def test_every_request_is_logged_as_one_json_line(sim, tmp_path):
    log = tmp_path / "logs" / "samples.jsonl"
    upstream = Upstream(f"{sim.base_url}/v1/chat/completions")
    with start_proxy_thread(upstream, cache=tmp_path / "c.sqlite", log_path=log) as proxy:
        post_json(proxy.url, CHAT)
        status, _, _ = call(proxy.url, b"{not json")
    assert status == 400
    answered, refused = lines(log)
    assert answered["kind"] == "model" and answered["status"] == 200
    assert answered["request"] == CHAT
    assert answered["response"]["choices"][0]["message"]["content"] == "echo: What is 2+2?"
    assert answered["usage"] == answered["response"]["usage"]
    assert answered["attempts"] == 1 and answered["latency_s"] >= 0
    assert refused["status"] == 400 and refused["error"] == "the request body is not JSON"


def test_the_proxy_runs_on_the_callers_event_loop(sim, tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    upstream = Upstream(f"{sim.base_url}/v1/chat/completions")

    async def harness() -> tuple[int, Any, dict[str, Any]]:
        async with AdapterProxy(upstream, cache=cache) as proxy:
            status, reply = await asyncio.to_thread(post_json, proxy.url, CHAT)
            return status, reply, proxy.stats()

    try:
        status, reply, stats = asyncio.run(harness())
    finally:
        cache.close()
    assert status == 200 and reply["choices"][0]["message"]["content"] == "echo: What is 2+2?"
    assert stats["answered"] == 1
    reopened = ResponseCache(tmp_path / "c.sqlite")
    assert len(reopened.load()) == 1  # stored in the caller's cache
    reopened.close()


def test_a_harness_and_a_built_in_task_share_the_endpoints_parallelism(tmp_path):
    """The proxy's client draws from the same endpoint budget as the engine's: with both
    sending at once, the endpoint never sees more than the one `parallelism`."""
    from evalfleet.engine.budget import shared_budgets
    from evalfleet.engine.client import EndpointClient

    with run_simulator(latency=0.1) as simulator:
        url = f"{simulator.base_url}/v1/chat/completions"
        cache = ResponseCache(tmp_path / "c.sqlite")

        async def both() -> None:
            async with (
                AdapterProxy(Upstream(url, parallelism=6), cache=cache) as proxy,
                EndpointClient(url, api_key=None, parallelism=6, timeout_s=30) as engine,
            ):
                assert proxy._model.client.limit is engine.limit

                def harness_request(i: int) -> int:
                    body = {**CHAT, "messages": [{"role": "user", "content": f"harness {i}"}]}
                    return call(proxy.url, body)[0]

                harness = [asyncio.to_thread(harness_request, i) for i in range(18)]
                built_in = [engine.send({**CHAT, "seed": i}) for i in range(18)]
                results = await asyncio.wait_for(asyncio.gather(*harness, *built_in), 60)
                assert results[:18] == [200] * 18

        try:
            with shared_budgets():
                asyncio.run(both())
        finally:
            cache.close()
        stats = simulator.stats()
    assert stats["requests"] == 36 and stats["max_in_flight"] == 6
