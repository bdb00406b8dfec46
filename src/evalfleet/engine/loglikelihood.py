"""Log-likelihood requests: how likely a model finds a continuation after a context.

A task with `request_kind = "loglikelihood"` gives, per sample, (context, continuation)
pairs. Each pair is one completions request with the two joined as the prompt, echoed back
with one logprob per prompt token (`echo: true, logprobs: 1`), as lm-eval asks
OpenAI-compatible servers. The body is lm-eval's (`LocalCompletionsAPI._create_payload` with
`generate=False`: temperature 0, `stream: false`, `seed: 1234`). `max_tokens` is 1, not 0:
vLLM refuses 0, and the one generated token sits after the prompt, where the split below
leaves it out.

Which echoed tokens are the continuation's is read from `text_offset`: every token that
holds at least one continuation character (it ends after the context) counts. A token that
straddles the boundary (context "Answer: ", continuation "Paris", token " Paris") belongs to
the continuation; counting only tokens that *start* at or after the context would score
such a continuation as empty. lm-eval avoids the question by tokenizing the two halves
itself (with a client-side tokenizer: `tokenizer_backend=huggingface`) and sums
`token_logprobs[ctxlen:-1]`; over a text API the server tokenizes the joined prompt. The two
agree whenever the server's tokens of the context are the client's (no BOS token the client
does not count); greediness is decided as lm-eval decides it (see `_is_greedy`).

What the cache keeps per pair is the reduced answer (the sum, greediness, the continuation's
tokens and their logprobs), not the whole echoed prompt: a HellaSwag run is 40,168 rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalfleet.contract.spec import ParamsSpec
from evalfleet.engine.client import Reply
from evalfleet.engine.interceptors import Interceptors
from evalfleet.exceptions import ConfigError

REQUIREMENT = (
    "a completions endpoint (/v1/completions) that echoes the prompt with its token logprobs "
    "(echo: true, logprobs: 1, as vLLM and SGLang serve)"
)
"""What the endpoint must support, as error messages name it."""


LM_EVAL_SEED = 1234
"""The `seed` lm-eval's API models send with every request (its `seed` model argument)."""


class NotScorable(ValueError):
    """An answer without the prompt logprobs a log-likelihood needs; one line of why."""


def build_body(
    context: str,
    continuation: str,
    params: ParamsSpec,
    model: str,
    interceptors: Interceptors,
) -> tuple[dict[str, Any], tuple[int, int]]:
    """The completions request that scores `continuation` after `context`, and where the
    continuation starts and ends in the prompt as sent (a system prompt interceptor puts
    text before the context)."""
    body: dict[str, Any] = {  # lm-eval's LocalCompletionsAPI._create_payload(generate=False)
        "model": model,
        "prompt": context + continuation,
        "temperature": 0,
        "max_tokens": 1,
        "logprobs": 1,
        "stream": False,
        "seed": LM_EVAL_SEED if params.seed is None else params.seed,
        "echo": True,
    }
    if params.extra_body:
        body.update(params.extra_body)
    body = interceptors.apply_request(body)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.endswith(continuation):
        raise ConfigError(
            "interceptors: a log-likelihood request's prompt must still end with the "
            "continuation it scores (only a system prompt may be put before it)"
        )
    return body, (len(prompt) - len(continuation), len(prompt))


def continuation_answer(reply: Reply, context_chars: int, prompt_chars: int) -> dict[str, Any]:
    """The cached answer of one pair: the continuation's summed logprob and whether each of
    its tokens was the model's top choice. Raises NotScorable when the reply lacks them."""
    split = split_continuation(reply.logprobs, context_chars, prompt_chars)
    return {
        "text": "",
        "finish_reason": reply.finish_reason,
        "usage": reply.usage,
        "latency_s": reply.latency_s,
        **split,
    }


def split_continuation(logprobs: Any, context_chars: int, prompt_chars: int) -> dict[str, Any]:
    """The continuation's tokens out of an echoed legacy `logprobs` object (see the module
    docstring): `{"logprob", "is_greedy", "tokens", "token_logprobs"}`."""
    if not isinstance(logprobs, dict):
        raise NotScorable("the answer has no logprobs (the endpoint ignored echo/logprobs)")
    tokens = logprobs.get("tokens")
    values = logprobs.get("token_logprobs")
    offsets = logprobs.get("text_offset")
    tops = logprobs.get("top_logprobs")
    if not (isinstance(tokens, list) and isinstance(values, list) and isinstance(offsets, list)):
        raise NotScorable("the logprobs lack tokens, token_logprobs or text_offset")
    if len(tokens) != len(values) or len(tokens) != len(offsets):
        raise NotScorable("tokens, token_logprobs and text_offset differ in length")
    picked: list[int] = []
    for index, (token, offset) in enumerate(zip(tokens, offsets, strict=True)):
        if not isinstance(token, str) or not isinstance(offset, int):
            raise NotScorable(f"token {index} has no text or no integer text_offset")
        if offset >= prompt_chars:
            break  # generated after the prompt: not part of it
        if offset + len(token) > context_chars:
            picked.append(index)
    if not picked:
        raise NotScorable(
            "no echoed token covers the continuation (the prompt was not echoed back)"
        )
    chosen_values = []
    for index in picked:
        value = values[index]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise NotScorable(f"token {index} ({tokens[index]!r}) has no logprob")
        chosen_values.append(float(value))
    return {
        "logprob": sum(chosen_values),
        "is_greedy": _is_greedy(tokens, values, tops, picked),
        "tokens": [tokens[i] for i in picked],
        "token_logprobs": chosen_values,
    }


def _is_greedy(
    tokens: list[str], values: list[Any], tops: Any, picked: Sequence[int]
) -> bool | None:
    """Whether every continuation token was the most likely one, as lm-eval's
    `parse_logprobs` decides it: the token's logprob equals the largest in its
    top_logprobs (a tie with another token counts as greedy). None when the endpoint sent
    no top_logprobs to tell."""
    if not isinstance(tops, list) or len(tops) != len(tokens):
        return None
    for index in picked:
        top = tops[index]
        if not isinstance(top, dict) or not top:
            return None
        if values[index] != max(top.values()):
            return False
    return True


def per_sample_answer(
    pairs: Sequence[tuple[str, str]], answers: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """One sample's answers folded into the single answer `build_results` scores: usage
    and latency summed over its requests, one `loglikelihoods` entry per pair."""
    usage: dict[str, int] = {}
    for answer in answers:
        for name, count in (answer.get("usage") or {}).items():
            if isinstance(count, int):
                usage[name] = usage.get(name, 0) + count
    return {
        "text": "",
        "finish_reason": None,
        "usage": usage,
        "latency_s": sum(a.get("latency_s") or 0.0 for a in answers),
        "loglikelihoods": [
            {
                "continuation": continuation,
                "logprob": answer["logprob"],
                "is_greedy": answer.get("is_greedy"),
                "chars": len(continuation),
            }
            for (_, continuation), answer in zip(pairs, answers, strict=True)
        ],
    }
