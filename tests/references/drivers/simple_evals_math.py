"""nvidia-simple-evals' math_test_500 / AIME_2024 / AIME_2025, run as the launcher runs them.

The `simple_evals` command line is rendered from NeMo Evaluator Launcher's own task
definition (its command template and defaults, with the payload's judge and endpoint set
as a user sets `config.params.extra.judge.*`), then `simple_evals.__main__.run()` runs on
it: its own judge selection, MathEval, extraction, check_equality and aggregation. Only
the I/O is replaced: datasets come from the payload, the model's HTTP call
(`ChatCompletionSampler._send_request`) and the judge's client (the OpenAI SDK class, or
the same sampler for backend generic) record what they are sent and replay canned text,
and `map_with_progress` runs the examples in order without its disk cache, so that each
example's result lines up with its index.

Payload: {"eval_name", "tables", "responses": [text per request index],
"judge_replies": [text per request index], "judge": {url, model_id, api_key?, backend?},
"limit_samples"?, "env"?: {...}}.
Answer: {"argv", "defaults", "requests": [model payload per index], "judge_calls":
[{index, base_url | url, api_key, body}], "scores": [per index], "metrics": {...}}.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from _data import serve_datasets
from driver_io import answer, read_payload


def render_argv(eval_name: str, payload: dict[str, Any], out_dir: str) -> tuple[list[str], dict]:
    import jinja2
    from nemo_evaluator_launcher.common.mapping import load_tasks_mapping

    definition = load_tasks_mapping()[("simple_evals", eval_name)]["defaults"]
    config = json.loads(json.dumps(definition["config"]))
    defaults = json.loads(json.dumps(config["params"]))
    judge = config["params"]["extra"]["judge"]
    judge.update(payload["judge"])
    # framework.yml's default, which the launcher's index leaves out
    config["params"]["limit_samples"] = payload.get("limit_samples")
    config["output_dir"] = out_dir
    target = {"api_endpoint": {"url": "http://model.invalid/v1/chat/completions",
                               "model_id": payload.get("model", "sim-model"),
                               "api_key_name": None}}  # fmt: skip
    command = (
        jinja2.Environment().from_string(definition["command"]).render(config=config, target=target)
    )
    words = shlex.split(command)
    return words[words.index("simple_evals") :], defaults


def main() -> None:
    payload = read_payload()
    os.environ.update(payload.get("env") or {})
    serve_datasets(payload["tables"])

    import simple_evals.__main__ as entry
    import simple_evals.common as common
    import simple_evals.sampler.judge.openai_judge as openai_judge
    from simple_evals.sampler.chat_completion_sampler import ChatCompletionSampler

    responses: list[str] = payload["responses"]
    judge_replies: list[str] = payload["judge_replies"]
    judge_model = payload["judge"]["model_id"]
    current = [-1]
    requests: list[dict] = []
    judge_calls: list[dict] = []
    captured: list[Any] = []

    async def ordered_map(func, items, num_threads=10, cache_dir="", first_n=None):
        results = []
        for index, item in enumerate(items):
            current[0] = index
            results.append(await func(item, index))
        return results

    async def send_request(self, body: dict) -> dict:
        if self.model == judge_model:  # backend generic: the judge is this sampler too
            judge_calls.append({"index": current[0], "url": self.url, "api_key": self.api_key,
                                "body": body})  # fmt: skip
            text = judge_replies[current[0]]
        else:
            assert len(requests) == current[0], "one model request per example, in order"
            requests.append(body)
            text = responses[current[0]]
        return {"choices": [{"message": {"content": text}}], "usage": {}}

    class FakeOpenAI:
        def __init__(self, base_url: str | None = None, api_key: str | None = None, **_: Any):
            self.base_url, self.api_key = base_url, api_key
            self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.create))

        def create(self, **body: Any) -> Any:
            judge_calls.append({"index": current[0], "base_url": self.base_url,
                                "api_key": self.api_key, "body": body})  # fmt: skip
            message = SimpleNamespace(content=judge_replies[current[0]])
            return SimpleNamespace(choices=[SimpleNamespace(message=message)])

    aggregate = common.aggregate_results

    def capture(results, *args, **kwargs):
        captured.extend(results)
        return aggregate(results, *args, **kwargs)

    common.map_with_progress = ordered_map
    common.aggregate_results = capture
    ChatCompletionSampler._send_request = send_request
    openai_judge.OpenAI = FakeOpenAI

    eval_name = payload["eval_name"]
    with tempfile.TemporaryDirectory() as out:
        argv, defaults = render_argv(eval_name, payload, out)
        sys.argv = argv
        asyncio.run(entry.run())
        metrics = json.loads((Path(out) / eval_name / f"{eval_name}.json").read_text())
    answer({
        "argv": argv,
        "defaults": defaults,
        "requests": requests,
        "judge_calls": judge_calls,
        "scores": [float(result.score) for result in captured],
        "metrics": metrics,
        "timing": time_verdicts(payload, eval_name),
    })  # fmt: skip


def time_verdicts(payload: dict, eval_name: str) -> dict[str, float]:
    """Seconds the reference's own extraction and check_equality take over the payload's
    responses (the judge answers at once), for the speed comparison in the test report."""
    import re

    import simple_evals.common as common
    from simple_evals.evals.math_grading import sympy_grader  # noqa: F401  (imported first)

    config = common.load_task_config(eval_name)
    pattern = common.load_regex(config["regex_file"]) if config else common.ANSWER_PATTERN
    use_sympy = bool(config and config.get("use_sympy_first"))
    golds = payload.get("golds") or []

    async def judge(messages):
        return "Yes"

    async def verdicts() -> None:
        for response, gold in zip(payload["responses"], golds, strict=False):
            match = re.search(pattern, response)
            extracted = match.group(1) if match else ""
            await common.check_equality(judge, gold, extracted, use_sympy=use_sympy)

    started = time.perf_counter()
    asyncio.run(verdicts())
    return {"seconds": time.perf_counter() - started, "responses": len(golds)}


if __name__ == "__main__":
    main()
