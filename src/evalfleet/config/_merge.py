"""The one merge rule of configuration layers."""

from __future__ import annotations

import copy
from typing import Any


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`: mappings merge key by key, anything else (lists too) is replaced.

    Values taken from `top` are copied, so later edits of the result never reach a layer.
    """
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
