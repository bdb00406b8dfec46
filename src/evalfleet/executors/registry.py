"""Where backends are found: one entry per `execution.type`.

An entry names, as import paths resolved only when used (the CLI stays fast), the
backend's executor class and its pydantic model of the `execution` section. Adding a
backend is one `register()` call (built-ins are listed here); nothing else in the
product names a backend. This module imports nothing from evalfleet, so the config
package may read it to validate `execution` without pulling in any executor.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalfleet.executors.base import Executor


@dataclass(frozen=True)
class Backend:
    """`executor` and `config` are `module:attribute` paths, or the objects themselves."""

    name: str
    executor: str | type[Executor]
    config: str | type[Any]  # a subclass of config.schema.ExecutionBase with `type: Literal[name]`

    def executor_class(self) -> type[Executor]:
        resolved: type[Executor] = _resolve(self.executor)
        return resolved

    def config_model(self) -> type[Any]:
        resolved: type[Any] = _resolve(self.config)
        return resolved


def _resolve(target: str | type[Any]) -> Any:
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    return getattr(import_module(module), attribute)


_BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend(
            "local",
            "evalfleet.executors.local.executor:LocalExecutor",
            "evalfleet.executors.local.config:LocalExecution",
        ),
        Backend(
            "slurm",
            "evalfleet.executors.slurm.executor:SlurmExecutor",
            "evalfleet.executors.slurm.config:SlurmExecution",
        ),
        Backend(
            "lepton",
            "evalfleet.executors.lepton.executor:LeptonExecutor",
            "evalfleet.executors.lepton.config:LeptonExecution",
        ),
    )
}


_plugins_loaded = False


def _load_plugins() -> None:
    """Backends from outside the product, found only when a name is not built in (so the
    CLI never pays for the lookup otherwise): modules named in `$EVALFLEET_BACKENDS`
    (comma-separated), each registering its `BACKENDS` (a list of `Backend`), then the
    `evalfleet.backends` entry points (each a `Backend`, or a callable returning one)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    import os

    names = os.environ.get("EVALFLEET_BACKENDS", "").split(",")
    for module in filter(None, (name.strip() for name in names)):
        for found in getattr(import_module(module), "BACKENDS", ()):
            register(found)
    from importlib.metadata import entry_points

    for point in entry_points(group="evalfleet.backends"):
        loaded = point.load()
        register(loaded if isinstance(loaded, Backend) else loaded())


def register(backend: Backend) -> None:
    """Make `execution.type: <backend.name>` valid and runnable (replaces a same-named one)."""
    _BACKENDS[backend.name] = backend


def unregister(name: str) -> None:
    _BACKENDS.pop(name, None)


def names() -> list[str]:
    _load_plugins()
    return list(_BACKENDS)


def backend(name: str) -> Backend:
    if name not in _BACKENDS:
        _load_plugins()
    try:
        return _BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown executor {name!r} (known: {', '.join(_BACKENDS)})") from None


def get_executor(name: str) -> Executor:
    """A fresh executor for `execution.type` (or a stored invocation's executor)."""
    return backend(name).executor_class()()
