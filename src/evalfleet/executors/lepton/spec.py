"""The JSON bodies evalfleet POSTs to Lepton, built from an Invocation; no I/O, no network.

Shapes follow `reference/lepton-api.md` §2.3 (legacy `/deployments` route family and
`/jobs`). One endpoint serves the whole invocation; each task runs as one Lepton job that
writes its `job.json` and runs `evalfleet eval` under `timeout`.

What the Lepton server would refuse (§5 "Validation to mirror") is refused here first, as a
`ConfigError` with one line per problem naming the config key to fix.
"""

from __future__ import annotations

import copy
import posixpath
import re
import shlex
from typing import TYPE_CHECKING, Any

import evalfleet
from evalfleet.config.env import (
    ENDPOINT_URL_ENV,
    EnvRef,
    endpoint_url_env,
    host_value,
    job_env,
    parse_env,
)
from evalfleet.contract import Invocation, Job, job_json_base64
from evalfleet.deployments.servers import lepton_server_argv, server_spec
from evalfleet.exceptions import ConfigError
from evalfleet.executors import wheel as wheels
from evalfleet.executors.lepton._settings import settings
from evalfleet.executors.lepton.results import emit_lines
from evalfleet.executors.wheel import VERSION_CHECK

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig

# Environment variables through which a Lepton job learns its endpoint's URL and token
# (job.json refers to the first as `${EVALFLEET_ENDPOINT_URL}`), and the judge deployment's.
LEPTON_ENDPOINT_URL_ENV = "EVALFLEET_ENDPOINT_URL"
LEPTON_ENDPOINT_TOKEN_ENV = "EVALFLEET_ENDPOINT_TOKEN"
LEPTON_JUDGE_URL_ENV = "EVALFLEET_JUDGE_URL"
LEPTON_JUDGE_TOKEN_ENV = "EVALFLEET_JUDGE_TOKEN"

MAX_NAME_LENGTH = 36
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]*$")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")

# leptonai/config.py LEPTON_RESERVED_ENV_NAMES: set by Lepton inside every container.
RESERVED_ENV_NAMES = frozenset({
    "LEPTON_WORKSPACE_ID",
    "LEPTON_DEPLOYMENT_NAME",
    "LEPTON_JOB_NAME",
    "LEPTON_RESOURCE_ACCELERATOR_TYPE",
    "LEPTON_WORKSPACE_ORIGIN_URL",
})  # fmt: skip

# Exact paths (after normalisation) that may not be mount targets; descendants are fine.
# The SDK's job_validation.LEPTON_RESERVED_MOUNT_PATHS plus /root.
SYSTEM_MOUNT_PATHS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/media", "/opt", "/proc",
    "/proc/bus", "/proc/sys", "/root", "/run", "/sbin", "/srv", "/sys", "/sys/fs/cgroup",
    "/sys/kernel/security", "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/usr/sbin", "/var",
})  # fmt: skip

# Top-level fields of LeptonDeploymentUserSpec; platform_defaults may only use these.
DEPLOYMENT_SPEC_FIELDS = (
    "container", "resource_requirement", "auto_scaler", "api_tokens", "envs", "mounts",
    "image_pull_secrets", "health", "queue_config", "storage_attachments",
    "reservation_config", "is_pod", "user_security_context", "log", "metrics",
    "routing_policy", "scheduling_policy", "auth_config", "allow_unauthenticated_access",
    "ingress_enabled", "ingress_timeout_seconds", "load_balance_config",
)  # fmt: skip

