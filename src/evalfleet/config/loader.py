"""Compose a run configuration: user YAML + config groups + overrides → RunConfig.

Order of composition (later wins):
1. the built-in group of the selected `execution.type` and `deployment.type`
   (`groups/execution/*.yaml`, `groups/deployment/*.yaml`);
2. what the user file's Hydra `defaults:` list names, in its order: group options
   (`execution: slurm/mycluster`, found on the search path, see `_groups.py`, each with
   the parents its own `defaults:` names), other configs beside it, and the user file
   itself (`_self_`, last unless the list places it);
3. `-o` overrides, in the order given (`-o execution=slurm/mycluster` chooses an option).

A type is selected by, from strongest to weakest: `-o deployment.type=sglang`; a
`-o deployment=sglang` group switch; the user file's `deployment.type`; the option the
`defaults:` list names (its `type`, or its parents'). An option of another type than the
one selected brings none of its keys. A section the user never mentions gets
`execution: local` / `deployment: none`.
"""

from __future__ import annotations

import difflib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evalfleet.config._groups import (
    GROUP_FILE_SUFFIXES,
    Layer,
    SearchPath,
    builtin_file,
    builtin_options,
    expand_group,
)
from evalfleet.config._merge import deep_merge
from evalfleet.config._overrides import GROUPS, Override, apply_override, parse_overrides
from evalfleet.exceptions import ConfigError

MISSING = "???"
_DEFAULT_TYPES = {"execution": "local", "deployment": "none"}


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with where it came from."""

    model: Any  # RunConfig; typed loosely to keep pydantic out of import time
    resolved: dict[str, Any]  # the merged, interpolated dict that was validated
    source: Path | None
    overrides: list[str] = field(default_factory=list)


def group_options(group: str) -> list[str]:
    """The built-in options of `group` (`deployment`: also `vllm_ray`, a vllm variant)."""
    options = set(builtin_options(group))
    if group == "execution":  # a registered backend needs no group file
        from evalfleet.executors import registry

        options |= set(registry.names())
    return sorted(options)


def group_types(group: str) -> list[str]:
    """The types `group.type` takes: the built-in options that are a type of their own."""
    return [o for o in group_options(group) if group_defaults(group, o).get("type") == o]


def group_defaults(group: str, option: str) -> dict[str, Any]:
    """A built-in option's keys, its parents' (its `defaults:`) merged under them."""
    if builtin_file(f"{group}/{option}") is not None:
        return _merge_layers(expand_group(SearchPath(()), group, option, (), "built-in"))
    options = group_options(group)  # a registered backend without a group file is known here
    if option not in options:
        types = group_types(group)
        close = difflib.get_close_matches(option, types, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{group}.type: unknown type {option!r}{hint} (expected one of {', '.join(types)})"
        )
    return {"type": option}


def _merge_layers(layers: list[Layer]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer.data)
    return merged


def find_config_file(
    config: str | Path | None, config_dir: str | Path | None, config_name: str | None
) -> Path:
    """The user's YAML file, from `--config FILE` or `--config-dir DIR --config-name NAME`."""
    if config is not None:
        if config_dir is not None or config_name is not None:
            raise ConfigError("give either --config FILE or --config-dir DIR --config-name NAME")
        path = Path(config).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path
    if config_name is None:
        raise ConfigError(
            "no config given: use --config FILE or --config-dir DIR --config-name NAME"
        )
    directory = Path(config_dir).expanduser() if config_dir is not None else Path.cwd()
    if not directory.is_dir():
        raise ConfigError(f"config directory not found: {directory}")
    for candidate in (config_name, f"{config_name}.yaml", f"{config_name}.yml"):
        path = directory / candidate
        if path.is_file():
            return path
    available = sorted(p.stem for p in directory.glob("*.y*ml"))
    close = difflib.get_close_matches(config_name, available, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"config {config_name!r} not found in {directory}{hint}")


