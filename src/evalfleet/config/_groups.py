"""Config groups and where they are found: Hydra's search path, as the reference launcher
(NeMo Evaluator Launcher) composes it.

A group option such as `execution: slurm/mycluster` names the file
`execution/slurm/mycluster.yaml`, looked up first in the user's directories (the config
directory, then a `configs/` folder beside the config file), then in the built-in groups
(`groups/`). The launcher's spellings of the built-in ones (`slurm/default`,
`lepton/default`) name our one-file groups (`slurm.yaml`, `lepton.yaml`).

A group file's own `defaults:` names its parents, merged under it into the same section:
`- vllm` or `- slurm/default` (relative to the group, as Hydra reads them), `- default`
(beside the file), `- /execution/slurm/default` (from the root). Hydra would nest
`slurm/default` under `execution.slurm` unless the entry says `@_here_`; a nested section
is something neither tool can run, so every entry is read as a parent.
"""

from __future__ import annotations

import difflib
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from evalfleet.exceptions import ConfigError

if TYPE_CHECKING:
    from importlib.abc import Traversable

GROUP_FILE_SUFFIXES = (".yaml", ".yml")

File: TypeAlias = "Path | Traversable"


@dataclass(frozen=True)
class Layer:
    """One file's keys and where in the config they merge (`()`: at the top)."""

    data: dict[str, Any]
    package: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class SearchPath:
    """The user's directories, searched in order before the built-in groups."""

    dirs: tuple[Path, ...]

    @classmethod
    def for_config(cls, config_file: Path, config_dir: Path | None) -> SearchPath:
        candidates = [config_dir or config_file.parent, config_file.parent / "configs"]
        dirs: list[Path] = []
        for directory in candidates:
            resolved = directory.expanduser().resolve()
            if resolved.is_dir() and resolved not in dirs:
                dirs.append(resolved)
        return cls(tuple(dirs))

    def find(self, config_path: str) -> File | None:
        """The file of `group/option` (no suffix), the user's before the built-in."""
        for directory in self.dirs:
            for suffix in GROUP_FILE_SUFFIXES:
                path = directory / f"{config_path}{suffix}"
                if path.is_file():
                    return path
        return builtin_file(config_path)

    def is_group(self, name: str) -> bool:
        return (
            any((d / name).is_dir() for d in self.dirs) or _builtin_root().joinpath(name).is_dir()
        )

    def options(self, group: str) -> list[str]:
        """Every option of `group` anywhere on the path (for "did you mean")."""
        found = set(builtin_options(group))
        for directory in self.dirs:
            folder = directory / group
            if folder.is_dir():
                found |= {
                    str(p.relative_to(folder).with_suffix(""))
                    for p in folder.rglob("*")
                    if p.suffix in GROUP_FILE_SUFFIXES and p.is_file()
                }
        return sorted(found)

    def describe(self, group: str) -> str:
        places = [str(d / group) for d in self.dirs]
        return ", ".join([*places, f"the built-in {group} group"])


def _builtin_root() -> Traversable:
    # The package's directory, as importlib.resources.files would give it for a package
    # installed as files (evalfleet is never zipped): that module loads tempfile, zipfile
    # and more, ~10 ms of every `evalfleet run`.
    return Path(__file__).parent / "groups"


def builtin_file(config_path: str) -> Traversable | None:
    path = _join(f"{config_path}.yaml")
    if path.is_file():
        return path
    if config_path.endswith("/default"):  # the launcher's `slurm/default` is our slurm.yaml
        return builtin_file(config_path.removesuffix("/default"))
    return None


def _join(relative: str) -> Traversable:
    node = _builtin_root()
    for part in relative.split("/"):
        node = node / part
    return node


def builtin_options(group: str) -> list[str]:
    folder = _builtin_root() / group
    if not folder.is_dir():
        return []
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def read_group_file(file: File) -> tuple[dict[str, Any], str | None]:
    """A group file's keys and its `# @package` header, if any."""
    from evalfleet.config.loader import parse_yaml, read_yaml

    if isinstance(file, Path):
        data = read_yaml(file)
        text = file.read_text(encoding="utf-8")
    else:
        text = file.read_text(encoding="utf-8")
        data = parse_yaml(text, str(file)) or {}
    package = None
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if line.lstrip("# ").startswith("@package"):
            package = line.lstrip("# ").removeprefix("@package").strip()
    return data, package


def unknown_option(group: str, option: str, search: SearchPath, where: str) -> ConfigError:
    options = search.options(group)
    close = difflib.get_close_matches(option, options, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(
        f"{where}: {group}: option {option!r} not found (searched {search.describe(group)}){hint}"
    )


def expand_group(
    search: SearchPath,
    group: str,
    option: str,
    package: tuple[str, ...],
    where: str,
    seen: tuple[str, ...] = (),
) -> list[Layer]:
    """The layers of `group: option`, its parents first, each merging at `package`."""
    config_path = f"{group}/{option}"
    file = search.find(config_path)
    if file is None:
        raise unknown_option(group, option, search, where)
    source = str(file)
    if source in seen:
        chain = " -> ".join([*seen, source])
        raise ConfigError(f"{source}: defaults list includes itself ({chain})")
    data, header = read_group_file(file)
    if header == "_global_":
        package = ()
    elif header not in (None, "_group_"):
        raise ConfigError(f"{source}: '# @package {header}' is not supported (use _global_)")
    defaults = data.pop("defaults", None) or []
    if not isinstance(defaults, list):
        raise ConfigError(f"{source}: defaults: expected a list, got {type(defaults).__name__}")
    before: list[Layer] = []
    after: list[Layer] = []
    self_seen = False
    for entry in defaults:
        if entry == "_self_":
            self_seen = True
            continue
        if not isinstance(entry, str):
            raise ConfigError(
                f"{source}: defaults: cannot read entry {entry!r} (a group file's defaults "
                "name its parents, e.g. '- vllm' or '- slurm/default')"
            )
        parent_group, parent_option = _parent(search, group, option, entry.split("@", 1)[0])
        layers = expand_group(search, parent_group, parent_option, package, source, (*seen, source))
        (after if self_seen else before).extend(layers)
    return [*before, Layer(data, package, source), *after]


def _parent(search: SearchPath, group: str, option: str, entry: str) -> tuple[str, str]:
    """Where a group file's defaults entry points: Hydra's reading (relative to the
    group, or absolute from the root) first, then beside the file."""
    if entry.startswith("/"):
        top, _, rest = entry.lstrip("/").partition("/")
        return top, rest
    beside = posixpath.join(posixpath.dirname(option), entry)
    if search.find(f"{group}/{entry}") is None and search.find(f"{group}/{beside}") is not None:
        return group, beside
    return group, entry