ENDPOINT_URL_PLACEHOLDER = "<filled at launch: status.endpoint.external_endpoint>"
JUDGE_URL_PLACEHOLDER = "<filled at launch: the judge's status.endpoint.external_endpoint>"
# target.api_endpoint.url with its credentials (config.env.ENDPOINT_URL_ENV): only in what
# is sent, like a host value, never in the plan or the store.
TARGET_URL_PLACEHOLDER = "<filled at launch: target.api_endpoint.url with its credentials>"
# The `lep` CLI adds this scale-down when a spec has none; evalfleet POSTs directly, so it
# adds it itself: an endpoint nobody calls must not keep its GPUs forever.
DEFAULT_NO_TRAFFIC_TIMEOUT = 3600
# Long enough for `evalfleet status` to read a finished job's final state (SDK default: 600).
JOB_TTL_SECONDS = 86400
KILL_AFTER_SECONDS = 60

_PLATFORM_DEFAULTS = "execution.lepton_platform.deployment.platform_defaults"

# evalfleet's wheel travels in the job's envs, in base64 parts: Linux refuses an env string
# over 128 KiB (MAX_ARG_STRLEN), and all of them together must stay well under the 2 MiB a
# process's arguments and environment may take (and under the API's request size).
WHEEL_ENV_PREFIX = "EVALFLEET_WHEEL_"
WHEEL_CHUNK_CHARS = 96 * 1024
MAX_WHEEL_CHUNKS = 12
WHEEL_PLACEHOLDER = "<filled at launch: part {part}/{parts} of {file} ({size:,} bytes), base64>"


# --------------------------------------------------------------------------- names


def _slug(text: str) -> str:
    """Lowercase, every run of characters outside [a-z0-9] becomes one '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _join(head: str, tail: str, keep: str) -> str:
    """`head-tail` in at most MAX_NAME_LENGTH characters, shortening the part not kept."""
    if keep == "tail":
        room = MAX_NAME_LENGTH - len(tail) - 1
        return f"{head[:room].rstrip('-')}-{tail}"
    room = MAX_NAME_LENGTH - len(head) - 1
    return f"{head}-{tail[:room].rstrip('-')}".rstrip("-")


def endpoint_name(inv: Invocation) -> str:
    """`<endpoint_name or type>-<invocation id>`, as Lepton accepts it (≤36, [a-z0-9-])."""
    return _deployment_name(inv.config.deployment, inv.config.deployment.type, inv.invocation_id)


def judge_endpoint_name(inv: Invocation) -> str | None:
    """The judge deployment's name: `<its endpoint_name or type-judge>-<invocation id>`;
    None without a `judge_deployment`."""
    judge = inv.config.judge_deployment
    if judge is None:
        return None
    return _deployment_name(judge, f"{judge.type}-judge", inv.invocation_id)


def _deployment_name(deployment: Any, fallback: str, invocation_id: str) -> str:
    lepton = getattr(deployment, "lepton_config", None)
    prefix = _slug((lepton.endpoint_name if lepton else None) or fallback)
    prefix = prefix.lstrip("0123456789-") or _slug(fallback)  # start with a letter
    suffix = _slug(invocation_id)[: MAX_NAME_LENGTH - 2] or "0"
    return _join(prefix, suffix, keep="tail")


def job_name(inv: Invocation, job: Job) -> str:
    """`eval-<invocation id>-<task>`, as Lepton accepts it (≤36, [a-z0-9-]).

    A task name too long to fit is cut and ends in `-<job index>`, so two long tasks of one
    invocation never share a name.
    """
    head = f"eval-{_slug(inv.invocation_id)}"[: MAX_NAME_LENGTH - 3].rstrip("-")
    tail = _slug(job.task) or str(job.index)
    if len(head) + 1 + len(tail) > MAX_NAME_LENGTH:
        index = f"-{job.index}"
        room = MAX_NAME_LENGTH - len(head) - 1 - len(index)
        tail = tail[:room].rstrip("-") + index
    return _join(head, tail, keep="head")


# --------------------------------------------------------------------------- checks


def _env_problems(name: str, key: str) -> list[str]:
    if not name or not ENV_NAME_PATTERN.match(name):
        return [f"{key}: not a valid Lepton env var name (letters, digits, '.', '_', '-')"]
    if name[0].isdigit():
        return [f"{key}: not a valid Lepton env var name (must not start with a digit)"]
    if name in RESERVED_ENV_NAMES:
        return [f"{key}: reserved by Lepton"]
    return []


def _mount_problems(mount: Any, key: str) -> list[str]:
    if not isinstance(mount, dict):
        return [f"{key}: expected a mapping with from, path and mount_path"]
    problems = [f"{key}.{field}: required by Lepton" for field in ("from", "mount_path")
                if not mount.get(field)]  # fmt: skip
    path = mount.get("mount_path")
    if isinstance(path, str) and path:
        normal = posixpath.normpath(path)
        normal = "/" + normal.lstrip("/") if normal.startswith("//") else normal
        if normal in SYSTEM_MOUNT_PATHS:
            problems.append(
                f"{key}.mount_path: {path!r} is a system path Lepton refuses to mount over "
                "(mount below it instead)"
            )
    return problems


def _name_problems(name: str, key: str) -> list[str]:
    if len(name) > MAX_NAME_LENGTH or not NAME_PATTERN.match(name) or name.endswith("-"):
        return [
            f"{key}: {name!r} is not a valid Lepton name (^[a-z][a-z0-9-]*$, ≤36, no trailing '-')"
        ]
    if name.endswith("by-lepton"):
        return [f"{key}: {name!r} must not end in 'by-lepton'"]
    return []


# --------------------------------------------------------------------------- env entries


# A `host:NAME` value travels in the spec only when the job is submitted: the plan, the
# store and the dry run keep this placeholder, so a host secret never lands on disk here.
HOST_VALUE_PLACEHOLDER = "<filled at launch: the launching host's ${name}>"
_HOST_VALUE = re.compile(r"^<filled at launch: the launching host's \$([A-Za-z_][A-Za-z0-9_]*)>$")


def _ref_entry(name: str, ref: EnvRef, where: str, problems: list[str]) -> dict[str, Any]:
    """A Lepton env entry for a configured value with the launcher's meaning."""
    if ref.kind == "secret":
        return {"name": name, "value_from": {"secret_name_ref": ref.text}}
    if ref.kind == "host":
        return {"name": name, "value": HOST_VALUE_PLACEHOLDER.format(name=ref.text)}
    if ref.kind == "runtime":
        problems.append(
            f"{where}: runtime:{ref.text} cannot be read in a Lepton job (its container has "
            "no such variable of its own); use lit:<value>, host:NAME or "
            "value_from.secret_name_ref"
        )
    return {"name": name, "value": ref.text}


