"""Shared by the drivers: read the payload, answer in JSON on the last stdout line."""

from __future__ import annotations

import json
import sys
from typing import Any


def read_payload() -> Any:
    return json.load(sys.stdin)


def answer(result: Any) -> None:
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
