"""Configuration: YAML config groups, composition, overrides and the validated schema."""

from evalfleet.config.loader import LoadedConfig, find_config_file, load_config

__all__ = ["LoadedConfig", "find_config_file", "load_config"]
