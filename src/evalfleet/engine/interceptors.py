"""Interceptors at run time: what a job's interceptor settings do to its requests and answers.

The settings are config's (`evalfleet.config.interceptors`: the form, NeMo Evaluator
Launcher's `adapter_config`, validation); this module only applies them. `build_interceptors`
turns job.json's `interceptors` dict into the runtime through config's validator, so a job
gets the same one-line errors as the launcher; `Interceptors(settings)` wraps settings
already validated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalfleet.config._merge import deep_merge  # config's layer-merge rule, applied to a body

if TYPE_CHECKING:
    from evalfleet.config.interceptors import InterceptorSettings, SystemPrompt


class Interceptors:
    """One job's interceptors: `apply_request` edits each request body before it is sent
    (and hashed for the cache), `apply_response` strips reasoning from each answer."""

    __slots__ = ("_add", "_reasoning", "_remove", "_rename", "_system_prompt", "settings")

    def __init__(self, settings: InterceptorSettings) -> None:
        self.settings = settings
        # Read once per request: kept here rather than behind `settings.` on the hot path.
        self._system_prompt = settings.system_prompt
        self._reasoning = settings.reasoning
        self._add = settings.add
        self._remove = settings.remove
        self._rename = settings.rename

    def __repr__(self) -> str:
        return f"Interceptors({self.settings!r})"

    @property
    def log_samples(self) -> int:
        """How many of the first requests and answers to log to logs/requests.jsonl."""
        return self.settings.log_samples

    def apply_request(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._system_prompt is not None:
            body = _with_system_prompt(body, self._system_prompt)
        for key in self._remove:
            body.pop(key, None)
        for old, new in self._rename.items():
            if old in body:
                body[new] = body.pop(old)
        if self._add:
            body = deep_merge(body, self._add)
        return body

    def apply_response(self, text: str, reasoning: str | None) -> tuple[str, str | None, bool]:
        """Strip reasoning; returns (answer, reasoning, unfinished) where `unfinished` means
        the response opened a reasoning block and never closed it."""
        if self._reasoning is None:
            return text, reasoning, False
        start, end = self._reasoning.start, self._reasoning.end
        position = text.find(end)
        if position >= 0:
            opened = text.find(start)
            thought = text[opened + len(start) if 0 <= opened < position else 0 : position]
            return text[position + len(end) :].lstrip(), (reasoning or thought.strip()), False
        if text.lstrip().startswith(start):
            return "", text.strip(), True
        return text, reasoning, False


def build_interceptors(
    config: dict[str, Any] | None, where: str = "job.interceptors"
) -> Interceptors:
    """The runtime of job.json's `interceptors` settings (either form), validated by config:
    a bad setting raises its ConfigError, naming the key under `where`."""
    # Imported here: the config package (YAML loading) is needed only once a job starts,
    # not by every module that merely names `Interceptors`.
    from evalfleet.config.interceptors import parse_interceptors

    return Interceptors(parse_interceptors(config, where))


def _with_system_prompt(body: dict[str, Any], prompt: SystemPrompt) -> dict[str, Any]:
    if "messages" not in body:  # completions: the prompt text itself
        if prompt.mode != "set" or not body.get("prompt", "").startswith(prompt.text):
            body["prompt"] = f"{prompt.text}\n\n{body.get('prompt', '')}"
        return body
    messages = body["messages"]
    # nemo-evaluator's system_message semantics: the request's system messages (joined by
    # a newline) and the prompt become one system message, first, before the others.
    existing = [m.get("content") for m in messages if m.get("role") == "system"]
    if prompt.mode == "set":
        if existing:
            return body
        text = prompt.text
    elif prompt.mode == "replace" or not existing:
        text = prompt.text
    elif prompt.mode == "prepend":
        text = prompt.text + "\n" + "\n".join(existing)
    else:  # append
        text = "\n".join(existing) + "\n" + prompt.text
    others = [m for m in messages if m.get("role") != "system"]
    body["messages"] = [{"role": "system", "content": text}, *others]
    return body