def host_values_missing(body: dict[str, Any]) -> list[str]:
    """The host variables a body needs that this environment does not have."""
    problems = []
    for env in body["spec"].get("envs") or []:
        match = _HOST_VALUE.match(str(env.get("value")))
        if match:
            try:
                host_value(EnvRef("host", match.group(1)), f"env {env['name']}")
            except ConfigError as exc:
                problems.extend(exc.problems)
    return problems


def fill_host_values(body: dict[str, Any], config: RunConfig | None = None) -> None:
    """Put the launching host's values in place of their placeholders (at submission),
    and `config`'s endpoint URL with its credentials in place of its own."""
    for env in body["spec"].get("envs") or []:
        match = _HOST_VALUE.match(str(env.get("value")))
        if match:
            env["value"] = host_value(EnvRef("host", match.group(1)), f"env {env['name']}")
        elif env.get("value") == TARGET_URL_PLACEHOLDER and config is not None:
            key, ref = endpoint_url_env(config)[ENDPOINT_URL_ENV]
            env["value"] = host_value(ref, key)


def _env_entry(name: str, value: Any) -> dict[str, Any]:
    """`{name, value}` for a literal, `{name, value_from: {secret_name_ref}}` for a secret."""
    if hasattr(value, "value_from"):
        return {"name": name, "value_from": {"secret_name_ref": value.value_from.secret_name_ref}}
    return {"name": name, "value": str(value)}