# A document that stands for more nodes than this, once its aliases are expanded, is
# refused. A real config is at most a few thousand nodes; a "billion laughs" document
# passes this within a few lines, and every walk over what it loads to (merging,
# validation) would expand it in memory.
MAX_YAML_NODES = 100_000


class _YamlRefused(yaml.MarkedYAMLError):
    """A document that YAML accepts and that is refused here (its problem says why)."""


_MERGE_TAG = "tag:yaml.org,2002:merge"


class StrictYamlLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses what `safe_load` either accepts silently or dies
    on: a key given twice in one mapping (the later one silently won), an alias inside
    the node its anchor names (a recursive structure: a RecursionError in whatever walks
    it), and a document whose aliases expand it past `MAX_YAML_NODES`."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._open_anchors: set[str] = set()
        self._sizes: dict[int, int] = {}  # id(node) → nodes it stands for, aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        event: Any = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                mark: Any = event.start_mark
                raise _YamlRefused(
                    None,
                    None,
                    f"alias *{event.anchor} is inside the node it refers to "
                    f"(&{event.anchor}): a recursive structure",
                    mark,
                )
            return super().compose_node(parent, index)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open_anchors.add(anchor)
        node: Any = super().compose_node(parent, index)
        if anchor is not None:
            self._open_anchors.discard(anchor)
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = []
        size = 1 + sum(self._sizes.get(id(child), 1) for child in children)
        if size > MAX_YAML_NODES:
            raise _YamlRefused(
                None,
                None,
                f"the document expands to more than {MAX_YAML_NODES:,} values through its "
                "aliases (refused: a config is far smaller)",
                node.start_mark,
            )
        self._sizes[id(node)] = size
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            # Before merge keys (`<<: *base`) are flattened in: a key written beside a
            # merge overrides the merged one, as YAML means it.
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in first_line:
                    raise _YamlRefused(
                        None,
                        None,
                        f"duplicate key {key!r} (first at line {first_line[key]}; YAML would "
                        "keep only the later value): keep one",
                        key_node.start_mark,
                    )
                first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str) -> Any:
    """`text` as YAML (`StrictYamlLoader`); any problem is one ConfigError line naming
    `where` (and the line and column, when YAML knows them)."""
    try:
        return yaml.load(text, Loader=StrictYamlLoader)  # a SafeLoader: builds no objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
        if isinstance(exc, _YamlRefused):
            raise ConfigError(f"{at}: {exc.problem}") from None
        raise ConfigError(f"{at}: YAML syntax error: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: YAML syntax error: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(f"{where}: YAML nested too deeply") from None


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of keys at the top, got {type(data).__name__}"
        )
    return data


