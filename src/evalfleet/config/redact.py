"""Hide secret values before a config is printed, stored or exported.

Secrets are meant to be referenced by name (`api_key_name`, `secret_name_ref`,
`token_name_ref`); this catches literal values that slipped into secret-looking keys, and
the credentials a URL carries (`user:password@`, `?api-key=…`), which a job still gets
through its environment (`config.env.ENDPOINT_URL_ENV`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

REDACTED = "***"
_SECRET_KEY = re.compile(r"(token|secret|passw|api_?key|credential|auth)", re.IGNORECASE)
# A tokenizer (`config.params.extra.tokenizer`, `tokenizer_backend`) names a model, and
# "author" is no credential: neither is hidden, or the plan would hide the model's name.
_NOT_SECRET = re.compile(r"tokeniz(?:ers?|ation)?|author", re.IGNORECASE)
# Keys that hold the *name* of a secret, never its value.
_NAME_KEY = re.compile(r"(_name|_ref|_names)$", re.IGNORECASE)
_NAME_KEYS = {"api_key_secret", "image_pull_secrets"}


# Query parameters that carry a credential (Azure's `api-key`, `sig`, `code`; Google's
# `key`; OAuth's `access_token`…); `api-version` and the like stay visible.
_SECRET_QUERY = re.compile(
    r"^(?:api[-_]?key|key|code|sig|signature|token|access[-_]?token|auth|password|passwd|"
    r"secret|client[-_]?secret|x-amz-signature|x-amz-credential|x-amz-security-token)$",
    re.IGNORECASE,
)


def is_secret_key(key: str) -> bool:
    if key.lower() in _NAME_KEYS or _NAME_KEY.search(key):
        return False
    return bool(_SECRET_KEY.search(_NOT_SECRET.sub("", key)))


def redact(node: Any, key: str = "") -> Any:
    """A copy of `node` with literal values under secret-looking keys replaced by ***, and
    the credentials of every URL (`redact_url`) hidden."""
    if isinstance(node, dict):
        return {k: redact(v, str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [redact(v, key) for v in node]
    if isinstance(node, str) and node and is_secret_key(key) and not is_reference(node):
        return REDACTED
    if isinstance(node, str):
        return redact_url(node)
    return node


def _url_parts(url: str) -> Any:
    if "://" not in url:
        return None
    try:
        return urlsplit(url)
    except ValueError:  # not a URL after all (an invalid IPv6 host, say)
        return None


def url_secrets(url: str) -> list[str]:
    """The credentials in `url` as written: its password (or a lone user name, which is
    then the credential) and the values of credential-carrying query parameters."""
    parts = _url_parts(url)
    if parts is None:
        return []
    found = []
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and userinfo:
        user, colon, password = userinfo.partition(":")
        found.append(password if colon else user)
    for pair in parts.query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and value and _SECRET_QUERY.match(_unquote(name)):
            found.append(value)
    return [value for value in found if value]


def _unquote(text: str) -> str:
    pairs = parse_qsl(f"{text}=", keep_blank_values=True)
    return pairs[0][0] if pairs else text


def redact_url(url: str) -> str:
    """`url` with its credentials as ***: `user:***@`, `***@` for a lone user name (a token),
    and the value of every credential-carrying query parameter; the rest as it was (a
    non-URL string is returned unchanged)."""
    parts = _url_parts(url)
    if parts is None or not url_secrets(url):
        return url
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at and userinfo:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{host}" if colon else f"{REDACTED}@{host}"
    query = "&".join(
        f"{name}={REDACTED}" if equals and value and _SECRET_QUERY.match(_unquote(name)) else pair
        for pair in parts.query.split("&")
        for name, equals, value in [pair.partition("=")]
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


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
    elif isinstance(node, str):
        found.update(value for value in url_secrets(node) if value != REDACTED)
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
