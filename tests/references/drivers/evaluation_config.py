"""nemo-evaluator's own validation of a task's run config (`nemo_evaluator_config.config`).

Payload: {"cases": [{...the `config` mapping...}]}
Answer: per case, null when nemo-evaluator accepts it, else "<location>: <message>" lines.
"""

from __future__ import annotations

from driver_io import answer, read_payload
from nemo_evaluator.api.api_dataclasses import EvaluationConfig
from pydantic import ValidationError


def main() -> None:
    out = []
    for case in read_payload()["cases"]:
        try:
            EvaluationConfig.model_validate(case)
        except (ValidationError, ValueError) as exc:
            errors = exc.errors() if isinstance(exc, ValidationError) else []
            out.append(
                [".".join(str(part) for part in e["loc"]) + ": " + e["msg"] for e in errors]
                or [str(exc)]
            )
        else:
            out.append(None)
    answer(out)


if __name__ == "__main__":
    main()
