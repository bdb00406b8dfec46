"""`execution` for `type: slurm`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from evalfleet.config.schema import WALLTIME, ExecutionBase, PositiveInt

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig


class SlurmExecution(ExecutionBase):
    type: Literal["slurm"] = "slurm"
    hostname: str | None = Field(None, description="login node; empty or localhost = local sbatch")
    username: str | None = None
    ssh_config: str | None = Field(None, description="ssh client config file (ssh -F)")
    local_output_dir: str = Field(
        "evalfleet_results", description="remote runs: where results are copied back"
    )
    account: str | None = None
    partition: str | None = None
    qos: str | None = None
    num_nodes: PositiveInt = 1
    ntasks_per_node: PositiveInt = 1
    gres: str | None = None
    gpus_per_node: PositiveInt | None = None
    walltime: str = "01:00:00"
    max_walltime: str | None = "24:00:00"
    job_name_prefix: str = "evalfleet"
    sbatch_extra_flags: dict[str, str | int | bool | None] = Field(default_factory=dict)
    container_image: str | None = Field(None, description="pyxis/enroot image for the server")
    mounts: dict[str, str] = Field(default_factory=dict, description="host path -> container path")
    job_per_task: bool = False
    endpoint_readiness_timeout: PositiveInt = 1800
    evalfleet_command: str = Field(
        "evalfleet", description="how the batch job invokes evalfleet on the compute node"
    )

    @field_validator("walltime", "max_walltime")
    @classmethod
    def _walltime_format(cls, value: str | None) -> str | None:
        if value is not None and not WALLTIME.match(value):
            raise ValueError(f"expected [D-]HH:MM:SS, got {value!r}")
        return value

    def remote_output_dir(self) -> bool:
        return (self.hostname or "localhost") != "localhost"

    def check_run(self, config: RunConfig) -> list[tuple[str, str]]:
        sections = [
            ("deployment", config.deployment),
            ("judge_deployment", config.judge_deployment),
        ]
        return [
            (
                f"{key}.type",
                "nim cannot run on slurm yet (its image's entrypoint starts the server); "
                "use vllm or sglang",
            )
            for key, deployment in sections
            if deployment is not None and deployment.type == "nim"
        ]
