"""The simulator speaks OpenAI: response shapes, sampling parameters, oracle answers, errors."""

from __future__ import annotations

import pytest

from evalfleet.testing import Simulator

from ._http import call, chat

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def test_chat_completion_shape(sim: Simulator) -> None:
    body = chat("What is two plus two?")
    body["messages"].insert(0, {"role": "system", "content": "Be brief."})
    reply = call(sim.base_url, CHAT, body)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    data = reply.json()
    assert data["id"].startswith("chatcmpl-")
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int)
    assert data["model"] == "sim-model"
    assert data["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "echo: What is two plus two?",
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    # 2 system + 5 user words in; "echo:" + 5 words out
    assert data["usage"] == {"prompt_tokens": 7, "completion_tokens": 6, "total_tokens": 13}


def test_default_answer_uses_last_user_message_and_its_last_64_chars(sim: Simulator) -> None:
    long = "x" * 100 + "0123456789" * 6 + "tail"
    messages = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "text", "text": long}]},
        {"role": "assistant", "content": "prefill"},
    ]
    data = call(sim.base_url, CHAT, {"model": "sim-model", "messages": messages}).json()
    assert data["choices"][0]["message"]["content"] == "echo: " + long[-64:]


def test_oracle_answers_by_last_user_message_and_prompt(sim: Simulator, tmp_path) -> None:
    oracle = tmp_path / "answers.jsonl"
    oracle.write_text(
        '{"prompt": "capital of France?", "response": "Paris"}\n'
        "\n"
        '{"prompt": "Q: 2+2=", "response": " 4"}\n'
    )
    sim.control(answers=str(oracle))
    assert call(sim.base_url, CHAT, chat("capital of France?")).json()["choices"][0]["message"][
        "content"
    ] == ("Paris")
    assert call(sim.base_url, CHAT, chat("capital of Spain?")).json()["choices"][0]["message"][
        "content"
    ] == ("echo: capital of Spain?")
    text = call(sim.base_url, COMPLETIONS, {"model": "sim-model", "prompt": "Q: 2+2="}).json()
    assert text["choices"][0]["text"] == " 4"


def test_default_answer_replaces_the_echo_but_not_the_oracle(sim: Simulator, tmp_path) -> None:
    oracle = tmp_path / "answers.jsonl"
    oracle.write_text('{"prompt": "known?", "response": "listed"}\n')
    sim.control(answers=str(oracle), default_answer="Rating: [[8]]")

    def content(prompt: str, **params: object) -> str:
        reply = call(sim.base_url, CHAT, chat(prompt, **params)).json()
        return reply["choices"][0]["message"]["content"]

    assert content("judge this answer") == "Rating: [[8]]"
    assert content("known?") == "listed"
    assert content("judge again", max_tokens=1) == "Rating:"  # still shaped by sampling
    text = call(sim.base_url, COMPLETIONS, {"model": "sim-model", "prompt": "p"}).json()
    assert text["choices"][0]["text"] == "Rating: [[8]]"
    sim.control(default_answer=None)
    assert content("judge this answer") == "echo: judge this answer"


def test_max_tokens_truncates_words_and_reports_length(sim: Simulator) -> None:
    sim.control(answers=None)
    prompt = "one two three four five"  # answer: "echo: one two three four five" (6 words)
    for param in ("max_tokens", "max_completion_tokens"):
        data = call(sim.base_url, CHAT, chat(prompt, **{param: 3})).json()
        choice = data["choices"][0]
        assert choice["message"]["content"] == "echo: one two"
        assert choice["finish_reason"] == "length"
        assert data["usage"]["completion_tokens"] == 3
    roomy = call(sim.base_url, CHAT, chat(prompt, max_tokens=6)).json()["choices"][0]
    assert (roomy["message"]["content"], roomy["finish_reason"]) == (f"echo: {prompt}", "stop")


