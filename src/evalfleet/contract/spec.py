"""`job.json`: the one contract between a launcher and `evalfleet eval`.

The planner fills every parameter the engine uses (defaults included), so that a dry run
shows exactly what will run; the config's user-facing `Params` is this module's
`ParamsSpec` with every field optional (unset: the next layer, then these defaults).

It names the env var that holds the API key, never the key. `endpoint.url` may contain
`${VAR}` references (a Lepton job learns its endpoint's URL from the environment); they
are expanded when the job is read.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from evalfleet.exceptions import ConfigError

SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointSpec(_Strict):
    url: str
    model_id: str
    api_key_name: str | None = None
    type: Literal["chat", "completions"] = "chat"
    ca_bundle: str | None = Field(None, description="PEM file of the CAs to trust for https")
    verify_tls: bool = Field(True, description="false: no certificate checks (warned)")
    url_env: str | None = Field(
        None,
        description="env var carrying the URL's credentials (user:password@, ?api-key=…), "
        "which `url` shows as ***",
    )
    # The URL the requests go to: `url` with the credentials from `url_env` (read_job).
    # Kept out of the fields so that nothing that shows or writes the spec can hold it.
    _request_url: str | None = PrivateAttr(None)

    @property
    def request_url(self) -> str:
        """Where requests go (with credentials); `url` is for every message and file."""
        return self._request_url or self.url


def _not_bool(value: Any) -> Any:
    """YAML reads `true` as a boolean and pydantic would take it as 1: refused."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
    return value


# Numbers in params: never a boolean; floats finite (`inf` would wait forever).
_Number = BeforeValidator(_not_bool)
# Upper bounds where a larger value is a mistake, not a wish: more requests in flight than
# one client can hold sockets open for; more repeats of every sample than any reference
# asks (64) by far; a request waiting longer than a day; retries past any sane budget.
MAX_PARALLELISM = 65_536
MAX_N_SAMPLES = 100_000
MAX_REQUEST_TIMEOUT_S = 86_400.0
MAX_RETRIES = 1_000


class JudgeSpec(_Strict):
    """The LLM judge of a task that asks one (`config.params.extra.judge` as NeMo Evaluator
    Launcher spells it). None: the task's own default (the reference's)."""

    url: str | None = Field(
        None, description="backend openai: the base URL (…/v1); generic: the full URL"
    )
    model_id: str | None = Field(None, description="the judge's model")
    api_key: str | None = Field(None, description="name of the env var holding its key")
    backend: Literal["openai", "generic"] | None = Field(
        None, description="openai: the OpenAI SDK's request; generic: simple-evals' own"
    )
    request_timeout: Annotated[float | None, _Number] = Field(
        None, gt=0, le=MAX_REQUEST_TIMEOUT_S, allow_inf_nan=False, description="seconds"
    )
    max_retries: Annotated[int | None, _Number] = Field(None, ge=0, le=MAX_RETRIES)
    temperature: Annotated[float | None, _Number] = Field(None, ge=0, allow_inf_nan=False)
    top_p: Annotated[float | None, _Number] = Field(None, gt=0, le=1)
    max_tokens: Annotated[int | None, _Number] = Field(
        None, gt=0, description="of each judge reply"
    )
    max_concurrent_requests: Annotated[int | None, _Number] = Field(
        None, gt=0, le=MAX_PARALLELISM, description="judge requests at once (at most parallelism)"
    )


