"""Hide secret values before a config is printed, stored or exported.

Secrets are meant to be referenced by name (`api_key_name`, `secret_name_ref`,
`token_name_ref`); this catches literal values that slipped into secret-looking keys.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"
_SECRET_KEY = re.compile(r"(token|secret|passw|api_?key|credential|auth)", re.IGNORECASE)
# Keys that hold the *name* of a secret, never its value.
_NAME_KEY = re.compile(r"(_name|_ref|_names|_secret|_secrets|_env)$", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key)) and not _NAME_KEY.search(key)


def redact(node: Any, key: str = "") -> Any:
    """A copy of `node` with literal values under secret-looking keys replaced by ***."""
    if isinstance(node, dict):
        return {k: redact(v, str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [redact(v, key) for v in node]
    if isinstance(node, str) and node and is_secret_key(key):
        return REDACTED
    return node
