"""Test doubles for evalfleet's outside world, importable by tests, benchmarks and users.

- `endpoint`: an OpenAI-compatible endpoint simulator (`run_simulator`, `build_app`).

Names are imported lazily so that `python -m evalfleet.testing.endpoint` does not import its
own module twice (and `import evalfleet.testing` stays free of aiohttp until used).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .endpoint import Simulator, SimulatorError, SimulatorSettings, build_app, run_simulator

__all__ = ["Simulator", "SimulatorError", "SimulatorSettings", "build_app", "run_simulator"]

_WHERE = {name: ".endpoint" for name in __all__}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