def _merge_envs(base: list[Any], top: list[dict[str, Any]]) -> list[Any]:
    """Platform-default envs, then ours; ours replace a default of the same name."""
    ours = {entry["name"] for entry in top}
    kept = [e for e in base if not (isinstance(e, dict) and e.get("name") in ours)]
    return [*kept, *top]


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        elif key == "envs" and isinstance(out.get(key), list):
            out[key] = _merge_envs(out[key], value)
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- deployment


def _deployment_body(inv: Invocation, problems: list[str]) -> dict[str, Any] | None:
    """The model's endpoint (None for `deployment.type: none`)."""
    if inv.config.deployment.type == "none":
        return None
    return _server_body(inv, inv.config.deployment, "deployment", endpoint_name(inv), problems)


def _judge_body(inv: Invocation, problems: list[str]) -> dict[str, Any] | None:
    """The judge's endpoint (`judge_deployment`), shaped by the same rules as the model's."""
    judge, name = inv.config.judge_deployment, judge_endpoint_name(inv)
    if judge is None or name is None:
        return None
    if name == endpoint_name(inv) and inv.config.deployment.type != "none":
        problems.append(
            f"judge_deployment.lepton_config.endpoint_name: the judge's endpoint would be "
            f"named {name}, as the model's is; give it a name of its own"
        )
    return _server_body(inv, judge, "judge_deployment", name, problems)


def judge_token_secret(config: RunConfig) -> str:
    """The Lepton secret the jobs call the judge with: the one they call the model with when
    the judge accepts it, else the first the judge's `lepton_config.api_tokens` names."""
    secret = settings(config).lepton_platform.tasks.api_key_secret
    judge = config.judge_deployment
    tokens = [] if judge is None else judge.lepton_config.api_tokens
    refs = [token.value_from.token_name_ref for token in tokens]
    return secret if secret in refs or not refs else refs[0]


