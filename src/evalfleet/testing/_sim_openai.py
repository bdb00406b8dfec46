"""The OpenAI wire format, as the endpoint simulator speaks it: parse requests, render bodies.

Pure functions, no I/O. Bodies are assembled from precomputed JSON fragments and
`encode_basestring_ascii` (the C string encoder behind `json.dumps`) because the simulator is
driven at thousands of requests per second and a generic `json.dumps` of a nested dict costs
several times more.

Tokens are approximated by words: usage counts are `len(text.split())`, `max_tokens` cuts after
that many words, and logprob tokens are the text's words, each with its leading whitespace (so
that `"".join(tokens) == text` and `text_offset` is exact).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _js
from typing import Any

REASONING_TEXT = "simulated reasoning"
THINK_PREFIX = f"<think>{REASONING_TEXT}</think>"
LOGPROB = -0.5
"""The logprob every simulated token gets; the alternatives in top_logprobs get less."""

ECHO_REFUSED = "echo is not supported by this model (simulated: refuse_echo)."
"""The 400 message of a completions request with `echo: true` when `refuse_echo` is set."""

_TOKEN = re.compile(r"\s*\S+|\s+")


class RequestError(Exception):
    """A request the simulator answers with an OpenAI-style 4xx error."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> bytes:
    """`{"error": {"message", "type", "param", "code"}}` as OpenAI sends it."""
    err = {"message": message, "type": type_, "param": param, "code": code}
    return json.dumps({"error": err}).encode()


def default_answer(key: str) -> str:
    """The answer when there is no oracle entry for `key`: deterministic and key-dependent."""
    return "echo: " + key[-64:]


# --------------------------------------------------------------------------- requests


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


@dataclass
class Sampling:
    """The generation parameters the simulator honours."""

    n: int = 1
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()


def _int_param(payload: dict[str, Any], name: str, minimum: int) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RequestError(f"'{name}' must be an integer >= {minimum}, got {value!r}.", name)
    return value


def parse_sampling(payload: dict[str, Any]) -> Sampling:
    """`n`, `max_tokens` / `max_completion_tokens` and `stop`, validated like OpenAI does."""
    if payload.get("stream"):
        raise RequestError("streaming not supported by the simulator", "stream")
    n = _int_param(payload, "n", 1)
    max_tokens = _int_param(payload, "max_completion_tokens", 0)
    if max_tokens is None:
        max_tokens = _int_param(payload, "max_tokens", 0)
    stop = payload.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,) if stop else ()
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = tuple(s for s in stop if s)
    else:
        raise RequestError("'stop' must be a string or a list of strings.", "stop")
    return Sampling(1 if n is None else n, max_tokens, stops)


def parse_logprobs(payload: dict[str, Any]) -> int | None:
    """Legacy completions `logprobs`: how many top alternatives per token (None = off)."""
    return _int_param(payload, "logprobs", 0)


def parse_top_logprobs(payload: dict[str, Any]) -> int:
    """Chat `top_logprobs` (with `logprobs: true`): alternatives per token, default 0."""
    return _int_param(payload, "top_logprobs", 0) or 0