class ParamsSpec(_Strict):
    """Generation and client parameters; None means the task's own default."""

    temperature: Annotated[float | None, _Number] = Field(None, ge=0, allow_inf_nan=False)
    top_p: Annotated[float | None, _Number] = Field(None, gt=0, le=1)
    max_new_tokens: Annotated[int | None, _Number] = Field(None, gt=0)
    n_samples: Annotated[int, _Number] = Field(
        1, gt=0, le=MAX_N_SAMPLES, description="repeats of every sample"
    )
    seed: Annotated[int | None, _Number] = None
    stop: list[str] | None = None
    parallelism: Annotated[int, _Number] = Field(
        32, gt=0, le=MAX_PARALLELISM, description="concurrent requests"
    )
    limit_samples: Annotated[int | None, _Number] = Field(
        None, gt=0, description="evaluate only the first N"
    )
    request_timeout: Annotated[float, _Number] = Field(
        600.0, gt=0, le=MAX_REQUEST_TIMEOUT_S, allow_inf_nan=False, description="seconds"
    )
    max_retries: Annotated[int, _Number] = Field(8, ge=0, le=MAX_RETRIES)
    extra_body: dict[str, Any] | None = Field(None, description="merged into every request")
    judge: JudgeSpec | None = Field(None, description="the LLM judge of a task that asks one")


class DatasetSpec(_Strict):
    path: str = Field(description="JSONL file: prompt or messages, and answer, per line")


class ScorerSpec(_Strict):
    name: Literal["exact_match", "contains", "regex", "numeric"]
    pattern: str | None = Field(
        None, description="regex scorer: the answer is group 1, or the match"
    )
    ignore_case: bool = True

    @model_validator(mode="after")
    def _pattern_for_regex(self) -> ScorerSpec:
        if self.name == "regex" and not self.pattern:
            raise ValueError("the regex scorer needs a pattern")
        if self.pattern:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        return self


class HarnessSpec(_Strict):
    """A task run by its NeMo Evaluator framework package (`evalfleet.harness`), not by a
    built-in task: which package, which of its tasks, and the run config that
    nemo-evaluator's command template is rendered with (its `config` and `target`
    sections, as the launcher would hand them over; the endpoint's URL and model are
    filled in at run time, the URL being the adapter proxy's)."""

    harness: str = Field(description="framework name, e.g. mmath")
    task: str = Field(description="the framework's task name, e.g. mmath_en")
    package: str = Field(description="on PyPI, e.g. nvidia-mmath")
    version: str
    run_config: dict[str, Any] = Field(default_factory=dict)
    image: str | None = Field(None, description="the launcher's container image for it")


class JobSpec(_Strict):
    schema_version: Literal[1] = 1  # SCHEMA_VERSION
    invocation_id: str
    job_id: str
    task: str
    endpoint: EndpointSpec
    params: ParamsSpec = Field(default_factory=ParamsSpec)
    interceptors: dict[str, Any] = Field(default_factory=dict)
    output_dir: str
    dataset: DatasetSpec | None = None
    scorer: ScorerSpec | None = None
    task_options: dict[str, Any] = Field(default_factory=dict)
    harness: HarnessSpec | None = None
    # The launcher's pre_cmd (sourced by bash before the task: its exports reach the task)
    # and post_cmd (run after it, whatever its end).
    pre_cmd: str | None = None
    post_cmd: str | None = None


def effective_params(task_defaults: dict[str, Any], explicit: dict[str, Any]) -> ParamsSpec:
    """Engine defaults < the task's own defaults < what the config sets explicitly. The
    planner writes the result into job.json (so a dry run shows exactly what runs); the
    engine applies the same rule to a job file that leaves parameters out. Raises
    pydantic's ValidationError. `judge` merges key by key (unset keys: the task's)."""
    merged = {**task_defaults, **explicit}
    if isinstance(task_defaults.get("judge"), dict) and isinstance(explicit.get("judge"), dict):
        merged["judge"] = merge_judge(task_defaults["judge"], explicit["judge"])
    return ParamsSpec.model_validate(merged)


def merge_judge(below: dict[str, Any], above: dict[str, Any]) -> dict[str, Any]:
    """Judge settings of two layers: `above`'s set (non-null) keys win."""
    return {**below, **{key: value for key, value in above.items() if value is not None}}


