"""lm-eval's own log-likelihood multiple-choice tasks (nvidia-lm-eval 26.3), built by its
TaskManager from the packaged yaml files with the payload's rows as the datasets.

Payload:
  {"cases": [{"task": lm_eval_task, "tables": {path[:name]: {split: [row, ...]}},
              "num_fewshot": int | null | "launcher",  # "launcher": the launcher's default
              "logprobs": [[[logprob, is_greedy], ...] per doc] | null}, ...],
   "requests": [prompt, ...],                         # completions request bodies to build
   "parse": [{"response": {...}, "ctxlen": int}, ...]}  # parse_logprobs on recorded answers
Answer:
  {"cases": [{"pairs": [[[context, continuation], ...] per doc], "num_fewshot": int,
              "results": [{metric: value} per doc], "score_seconds": float}, ...],
   "bodies": [body, ...], "parsed": [[logprob, is_greedy], ...]}

The few-shot setup is `evaluator.simple_evaluate`'s: `--num_fewshot` overrides the yaml's
(unless it sets 0), then `set_fewshot_seed(1234)`, then `build_all_requests()`.
"""

from __future__ import annotations

import time
from collections import defaultdict

from _data import serve_datasets
from driver_io import answer, read_payload

FEWSHOT_SEED = 1234  # evaluator.simple_evaluate's default fewshot_random_seed


def launcher_num_fewshot(task_name: str):
    """`--num_fewshot` as NeMo Evaluator Launcher passes it: its task's
    `config.params.extra.num_fewshot` (absent: the flag is not passed)."""
    from nemo_evaluator_launcher.common.mapping import load_tasks_mapping

    definition = load_tasks_mapping().get(("lm-evaluation-harness", task_name))
    if definition is None:
        return None
    extra = definition["defaults"]["config"]["params"].get("extra") or {}
    return extra.get("num_fewshot")


def build(spec: dict, manager) -> dict:
    task_name = spec["task"]
    serve_datasets(spec["tables"])
    task = manager.load_task_or_group([task_name])[task_name]
    num_fewshot = spec.get("num_fewshot")
    if num_fewshot == "launcher":
        num_fewshot = launcher_num_fewshot(task_name)
    if num_fewshot is not None:
        if task.get_config("num_fewshot") != 0:
            task.set_config(key="num_fewshot", value=num_fewshot)
    elif task.get_config("num_fewshot") is None:
        task.set_config(key="num_fewshot", value=0)
    task.set_fewshot_seed(seed=FEWSHOT_SEED)
    task.build_all_requests()
    by_doc: dict[int, list] = defaultdict(list)
    for instance in task.instances:
        by_doc[instance.doc_id].append((instance.idx, list(instance.arguments)))
    pairs = [[args for _, args in sorted(by_doc[d])] for d in sorted(by_doc)]
    out = {"pairs": pairs, "num_fewshot": task.get_config("num_fewshot")}
    if spec.get("logprobs") is not None:
        docs = list(task.eval_docs)
        started = time.perf_counter()
        results = [
            task.process_results(docs[d], [(float(lp), bool(greedy)) for lp, greedy in lls])
            for d, lls in enumerate(spec["logprobs"])
        ]
        out["score_seconds"] = time.perf_counter() - started
        out["results"] = [{k: float(v) for k, v in r.items()} for r in results]
    return out


def main() -> None:
    payload = read_payload()
    from lm_eval.tasks import TaskManager

    manager = TaskManager()
    cases = [build(spec, manager) for spec in payload.get("cases", [])]

    from lm_eval.models.openai_completions import LocalCompletionsAPI

    # The launcher's model_args: tokenizer_backend=None, tokenized_requests=False, stream=False.
    lm = LocalCompletionsAPI(
        base_url="http://127.0.0.1:1/v1/completions", model="reference-model",
        tokenizer_backend=None, tokenized_requests=False,
    )  # fmt: skip
    bodies = [
        lm._create_payload(
            lm.create_message([prompt]),
            generate=False,
            gen_kwargs=None,
            stream=lm.stream,
            seed=lm._seed,
            eos=None,
        )
        for prompt in payload.get("requests", [])
    ]
    parsed = [
        list(
            LocalCompletionsAPI.parse_logprobs(outputs=item["response"], ctxlens=[item["ctxlen"]])[
                0
            ]
        )
        for item in payload.get("parse", [])
    ]
    answer({"cases": cases, "bodies": bodies, "parsed": parsed})


if __name__ == "__main__":
    main()
