"""RunConfig → Invocation: one job per task, each with the `job.json` its engine will read.

The job file names the env var holding the API key, never the key itself.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalfleet.contract import Invocation, Job
from evalfleet.deployments.servers import server_spec
from evalfleet.exceptions import ConfigError
from evalfleet.executors.registry import get_executor
from evalfleet.store import new_invocation_id
from evalfleet.tasks.catalog import check_task_options, resolve_task_name, task_options

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig
    from evalfleet.executors.base import Executor

# NeMo Evaluator Launcher's `config.params.*` names that mean the same as ours.
_NEL_PARAMS = {
    "parallelism", "request_timeout", "limit_samples", "temperature", "top_p",
    "max_new_tokens", "max_retries",
}  # fmt: skip
_NEL_EXTRA_PARAMS = {"n_samples", "seed", "stop", "extra_body", "judge"}


def plan_invocation(config: RunConfig, invocation_id: str | None = None) -> Invocation:
    from evalfleet.contract.spec import SCHEMA_VERSION

    invocation_id = invocation_id or new_invocation_id()
    executor = get_executor(config.execution.type)
    output_dir = executor.invocation_dir(config, invocation_id)
    job_root = executor.job_root(config, invocation_id, output_dir)
    judge = _judge_endpoint(config, executor)
    if judge is not None:
        config = _with_auxiliary_references(config, judge)
    jobs = []
    for index, task in enumerate(config.evaluation.tasks):
        if task.dataset is not None:
            name, default_type = task.name, "chat"
            endpoint_type = task.endpoint_type or config.target.api_endpoint.type or default_type
        else:
            wanted = task.endpoint_type or config.target.api_endpoint.type
            try:
                info = resolve_task_name(task.name, wanted, task.engine)
            except ValueError as exc:
                raise ConfigError(f"evaluation.tasks[{index}].name: {exc}") from None
            name = info.name
            endpoint_type = _task_endpoint_type(info, task.endpoint_type, config, index)
        # The directory keeps the name as the config spells it (as the launcher's does);
        # job.json names the one task it resolved to.
        job_dir = f"{job_root}/{task.name.strip()}"
        spec = {
            "schema_version": SCHEMA_VERSION,
            "invocation_id": invocation_id,
            "job_id": f"{invocation_id}.{index}",
            "task": name,
            "endpoint": _endpoint(config, endpoint_type, executor),
            "interceptors": _interceptors(config, task, index),
            "output_dir": job_dir,
        }
        if task.dataset is None and info.engine == "harness":
            spec["params"], spec["harness"] = _harness(
                config, task, index, info, endpoint_type, judge
            )
        elif task.package_version or task.image:
            key = "package_version" if task.package_version else "image"
            raise ConfigError(
                f"evaluation.tasks[{index}].{key}: {name} runs built in; set engine: harness "
                "to run it with its framework package"
            )
        else:
            spec["params"] = effective_params(config.evaluation, task, index, name, judge)
        options = dict(task.options or {})
        fewshot, own = _nel_num_fewshot(config.evaluation, task)
        # The task's own options win. A global setting reaches only the tasks that take
        # few-shot examples (in the launcher, harnesses without one ignore it).
        takes_fewshot = any(option.name == "num_fewshot" for option in task_options(name))
        builtin = task.dataset is None and "harness" not in spec
        if fewshot is not None and builtin and (own or takes_fewshot):
            options.setdefault("num_fewshot", fewshot)
        if builtin and (options or task_options(name)):
            # Every benchmark setting the task will use, defaults included (as params).
            try:
                spec["task_options"] = check_task_options(name, options)
            except ValueError as exc:
                where = (
                    "options"
                    if task.options and "num_fewshot" in task.options
                    else ("config.params.extra")
                )
                raise ConfigError(f"evaluation.tasks[{index}] {where}.{exc}") from None
        # The task's own pre_cmd/post_cmd win over the evaluation's (as in the launcher).
        for key in ("pre_cmd", "post_cmd"):
            command = getattr(task, key) or getattr(config.evaluation, key)
            if command and command.strip():
                spec[key] = command
        if task.dataset is not None:
            spec["dataset"] = {"path": str(Path(os.path.expanduser(task.dataset.path)).absolute())}
            assert task.scorer is not None  # the schema requires one beside dataset.path
            spec["scorer"] = task.scorer.model_dump(exclude_none=True)
            if executor.name == "local":  # its jobs read the file here, in this process
                check_dataset(spec, index)
        jobs.append(
            Job(
                index=index,
                job_id=f"{invocation_id}.{index}",
                task=task.name.strip(),
                endpoint_type=endpoint_type,
                output_dir=job_dir,
                spec=spec,
            )
        )
    names = [job.spec["task"] for job in jobs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        spelled = [repr(job.task) for job in jobs if job.spec["task"] == duplicates[0]]
        raise ConfigError(
            f"evaluation.tasks: {duplicates[0]} listed more than once (as {', '.join(spelled)}; "
            "each task writes to its own directory: merge their params instead)"
        )
    return Invocation(invocation_id, config, output_dir, tuple(jobs))


def check_dataset(spec: dict[str, Any], index: int) -> None:
    """Read a custom task's data now, as its job will read it (the same reader, up to
    the same `limit_samples`), so that a missing, empty or malformed file stops the run
    before anything is recorded, with the line the job would have failed on."""
    from evalfleet.tasks.custom import CustomTask
    from evalfleet.tasks.registry import create_task

    key = f"evaluation.tasks[{index}].dataset.path"
    path = Path(spec["dataset"]["path"])
    if path.is_dir():
        raise ConfigError(f"{key}: {path} is a directory, not a JSONL file")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{key}: {path} is not a regular file")  # a FIFO would block here
    scorer = spec["scorer"]
    task = create_task(
        spec["task"],
        dataset_path=path,
        scorer=scorer["name"],
        pattern=scorer.get("pattern"),
        ignore_case=scorer.get("ignore_case", True),
        endpoint_type=spec["endpoint"]["type"],
    )
    assert isinstance(task, CustomTask)  # a dataset.path task
    try:
        task.check(spec["params"].get("limit_samples"))  # kept for the job, if it runs here
    except ConfigError as exc:
        raise ConfigError(f"{key}: {str(exc).removeprefix('dataset.path: ')}") from None


def with_derived_defaults(config: RunConfig) -> RunConfig:
    """Fill what the user may leave out, so that `--dry-run` shows the values used."""
    update: dict[str, Any] = {}
    deployment = config.deployment
    if deployment.type != "none" and not deployment.served_model_name:
        from evalfleet.deployments.servers import served_model_name

        update["deployment"] = deployment.model_copy(
            update={"served_model_name": served_model_name(deployment)}
        )
    execution = config.execution
    if not execution.remote_output_dir():
        absolute = str(Path(os.path.expanduser(execution.output_dir)).absolute())
        update["execution"] = execution.model_copy(update={"output_dir": absolute})
    return config.model_copy(update=update)


def _task_endpoint_type(info: Any, asked: str | None, config: Any, index: int) -> str:
    """A task that reproduces a reference speaks that reference's endpoint type (as the
    launcher's task definition decides it, whatever the target's usual type); an
    evalfleet variant takes the task's own setting, then the target's, then its own."""
    if info.reference is None and info.request_kind != "loglikelihood":
        return asked or config.target.api_endpoint.type or info.endpoint_type
    if asked not in (None, info.endpoint_type):
        why = (
            "is scored by log-likelihood and needs 'completions' (prompt logprobs)"
            if info.request_kind == "loglikelihood"
            else f"reproduces {info.reference.label}, which runs it on {info.endpoint_type!r}"
        )
        raise ConfigError(
            f"evaluation.tasks[{index}].endpoint_type: {info.name} {why}, got {asked!r}"
        )
    return str(info.endpoint_type)


def _endpoint(config: RunConfig, endpoint_type: str, executor: Executor) -> dict[str, Any]:
    deployment = config.deployment
    if deployment.type == "none":
        target = config.target.api_endpoint
        assert target.url is not None  # the schema requires it when deployment.type is none
        from evalfleet.config.env import ENDPOINT_URL_ENV
        from evalfleet.config.redact import redact_url, url_secrets

        endpoint: dict[str, Any] = {
            "url": redact_url(endpoint_url(target.url, endpoint_type)),
            "model_id": target.model_id,
            "api_key_name": target.api_key_name,
            "type": endpoint_type,
        }
        if url_secrets(target.url):
            # job.json shows them as ***; the job gets the URL itself in its environment.
            endpoint["url_env"] = ENDPOINT_URL_ENV
        if target.ca_bundle:
            endpoint["ca_bundle"] = target.ca_bundle
        if not target.verify_tls:
            endpoint["verify_tls"] = False
        return endpoint
    server = server_spec(deployment)
    assert server is not None
    path = server.chat_path if endpoint_type == "chat" else server.completions_path
    base, key = executor.endpoint_base(config, server.port)
    return {
        "url": base.rstrip("/") + path,
        "model_id": server.served_model_name,
        "api_key_name": key,
        "type": endpoint_type,
    }


def endpoint_url(url: str, endpoint_type: str) -> str:
    """The full URL for `endpoint_type`, from a base URL or a full endpoint URL; a query
    (Azure's `?api-version=...`) stays a query."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    base = parts.path.rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    else:
        if not base.endswith("/v1"):
            base += "/v1"
    path = base + ("/chat/completions" if endpoint_type == "chat" else "/completions")
    return urlunsplit(parts._replace(path=path))


def _judge_endpoint(config: RunConfig, executor: Executor) -> dict[str, Any] | None:
    """Where the jobs reach the judge evalfleet deploys (`judge_deployment`): its chat URL,
    its OpenAI base URL, its model name and the env var holding its key."""
    if config.judge_deployment is None:
        return None
    server = server_spec(config.judge_deployment, key="judge_deployment")
    assert server is not None  # the schema admits no `none` judge
    base, key = executor.judge_endpoint_base(config, server.port)
    chat = base.rstrip("/") + server.chat_path
    return {
        "chat_url": chat,
        "base_url": chat.removesuffix("/chat/completions"),
        "model_id": server.served_model_name,
        "api_key": key,
    }


def _builtin_judge(defaults: dict[str, Any], judge: dict[str, Any]) -> dict[str, Any]:
    """The deployed judge as a built-in task's judge settings (its backend decides
    whether the URL is the OpenAI base or the full chat URL)."""
    backend = (defaults.get("judge") or {}).get("backend")
    url = judge["chat_url"] if backend == "generic" else judge["base_url"]
    settings = {"url": url, "model_id": judge["model_id"]}
    if judge["api_key"]:
        settings["api_key"] = judge["api_key"]
    return settings


def effective_params(
    evaluation: Any, task: Any, index: int, name: str, judge: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Every parameter the engine will use: global params, then NEL-style settings, then
    the task's own (the task wins), over the task's defaults and then the engine's; a
    judge the task asks for and no layer names is the deployed one (`judge`)."""
    params: dict[str, Any] = {}
    layers = [
        ("evaluation", evaluation.nemo_evaluator_config, evaluation.overrides, evaluation.params),
        (f"evaluation.tasks[{index}]", task.nemo_evaluator_config, task.overrides, task.params),
    ]
    from evalfleet.contract import spec

    for where, nel_config, overrides, own in layers:
        for layer in (
            _nel_params(nel_config or {}, f"{where}.nemo_evaluator_config"),
            _nel_params(_undot(overrides or {}), f"{where}.overrides"),
            own.model_dump(exclude_none=True),
        ):
            if isinstance(params.get("judge"), dict) and isinstance(layer.get("judge"), dict):
                layer = {**layer, "judge": spec.merge_judge(params["judge"], layer["judge"])}
            params.update(layer)
    from pydantic import ValidationError

    from evalfleet.tasks.registry import default_params

    try:
        defaults = default_params(name, custom=task.dataset is not None)
        asked = params.get("judge") or {}
        if judge is not None and "judge" in defaults and not asked.get("url"):
            params["judge"] = spec.merge_judge(_builtin_judge(defaults, judge), asked)
        effective = spec.effective_params(defaults, params)
    except ValidationError as exc:
        raise ConfigError(f"evaluation.tasks[{index}] params.{_first_error(exc)}") from None
    missing = spec.missing_judge(defaults, effective)
    if missing:
        raise ConfigError(f"evaluation.tasks[{index}] ({name}) {missing}")
    return effective.model_dump(exclude_none=True)


# evalfleet's own params that a framework package takes under another name: the launcher
# passes `config.params.*` and `config.params.extra.*` to the package as they are.
_HARNESS_EXTRA_PARAMS = {"n_samples", "seed", "judge"}


def _harness(
    config: RunConfig,
    task: Any,
    index: int,
    info: Any,
    endpoint_type: str,
    judge: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """job.json's `params` (what evalfleet's proxy uses: concurrency, timeout, retries) and
    `harness` (the package and the run config nemo-evaluator renders its command with) for
    a task its framework package runs. The run config is what the launcher would hand
    over: `nemo_evaluator_config` (global, then the task's) and dotted `overrides` as they
    are, with evalfleet's own `params` keys mapped onto the same `config.params.*`."""
    from evalfleet.config._merge import deep_merge
    from evalfleet.contract import spec as contract_spec
    from evalfleet.harness.command import merged_run_config
    from evalfleet.harness.frameworks import framework

    evaluation = config.evaluation
    run_config: dict[str, Any] = {}
    for where, nel, overrides, own in (
        ("evaluation", evaluation.nemo_evaluator_config, evaluation.overrides, evaluation.params),
        (f"evaluation.tasks[{index}]", task.nemo_evaluator_config, task.overrides, task.params),
    ):
        # A global setting a package cannot take is left to the built-in tasks; the
        # task's own is refused.
        strict = where != "evaluation"
        for layer in (
            nel or {},
            _undot(overrides or {}),
            _params_as_run_config(own, where, strict),
        ):
            unknown = sorted(set(layer) - {"config", "target"})
            if unknown:
                raise ConfigError(
                    f"{where}.nemo_evaluator_config.{unknown[0]}: not supported "
                    "(expected config.* or target.api_endpoint.*)"
                )
            run_config = deep_merge(run_config, layer)
    run_config.get("target", {}).get("api_endpoint", {}).pop("adapter_config", None)
    harness, short = info.name.split(".", 1)
    package = framework(harness, package_version=task.package_version, image=task.image)
    spec = {
        "harness": harness,
        "task": short,
        "package": package.package,
        "version": package.version,
        "run_config": run_config,
        "image": package.image,
    }
    try:
        merged = merged_run_config(harness, short, _with_target(run_config, endpoint_type))
    except ValueError as exc:
        raise ConfigError(f"evaluation.tasks[{index}] ({info.name}): {exc}") from None
    if judge is not None:
        run_config = _with_deployed_judge(run_config, merged, harness, short, judge)
        spec["run_config"] = run_config
    params = merged.get("config", {}).get("params") or {}
    ours: dict[str, Any] = {}
    for key in ("parallelism", "limit_samples", "request_timeout", "max_retries"):
        value = params.get(key)
        # A boolean or an infinite number is refused by ParamsSpec below, not made 1 or
        # an OverflowError by int().
        if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
            ours[key] = value
        elif isinstance(value, (int, float)) and value > 0:
            ours[key] = int(value) if key != "request_timeout" else float(value)
    for key in ("temperature", "top_p", "max_new_tokens"):
        if params.get(key) is not None:
            ours[key] = params[key]
    # Only what the proxy uses and the package's settings say: the engine's other
    # parameters (n_samples, seed…) would misstate what the package does.
    from pydantic import ValidationError

    try:
        params_spec = contract_spec.ParamsSpec.model_validate(ours)
    except ValidationError as exc:
        raise ConfigError(
            f"evaluation.tasks[{index}] ({info.name}): config.params.{_first_error(exc)}"
        ) from None
    return params_spec.model_dump(exclude_unset=True), spec


def _first_error(exc: Any) -> str:
    """A pydantic ValidationError's first error as `key: message`, as the rest of the
    config's messages read."""
    error = exc.errors(include_url=False)[0]
    key = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    shown = "" if error["type"] == "value_error" else f" (got {error.get('input')!r})"
    return f"{key}: {message[:1].lower()}{message[1:]}{shown}"


def _with_deployed_judge(
    run_config: dict[str, Any],
    merged: dict[str, Any],
    harness: str,
    task: str,
    judge: dict[str, Any],
) -> dict[str, Any]:
    """A package's task that asks a judge, and whose config names no judge URL, gets the
    deployed one: the full chat URL where the package's default is one, else the OpenAI
    base URL (…/v1) its client appends to; its model, unless set; its key's env var under
    the package's own key name."""
    from evalfleet.config._merge import deep_merge
    from evalfleet.harness.frameworks import framework_task

    if not framework_task(harness, task).needs_judge:
        return run_config
    asked = (((run_config.get("config") or {}).get("params") or {}).get("extra") or {}).get("judge")
    asked = asked if isinstance(asked, dict) else {}
    if asked.get("url"):
        return run_config
    defaults = (((merged.get("config") or {}).get("params") or {}).get("extra") or {}).get("judge")
    defaults = defaults if isinstance(defaults, dict) else {}
    full = str(defaults.get("url") or "").rstrip("/").endswith("/chat/completions")
    fill: dict[str, Any] = {"url": judge["chat_url"] if full else judge["base_url"]}
    if not asked.get("model_id"):
        fill["model_id"] = judge["model_id"]
    if judge["api_key"]:
        fill["api_key_name" if "api_key_name" in defaults else "api_key"] = judge["api_key"]
    return deep_merge(run_config, {"config": {"params": {"extra": {"judge": fill}}}})


def _with_target(run_config: dict[str, Any], endpoint_type: str) -> dict[str, Any]:
    """The run config with a stand-in endpoint, enough to merge and render at plan time."""
    from evalfleet.config._merge import deep_merge

    target = {
        "api_endpoint": {"url": "http://127.0.0.1/v1", "model_id": "m", "type": endpoint_type}
    }
    return deep_merge(run_config, {"config": {"output_dir": "/results"}, "target": target})


def _params_as_run_config(own: Any, where: str, strict: bool) -> dict[str, Any]:
    """evalfleet's `params` section as the launcher's `config.params` of a harness task."""
    set_params = own.model_dump(exclude_none=True)
    out: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in set_params.items():
        if key in _NEL_PARAMS:
            out[key] = value
        elif key in _HARNESS_EXTRA_PARAMS:
            extra[key] = value
        elif strict:
            raise ConfigError(
                f"{where}.params.{key}: not passed to framework packages (a harness task takes "
                f"{', '.join(sorted(_NEL_PARAMS | _HARNESS_EXTRA_PARAMS))}; "
                "request fields go in interceptors.request_params)"
            )
    if extra:
        out["extra"] = extra
    return {"config": {"params": out}} if out else {}


def _nel_params(nel: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(nel) - {"config", "target"})
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: not supported (expected config.params.* or target.api_endpoint.adapter_config.*)"
        )
    config_section = nel.get("config") or {}
    raw = dict(config_section.get("params") or {})
    extra = raw.pop("extra", None) or {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _NEL_PARAMS:
            raise ConfigError(
                f"{where}.config.params.{key}: not supported (supported: "
                f"{', '.join(sorted(_NEL_PARAMS))}, extra.{{{','.join(sorted(_NEL_EXTRA_PARAMS))}}})"
            )
        out[key] = value
    for key, value in extra.items():
        # num_fewshot is a task option (see _nel_num_fewshot); the other keys a built-in
        # task cannot use go to framework packages only (plan_warnings names them).
        if key in _NEL_EXTRA_PARAMS:
            out[key] = value
    return out


def plan_warnings(config: RunConfig) -> list[str]:
    """One line per launcher key that this run accepts and does not use: the config's
    (`RunConfig.warnings`), and `config.params.extra.*` keys that only framework packages
    take, for the built-in tasks they would reach."""
    lines = list(config.warnings())
    ignored: dict[str, list[str]] = {}
    evaluation = config.evaluation
    for index, task in enumerate(evaluation.tasks):
        if task.dataset is None:
            wanted = task.endpoint_type or config.target.api_endpoint.type
            try:
                if resolve_task_name(task.name, wanted, task.engine).engine == "harness":
                    continue
            except ValueError:
                continue  # plan_invocation says why
        for where, nel, overrides in (
            ("evaluation.nemo_evaluator_config", evaluation.nemo_evaluator_config, None),
            ("evaluation.overrides", None, evaluation.overrides),
            (f"evaluation.tasks[{index}].nemo_evaluator_config", task.nemo_evaluator_config, None),
            (f"evaluation.tasks[{index}].overrides", None, task.overrides),
        ):
            layer = nel or _undot(overrides or {})
            extra = ((layer.get("config") or {}).get("params") or {}).get("extra") or {}
            for key in extra:
                if key not in _NEL_EXTRA_PARAMS and key != "num_fewshot":
                    ignored.setdefault(f"{where}.config.params.extra.{key}", []).append(task.name)
    lines += [
        f"warning: {key}: ignored by built-in task(s) {', '.join(names)} "
        "(framework packages take it)"
        for key, names in ignored.items()
    ]
    return lines


def _with_auxiliary_references(config: RunConfig, judge: dict[str, Any]) -> RunConfig:
    """The launcher's `auxiliary_deployments.judge.<field>` placeholders in the NEL-style
    settings, replaced by the deployed judge's values (model_id, chat_url, …_url)."""
    values = {
        "auxiliary_deployments.judge.model_id": judge["model_id"],
        "auxiliary_deployments.judge.chat_url": judge["chat_url"],
        "auxiliary_deployments.judge.completions_url": judge["base_url"] + "/completions",
    }

    def replaced(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: replaced(value) for key, value in node.items()}
        if isinstance(node, list):
            return [replaced(value) for value in node]
        if isinstance(node, str) and "auxiliary_deployments." in node:
            for reference, value in values.items():
                node = node.replace(reference, str(value))
        return node

    evaluation = config.evaluation
    tasks = [
        task.model_copy(
            update={
                "nemo_evaluator_config": replaced(task.nemo_evaluator_config),
                "overrides": replaced(task.overrides),
            }
        )
        for task in evaluation.tasks
    ]
    evaluation = evaluation.model_copy(
        update={
            "nemo_evaluator_config": replaced(evaluation.nemo_evaluator_config),
            "overrides": replaced(evaluation.overrides),
            "tasks": tasks,
        }
    )
    return config.model_copy(update={"evaluation": evaluation})


def _nel_num_fewshot(evaluation: Any, task: Any) -> tuple[Any, bool]:
    """`config.params.extra.num_fewshot` (the launcher's spelling) from the NEL-style
    layers, the task's over the global ones, and whether the task's own layer set it; it
    sets the task's `num_fewshot` option."""
    found, own = None, False
    for is_task, nel, overrides in (
        (False, evaluation.nemo_evaluator_config, evaluation.overrides),
        (True, task.nemo_evaluator_config, task.overrides),
    ):
        for layer in (nel or {}, _undot(overrides or {})):
            extra = ((layer.get("config") or {}).get("params") or {}).get("extra") or {}
            if "num_fewshot" in extra:
                found, own = extra["num_fewshot"], is_task
    return found, own


def _undot(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = nested
        *parents, leaf = str(dotted).split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _nel_adapter_config(nel: dict[str, Any] | None) -> dict[str, Any] | None:
    """`target.api_endpoint.adapter_config` inside NEL-style settings or dotted overrides."""
    target = (nel or {}).get("target") or {}
    return (target.get("api_endpoint") or {}).get("adapter_config")


def _interceptors(config: Any, task: Any, index: int) -> dict[str, Any]:
    """The task's interceptor settings: the target's adapter_config, then the evaluation's
    (NEL-style settings, then ours), then the task's own (the same), later winning.
    adapter_config layers merge key by key before they are translated, as the launcher
    merges them (a task setting only `custom_system_prompt` keeps the global
    `use_system_prompt: true`); ours merge per interceptor. Validated here so that a
    mistake stops the run before anything is created."""
    from evalfleet.config.interceptors import (
        canonical_interceptors,
        is_adapter_config,
        merge_adapter_configs,
        merge_interceptors,
        parse_interceptors,
    )

    evaluation = config.evaluation
    where = f"evaluation.tasks[{index}]"
    shared = [
        (config.target.api_endpoint.adapter_config, "target.api_endpoint.adapter_config"),
        (
            _nel_adapter_config(evaluation.nemo_evaluator_config),
            "evaluation.nemo_evaluator_config.target.api_endpoint.adapter_config",
        ),
        (_nel_adapter_config(_undot(evaluation.overrides or {})), "evaluation.overrides"),
    ]
    own = [
        (_nel_adapter_config(task.nemo_evaluator_config), f"{where}.nemo_evaluator_config"),
        (_nel_adapter_config(_undot(task.overrides or {})), f"{where}.overrides"),
    ]
    for layer, key in [*shared, *own]:
        canonical_interceptors(layer, key)  # each layer's mistakes named by its own key
    nel_shared = merge_adapter_configs(*(layer for layer, _ in shared if is_adapter_config(layer)))
    nel_task = merge_adapter_configs(
        nel_shared, *(layer for layer, _ in own if is_adapter_config(layer))
    )
    ours_shared = [canonical_interceptors(layer, key) for layer, key in shared
                   if layer and not is_adapter_config(layer)]  # fmt: skip
    ours_own = [canonical_interceptors(layer, key) for layer, key in own
                if layer and not is_adapter_config(layer)]  # fmt: skip
    global_level = merge_interceptors(
        canonical_interceptors(nel_shared, "evaluation.nemo_evaluator_config"),
        *ours_shared,
        canonical_interceptors(evaluation.interceptors, "evaluation.interceptors"),
    )
    # What the task's adapter_config layers change (set, replace or switch off) wins over
    # the evaluation level; the rest of the evaluation level stays.
    before = canonical_interceptors(nel_shared, "evaluation.nemo_evaluator_config")
    after = canonical_interceptors(nel_task, f"{where}.nemo_evaluator_config")
    merged = dict(global_level)
    for key in {*before, *after}:
        if before.get(key) != after.get(key):
            if key in after:
                merged[key] = after[key]
            else:
                merged.pop(key, None)
    merged = merge_interceptors(
        merged, *ours_own, canonical_interceptors(task.interceptors, f"{where}.interceptors")
    )
    parse_interceptors(merged, f"{where}.interceptors")
    return merged
