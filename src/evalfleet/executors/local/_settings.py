"""`config.execution` typed as this backend's own section, without importing pydantic
(the backend's modules stay cheap to import: `evalfleet status` loads them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig
    from evalfleet.executors.local.config import LocalExecution


def settings(config: RunConfig) -> LocalExecution:
    """The registry hands this backend only configs whose `execution.type` is local."""
    return cast("LocalExecution", config.execution)
