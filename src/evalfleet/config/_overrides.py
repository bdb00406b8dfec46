"""Command-line overrides in Hydra's grammar, applied to a plain dict config.

Hydra's own parser reads the text (so `a.b=c`, `+a.b=c`, `++a.b=c`, `~a.b`, lists, dicts,
quoted strings and `${...}` interpolations mean exactly what Hydra users expect); applying
them is done here because evalfleet composes its config groups itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from evalfleet.exceptions import ConfigError

GROUPS = ("execution", "deployment")

Action = Literal["set", "add", "force_add", "delete", "select_group"]


@dataclass(frozen=True)
class Override:
    text: str
    action: Action
    path: tuple[str, ...]
    value: Any = None


def parse_overrides(texts: list[str]) -> list[Override]:
    """Parse `-o` strings; every malformed one is reported, each on its own line."""
    if not texts:
        return []
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    problems: list[str] = []
    parsed: list[Override] = []
    for text in texts:
        try:
            (override,) = parser.parse_overrides([text])
        except HydraException as exc:
            reason = str(exc).splitlines()[0]
            problems.append(f"override {text!r}: {reason} (expected key=value, +key=value or ~key)")
            continue
        if override.is_sweep_override():
            problems.append(f"override {text!r}: sweeps are not supported (one value per key)")
            continue
        key = override.key_or_group
        if override.package is not None:
            problems.append(f"override {text!r}: '@package' overrides are not supported")
            continue
        path = tuple(key.split("."))
        value = override.value()
        if override.is_delete():
            parsed.append(Override(text, "delete", path))
        elif len(path) == 1 and key in GROUPS and isinstance(value, str):
            parsed.append(Override(text, "select_group", path, value))
        elif override.is_force_add():
            parsed.append(Override(text, "force_add", path, value))
        elif override.is_add():
            parsed.append(Override(text, "add", path, value))
        else:
            parsed.append(Override(text, "set", path, value))
    if problems:
        raise ConfigError(problems)
    return parsed


def apply_override(config: dict[str, Any], override: Override) -> None:
    """Apply one parsed override to `config` in place."""
    path = list(override.path)
    if path[:2] == ["evaluation", "tasks"] and len(path) > 2 and not path[2].isdigit():
        path[2] = str(_task_index(config, path[2], override.text))
    parent = config
    for depth, segment in enumerate(path[:-1]):
        child = _child(parent, segment)
        if child is None:
            if override.action in ("delete",):
                raise ConfigError(f"override {override.text!r}: no key {'.'.join(path)} to delete")
            child = {}
            _assign(parent, segment, child, override.text, ".".join(path[: depth + 1]))
        elif not isinstance(child, (dict, list)):
            where = ".".join(path[: depth + 1])
            raise ConfigError(
                f"override {override.text!r}: {where} is a {type(child).__name__}, not a section"
            )
        parent = child
    leaf = path[-1]
    exists = _child(parent, leaf) is not None or (isinstance(parent, dict) and leaf in parent)
    dotted = ".".join(path)
    if override.action == "delete":
        if not exists:
            raise ConfigError(f"override {override.text!r}: no key {dotted} to delete")
        if isinstance(parent, list):
            parent.pop(int(leaf))
        else:
            del parent[leaf]
        return
    if override.action == "add" and exists:
        raise ConfigError(
            f"override {override.text!r}: {dotted} already exists; "
            f"use {override.text.lstrip('+')} to change it"
        )
    _assign(parent, leaf, override.value, override.text, dotted)


def _child(parent: dict[str, Any] | list[Any], segment: str) -> Any:
    if isinstance(parent, list):
        if segment.isdigit() and int(segment) < len(parent):
            return parent[int(segment)]
        return None
    return parent.get(segment)


def _assign(parent: Any, segment: str, value: Any, text: str, dotted: str) -> None:
    if isinstance(parent, list):
        if not segment.isdigit() or int(segment) >= len(parent):
            raise ConfigError(
                f"override {text!r}: {dotted}: index out of range (the list has {len(parent)} items)"
            )
        parent[int(segment)] = value
    else:
        parent[segment] = value


def _task_index(config: dict[str, Any], name: str, text: str) -> int:
    """`evaluation.tasks.ifeval.params.x=1` addresses the task by name, as NEL allows."""
    tasks = (config.get("evaluation") or {}).get("tasks") or []
    names = [str(t.get("name", "")) if isinstance(t, dict) else "" for t in tasks]
    for matcher in (lambda n: n == name, lambda n: n.rsplit(".", 1)[-1] == name):
        hits = [i for i, n in enumerate(names) if matcher(n)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ConfigError(f"override {text!r}: task name {name!r} matches several tasks")
    raise ConfigError(
        f"override {text!r}: no task named {name!r} in evaluation.tasks "
        f"(tasks: {', '.join(names) or 'none'})"
    )
