"""Turn pydantic validation errors into one line per problem, each naming its full key path.

The user wrote YAML, not Python: messages speak of keys (`deployment.lepton_config.
min_replicas`), not of model classes, union branches or discriminator tags.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

# Discriminator tags that pydantic puts into error locations; they are not user keys.
_UNION_TAGS = {"<secret>", "<plain>"}


def format_validation_error(exc: ValidationError, raw: dict[str, Any]) -> list[str]:
    from evalfleet.config.schema import RunConfig

    lines: list[str] = []
    for error in exc.errors(include_url=False):
        loc = _user_loc(error["loc"], raw)
        kind = error["type"]
        message = error["msg"]
        if kind == "value_error":
            message = message.removeprefix("Value error, ")
            if message.startswith("@"):
                # Cross-field checks name their own keys: "@a.b: message" per line.
                lines.extend(line[1:] for line in message.splitlines())
                continue
        path = _dotted(loc)
        if kind == "extra_forbidden":
            hint = _did_you_mean(RunConfig, loc, raw)
            if not hint and len(loc) == 2 and loc[0] in ("execution", "deployment"):
                section = raw.get(loc[0]) or {}
                hint = f" (not a setting of {loc[0]} type {section.get('type')!r})"
            lines.append(f"{path}: unknown key{hint}")
        elif kind == "missing":
            lines.append(f"{path}: missing mandatory value")
        elif kind == "union_tag_invalid":
            context = error.get("ctx") or {}
            tag = str(context.get("tag", ""))
            expected = str(context.get("expected_tags", "")).replace("'", "")
            options = [option.strip() for option in expected.split(",")]
            close = difflib.get_close_matches(tag, options, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            lines.append(f"{path}.type: unknown type {tag!r}{hint} (expected one of {expected})")
        elif kind == "union_tag_not_found":
            lines.append(f"{path}.type: missing mandatory value")
        else:
            got = error.get("input")
            shown = (
                "" if isinstance(got, (dict, list)) or kind == "value_error" else f" (got {got!r})"
            )
            lines.append(f"{path}: {message[:1].lower()}{message[1:]}{shown}")
    return drop_missing_explained_by_typos(lines)


def drop_missing_explained_by_typos(lines: list[str]) -> list[str]:
    """`secret_ref: unknown key; did you mean 'secret_name_ref'?` already says why
    `secret_name_ref` is missing; one line per mistake is enough."""
    suggested = set()
    for line in lines:
        path, _, rest = line.partition(": unknown key; did you mean '")
        if rest:
            parent = path.rpartition(".")[0]
            suggested.add(
                f"{parent}.{rest.split(chr(39))[0]}" if parent else rest.split(chr(39))[0]
            )
    return [
        line for line in lines if line.removesuffix(": missing mandatory value") not in suggested
    ]


def _user_loc(loc: tuple[Any, ...], raw: dict[str, Any]) -> tuple[Any, ...]:
    """Drop pydantic's union-branch markers from an error location."""
    kept: list[Any] = []
    for position, part in enumerate(loc):
        if part in _UNION_TAGS:
            continue
        if position == 1 and loc[0] in ("execution", "deployment"):
            section = raw.get(loc[0])
            if isinstance(section, dict) and part == section.get("type"):
                continue
        kept.append(part)
    return tuple(kept)


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(config)"


def _did_you_mean(root: type[BaseModel], loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    model = _model_at(root, loc[:-1], raw)
    if model is None:
        return ""
    names = [info.alias or name for name, info in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" (expected one of: {', '.join(names)})" if len(names) <= 12 else ""


def _model_at(model: Any, loc: tuple[Any, ...], raw: Any) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc`, following the raw values."""
    current: Any = model
    value: Any = raw
    for part in loc:
        if isinstance(part, int):
            value = value[part] if isinstance(value, list) and part < len(value) else None
            current = _unwrap(current, value, item=True)
            continue
        value = value.get(part) if isinstance(value, dict) else None
        if _is_mapping(current):
            current = _unwrap(typing.get_args(_strip_annotated(current))[1], value)
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = _field(current, part)
        if field is None:
            return None
        current = _unwrap(field.annotation, value)
        if current is _execution_base() and isinstance(value, dict):
            current = _backend_model(value.get("type")) or current
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _execution_base() -> type[BaseModel]:
    from evalfleet.config.schema import ExecutionBase

    return ExecutionBase


def _backend_model(kind: Any) -> type[BaseModel] | None:
    """The registered backend's model of `execution` (where the user's keys are checked)."""
    from evalfleet.executors import registry

    return registry.backend(kind).config_model() if kind in registry.names() else None


def _strip_annotated(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _is_mapping(annotation: Any) -> bool:
    return typing.get_origin(_strip_annotated(annotation)) is dict


def _field(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _unwrap(annotation: Any, value: Any, item: bool = False) -> Any:
    """Reduce Optional/Annotated/Union/list to the model class that fits `value`."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner = typing.get_args(annotation)[0]
        return annotation if _is_mapping(inner) else _unwrap(inner, value, item)
    if item and origin is list:
        return _unwrap(typing.get_args(annotation)[0], value)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        for member in members:
            inner = _unwrap(member, value, item)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                type_field = inner.model_fields.get("type")
                wanted = value.get("type") if isinstance(value, dict) else None
                if type_field is None or wanted is None or type_field.default == wanted:
                    return inner
        return None
    return annotation