def test_stop_cuts_at_first_occurrence(sim: Simulator) -> None:
    data = call(sim.base_url, CHAT, chat("alpha beta gamma beta", stop="beta")).json()
    assert data["choices"][0]["message"]["content"] == "echo: alpha "
    assert data["choices"][0]["finish_reason"] == "stop"
    listed = call(sim.base_url, CHAT, chat("alpha beta gamma", stop=["gamma", "ph"])).json()
    assert listed["choices"][0]["message"]["content"] == "echo: al"
    # a stop before the word limit wins over max_tokens
    both = call(sim.base_url, CHAT, chat("a b c d e f", stop=" c", max_tokens=5)).json()
    assert both["choices"][0] | {"message": None} == {
        "index": 0,
        "message": None,
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert both["choices"][0]["message"]["content"] == "echo: a b"


def test_n_returns_n_choices(sim: Simulator) -> None:
    data = call(sim.base_url, CHAT, chat("hi there", n=3)).json()
    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    assert {c["message"]["content"] for c in data["choices"]} == {"echo: hi there"}
    assert data["usage"]["completion_tokens"] == 9
    text = call(sim.base_url, COMPLETIONS, {"model": "sim-model", "prompt": ["a", "b"], "n": 2})
    assert [(c["index"], c["text"]) for c in text.json()["choices"]] == [
        (0, "echo: a"),
        (1, "echo: a"),
        (2, "echo: b"),
        (3, "echo: b"),
    ]


def test_reasoning_inline_and_as_field(sim: Simulator) -> None:
    sim.control(reasoning=True)
    message = call(sim.base_url, CHAT, chat("why?")).json()["choices"][0]["message"]
    assert message["content"] == "<think>simulated reasoning</think>echo: why?"
    assert "reasoning_content" not in message
    sim.control(reasoning_field=True)
    message = call(sim.base_url, CHAT, chat("why?")).json()["choices"][0]["message"]
    assert message["content"] == "echo: why?"
    assert message["reasoning_content"] == "simulated reasoning"


def test_completion_shape(sim: Simulator) -> None:
    data = call(sim.base_url, COMPLETIONS, {"model": "sim-model", "prompt": "Once upon"}).json()
    assert data["id"].startswith("cmpl-")
    assert data["object"] == "text_completion"
    assert data["model"] == "sim-model"
    assert data["choices"] == [
        {"index": 0, "text": "echo: Once upon", "logprobs": None, "finish_reason": "stop"}
    ]
    assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


def test_completion_logprobs(sim: Simulator) -> None:
    body = {"model": "sim-model", "prompt": "red  green", "logprobs": 2}
    choice = call(sim.base_url, COMPLETIONS, body).json()["choices"][0]
    text, lp = choice["text"], choice["logprobs"]
    assert text == "echo: red  green"
    assert lp["tokens"] == ["echo:", " red", "  green"]
    assert "".join(lp["tokens"]) == text
    assert lp["token_logprobs"] == [-0.5, -0.5, -0.5]
    assert lp["text_offset"] == [0, 5, 9]
    assert all(
        len(top) == 2 and top[tok] == -0.5
        for tok, top in zip(lp["tokens"], lp["top_logprobs"], strict=True)
    )


def test_completion_echo_prepends_prompt_tokens(sim: Simulator) -> None:
    # the loglikelihood pattern: echo the prompt, generate nothing, read the prompt's logprobs
    body = {
        "model": "sim-model",
        "prompt": "The cat sat",
        "echo": True,
        "logprobs": 1,
        "max_tokens": 0,
    }
    choice = call(sim.base_url, COMPLETIONS, body).json()["choices"][0]
    assert choice["text"] == "The cat sat"
    assert choice["finish_reason"] == "length"
    lp = choice["logprobs"]
    assert lp["tokens"] == ["The", " cat", " sat"]
    assert lp["token_logprobs"] == [None, -0.5, -0.5]
    assert lp["top_logprobs"][0] is None
    assert lp["text_offset"] == [0, 3, 7]
    full = call(sim.base_url, COMPLETIONS, {**body, "max_tokens": None}).json()["choices"][0]
    assert full["text"] == "The cat satecho: The cat sat"
    assert full["logprobs"]["tokens"] == ["The", " cat", " sat", "echo:", " The", " cat", " sat"]
    assert full["logprobs"]["text_offset"][3] == len("The cat sat")


def test_chat_logprobs(sim: Simulator) -> None:
    choice = call(sim.base_url, CHAT, chat("hi", logprobs=True, top_logprobs=2)).json()["choices"][
        0
    ]
    content = choice["logprobs"]["content"]
    assert [c["token"] for c in content] == ["echo:", " hi"]
    assert content[1]["bytes"] == list(b" hi")
    assert [t["logprob"] for t in content[1]["top_logprobs"]] == [-0.5, -2.5]


def test_models_and_health(sim: Simulator) -> None:
    models = call(sim.base_url, "/v1/models").json()
    assert models["object"] == "list"
    assert [(m["id"], m["object"]) for m in models["data"]] == [("sim-model", "model")]
    health = call(sim.base_url, "/health")
    assert (health.status, health.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize(
    ("path", "raw", "status", "param", "needle"),
    [
        (CHAT, b"{not json", 400, None, "parse the JSON body"),
        (CHAT, b"[1, 2]", 400, None, "JSON object"),
        (CHAT, b'{"model": "sim-model"}', 400, "messages", "'messages'"),
        (CHAT, b'{"model": "sim-model", "messages": []}', 400, "messages", "'messages'"),
        (CHAT, b'{"messages": [{"role": "user", "content": "x"}]}', 400, "model", "'model'"),
        (COMPLETIONS, b'{"model": "sim-model"}', 400, "prompt", "'prompt'"),
        (COMPLETIONS, b'{"model": "sim-model", "prompt": 5}', 400, "prompt", "'prompt'"),
        (
            COMPLETIONS,
            b'{"model": "sim-model", "prompt": "x", "max_tokens": "9"}',
            400,
            "max_tokens",
            "max_tokens",
        ),
        (COMPLETIONS, b'{"model": "sim-model", "prompt": "x", "n": 0}', 400, "n", "'n'"),
        (
            CHAT,
            b'{"model": "sim-model", "messages": [{"role": "user", "content": "x"}], "stream": true}',
            400,
            "stream",
            "streaming not supported by the simulator",
        ),
    ],
)
def test_bad_requests_get_openai_errors(
    sim: Simulator, path: str, raw: bytes, status: int, param: str | None, needle: str
) -> None:
    reply = call(sim.base_url, path, raw=raw)
    assert reply.status == status
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert needle in error["message"]


def test_unknown_model_is_404_model_not_found(sim: Simulator) -> None:
    reply = call(sim.base_url, CHAT, {**chat("x"), "model": "gpt-9"})
    assert reply.status == 404
    assert reply.json() == {
        "error": {
            "message": "The model `gpt-9` does not exist.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }
    sim.control(model="other")
    assert call(sim.base_url, CHAT, {**chat("x"), "model": "other"}).status == 200
    assert call(sim.base_url, "/v1/models").json()["data"][0]["id"] == "other"


def test_api_key_is_checked(sim: Simulator) -> None:
    sim.control(require_api_key="sekret")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "sekret"}):
        reply = call(sim.base_url, CHAT, chat("x"), headers=headers)
        assert reply.status == 401
        assert reply.json()["error"]["code"] == "invalid_api_key"
    assert call(sim.base_url, "/v1/models").status == 401
    ok = {"Authorization": "Bearer sekret"}
    assert call(sim.base_url, CHAT, chat("x"), headers=ok).status == 200
    assert call(sim.base_url, "/v1/models", headers=ok).status == 200
    assert call(sim.base_url, "/health").status == 200  # the operational routes stay open


def test_unknown_route_is_a_json_404(sim: Simulator) -> None:
    reply = call(sim.base_url, "/v1/embeddings", {"model": "sim-model", "input": "x"})
    assert reply.status == 404
    assert "not a simulator route" in reply.json()["error"]["message"]
    assert call(sim.base_url, CHAT, method="GET").status == 405


# --------------------------------------------------------------------------- the openai package


def test_responses_validate_against_openai_models(sim: Simulator) -> None:
    openai_types = pytest.importorskip("openai.types")
    chat_types = pytest.importorskip("openai.types.chat")
    sim.control(reasoning=True)
    for body in (
        chat("hello", n=2),
        chat("hello", logprobs=True, top_logprobs=3),
        chat("hi", max_tokens=1),
    ):
        parsed = chat_types.ChatCompletion.model_validate(call(sim.base_url, CHAT, body).json())
        assert parsed.choices[0].message.content.startswith("<think>")
    for body in (
        {"model": "sim-model", "prompt": "hello"},
        {"model": "sim-model", "prompt": ["a b", "c"], "logprobs": 2},
        {"model": "sim-model", "prompt": "a b", "echo": True, "max_tokens": 1},
        # not echo with logprobs: the API sends null for the first prompt token, which the
        # SDK's model types as float (the SDK parses responses without validating them)
    ):
        parsed = openai_types.Completion.model_validate(
            call(sim.base_url, COMPLETIONS, body).json()
        )
        assert parsed.object == "text_completion"
    page = openai_types.Model.model_validate(call(sim.base_url, "/v1/models").json()["data"][0])
    assert page.id == "sim-model"


def test_official_openai_client_end_to_end(sim: Simulator) -> None:
    openai = pytest.importorskip("openai")
    sim.control(require_api_key="k")
    with openai.OpenAI(base_url=sim.base_url + "/v1", api_key="k", max_retries=0) as client:
        reply = client.chat.completions.create(
            model="sim-model", messages=[{"role": "user", "content": "ping"}], max_tokens=8
        )
        assert reply.choices[0].message.content == "echo: ping"
        text = client.completions.create(model="sim-model", prompt="a b", logprobs=1, echo=True)
        assert text.choices[0].logprobs.tokens[:2] == ["a", " b"]
        assert [m.id for m in client.models.list()] == ["sim-model"]
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="nope", messages=[{"role": "user", "content": "x"}]
            )
        sim.control(fault_rate=1.0, faults="429", retry_after=7)
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(
                model="sim-model", messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.response.headers["retry-after"] == "7"
    bad_key = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="bad", max_retries=0)
    with bad_key as client, pytest.raises(openai.AuthenticationError):
        client.models.list()
