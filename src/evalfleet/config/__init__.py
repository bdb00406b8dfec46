"""Configuration: YAML config groups, composition, overrides and the validated schema.

The loader (and PyYAML) is imported on first use: `evalfleet eval` needs only the small
modules of this package (`_merge`, `interceptors`), not config loading.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalfleet.config.loader import LoadedConfig, find_config_file, load_config

__all__ = ["LoadedConfig", "find_config_file", "load_config"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from evalfleet.config import loader

        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
