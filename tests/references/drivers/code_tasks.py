"""The code tasks' references, run whole: simple-evals' HumanEval eval and
bigcode-evaluation-harness's `bigcode-eval` (main_server.main) with their own data loading,
prompt building, request building, extraction, executor and metrics. Only the HTTP call is
replaced: it records the request body and replays the payload's canned replies.

Payload:
- {"mode": "defaults", "tasks": [[harness, task], ...]}: the launcher's defaults of each task.
- {"mode": "simple_evals_humaneval", "rows": [...], "replies": [[reply, ...] per row],
   "timeout": s, "execute": bool, "n_repeats": n}
- {"mode": "bigcode", "launcher_task": "humaneval" | "mbpp-chat", "dataset": "openai_humaneval"
   | "mbpp", "rows": [...], "replies": {prompt text: [reply, ...]}, "limit": int | None,
   "n_samples": n | None, "execute": bool}
Answer: the requests as sent, what each reply became (the executed program or completion),
each execution's result string, and the reference's metrics.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _data import serve_datasets
from driver_io import answer, read_payload


def launcher_params(harness: str, task: str) -> dict[str, Any]:
    from nemo_evaluator_launcher.common.mapping import load_tasks_mapping

    return load_tasks_mapping()[(harness, task)]["defaults"]["config"]["params"]


def defaults(payload: dict[str, Any]) -> dict[str, Any]:
    return {f"{h}.{t}": launcher_params(h, t) for h, t in payload["tasks"]}


def simple_evals_humaneval(payload: dict[str, Any]) -> dict[str, Any]:
    rows = payload["rows"]
    serve_datasets({"openai/openai_humaneval": {"test": rows}})
    from simple_evals.evals import humaneval_eval as he
    from simple_evals.sampler.chat_completion_sampler import ChatCompletionSampler
    from simple_evals.seed_generator import SeedGenerator

    params = launcher_params("simple_evals", "humaneval")
    n = payload.get("n_repeats", params["extra"]["n_samples"])
    replies = payload["replies"]
    # Which (example index, completion) a request is, from the seed the eval gives it.
    probe = SeedGenerator(42)
    by_seed = {probe.get_seed(idx, i): (idx, i) for idx in range(len(rows) * n) for i in range(n)}
    assert len(by_seed) == len(rows) * n * n

    sampler = ChatCompletionSampler(
        model="sim-model",
        url="http://unused.invalid/v1/chat/completions",
        system_message=None,  # --add_system_prompt is off by default
        temperature=params["temperature"],
        top_p=params["top_p"],
        max_tokens=params["max_new_tokens"],
    )
    requests: dict[str, Any] = {}

    async def send(body: dict[str, Any]) -> dict[str, Any]:
        idx, i = by_seed[body["seed"]]
        requests[f"{idx}/{i}"] = body
        row_replies = replies[idx % len(rows)]
        text = row_replies[i % len(row_replies)]
        return {"choices": [{"message": {"content": text}}], "usage": {}}

    sampler._send_request = send  # type: ignore[method-assign]

    executions: list[dict[str, Any]] = []
    real_check = he.check_correctness

    def check(problem, completion, timeout, completion_id=None):
        if payload.get("execute", True):
            result = real_check(problem, completion, timeout, completion_id)
        else:
            result = dict(task_id=problem["task_id"], passed=False, result="not run",
                          completion_id=completion_id)  # fmt: skip
        executions.append({"task_id": problem["task_id"], "completion_id": completion_id,
                           "completion": completion, "result": result["result"],
                           "passed": result["passed"]})  # fmt: skip
        return result

    he.check_correctness = check
    with tempfile.TemporaryDirectory() as cache_dir:
        evaluation = he.HumanEval(
            eval_name="humaneval",
            num_samples_per_task=n,
            n_repeats=n,
            num_threads=params["parallelism"],  # --num_threads {{parallelism}}
            cache_dir=cache_dir,
            timeout=payload["timeout"],
            seed_generator=SeedGenerator(42),
        )
        started = time.perf_counter()
        result = asyncio.run(evaluation(sampler))
        seconds = time.perf_counter() - started
    metrics = {key: float(value) for key, value in (result.metrics or {}).items()}
    metrics["score"] = float(result.score)
    return {"requests": requests, "executions": executions, "metrics": metrics, "seconds": seconds}


class _Response:
    def __init__(self, body: dict[str, Any]) -> None:
        self._body = body

    def json(self) -> dict[str, Any]:
        return self._body


def bigcode(payload: dict[str, Any]) -> dict[str, Any]:
    serve_datasets({payload["dataset"]: {"test": payload["rows"]}})
    from bigcode_eval import main_server
    from bigcode_eval.server.base_server import Server
    from bigcode_eval.tasks import humaneval as humaneval_task
    from bigcode_eval.tasks import mbpp as mbpp_task
    from bigcode_eval.tasks.custom_metrics import code_eval, execute

    params = launcher_params("bigcode-evaluation-harness", payload["launcher_task"])
    replies = payload["replies"]
    requests: list[dict[str, Any]] = []
    counters: dict[str, int] = {}

    async def post(self, request_json):
        chat = "messages" in request_json
        key = request_json["messages"][-1]["content"] if chat else request_json["prompt"]
        i = counters.get(key, 0)
        counters[key] = i + 1
        requests.append(request_json)
        text = replies[key][i % len(replies[key])]
        choice = {"message": {"content": text}} if chat else {"text": text}
        return _Response({"choices": [choice]})

    Server.client_post = post

    executions: list[dict[str, Any]] = []

    def check(check_program, timeout, task_id, completion_id):
        if payload.get("execute", True):
            result = execute.check_correctness(check_program, timeout, task_id, completion_id)
        else:
            result = dict(task_id=task_id, passed=False, result="not run",
                          completion_id=completion_id)  # fmt: skip
        executions.append({"task_id": task_id, "completion_id": completion_id,
                           "program": check_program, "result": result["result"],
                           "passed": result["passed"]})  # fmt: skip
        return result

    timing = {"seconds": 0.0}

    def compute_code_eval(*args, **kwargs):
        kwargs["correctness_func"] = check
        started = time.perf_counter()
        try:
            return code_eval.compute_code_eval(*args, **kwargs)
        finally:
            timing["seconds"] += time.perf_counter() - started

    humaneval_task.compute_code_eval = compute_code_eval
    mbpp_task.compute_code_eval = compute_code_eval

    n_samples = payload.get("n_samples") or params["extra"]["n_samples"]
    endpoint_type = "chat" if payload["launcher_task"].endswith("-chat") else "completions"
    with tempfile.TemporaryDirectory() as out_dir:
        # framework.yml's command line, with the launcher's defaults of the task.
        sys.argv = [
            "bigcode-eval",
            "--model_type", "nim-chat" if endpoint_type == "chat" else "nim-base",
            "--url", "http://unused.invalid/v1",
            "--model_kwargs", json.dumps({"model_name": "sim-model",
                                          "timeout": params["request_timeout"],
                                          "connection_retries": params["max_retries"]}),
            "--out_dir", out_dir,
            "--task", params["task"],
            "--allow_code_execution",
            f"--n_samples={n_samples}",
            *(["--limit", str(payload["limit"])] if payload.get("limit") else []),
            f"--max_new_tokens={params['max_new_tokens']}",
            f"--do_sample={params['extra']['do_sample']}",
            "--top_p", str(params["top_p"]),
            "--temperature", str(params["temperature"]),
            "--async_limit", str(params["parallelism"]),
        ]  # fmt: skip
        main_server.main()
        metrics = json.loads((Path(out_dir) / "metrics.json").read_text())[params["task"]]
        predictions = json.loads((Path(out_dir) / "predictions.json").read_text())
    return {
        "requests": requests,
        "predictions": predictions,
        "executions": executions,
        "metrics": {key: float(value) for key, value in metrics.items()},
        "seconds": timing["seconds"],
    }


def main() -> None:
    payload = read_payload()
    mode = payload["mode"]
    handler = {"defaults": defaults, "simple_evals_humaneval": simple_evals_humaneval,
               "bigcode": bigcode}[mode]  # fmt: skip
    answer(handler(payload))


if __name__ == "__main__":
    main()