def _server_body(
    inv: Invocation, deployment: Any, key: str, name: str, problems: list[str]
) -> dict[str, Any]:
    """A `POST /deployments` body for one server of the invocation; `key` is where its
    settings sit in the config (deployment, judge_deployment), for the messages."""
    config = inv.config
    lepton = deployment.lepton_config
    platform = settings(config).lepton_platform
    server = server_spec(deployment)  # default host 0.0.0.0: reachable from Lepton's proxy
    assert server is not None

    if not server.image:
        problems.append(f"{key}.image: required on lepton (the endpoint's container image)")
    container: dict[str, Any] = {"image": server.image, "ports": [{"container_port": server.port}]}
    if server.argv and deployment.type != "nim":  # NIM: the image's entrypoint starts the server
        container["command"] = lepton_server_argv(deployment) or list(server.argv)

    resources: dict[str, Any] = {
        "resource_shape": (lepton.resource_shape or "").lower(),
        "min_replicas": lepton.min_replicas,
        "max_replicas": lepton.max_replicas,
    }
    node_group = lepton.node_group or platform.deployment.node_group
    if node_group:
        resources["affinity"] = {"allowed_dedicated_node_groups": [node_group]}

    spec: dict[str, Any] = {"container": container, "resource_requirement": resources}

    if lepton.auto_scaler is not None:
        scaler = lepton.auto_scaler.model_dump(exclude_none=True)
        scale_down = scaler.get("scale_down")
        if scale_down is not None:
            scale_down.pop("scale_from_zero", None)  # accepted in config, not a Lepton field
            if not scale_down:
                del scaler["scale_down"]
        if scaler:
            spec["auto_scaler"] = scaler

    token_refs = [token.value_from.token_name_ref for token in lepton.api_tokens]
    if token_refs:
        spec["api_tokens"] = [{"value_from": {"token_name_ref": ref}} for ref in token_refs]
        secret = platform.tasks.api_key_secret
        # The judge is called with a secret it accepts (judge_token_secret), whichever.
        if key == "deployment" and secret not in token_refs:
            problems.append(
                f"execution.lepton_platform.tasks.api_key_secret: {secret!r} is not one of "
                f"deployment.lepton_config.api_tokens ({', '.join(token_refs)}); the jobs "
                "would call the endpoint with a token it does not accept"
            )
    else:
        problems.append(
            f"{key}.lepton_config.api_tokens: empty; Lepton would then make up a token "
            "evalfleet never sees (or leave the endpoint open); name the Lepton secret "
            "holding it: [{value_from: {token_name_ref: ENDPOINT_API_KEY}}]"
        )

    envs: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add_env(entry: dict[str, Any], key: str | None) -> None:
        if entry["name"] in seen:  # the first setting wins: lepton_config, user, derived
            return
        seen.add(entry["name"])
        envs.append(entry)
        if key is not None:
            problems.extend(_env_problems(entry["name"], key))

    for env, value in lepton.envs.items():
        add_env(_env_entry(env, value), f"{key}.lepton_config.envs.{env}")
    for env, value in deployment.env_vars.items():
        where = f"{key}.env_vars.{env}"
        add_env(_ref_entry(env, parse_env(value, where, "literal"), where, problems), where)
    for env, value in server.env.items():
        add_env(_env_entry(env, value), None)
    add_env({"name": "SERVED_MODEL_NAME", "value": server.served_model_name}, None)
    add_env({"name": "MODEL_PORT", "value": str(server.port)}, None)
    spec["envs"] = envs

    if lepton.mounts.enabled:
        mount: dict[str, Any] = {
            "path": lepton.mounts.cache_path,
            "from": lepton.mounts.from_,
            "mount_path": lepton.mounts.mount_path,
            "mount_options": {},
        }
        problems.extend(_mount_problems(mount, f"{key}.lepton_config.mounts"))
        spec["mounts"] = [mount]
    if lepton.image_pull_secrets:
        spec["image_pull_secrets"] = list(lepton.image_pull_secrets)
    if lepton.health is not None:
        spec["health"] = copy.deepcopy(lepton.health)
    if platform.deployment.queue_priority:
        spec["queue_config"] = {"priority_class": platform.deployment.queue_priority}

    defaults = copy.deepcopy(platform.deployment.platform_defaults)
    problems.extend(_platform_default_problems(defaults))
    spec = _deep_merge(defaults, spec)
    scale_down = spec.setdefault("auto_scaler", {}).setdefault("scale_down", {})
    if scale_down.get("no_traffic_timeout") is None:
        scale_down["no_traffic_timeout"] = DEFAULT_NO_TRAFFIC_TIMEOUT
    if spec.get("allow_unauthenticated_access") is True:
        problems.append(
            f"{_PLATFORM_DEFAULTS}.allow_unauthenticated_access: Lepton refuses it together "
            "with api_tokens, and evalfleet's jobs always authenticate"
        )
    order = [key for key in DEPLOYMENT_SPEC_FIELDS if key in spec]
    spec = {key: spec[key] for key in [*order, *(k for k in spec if k not in order)]}
    return {"metadata": {"id": name, "name": name}, "spec": spec}


def _platform_default_problems(defaults: dict[str, Any]) -> list[str]:
    problems = [
        f"{_PLATFORM_DEFAULTS}.{key}: not a field of a Lepton deployment spec (the API has no "
        f"such field); expected one of {', '.join(sorted(DEPLOYMENT_SPEC_FIELDS))}"
        for key in defaults
        if key not in DEPLOYMENT_SPEC_FIELDS
    ]
    for index, env in enumerate(defaults.get("envs") or []):
        key = f"{_PLATFORM_DEFAULTS}.envs[{index}]"
        if not isinstance(env, dict) or not isinstance(env.get("name"), str):
            problems.append(f"{key}: expected {{name, value}} or {{name, value_from}}")
        else:
            problems.extend(_env_problems(env["name"], f"{key}.name"))
    for index, mount in enumerate(defaults.get("mounts") or []):
        problems.extend(_mount_problems(mount, f"{_PLATFORM_DEFAULTS}.mounts[{index}]"))
    return problems