def parse_chat(payload: dict[str, Any]) -> tuple[str, int]:
    """The lookup key (last user message's text) and the prompt's word count."""
    messages = payload.get("messages")
    if messages is None:
        raise RequestError(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty array of message objects.", "messages")
    key = ""
    words = 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise RequestError(f"'messages.{i}' must be an object with a 'role'.", f"messages.{i}")
        content = message.get("content")
        text = content if type(content) is str else _text_of(content)
        words += len(text.split())
        if message["role"] == "user":
            key = text
    return key, words


def parse_prompts(payload: dict[str, Any]) -> list[str]:
    """The completion prompt(s): a string or a list of strings (one choice set each)."""
    prompt = payload.get("prompt")
    if prompt is None:
        raise RequestError(
            "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter"
        )
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return prompt
    raise RequestError("'prompt' must be a string or a non-empty list of strings.", "prompt")


def finish(answer: str, sampling: Sampling) -> tuple[str, str]:
    """Cut `answer` at the first stop string, then at `max_tokens` words; (text, finish_reason)."""
    if sampling.stop:
        cut = min((i for i in (answer.find(s) for s in sampling.stop) if i >= 0), default=-1)
        if cut >= 0:
            answer = answer[:cut]
    limit = sampling.max_tokens
    if limit is not None and len(answer.split()) > limit:
        if limit == 0:
            return "", "length"
        for i, match in enumerate(re.finditer(r"\S+", answer), 1):
            if i == limit:
                return answer[: match.end()], "length"
    return answer, "stop"


# --------------------------------------------------------------------------- responses


def _top(token: str, k: int, logprob: float = LOGPROB) -> dict[str, float]:
    top = {token: logprob}
    for i in range(1, k):
        top[f"<alt{i}>"] = logprob - 2.0 * i
    return top


def legacy_logprobs(prompt: str | None, text: str, k: int, prompt_logprob: float = LOGPROB) -> str:
    """OpenAI legacy `logprobs` JSON for `text` (preceded by `prompt`'s tokens when echoing).

    Echoed prompt tokens get `prompt_logprob` each (the first, as on vLLM, gets null): an
    oracle's `token_logprob` makes one prompt likelier than its rivals.
    """
    tokens: list[str] = []
    values: list[float | None] = []
    tops: list[dict[str, float] | None] = []
    if prompt is not None:
        for i, tok in enumerate(_TOKEN.findall(prompt)):
            tokens.append(tok)
            values.append(None if i == 0 else prompt_logprob)
            tops.append(None if i == 0 else _top(tok, k, prompt_logprob))
    for tok in _TOKEN.findall(text):
        tokens.append(tok)
        values.append(LOGPROB)
        tops.append(_top(tok, k))
    offsets = []
    pos = 0
    for tok in tokens:
        offsets.append(pos)
        pos += len(tok)
    return json.dumps(
        {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}
    )


def chat_logprobs(text: str, k: int) -> str:
    """Chat `logprobs` JSON (`{"content": [{token, logprob, bytes, top_logprobs}]}`)."""
    content = []
    for tok in _TOKEN.findall(text):
        alts = _top(tok, k) if k else {}
        content.append(
            {
                "token": tok,
                "logprob": LOGPROB,
                "bytes": list(tok.encode()),
                "top_logprobs": [
                    {"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in alts.items()
                ],
            }
        )
    return json.dumps({"content": content, "refusal": None})


def usage_json(prompt_tokens: int, completion_tokens: int) -> str:
    return (
        f'"usage":{{"prompt_tokens":{prompt_tokens},"completion_tokens":{completion_tokens},'
        f'"total_tokens":{prompt_tokens + completion_tokens}}}'
    )


def chat_choice(
    index: int, content: str, finish_reason: str, reasoning: str | None, logprobs: str
) -> str:
    extra = "" if reasoning is None else ',"reasoning_content":' + _js(reasoning)
    return (
        f'{{"index":{index},"message":{{"role":"assistant","content":{_js(content)}{extra},'
        f'"refusal":null}},"logprobs":{logprobs},"finish_reason":"{finish_reason}"}}'
    )


def completion_choice(index: int, text: str, finish_reason: str, logprobs: str) -> str:
    return (
        f'{{"index":{index},"text":{_js(text)},"logprobs":{logprobs},'
        f'"finish_reason":"{finish_reason}"}}'
    )


def envelope(head: str, rid: str, created: int, choices: str, usage: str) -> bytes:
    """`head` is the precomputed `"object":…,"model":…` fragment of one kind and model."""
    return (
        f'{{"id":"{rid}",{head},"created":{created},"choices":[{choices}],{usage},'
        f'"system_fingerprint":null}}'
    ).encode()


def envelope_head(object_: str, model: str) -> str:
    return f'"object":"{object_}","model":{_js(model)}'


MALFORMED_BODY = b'{"id":"chatcmpl-malformed","object":"chat.completion","choices":[{"index":0,'
"""A 200 body that is not JSON: the response was cut off mid-object."""

NULL_CONTENT_BODY = (
    b'{"id":"chatcmpl-null","object":"chat.completion","created":0,"model":"sim-model",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":null,'
    b'"reasoning_content":"Let me think. The answer is 4."},"logprobs":null,'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":8,'
    b'"total_tokens":13}}'
)
"""A 200 chat reply with no text: all of it in `reasoning_content`, `finish_reason: stop`."""
