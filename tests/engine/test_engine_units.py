"""The engine's small parts: concurrency limit, retry delays, interceptors, cache keys."""

from __future__ import annotations

import asyncio
import random

import pytest

from evalfleet.config.interceptors import (
    InterceptorSettings,
    Reasoning,
    SystemPrompt,
    canonical_interceptors,
    parse_interceptors,
)
from evalfleet.engine.cache import request_key
from evalfleet.engine.client import RetryPolicy, _retry_after
from evalfleet.engine.interceptors import Interceptors, build_interceptors
from evalfleet.engine.limits import AdaptiveLimit
from evalfleet.exceptions import ConfigError


def test_adaptive_limit_halves_on_throttle_once_per_burst_and_recovers():
    now = [0.0]
    limit = AdaptiveLimit(64, get_time=lambda: now[0])
    limit.on_throttle()
    limit.on_throttle()  # same burst: no second cut
    assert limit.limit == 32
    now[0] = 2.0
    limit.on_throttle()
    assert limit.limit == 16
    for _ in range(2000):
        limit.on_success()
    assert limit.limit == 64


def test_adaptive_limit_blocks_beyond_the_limit_and_hands_over_slots():
    async def scenario() -> list[int]:
        limit = AdaptiveLimit(2)
        order: list[int] = []

        async def user(i: int) -> None:
            await limit.acquire()
            order.append(i)
            await asyncio.sleep(0.01)
            limit.release()

        await asyncio.gather(*(user(i) for i in range(5)))
        assert limit.in_flight == 0
        return order

    assert asyncio.run(scenario()) == [0, 1, 2, 3, 4]


def test_retry_delay_is_jittered_exponential_capped_and_honours_retry_after():
    policy = RetryPolicy(base_s=0.5, cap_s=30, rng=random.Random(1))
    delays = [policy.delay(attempt, None) for attempt in range(10)]
    assert all(0.25 <= d <= 30 for d in delays)
    assert delays[3] >= 2.0 and delays[9] >= 15
    assert policy.delay(0, 7.0) == 7.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), ("0.5", 0.5), ("-1", 0.0), ("x", None), (None, None), ("99999", 300.0)],
)
def test_retry_after_parsing(header, expected):
    assert _retry_after(header) == expected


def test_cache_key_depends_on_body_and_repeat_not_key_order():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    same = {"temperature": 0, "messages": [{"role": "user", "content": "hi"}], "model": "m"}
    assert request_key(body, 0) == request_key(same, 0)
    assert request_key(body, 0) != request_key(body, 1)
    assert request_key(body, 0) != request_key({**body, "temperature": 1}, 0)


MESSAGES = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Q"}]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("replace", [{"role": "system", "content": "NEW"}, {"role": "user", "content": "Q"}]),
        (
            "prepend",
            [{"role": "system", "content": "NEW\nBe terse."}, {"role": "user", "content": "Q"}],
        ),
        ("set", MESSAGES),
    ],
)
def test_system_prompt_modes(mode, expected):
    interceptors = build_interceptors({"system_prompt": {"mode": mode, "text": "NEW"}})
    assert interceptors.apply_request({"messages": list(MESSAGES)})["messages"] == expected
    bare = interceptors.apply_request({"messages": [MESSAGES[1]]})["messages"]
    assert bare[0] == {"role": "system", "content": "NEW"}


def test_request_params_add_remove_rename():
    interceptors = build_interceptors(
        {
            "request_params": {
                "add": {"extra": {"a": 1}},
                "remove": ["seed"],
                "rename": {"max_tokens": "max_completion_tokens"},
            }
        }
    )
    body = interceptors.apply_request({"seed": 1, "max_tokens": 5, "extra": {"b": 2}})
    assert body == {"max_completion_tokens": 5, "extra": {"b": 2, "a": 1}}


@pytest.mark.parametrize(
    ("text", "answer", "reasoning", "unfinished"),
    [
        ("<think>hmm</think> 42", "42", "hmm", False),
        ("plain 42", "plain 42", None, False),
        ("<think>still thinking", "", "<think>still thinking", True),
        ("hmm</think>42", "42", "hmm", False),
    ],
)
def test_reasoning_stripping(text, answer, reasoning, unfinished):
    interceptors = build_interceptors({"reasoning": {"strip": True}})
    assert interceptors.apply_response(text, None) == (answer, reasoning, unfinished)


def test_nemo_evaluator_adapter_config_is_translated():
    legacy = canonical_interceptors(
        {
            "use_system_prompt": True,
            "custom_system_prompt": "/think",
            "process_reasoning_traces": True,
        },
        "adapter_config",
    )
    assert legacy == {
        "system_prompt": {"mode": "prepend", "text": "/think"},
        "reasoning": {"start": "<think>", "end": "</think>"},
    }
    listed = canonical_interceptors(
        {"interceptors": [
            {"name": "payload_modifier", "config": {"params_to_add": {"extra_body": {"x": 1}}}},
            {"name": "system_message", "config": {"system_message": "S"}},
            {"name": "request_logging", "config": {"max_requests": 1}},
            {"name": "caching", "config": {}},
            {"name": "endpoint"},
        ]},
        "adapter_config",
    )  # fmt: skip
    assert listed == {
        "request_params": {"add": {"extra_body": {"x": 1}}},
        "system_prompt": {"mode": "prepend", "text": "S"},
        "log_samples": 1,
    }


def test_unknown_interceptor_names_the_key():
    with pytest.raises(
        ConfigError, match=r"evaluation.tasks\[0\].interceptors.sytem_prompt: unknown interceptor"
    ):
        parse_interceptors({"sytem_prompt": "x"}, "evaluation.tasks[0].interceptors")
    with pytest.raises(ConfigError, match="interceptor 'magic' is not supported"):
        canonical_interceptors({"interceptors": [{"name": "magic"}]}, "adapter_config")


def test_config_describes_interceptors_and_the_engine_applies_them():
    settings = parse_interceptors(
        {"system_prompt": "S", "reasoning": True, "request_params": {"remove": ["seed"]}}
    )
    assert settings == InterceptorSettings(
        system_prompt=SystemPrompt("prepend", "S"), reasoning=Reasoning(), remove=("seed",)
    )
    assert not hasattr(settings, "apply_request")
    runtime = Interceptors(settings)
    assert runtime.apply_request({"messages": [], "seed": 1}) == {
        "messages": [{"role": "system", "content": "S"}]
    }
    assert runtime.apply_response("<think>x</think>y", None) == ("y", "x", False)
    assert build_interceptors({"log_samples": 2}).log_samples == 2
    with pytest.raises(ConfigError, match=r"^job.interceptors.log_samples: expected"):
        build_interceptors({"log_samples": -1})


def test_the_engine_loop_is_uvloop_unless_asked_otherwise(monkeypatch) -> None:
    import asyncio

    from evalfleet.engine import loop

    async def loop_type() -> str:
        return type(asyncio.get_running_loop()).__module__

    pytest.importorskip("uvloop")
    assert loop.loop_name() == "uvloop"
    assert loop.run(loop_type()).startswith("uvloop")
    monkeypatch.setenv("EVALFLEET_LOOP", "asyncio")
    assert loop.loop_name() == "asyncio"
    assert loop.run(loop_type()).startswith("asyncio")
