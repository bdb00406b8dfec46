"""Which echoed tokens are the continuation's, read from `text_offset`, on hand-written
responses shaped like vLLM's and on the endpoint simulator's real answers."""

from __future__ import annotations

import asyncio

import pytest

from evalfleet.contract.spec import ParamsSpec
from evalfleet.engine.client import EndpointClient
from evalfleet.engine.interceptors import build_interceptors
from evalfleet.engine.loglikelihood import NotScorable, build_body, split_continuation
from evalfleet.exceptions import ConfigError
from evalfleet.testing import run_simulator


def echoed(tokens: list[str], values: list[float | None], tops=None) -> dict:
    offsets, position = [], 0
    for token in tokens:
        offsets.append(position)
        position += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": values,
        "text_offset": offsets,
        "top_logprobs": tops if tops is not None else [None] * len(tokens),
    }


def test_a_token_straddling_the_boundary_belongs_to_the_continuation():
    # context "Answer: " (8 chars), continuation "Paris": the server tokenizes the joined
    # prompt as "Answer" ":" " Paris", then generates "\n" (max_tokens 1).
    logprobs = echoed(["Answer", ":", " Paris", "\n"], [None, -1.0, -0.25, -3.0])
    split = split_continuation(logprobs, len("Answer: "), len("Answer: Paris"))
    assert split["tokens"] == [" Paris"]
    assert split["logprob"] == -0.25  # neither the context's ":" nor the generated "\n"


def test_tokens_on_both_sides_of_a_clean_boundary():
    tokens = ["The", " cat", " sat", " on", " the", " mat", ".", " It"]
    values = [None, -2.0, -1.5, -0.5, -0.25, -1.0, -0.125, -4.0]
    tops = [None] + [{t: v} for t, v in zip(tokens[1:], values[1:], strict=True)]
    tops[5] = {" rug": -0.5, " mat": -1.0}  # " mat" was not the top choice
    context, continuation = "The cat sat on the", " mat."
    split = split_continuation(
        echoed(tokens, values, tops), len(context), len(context + continuation)
    )
    assert split["tokens"] == [" mat", "."]
    assert split["token_logprobs"] == [-1.0, -0.125]
    assert split["logprob"] == -1.125
    assert split["is_greedy"] is False
    tops[5] = {" mat": -1.0, " rug": -1.5}
    again = split_continuation(
        echoed(tokens, values, tops), len(context), len(context + continuation)
    )
    assert again["is_greedy"] is True
    no_tops = split_continuation(echoed(tokens, values), len(context), len(context + continuation))
    assert no_tops["is_greedy"] is None


@pytest.mark.parametrize(
    ("logprobs", "reason"),
    [
        (None, "no logprobs"),
        ({"tokens": ["a"], "token_logprobs": [-1.0]}, "text_offset"),
        (echoed(["Answer", ":"], [None, -1.0]), "no echoed token covers the continuation"),
        (echoed(["Answer", ":", " Paris"], [None, -1.0, None]), "has no logprob"),
    ],
)
def test_answers_without_the_continuation_logprobs_are_not_scorable(logprobs, reason):
    with pytest.raises(NotScorable, match=reason):
        split_continuation(logprobs, len("Answer: "), len("Answer: Paris"))


def test_the_simulator_echo_splits_where_its_words_straddle_the_context():
    """Its tokens are words with their leading space: context "Answer: " and continuation
    "Paris" give the token " Paris" starting inside the context."""
    body, split = build_body(
        "Answer: ", "Paris", ParamsSpec(), "sim-model", build_interceptors({}, "interceptors")
    )
    assert split == (8, 13)
    assert body == {
        "model": "sim-model",
        "prompt": "Answer: Paris",
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": 1,
        "echo": True,
        "stream": False,
        "seed": 1234,
    }  # fmt: skip  (lm-eval's LocalCompletionsAPI body: tests/references proves it)

    async def ask(url: str):
        async with EndpointClient(url, api_key=None, parallelism=1, timeout_s=10) as client:
            return await client.send(body)

    with run_simulator(answers={"Answer: Paris": {"token_logprob": -0.75}}) as sim:
        reply = asyncio.run(ask(f"{sim.base_url}/v1/completions"))
    assert reply.logprobs["tokens"][:2] == ["Answer:", " Paris"]
    assert len(reply.logprobs["tokens"]) == 3  # the one generated token follows
    reduced = split_continuation(reply.logprobs, *split)
    assert reduced["tokens"] == [" Paris"]
    assert reduced["logprob"] == -0.75 and reduced["is_greedy"] is True


def test_a_system_prompt_before_the_context_moves_the_split():
    interceptors = build_interceptors({"system_prompt": {"mode": "replace", "text": "Be brief."}})
    body, split = build_body("Answer: ", "Paris", ParamsSpec(), "m", interceptors)
    assert body["prompt"] == "Be brief.\n\nAnswer: Paris"
    assert body["prompt"][split[0] : split[1]] == "Paris" and split[1] == len(body["prompt"])


def test_interceptors_that_take_the_prompt_away_are_refused():
    interceptors = build_interceptors({"request_params": {"rename": {"prompt": "text"}}})
    with pytest.raises(ConfigError, match="must still end with the continuation"):
        build_body("Answer: ", "Paris", ParamsSpec(), "m", interceptors)