# --------------------------------------------------------------------------- jobs


def ships_wheel(config: RunConfig) -> bool:
    """Whether the jobs get the planner's own wheel (`{wheel}` in the install command); else
    the image has evalfleet."""
    return "{wheel}" in settings(config).evaluation_tasks.install_command


def shipped_wheel() -> wheels.Wheel:
    """The wheel the jobs install (the running evalfleet's); ConfigError if too big to ship."""

    try:
        built = wheels.own_wheel()
    except wheels.WheelError as exc:
        raise ConfigError(f"execution.evaluation_tasks.install_command: {exc}") from None
    if built.chunk_count(WHEEL_CHUNK_CHARS) > MAX_WHEEL_CHUNKS:
        raise ConfigError(
            f"execution.evaluation_tasks.install_command: evalfleet's wheel ({built.size:,} "
            "bytes) is too big to ship in a job spec; use an image with evalfleet installed "
            "(evaluation_tasks.image) and install_command ''"
        )
    return built


def wheel_env_names(built: wheels.Wheel) -> list[str]:
    return [f"{WHEEL_ENV_PREFIX}{i}" for i in range(built.chunk_count(WHEEL_CHUNK_CHARS))]


def _wheel_envs(built: wheels.Wheel) -> list[dict[str, Any]]:
    """The job's wheel envs, each valued with a placeholder until `fill_wheel` (at launch)."""
    names = wheel_env_names(built)
    return [
        {"name": name, "value": WHEEL_PLACEHOLDER.format(
            part=i + 1, parts=len(names), file=built.filename, size=built.size)}
        for i, name in enumerate(names)
    ]  # fmt: skip


def fill_wheel(body: dict[str, Any]) -> None:
    """Put the wheel's base64 parts into a job body's wheel envs (in place)."""
    envs = [e for e in body["spec"]["envs"] if e.get("name", "").startswith(WHEEL_ENV_PREFIX)]
    if not envs:
        return
    chunks = shipped_wheel().base64_chunks(WHEEL_CHUNK_CHARS)
    by_name = dict(zip(wheel_env_names(shipped_wheel()), chunks, strict=True))
    for env in envs:
        env["value"] = by_name[env["name"]]


def job_script(inv: Invocation, job: Job) -> str:
    """The bash script a job container runs: write job.json, install evalfleet (the wheel
    shipped in the job's envs, checked), run under timeout, then print the results into the
    job's log for the launcher (see `results.py`)."""
    tasks = settings(inv.config).evaluation_tasks
    payload = job_json_base64(job.spec)
    try:
        install = tasks.install_command.format(
            version=evalfleet.__version__, wheel='"$evalfleet_wheel"'
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"execution.evaluation_tasks.install_command: cannot fill in {{version}} or "
            f"{{wheel}}: {exc!r} (write literal braces as {{{{ and }}}})"
        ) from None
    lines = ["set -euo pipefail"]
    if not job.output_dir.startswith("/"):
        # No shared storage: the output dir is relative to a fresh scratch dir of its own.
        lines.append('cd "$(mktemp -d)"')
    lines += [
        f"mkdir -p {shlex.quote(job.output_dir)}",
        f"printf '%s' {shlex.quote(payload)} | base64 -d > {shlex.quote(job.job_file)}",
    ]
    evalfleet_command = "evalfleet"
    if ships_wheel(inv.config):
        built = shipped_wheel()
        names = wheel_env_names(built)
        parts = " ".join(f'"${name}"' for name in names)
        lines += [
            f"# evalfleet {built.version}, the planner's own wheel: in the envs {names[0]}..",
            f'evalfleet_wheel="$(mktemp -d)"/{shlex.quote(built.filename)}',
            f"printf '%s' {parts} | base64 -d > \"$evalfleet_wheel\"",
            f"unset {' '.join(names)}",
            f'echo "{built.sha256}  $evalfleet_wheel" | sha256sum --check --quiet -',
            install,
            f"python3 -c {shlex.quote(VERSION_CHECK)} {shlex.quote(built.version)}",
        ]
        evalfleet_command = "python3 -m evalfleet"  # the interpreter just checked
    elif install.strip():
        lines.append(install)
    lines += [
        "status=0",
        f"timeout --signal=TERM --kill-after={KILL_AFTER_SECONDS} {tasks.timeout} "
        f"{evalfleet_command} eval --job {shlex.quote(job.job_file)} || status=$?",
        *emit_lines(job.output_dir),
        'exit "$status"',
    ]
    return "\n".join(lines) + "\n"


