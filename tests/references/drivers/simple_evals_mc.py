"""Run simple-evals (nvidia-simple-evals 26.3) exactly as NeMo Evaluator runs it, against a
recording endpoint that replays canned responses; report every request body, every
verdict and the metrics.

Payload:
    {"type": "simple_evals.mmlu" | "simple_evals.mmlu_pro" | "simple_evals.gpqa_diamond"
             | "simple_evals.mgsm",
     "tables": {"<dataset path>[:<name>]": {split: [row, ...]}},   # served to load_dataset
     "csv_tables": {"<dataset path>[:<name>]": {split: "<csv text>"}},  # read by datasets'
                                            # own CSV builder (pandas), as the hub's CSVs are
     "responses": [[key, response], ...],   # a request whose user turn contains `key` gets
                                            # `response` (the longest matching key wins)
     "params": {...}}                       # optional config.params overrides

The command is the one nemo_evaluator renders from the package's framework.yml for the
task (`validate_configuration(...).render_command()`), run by simple-evals' own entry point
(`simple_evals.__main__.run`) in this process. Answer: {"command", "requests": [body...],
"examples": [{"prompt", "correct", "extracted", "score"} from the reference's HTML report],
"metrics": the results JSON simple-evals writes}.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import shlex
import sys
import tempfile
from pathlib import Path

from driver_io import answer, read_payload
from replay import serve_replies


def serve(tables: dict, csv_tables: dict, workdir: Path) -> None:
    import datasets

    real_load_dataset = datasets.load_dataset
    served: dict[str, dict] = {}
    for key, splits in tables.items():
        served[key] = {s: datasets.Dataset.from_list(rows) for s, rows in splits.items()}
    for key, splits in csv_tables.items():
        served[key] = {}
        for split, text in splits.items():
            path = workdir / f"{len(served)}-{split}.csv"
            path.write_text(text, encoding="utf-8")
            served[key][split] = real_load_dataset(
                "csv", data_files=str(path), split="train", cache_dir=str(workdir / "hf")
            )

    def load_dataset(path, name=None, *args, split=None, **kwargs):
        key = f"{path}:{name}" if name and f"{path}:{name}" in served else path
        if key not in served:
            raise KeyError(f"driver has no rows for load_dataset({path!r}, {name!r})")
        if split is None:
            return datasets.DatasetDict(served[key])
        return served[key][split]

    datasets.load_dataset = load_dataset


def parse_report(text: str) -> list[dict]:
    examples = []
    body = text.split("<h1>Examples</h1>", 1)[1]
    for block in body.split("<hr>"):
        if "Prompt conversation" not in block:
            continue
        prompt = re.search(r'<div class="message user">.*?<pre>(.*?)</pre>', block, re.S)
        fields = {
            name: re.search(rf"<p>{label}: (.*?)</p>", block, re.S)
            for name, label in (("correct", "Correct Answer"), ("extracted", "Extracted Answer"),
                                ("score", "Score"))
        }  # fmt: skip
        examples.append(
            {"prompt": html.unescape(prompt.group(1)) if prompt else None,
             **{k: html.unescape(m.group(1)) if m else None for k, m in fields.items()}}
        )  # fmt: skip
    return examples


def main() -> None:
    payload = read_payload()
    workdir = Path(tempfile.mkdtemp())
    serve(payload.get("tables", {}), payload.get("csv_tables", {}), workdir)
    responses = sorted(payload["responses"], key=lambda pair: -len(pair[0]))
    recorded: list[dict] = []

    def reply_for(body: dict) -> str:
        text = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        for key, response in responses:
            if key in text:
                return response
        raise KeyError(f"no canned response for {text[-300:]!r}")

    def choose(body: dict) -> dict:
        recorded.append(body)
        return {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": reply_for(body)},
        }

    server = serve_replies(choose)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"

    from nemo_evaluator.core.input import validate_configuration

    out = workdir / "out"
    config = {"type": payload["type"], "output_dir": str(out)}
    if payload.get("params"):
        config["params"] = payload["params"]
    evaluation = validate_configuration(
        {
            "config": config,
            "target": {"api_endpoint": {"url": url, "model_id": "m", "type": "chat"}},
        }
    )
    command = evaluation.render_command().strip()
    argv = shlex.split(command)
    argv = argv[argv.index("simple_evals") + 1 :]

    from simple_evals.__main__ import run

    sys.argv = ["simple_evals", *argv]
    asyncio.run(run())
    server.shutdown()

    results_dir = out / payload["type"]
    eval_name = argv[argv.index("--eval_name") + 1]
    metrics = json.loads((results_dir / f"{eval_name}.json").read_text())
    examples = parse_report((results_dir / f"{eval_name}.html").read_text())
    answer({"command": command, "requests": recorded, "examples": examples, "metrics": metrics})


if __name__ == "__main__":
    main()
