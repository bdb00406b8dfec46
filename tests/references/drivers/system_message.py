"""nemo-evaluator's own system_message interceptor on request bodies.

Payload: {"cases": [{"config": {...interceptor config...}, "body": {...request body...}}]}
(a config without `strategy` gets the interceptor's default).
Answer: the body each request leaves the interceptor with.
"""

from __future__ import annotations

import json

from driver_io import answer, read_payload
from flask import Request
from nemo_evaluator.adapters.interceptors.system_message_interceptor import (
    SystemMessageInterceptor,
)
from nemo_evaluator.adapters.types import AdapterRequest, AdapterRequestContext


def main() -> None:
    out = []
    for case in read_payload()["cases"]:
        interceptor = SystemMessageInterceptor(SystemMessageInterceptor.Params(**case["config"]))
        request = Request.from_values(
            path="/v1/chat/completions",
            method="POST",
            data=json.dumps(case["body"]),
            headers={"Content-Type": "application/json"},
        )
        result = interceptor.intercept_request(
            AdapterRequest(r=request, rctx=AdapterRequestContext()), None
        )
        out.append(json.loads(result.r.get_data()))
    answer(out)


if __name__ == "__main__":
    main()