def load_config(
    config: str | Path | None = None,
    *,
    config_dir: str | Path | None = None,
    config_name: str | None = None,
    overrides: list[str] | None = None,
) -> LoadedConfig:
    """Load, compose and validate. Raises ConfigError listing every problem found."""
    overrides = list(overrides or [])
    path = find_config_file(config, config_dir, config_name)
    directory = Path(config_dir).expanduser() if config_dir is not None else None
    search = SearchPath.for_config(path, directory)
    parsed = parse_overrides(overrides)
    items, choices = _user_items(path, search, ())
    type_overrides: dict[str, str] = {}
    rest: list[Override] = []
    for override in parsed:
        group = _group_switch(override, search, choices)
        if group is None:
            if (
                override.path in (("execution", "type"), ("deployment", "type"))
                and isinstance(override.value, str)
                and override.action != "delete"
            ):
                type_overrides[override.path[0]] = override.value
            rest.append(override)
            continue
        option = None if override.action == "delete" else str(override.value)
        choices[group] = _Choice(option, f"override {override.text!r}", by_override=True)
        if group not in items:
            items.insert(0, group)
    group_layers = {
        group: _choice_layers(search, group, choice) for group, choice in choices.items()
    }
    base: dict[str, Any] = {}
    problems: list[str] = []
    for group in GROUPS:
        chain = group_layers.get(group, [])
        chain_type = _type_in(chain, group)
        choice = choices.get(group)
        # From strongest to weakest: `-o group.type=`, a `-o group=option` switch, the
        # user's own `group.type`, the option its defaults list names.
        type_ = (
            type_overrides.get(group)
            or (chain_type if choice is not None and choice.by_override else None)
            or _type_in([i for i in items if isinstance(i, Layer)], group)
            or chain_type
        )
        if chain_type is not None and chain_type != type_:
            group_layers[group] = []  # another type was chosen: this option's keys do not apply
        if type_ is None:
            if chain:
                assert choice is not None and choice.option is not None
                problems.append(
                    f"{group}.type: missing mandatory value ({group} option {choice.option!r} "
                    f"from {chain[-1].source} sets none; expected one of "
                    f"{', '.join(group_types(group))}, e.g. by `defaults: [...]` in that file)"
                )
                continue
            # execution's keys mostly mean the same on every backend, so it defaults to
            # local as in the reference launcher; deployment keys (lepton_config…) imply a
            # server type.
            if group == "deployment" and _present(items, group):
                problems.append(
                    f"{group}.type: missing mandatory value "
                    f"(expected one of {', '.join(group_types(group))})"
                )
                continue
            type_ = _DEFAULT_TYPES[group]
        base[group] = {**group_defaults(group, type_), "type": type_}
    if problems:
        raise ConfigError(problems)
    merged: dict[str, Any] = base
    placed: set[str] = set()
    for item in items:
        if isinstance(item, Layer):
            merged = _merge_at(merged, item)
        elif item not in placed:
            placed.add(item)
            for layer in group_layers.get(item, []):
                merged = _merge_at(merged, layer)
    for group in GROUPS:
        if isinstance(merged.get(group), dict):
            merged[group]["type"] = base[group]["type"]
    for override in rest:
        apply_override(merged, override)
    judge = merged.get("judge_deployment")
    if isinstance(judge, dict) and isinstance(judge.get("type"), str) and judge["type"] != "none":
        # A judge deployment takes its server type's defaults, as `deployment` does.
        merged["judge_deployment"] = deep_merge(group_defaults("deployment", judge["type"]), judge)
    resolved = _resolve(merged)
    problems = [f"{key}: missing mandatory value" for key in _missing_keys(resolved)]
    model = _validate(resolved, problems)
    return LoadedConfig(model=model, resolved=resolved, source=path, overrides=overrides)


@dataclass(frozen=True)
class _Choice:
    """A group's option and who chose it (a file, or an override)."""

    option: str | None  # None: no option (`~group`, `group: null`)
    where: str
    by_override: bool = False
    optional: bool = False


# In merge order: a file's keys (Layer), or the name of a group whose chosen option merges
# at that place of the defaults list.
_Item = Layer | str


