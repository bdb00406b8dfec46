"""`execution` for `type: slurm`: evalfleet's keys and the launcher's (NEL 0.2.6) with its
meaning and defaults."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from evalfleet.config.schema import ExecutionBase, ExecutionMounts, PositiveInt, Strict

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig

# [D-]H+:MM:SS, as the launcher and sbatch --time read it.
_WALLTIME = re.compile(r"^(\d+-)?\d+:[0-5]\d:[0-5]\d$")
_MOUNT_SECTIONS = {"deployment", "evaluation", "auxiliary", "mount_home"}


def walltime_text(value: Any) -> Any:
    """YAML 1.1 reads an unquoted `120:00:00` as the number 432000 (base 60): back to text."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        hours, rest = divmod(value, 3600)
        return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return value


class SlurmMounts(ExecutionMounts):
    """`execution.mounts`: host path → container path, per container (the launcher's shape);
    a flat mapping is the deployment's mounts (evalfleet's earlier shape)."""

    @model_validator(mode="before")
    @classmethod
    def _flat_is_deployment(cls, data: Any) -> Any:
        """Host paths beside the sections (a flat mapping merged over the group's
        sections) are the deployment's mounts."""
        if not isinstance(data, dict):
            return data
        flat = {key: value for key, value in data.items() if key not in _MOUNT_SECTIONS}
        if not flat:
            return data
        nested = {key: value for key, value in data.items() if key in _MOUNT_SECTIONS}
        deployment = nested.get("deployment") or {}
        if not isinstance(deployment, dict):
            return data
        return {**nested, "deployment": {**deployment, **flat}}

    @model_validator(mode="after")
    def _no_commas(self) -> SlurmMounts:
        sections = [self.deployment, self.evaluation, *self.auxiliary.values()]
        bad = [f"{s}:{d}" for mounts in sections for s, d in mounts.items() if "," in s + d]
        if bad:
            raise ValueError(f"a mount path contains ',' ({bad[0]!r}); srun splits on it")
        return self


class SlurmDeploymentTasks(Strict):
    """`execution.deployment`: how srun starts the server."""

    n_tasks: PositiveInt | None = Field(
        None,
        description="srun tasks of the server over all instances (default: num_nodes, one "
        "per node, as the launcher's ${execution.num_nodes})",
    )


class HaproxyConfig(Strict):
    haproxy_port: PositiveInt = 5009
    health_check_path: str = "/health"
    health_check_status: PositiveInt = 200


class SlurmProxy(Strict):
    """The load balancer in front of `num_instances` > 1 servers."""

    type: Literal["haproxy"] = "haproxy"
    image: str = "haproxy:latest"
    config: HaproxyConfig = Field(default_factory=HaproxyConfig)


def _whole_nodes() -> dict[str, str | int | bool | None]:
    return {"exclusive": True}


class SlurmExecution(ExecutionBase):
    type: Literal["slurm"] = "slurm"
    hostname: str | None = Field(None, description="login node; empty or localhost = local sbatch")
    username: str | None = Field(None, description="ssh user (the group file: $USER)")
    ssh_config: str | None = Field(None, description="ssh client config file (ssh -F)")
    local_output_dir: str = Field(
        "evalfleet_results", description="remote runs: where results are copied back"
    )
    account: str | None = None
    partition: str | None = None
    cpu_partition: str | None = Field(
        None, description="the launcher's export jobs; evalfleet exports from this machine"
    )
    qos: str | None = None
    num_nodes: PositiveInt = Field(1, description="nodes of the model's server (all instances)")
    num_instances: PositiveInt = Field(
        1, description="independent servers over num_nodes, behind the proxy when > 1"
    )
    ntasks_per_node: PositiveInt = 1
    gres: str | None = Field("gpu:8", description="#SBATCH --gres; null: none")
    gpus_per_node: int | None = Field(None, ge=0)
    walltime: str = "01:00:00"
    max_walltime: str | None = Field(
        "120:00:00", description="over automatic requeues; null: no limit"
    )
    job_name_prefix: str = "evalfleet"
    subproject: str | None = Field(
        "nemo-evaluator-launcher", description="the launcher's job-name part; not used by evalfleet"
    )
    sbatch_comment: str | None = Field(None, description="#SBATCH --comment")
    sbatch_extra_flags: dict[str, str | int | bool | None] = Field(default_factory=_whole_nodes)
    container_image: str | None = Field(
        None, description="run every server in this image (instead of deployment.image)"
    )
    container_runtime: Literal["pyxis", "apptainer"] = Field(
        "pyxis", description="pyxis: srun --container-image; apptainer: apptainer exec --nv"
    )
    mounts: SlurmMounts = Field(default_factory=SlurmMounts)
    deployment: SlurmDeploymentTasks = Field(default_factory=SlurmDeploymentTasks)
    proxy: SlurmProxy = Field(default_factory=SlurmProxy)
    job_per_task: bool = False
    endpoint_readiness_timeout: PositiveInt | None = Field(
        None, description="seconds to wait for a server; null: the walltime"
    )
    evalfleet_command: str | None = Field(
        None,
        description="how the batch job runs evalfleet on the compute node; null: the "
        "planner's own wheel, copied next to the script and installed in a virtualenv",
    )

    @field_validator("walltime", "max_walltime", mode="before")
    @classmethod
    def _walltime_format(cls, value: Any) -> Any:
        value = walltime_text(value)
        if isinstance(value, str) and not _WALLTIME.match(value):
            raise ValueError(f"expected [D-]HH:MM:SS, got {value!r}")
        return value

    @model_validator(mode="after")
    def _instances_divide_nodes(self) -> SlurmExecution:
        if self.num_nodes % self.num_instances:
            raise ValueError(
                f"num_nodes ({self.num_nodes}) must be divisible by num_instances "
                f"({self.num_instances}): each instance gets num_nodes / num_instances nodes"
            )
        return self

    def remote_output_dir(self) -> bool:
        return (self.hostname or "localhost") != "localhost"

    def readiness_timeout_s(self) -> int:
        """The launcher waits for a server up to the walltime unless told otherwise."""
        from evalfleet.executors.slurm.render import walltime_seconds

        if self.endpoint_readiness_timeout is not None:
            return self.endpoint_readiness_timeout
        return walltime_seconds(self.walltime)

    def check_run(self, config: RunConfig) -> list[tuple[str, str]]:
        problems = []
        if config.deployment.type == "none" and self.num_instances > 1:
            problems.append(("execution.num_instances", "needs a deployment to run instances of"))
        judge = config.judge_deployment
        if judge is not None and judge.num_instances > 1:
            problems.append(
                ("judge_deployment.num_instances", "evalfleet runs one judge instance on Slurm")
            )
        return problems
