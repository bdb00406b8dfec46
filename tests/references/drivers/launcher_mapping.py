"""NeMo Evaluator Launcher's own task index and name resolution.

Payload: {"queries": [name, ...]}. Answer: {"index": {harness: {task: endpoint types}},
"resolved": {name: {"task": "harness.task"} | {"error": message}}}.
"""

from __future__ import annotations

from driver_io import answer, read_payload
from nemo_evaluator_launcher.common.mapping import get_task_from_mapping, load_tasks_mapping


def main() -> None:
    payload = read_payload()
    mapping = load_tasks_mapping()
    index: dict[str, dict[str, list[str]]] = {}
    for (harness, task), definition in mapping.items():
        types = definition["defaults"]["config"].get("supported_endpoint_types") or ["chat"]
        index.setdefault(harness, {})[task] = list(types)
    resolved = {}
    for query in payload["queries"]:
        try:
            found = get_task_from_mapping(query, mapping)
            resolved[query] = {"task": f"{found['harness']}.{found['task']}"}
        except ValueError as exc:
            resolved[query] = {"error": str(exc)}
    answer({"index": index, "resolved": resolved})


if __name__ == "__main__":
    main()
