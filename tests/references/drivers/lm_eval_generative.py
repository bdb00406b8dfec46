"""Run lm-eval (nvidia-lm-eval 26.3) exactly as NeMo Evaluator runs it, against a recording
endpoint that replays canned responses; report every request body and every verdict.

Payload:
    {"type": "gsm8k" | "gsm8k_cot_llama" | "ifeval",   # the launcher's task type
     "endpoint_type": "chat" | "completions",
     "tables": {"<dataset path>[:<name>]": {split: [row, ...]}},   # served to load_dataset
     "responses": [[key, response], ...],   # a request whose last user turn (chat) or
                                            # prompt (completions) contains `key` gets
                                            # `response` (the longest matching key wins)
     "match_after": "Question: ",           # optional: match only after its last occurrence
     "seed_langdetect": true,               # optional: seed langdetect's global factory (0)
     "params": {...}}                        # optional: config.params overrides (extra.num_fewshot…)

The command is the one nemo_evaluator renders from the package's framework.yml for that
task type (`validate_configuration(...).render_command()`); it is run by lm-eval's own CLI
entry point (`lm_eval.__main__.cli_evaluate`) in this process. The endpoint is a local
HTTP server. Answer: {"command", "requests": [{"key", "body"}...], "samples": [lm-eval's logged
samples], "metrics": the launcher's normalised metric names (core_evals output.py),
"scoring_seconds": time in lm-eval's filters and process_results}.
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from _data import serve_datasets
from driver_io import answer, read_payload
from replay import serve_replies


def main() -> None:
    payload = read_payload()
    serve_datasets(payload["tables"])
    responses = sorted(payload["responses"], key=lambda pair: -len(pair[0]))
    chat = payload["endpoint_type"] == "chat"
    after = payload.get("match_after")  # match only the text after its last occurrence
    if payload.get("seed_langdetect"):
        from langdetect import DetectorFactory

        DetectorFactory.seed = 0
    recorded: list[dict] = []

    def reply_for(body: dict) -> tuple[str, str]:
        if chat:
            text = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        else:
            text = body["prompt"]
        if after:
            text = text.rsplit(after, 1)[-1]
        for key, response in responses:
            if key in text:
                return key, response
        raise KeyError(f"no canned response for {text[-300:]!r}")

    def choose(body: dict) -> dict:
        key, text = reply_for(body)
        recorded.append({"key": key, "body": body})
        if chat:
            return {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        return {"index": 0, "text": text, "finish_reason": "stop"}

    server = serve_replies(choose)
    path = "chat/completions" if chat else "completions"
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/{path}"

    from nemo_evaluator.core.input import validate_configuration

    out = Path(tempfile.mkdtemp())
    config = {"type": payload["type"], "output_dir": str(out)}
    if payload.get("params"):
        config["params"] = payload["params"]
    evaluation = validate_configuration(
        {
            "config": config,
            "target": {
                "api_endpoint": {"url": url, "model_id": "m", "type": payload["endpoint_type"]}
            },
        }
    )
    command = evaluation.render_command().strip()
    argv = shlex.split(command)
    argv = argv[argv.index("lm-eval") + 1 :]

    from lm_eval.__main__ import cli_evaluate, setup_parser
    from lm_eval.api.task import ConfigurableTask

    # The reference's scoring time: its filters and per-sample metrics.
    spent = [0.0]

    def timed(method):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started

        return wrapper

    ConfigurableTask.apply_filters = timed(ConfigurableTask.apply_filters)
    ConfigurableTask.process_results = timed(ConfigurableTask.process_results)

    sys.argv = ["lm-eval", *argv]
    cli_evaluate(setup_parser().parse_args(argv))
    server.shutdown()

    samples = []
    for file in sorted(out.rglob("samples_*.jsonl")):
        samples += [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    from core_evals.lm_evaluation_harness.output import parse_output

    parsed = parse_output(str(out))
    metrics = {
        task: {
            name: result.scores[next(iter(result.scores))].value
            for name, result in outcome.metrics.items()
        }
        for task, outcome in parsed.tasks.items()
    }
    answer(
        {
            "command": command,
            "requests": recorded,
            "samples": samples,
            "metrics": metrics,
            "scoring_seconds": spent[0],
        }
    )


if __name__ == "__main__":
    main()
