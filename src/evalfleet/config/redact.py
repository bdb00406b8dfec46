"""Hide secret values before a config is printed, stored or exported.

Secrets are meant to be referenced by name (`api_key_name`, `secret_name_ref`,
`token_name_ref`); this catches literal values that slipped into secret-looking keys.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"
_SECRET_KEY = re.compile(r"(token|secret|passw|api_?key|credential|auth)", re.IGNORECASE)
# A tokenizer (`config.params.extra.tokenizer`, `tokenizer_backend`) names a model, and
# "author" is no credential: neither is hidden, or the plan would hide the model's name.
_NOT_SECRET = re.compile(r"tokeniz(?:ers?|ation)?|author", re.IGNORECASE)
# Keys that hold the *name* of a secret, never its value.
_NAME_KEY = re.compile(r"(_name|_ref|_names)$", re.IGNORECASE)
_NAME_KEYS = {"api_key_secret", "image_pull_secrets"}


def is_secret_key(key: str) -> bool:
    if key.lower() in _NAME_KEYS or _NAME_KEY.search(key):
        return False
    return bool(_SECRET_KEY.search(_NOT_SECRET.sub("", key)))


def redact(node: Any, key: str = "") -> Any:
    """A copy of `node` with literal values under secret-looking keys replaced by ***."""
    if isinstance(node, dict):
        return {k: redact(v, str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [redact(v, key) for v in node]
    if isinstance(node, str) and node and is_secret_key(key) and not is_reference(node):
        return REDACTED
    return node


def is_reference(value: str) -> bool:
    """A launcher env value that names a variable (`host:NAME`, `runtime:NAME`): no secret
    itself, and the plan shows which variable a secret comes from."""
    kind, _, name = value.partition(":")
    return kind in ("host", "runtime") and bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name))


def secret_values(node: Any, key: str = "") -> set[str]:
    """Literal values found under secret-looking keys (including `{name, value}` env entries)."""
    found: set[str] = set()
    if isinstance(node, dict):
        name = node.get("name")
        if isinstance(name, str) and is_secret_key(name) and isinstance(node.get("value"), str):
            found.add(node["value"])
        for k, v in node.items():
            found |= secret_values(v, str(k))
    elif isinstance(node, list):
        for v in node:
            found |= secret_values(v, key)
    elif (
        isinstance(node, str)
        and node
        and node != REDACTED
        and is_secret_key(key)
        and not is_reference(node)
    ):
        found.add(node)
    return found


def scrub(node: Any, values: set[str]) -> Any:
    """A copy of `node` where every occurrence of any of `values` in any string is ***."""
    if not values:
        return node
    if isinstance(node, dict):
        return {k: scrub(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [scrub(v, values) for v in node]
    if isinstance(node, str):
        for value in sorted(values, key=len, reverse=True):
            node = node.replace(value, REDACTED)
    return node