def _job_body(inv: Invocation, job: Job, problems: list[str]) -> dict[str, Any]:
    config = inv.config
    execution = settings(config)
    tasks = execution.lepton_platform.tasks
    has_deployment = config.deployment.type != "none"
    has_judge = config.judge_deployment is not None
    name = job_name(inv, job)
    problems.extend(_name_problems(name, f"evaluation.tasks[{job.index}]"))

    chosen: dict[str, tuple[str, dict[str, Any]]] = {}
    for env, (key, ref) in job_env(config, job.index).items():  # weakest first
        chosen[env] = (key, _ref_entry(env, ref, key, problems))
        if env == ENDPOINT_URL_ENV and key == "target.api_endpoint.url":
            chosen[env] = (key, {"name": env, "value": TARGET_URL_PLACEHOLDER})
    for env, value in tasks.env_vars.items():  # the Lepton-only layer wins
        key = f"execution.lepton_platform.tasks.env_vars.{env}"
        chosen[env] = (key, _ref_entry(env, parse_env(value, key, "literal"), key, problems))
    for key, entry in chosen.values():
        if has_deployment and entry["name"] in (LEPTON_ENDPOINT_URL_ENV, LEPTON_ENDPOINT_TOKEN_ENV):
            problems.append(f"{key}: set by evalfleet on Lepton (the endpoint's URL and token)")
        elif has_judge and entry["name"] in (LEPTON_JUDGE_URL_ENV, LEPTON_JUDGE_TOKEN_ENV):
            problems.append(f"{key}: set by evalfleet on Lepton (the judge's URL and token)")
        elif entry["name"].startswith(WHEEL_ENV_PREFIX):
            problems.append(f"{key}: {WHEEL_ENV_PREFIX}* carry evalfleet's wheel on Lepton")
        else:
            problems.extend(_env_problems(entry["name"], key))
    envs = [entry for _, entry in chosen.values()]
    if has_deployment:
        envs.append({"name": LEPTON_ENDPOINT_URL_ENV, "value": ENDPOINT_URL_PLACEHOLDER})
        envs.append(
            {"name": LEPTON_ENDPOINT_TOKEN_ENV,
             "value_from": {"secret_name_ref": tasks.api_key_secret}}
        )  # fmt: skip
    else:
        key_name = job.spec["endpoint"].get("api_key_name")
        if key_name and key_name not in chosen:
            problems.append(
                f"target.api_endpoint.api_key_name: {key_name} is not in the Lepton job's "
                f"environment; set execution.lepton_platform.tasks.env_vars.{key_name}: "
                "{value_from: {secret_name_ref: <Lepton secret>}}"
            )
    if has_judge:  # the judge evalfleet deploys: its URL and token, as the model's
        envs.append({"name": LEPTON_JUDGE_URL_ENV, "value": JUDGE_URL_PLACEHOLDER})
        envs.append(
            {"name": LEPTON_JUDGE_TOKEN_ENV,
             "value_from": {"secret_name_ref": judge_token_secret(config)}}
        )  # fmt: skip
    if ships_wheel(config):
        envs += _wheel_envs(shipped_wheel())
    judge_field = "api_key"
    judge_key = (job.spec.get("params", {}).get("judge") or {}).get("api_key")
    harness = job.spec.get("harness")
    if harness:  # a framework package's judge settings, as the launcher spells them
        params = (harness.get("run_config", {}).get("config") or {}).get("params") or {}
        judge = (params.get("extra") or {}).get("judge")
        judge = judge if isinstance(judge, dict) else {}
        judge_field = "api_key_name" if judge.get("api_key_name") else "api_key"
        judge_key = judge.get(judge_field)
    deployed_judge = has_judge and judge_key == LEPTON_JUDGE_TOKEN_ENV  # set above
    if judge_key and judge_key not in chosen and not deployed_judge:
        problems.append(
            f"config.params.extra.judge.{judge_field}: {judge_key} is not in the Lepton job's "
            f"environment; set execution.lepton_platform.tasks.env_vars.{judge_key}: "
            "{value_from: {secret_name_ref: <Lepton secret>}}"
        )

    mounts = []
    for index, mount in enumerate(tasks.mounts):
        entry = {"path": mount.path, "from": mount.from_, "mount_path": mount.mount_path,
                 "mount_options": {}}  # fmt: skip
        problems.extend(_mount_problems(entry, f"execution.lepton_platform.tasks.mounts[{index}]"))
        mounts.append(entry)

    spec: dict[str, Any] = {"resource_shape": execution.evaluation_tasks.resource_shape.lower()}
    if tasks.node_group:
        spec["affinity"] = {"allowed_dedicated_node_groups": [tasks.node_group]}
    spec["container"] = {
        "image": execution.evaluation_tasks.image,
        "command": ["bash", "-c", job_script(inv, job)],
    }
    spec["envs"] = envs
    spec["mounts"] = mounts
    spec["image_pull_secrets"] = list(tasks.image_pull_secrets)
    spec["completions"] = 1
    spec["parallelism"] = 1
    spec["max_job_failure_retry"] = 0
    spec["ttl_seconds_after_finished"] = JOB_TTL_SECONDS
    return {"metadata": {"name": name}, "spec": spec}


