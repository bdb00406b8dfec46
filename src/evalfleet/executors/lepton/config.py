"""`execution` for `type: lepton`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from evalfleet.config.schema import (
    ApiTokenRef,
    EnvName,
    EnvValue,
    ExecutionBase,
    PositiveInt,
    Strict,
)

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig

# The server types a Lepton endpoint can run (or none: an existing endpoint).
LEPTON_DEPLOYMENT_TYPES = ("none", "vllm", "sglang", "nim")


class LeptonMount(Strict):
    from_: str = Field(alias="from")
    path: str
    mount_path: str

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class LeptonEvaluationTasks(Strict):
    resource_shape: str = "cpu.small"
    timeout: PositiveInt = Field(3600, description="seconds a task's job may run")
    image: str = "python:3.12-slim"
    install_command: str = Field(
        "python3 -m pip install --quiet --no-cache-dir --disable-pip-version-check {wheel}",
        description="run before `evalfleet eval` in the job container: {wheel} is the "
        "planner's own evalfleet wheel, shipped in the job spec ('' : the image has evalfleet)",
    )
    use_shared_storage: bool = True


class LeptonPlatformDeployment(Strict):
    node_group: str | None = None
    endpoint_readiness_timeout: PositiveInt = 1200
    queue_priority: str | None = Field(None, description="e.g. mid-4000")
    platform_defaults: dict[str, Any] = Field(default_factory=dict)


class LeptonPlatformTasks(Strict):
    node_group: str | None = None
    env_vars: dict[EnvName, EnvValue] = Field(default_factory=dict)
    mounts: list[LeptonMount] = Field(default_factory=list)
    image_pull_secrets: list[str] = Field(default_factory=list)
    api_key_secret: str = Field(
        "ENDPOINT_API_KEY", description="Lepton secret the jobs use to call the endpoint"
    )
    api_tokens: list[ApiTokenRef] = Field(
        default_factory=list,
        description="the launcher's examples' spelling: the first names api_key_secret",
    )

    @model_validator(mode="after")
    def _token_is_the_key_secret(self) -> LeptonPlatformTasks:
        # The launcher ignores this list; its examples repeat the endpoint's token here,
        # which is what api_key_secret names.
        default = type(self).model_fields["api_key_secret"].default
        if self.api_tokens and self.api_key_secret == default:
            self.api_key_secret = self.api_tokens[0].value_from.token_name_ref
        return self


class LeptonPlatform(Strict):
    deployment: LeptonPlatformDeployment = Field(default_factory=LeptonPlatformDeployment)
    tasks: LeptonPlatformTasks = Field(default_factory=LeptonPlatformTasks)


class LeptonExecution(ExecutionBase):
    type: Literal["lepton"] = "lepton"
    evaluation_tasks: LeptonEvaluationTasks = Field(default_factory=LeptonEvaluationTasks)
    lepton_platform: LeptonPlatform = Field(default_factory=LeptonPlatform)
    env_var_names: list[str] = Field(default_factory=list)

    def check_run(self, config: RunConfig) -> list[tuple[str, str]]:
        problems = _deployment_problems(config.deployment, "deployment", LEPTON_DEPLOYMENT_TYPES)
        if config.judge_deployment is not None:  # a second endpoint, the same rules
            judge_types = tuple(kind for kind in LEPTON_DEPLOYMENT_TYPES if kind != "none")
            problems += _deployment_problems(
                config.judge_deployment, "judge_deployment", judge_types
            )
        return problems


def _deployment_problems(
    deployment: Any, key: str, types: tuple[str, ...]
) -> list[tuple[str, str]]:
    if deployment.type not in types:
        return [
            (
                f"{key}.type",
                f"{deployment.type!r} cannot run on lepton; expected one of " + ", ".join(types),
            )
        ]
    if deployment.type != "none" and not deployment.lepton_config.resource_shape:
        return [(f"{key}.lepton_config.resource_shape", "required on lepton, e.g. gpu.1xh200")]
    return []
