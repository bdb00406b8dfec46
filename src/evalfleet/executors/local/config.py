"""`execution` for `type: local`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from evalfleet.config.schema import ExecutionBase, PositiveInt

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig


class LocalExecution(ExecutionBase):
    type: Literal["local"] = "local"
    mode: Literal["sequential", "parallel"] = "sequential"
    use_docker: bool = False
    extra_docker_args: str = ""
    endpoint_readiness_timeout: PositiveInt = 600
    cuda_visible_devices: str | None = None

    def check_run(self, config: RunConfig) -> list[tuple[str, str]]:
        if config.deployment.type == "nim" and not self.use_docker:
            return [
                ("execution.use_docker", "must be true for a nim deployment (NIM is a container)")
            ]
        return []