def _user_items(
    path: Path, search: SearchPath, seen: tuple[Path, ...]
) -> tuple[list[_Item], dict[str, _Choice]]:
    """The user file and what its `defaults:` list names, in merge order, and the option
    each group gets (the file's own choices win over its parents')."""
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in [*seen, path.resolve()])
        raise ConfigError(f"{path}: defaults list includes itself ({chain})")
    data = read_yaml(path)
    defaults = data.pop("defaults", None) or []
    if not isinstance(defaults, list):
        raise ConfigError(f"{path}: defaults: expected a list, got {type(defaults).__name__}")
    before: list[_Item] = []
    after: list[_Item] = []
    choices: dict[str, _Choice] = {}
    self_seen = False
    for entry in defaults:
        if entry == "_self_":
            self_seen = True
            continue
        target = after if self_seen else before
        if isinstance(entry, str):
            name, _, package = entry.strip().strip("/").partition("@")
            if "/" in name or package:
                # A group's config placed in the config: `deployment/vllm@auxiliary_deployments.judge`
                group, _, option = name.partition("/")
                where = package or posixpath.dirname(name).replace("/", ".")
                at = () if where in ("", "_global_") else tuple(where.split("."))
                target.extend(expand_group(search, group, option, at, f"{path}: defaults"))
                continue
            parent = _sibling(path, search, name)
            layers, parent_choices = _user_items(parent, search, (*seen, path.resolve()))
            target.extend(layers)
            for group, choice in parent_choices.items():
                choices.setdefault(group, choice)
            continue
        if isinstance(entry, dict) and len(entry) == 1:
            ((key, option),) = entry.items()
            words = str(key).split()
            group = words[-1] if words else ""
            if "@" in group:
                raise ConfigError(
                    f"{path}: defaults: {key!r}: placing a group elsewhere is supported as "
                    f"'- {group.split('@')[0]}/OPTION@{group.split('@', 1)[1]}'"
                )
            if not search.is_group(group):
                raise ConfigError(
                    f"{path}: defaults: unknown config group {group!r} (expected "
                    f"{' or '.join(GROUPS)}, or a folder {group}/ in "
                    f"{', '.join(str(d) for d in search.dirs) or 'the config directory'})"
                )
            if option is not None and not isinstance(option, str):
                raise ConfigError(
                    f"{path}: defaults: {group}: expected an option name, got {option!r}"
                )
            choices[group] = _Choice(option, f"{path}: defaults", optional="optional" in words)
            target.append(group)
            continue
        raise ConfigError(f"{path}: defaults: cannot read entry {entry!r}")
    # Hydra puts _self_ last unless the list places it; the user file wins over its parents.
    return [*before, Layer(data, (), str(path)), *after], choices


def _sibling(path: Path, search: SearchPath, name: str) -> Path:
    """A config a defaults list names by itself: beside the file, else on the search path."""
    stem = name.removesuffix(".yaml").removesuffix(".yml")
    for directory in (path.parent, *search.dirs):
        for suffix in GROUP_FILE_SUFFIXES:
            candidate = directory / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    raise ConfigError(f"{path}: defaults: config {name!r} not found in {path.parent}")


def _group_switch(
    override: Override, search: SearchPath, choices: dict[str, _Choice]
) -> str | None:
    """The group an override chooses an option of (`execution=slurm/mycluster`), if any."""
    if override.action == "select_group":
        return override.path[0]
    if len(override.path) != 1:
        return None
    (key,) = override.path
    if override.action == "delete":
        return key if choices.get(key) is not None and key not in GROUPS else None
    if isinstance(override.value, str) and key not in GROUPS and search.is_group(key):
        return key
    return None


def _choice_layers(search: SearchPath, group: str, choice: _Choice) -> list[Layer]:
    if choice.option is None:
        return []
    if choice.optional and search.find(f"{group}/{choice.option}") is None:
        return []
    option = choice.option.removesuffix("/default")
    if (
        group == "execution"
        and search.find(f"{group}/{choice.option}") is None
        and option in group_options(group)
    ):  # a registered backend without a group file
        return [Layer({"type": option}, (group,), "registered backend")]
    return expand_group(search, group, choice.option, (group,), choice.where)


def _section(layer: Layer, group: str) -> Any:
    if layer.package == (group,):
        return layer.data
    if layer.package == ():
        return layer.data.get(group)
    return None


def _type_in(layers: list[Layer], group: str) -> str | None:
    found = None
    for layer in layers:
        section = _section(layer, group)
        if isinstance(section, dict) and isinstance(section.get("type"), str):
            found = section["type"]
    return found


def _present(items: list[_Item], group: str) -> bool:
    return any(isinstance(i, Layer) and _section(i, group) for i in items)


def _merge_at(merged: dict[str, Any], layer: Layer) -> dict[str, Any]:
    top: dict[str, Any] = layer.data
    for key in reversed(layer.package):
        top = {key: top}
    return deep_merge(merged, top)