# --------------------------------------------------------------------------- public


def all_bodies(
    inv: Invocation,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[dict[str, Any]]]:
    """The model's deployment body (None for `type: none`), the judge's (None without a
    `judge_deployment`) and one job body per job.

    Raises ConfigError listing every problem Lepton would refuse, one line each.
    """
    problems: list[str] = []
    deployment = _deployment_body(inv, problems)
    judge = _judge_body(inv, problems)
    jobs = [_job_body(inv, job, problems) for job in inv.jobs]
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return deployment, judge, jobs


def bodies(inv: Invocation) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The deployment body (None for `type: none`) and one job body per job (the judge's
    deployment is checked too; `judge_deployment_body` gives it)."""
    deployment, _, jobs = all_bodies(inv)
    return deployment, jobs


def deployment_body(inv: Invocation) -> dict[str, Any] | None:
    """The `POST /deployments` body, or None when the invocation deploys nothing."""
    problems: list[str] = []
    body = _deployment_body(inv, problems)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return body


def judge_deployment_body(inv: Invocation) -> dict[str, Any] | None:
    """The judge's `POST /deployments` body, or None without a `judge_deployment`."""
    problems: list[str] = []
    body = _judge_body(inv, problems)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return body


def job_bodies(inv: Invocation) -> list[dict[str, Any]]:
    """One `POST /jobs` body per job of the invocation."""
    problems: list[str] = []
    jobs = [_job_body(inv, job, problems) for job in inv.jobs]
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return jobs