def missing_judge(task_defaults: dict[str, Any], params: ParamsSpec) -> str | None:
    """What a task that asks an LLM judge (its defaults carry `judge`) still lacks, as one
    line naming the launcher's keys; None when the judge is set (or none is asked)."""
    if "judge" not in task_defaults:
        return None
    judge = params.judge
    missing = [key for key in ("url", "model_id") if not getattr(judge, key, None)]
    if not missing:
        return None
    keys = " and ".join(f"config.params.extra.judge.{key}" for key in missing)
    return f"asks an LLM judge whether each answer equals the gold one: set {keys}"


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def read_job(path: str | Path, environ: Mapping[str, str] | None = None) -> JobSpec:
    """Read and validate a job file; every problem is one line naming the field.
    `environ`: the job's environment (default: this process's)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"job file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    try:
        job = JobSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_line(path, error) for error in exc.errors(include_url=False)]) from None
    url = _expand(path, "endpoint.url", job.endpoint.url)
    endpoint = job.endpoint.model_copy(update={"url": url})
    if endpoint.url_env:
        endpoint._request_url = _with_credentials(path, endpoint, environ)
    update: dict[str, Any] = {"endpoint": endpoint}
    # A judge evalfleet deploys is also known by an env var the backend sets (Lepton).
    if job.params.judge is not None and job.params.judge.url:
        judge = job.params.judge.model_copy(
            update={"url": _expand(path, "params.judge.url", job.params.judge.url)}
        )
        update["params"] = job.params.model_copy(update={"judge": judge})
    if job.harness is not None:
        params = (job.harness.run_config.get("config") or {}).get("params") or {}
        judge_settings = (params.get("extra") or {}).get("judge")
        if isinstance(judge_settings, dict) and isinstance(judge_settings.get("url"), str):
            where = "harness.run_config.config.params.extra.judge.url"
            judge_settings["url"] = _expand(path, where, judge_settings["url"])
    return job.model_copy(update=update)


def _with_credentials(path: Path, endpoint: EndpointSpec, environ: Mapping[str, str] | None) -> str:
    """`endpoint.url` with the credentials (user info, query) of the URL in the variable
    `endpoint.url_env` names: job.json shows them as ***, the job's environment has them."""
    name = str(endpoint.url_env)
    environ = os.environ if environ is None else environ
    carried = environ.get(name)
    if not carried:
        raise ConfigError(
            f"{path}: endpoint.url_env: {name} is not set in the environment; it carries "
            "the credentials of the endpoint URL, which job.json shows as ***"
        )
    try:
        shown, full = urlsplit(endpoint.url), urlsplit(carried)
        same = (full.hostname, full.port) == (shown.hostname, shown.port)
    except ValueError as exc:
        raise ConfigError(f"{path}: endpoint.url_env: {name}: not a valid URL ({exc})") from None
    if not same:
        raise ConfigError(
            f"{path}: endpoint.url_env: {name} holds a URL for another host "
            f"({full.hostname}:{full.port}) than endpoint.url ({shown.hostname}:{shown.port})"
        )
    if _HIDDEN in full.netloc.rpartition("@")[0] or _HIDDEN in full.query:
        # A resume from the stored config, which never held them.
        raise ConfigError(
            f"{path}: endpoint.url_env: {name} holds the endpoint URL with its credentials "
            f"hidden (***), as evalfleet stores it; export {name}=<the URL with its "
            "credentials> and resume"
        )
    return urlunsplit(shown._replace(netloc=full.netloc, query=full.query))


_HIDDEN = "***"  # config.redact.REDACTED (the contract imports nothing above it)


def _expand(path: Path, key: str, value: str) -> str:
    """`value` with its `${VAR}` references replaced from the environment."""
    missing = [name for name in _ENV_REF.findall(value) if name not in os.environ]
    if missing:
        raise ConfigError(
            f"{path}: {key} refers to ${{{missing[0]}}}, which is not set in the environment"
        )
    return _ENV_REF.sub(lambda m: os.environ[m.group(1)], value)


def _line(path: Path, error: Any) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{path}: {key}: unknown field"
    if error["type"] == "missing":
        return f"{path}: {key}: missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{path}: {key}: {message[:1].lower()}{message[1:]} (got {error.get('input')!r})"