def _resolve(merged: dict[str, Any]) -> dict[str, Any]:
    """Resolve `${...}` interpolations (e.g. `${oc.env:USER}`) with OmegaConf."""
    if "${" not in repr(merged):
        return merged
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not OmegaConf.has_resolver("select_not_null"):
        OmegaConf.register_new_resolver("select_not_null", _select_not_null, use_cache=False)
    try:
        # A value derived from a missing one (`served_model_name: ${.checkpoint_path}`)
        # resolves to a placeholder, so that the missing value is what gets reported.
        container = OmegaConf.create(_replace(merged, MISSING, _UNSET))
        resolved = OmegaConf.to_container(container, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        reason = str(exc).splitlines()[0]
        raise ConfigError(f"{key or '(config)'}: cannot resolve interpolation: {reason}") from None
    assert isinstance(resolved, dict)
    return _restore_missing(resolved, merged)


_UNSET = "<unset: ???>"


def _restore_missing(resolved: Any, original: Any) -> Any:
    """`resolved` with `???` back where `original` had it (values made from one keep the
    placeholder: they are reported as the missing value)."""
    if original == MISSING:
        return MISSING
    if isinstance(resolved, dict) and isinstance(original, dict):
        return {k: _restore_missing(v, original.get(k)) for k, v in resolved.items()}
    if isinstance(resolved, list) and isinstance(original, list) and len(resolved) == len(original):
        return [_restore_missing(v, o) for v, o in zip(resolved, original, strict=True)]
    return resolved


def _replace(node: Any, old: str, new: str) -> Any:
    """`node` with every value equal to `old` replaced by `new`."""
    if isinstance(node, dict):
        return {key: _replace(value, old, new) for key, value in node.items()}
    if isinstance(node, list):
        return [_replace(value, old, new) for value in node]
    return new if node == old else node


def _select_not_null(key: str, default: Any, *, _root_: Any, _parent_: Any) -> Any:
    """The launcher's `${select_not_null:KEY,DEFAULT}`: KEY's value, or DEFAULT when KEY is
    unset or null. A KEY starting with '.' is looked up beside the value being resolved
    (the deployment groups use it, so their defaults also work under judge_deployment)."""
    from omegaconf import OmegaConf

    node = _parent_ if key.startswith(".") else _root_
    value = OmegaConf.select(node, key.lstrip("."), default=None, throw_on_resolution_failure=False)
    return default if value is None else value


def _keys_where(node: Any, found: Callable[[Any], bool], prefix: str = "") -> list[str]:
    """The dotted keys (`a.b[2].c`) of every leaf of `node` for which `found` holds."""
    if isinstance(node, dict):
        return [
            key
            for name, value in node.items()
            for key in _keys_where(value, found, f"{prefix}.{name}" if prefix else str(name))
        ]
    if isinstance(node, list):
        return [
            key
            for i, value in enumerate(node)
            for key in _keys_where(value, found, f"{prefix}[{i}]")
        ]
    return [prefix] if found(node) else []


def _missing_keys(node: Any) -> list[str]:
    return _keys_where(node, lambda value: value == MISSING)


def _validate(resolved: dict[str, Any], problems: list[str]) -> Any:
    from pydantic import ValidationError

    from evalfleet.config._errors import drop_missing_explained_by_typos, format_validation_error
    from evalfleet.config.schema import RunConfig

    try:
        model = RunConfig.model_validate(resolved)
    except ValidationError as exc:
        # A `???` value also fails its type check; report it once, as missing.
        missing = {line.split(":")[0] for line in problems} | set(_derived_from_missing(resolved))
        lines = [
            line
            for line in format_validation_error(exc, resolved)
            if line.split(":")[0] not in missing
        ]
        raise ConfigError(drop_missing_explained_by_typos(_unique([*problems, *lines]))) from None
    if problems:
        raise ConfigError(problems)
    return model


def _derived_from_missing(node: Any) -> list[str]:
    """Keys whose value was made from a missing one (reported as that one)."""
    return _keys_where(
        node, lambda value: isinstance(value, str) and _UNSET in value and value != MISSING
    )


def _unique(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(lines))
