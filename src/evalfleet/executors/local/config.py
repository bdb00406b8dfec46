"""`execution` for `type: local`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from evalfleet.config.schema import ExecutionBase, ExecutionMounts, PositiveInt

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig


class LocalExecution(ExecutionBase):
    type: Literal["local"] = "local"
    mode: Literal["sequential", "parallel"] = "sequential"
    use_docker: bool | None = Field(
        None,
        description="run the server in deployment.image; default: yes for nim and with "
        "mounts.deployment (both need the container), else the server runs on the host",
    )
    extra_docker_args: str = ""
    endpoint_readiness_timeout: PositiveInt = 600
    cuda_visible_devices: str | None = None
    mounts: ExecutionMounts = Field(
        default_factory=ExecutionMounts,
        description="deployment: host → container paths for the server's container (use_docker)",
    )

    def check_run(self, config: RunConfig) -> list[tuple[str, str]]:
        if self.use_docker is None:
            # The launcher runs every server in docker; here only where nothing else can
            # (a NIM is its image; deployment mounts go into a container), so a launcher
            # config for those runs unchanged and the rest need no docker.
            self.use_docker = config.deployment.type == "nim" or bool(self.mounts.deployment)
        problems = []
        if config.deployment.type == "nim" and not self.use_docker:
            problems.append(
                ("execution.use_docker", "must be true for a nim deployment (NIM is a container)")
            )
        if self.mounts.deployment and not self.use_docker:
            problems.append(
                (
                    "execution.mounts.deployment",
                    "mounts go into the server's container: set execution.use_docker: true",
                )
            )
        return problems
