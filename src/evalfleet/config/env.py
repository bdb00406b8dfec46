"""What an env var value in a config means, as NeMo Evaluator Launcher reads it.

The launcher (0.2.6) writes every value with a prefix: `host:NAME` (the launching
machine's variable, read when the run starts), `lit:value` (the value itself) and
`runtime:NAME` (a variable of the job's own environment, left for the job to expand).
Older configs carry no prefix, and meant, by section:

- `evaluation.env_vars` and a task's `env_vars`: the value was the name of a variable of
  the launching machine (`nel-migrate-config`'s rule: `$NAME` or an identifier is `host:`,
  digits and anything else are `lit:`);
- `execution.env_vars.{deployment,evaluation}` and `deployment.env_vars`: the launcher wrote
  `export NAME=value` into the job's script, so a bare value is literal and `$NAME` is the
  job's own variable (`runtime:`). evalfleet's own `env_vars` and flat
  `execution.env_vars` have always been literal and read the same way.

Every place that reads env vars goes through `job_env` / `server_env` / `parse_env`, so a
value means the same on every backend. A Lepton `{value_from: {secret_name_ref}}` is kept
as it is (kind `secret`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from evalfleet.exceptions import ConfigError

if TYPE_CHECKING:
    from evalfleet.config.schema import RunConfig

EnvKind = Literal["literal", "host", "runtime", "secret"]
Legacy = Literal["host", "literal"]

_PREFIXES: dict[str, EnvKind] = {"host:": "host", "lit:": "literal", "runtime:": "runtime"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class EnvRef:
    """One env var value: `text` is the value (literal), a variable's name (host, runtime)
    or a Lepton secret's name (secret)."""

    kind: EnvKind
    text: str

    def shown(self) -> str:
        """As the launcher writes it (a host value is never shown, only its name)."""
        prefix = {"literal": "lit:", "host": "host:", "runtime": "runtime:", "secret": "secret:"}
        return prefix[self.kind] + self.text


def parse_env(raw: Any, where: str, legacy: Legacy = "host") -> EnvRef:
    """The meaning of one configured value (`where` names its key in errors)."""
    if isinstance(raw, Mapping) or hasattr(raw, "value_from"):
        value_from = raw["value_from"] if isinstance(raw, Mapping) else raw.value_from
        name = (
            value_from.get("secret_name_ref")
            if isinstance(value_from, Mapping)
            else getattr(value_from, "secret_name_ref", None)
        )
        return EnvRef("secret", str(name))
    if isinstance(raw, bool):
        return EnvRef("literal", str(raw).lower())
    if not isinstance(raw, str):
        return EnvRef("literal", str(raw))
    for prefix, kind in _PREFIXES.items():
        if raw.startswith(prefix):
            text = raw[len(prefix) :]
            if kind != "literal" and not _NAME.match(text):
                raise ConfigError(
                    f"{where}: {prefix}{text!r} must name a variable (letters, digits and '_')"
                )
            return EnvRef(kind, text)
    stripped = raw.strip()
    dollar = stripped[1:] if stripped.startswith("$") else None
    if dollar is not None and _NAME.match(dollar):
        return EnvRef("host" if legacy == "host" else "runtime", dollar)
    if legacy == "host" and _NAME.match(stripped) and not stripped.isdigit():
        return EnvRef("host", stripped)
    return EnvRef("literal", raw)


def host_value(ref: EnvRef, where: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value a job gets from the launching machine: a literal as it is, a host
    variable read now (an error naming `where` when it is not set), None for the job's own
    (runtime) variables and Lepton secrets."""
    if ref.kind == "literal":
        return ref.text
    if ref.kind != "host":
        return None
    environ = os.environ if environ is None else environ
    if ref.text not in environ:
        raise ConfigError(
            f"{where}: host:{ref.text} is not set in this environment "
            f"(export {ref.text}=..., or write lit:<value> for a literal value)"
        )
    return environ[ref.text]


def _execution_env(config: RunConfig, part: str) -> Mapping[str, Any]:
    """`execution.env_vars`: flat (every job), or the launcher's nested
    `{deployment, evaluation, export}` (the `part` asked)."""
    env = getattr(config.execution, "env_vars", None) or {}
    nested = getattr(type(env), "model_fields", None) is not None
    if nested:
        return getattr(env, part, None) or {}
    return env


def job_env(config: RunConfig, index: int) -> dict[str, tuple[str, EnvRef]]:
    """A task's env, name → (config key, meaning), weakest first: `env_vars`,
    `execution.env_vars` (flat, or its `evaluation`), `evaluation.env_vars`, the task's."""
    nested = (
        getattr(type(getattr(config.execution, "env_vars", None)), "model_fields", None) is not None
    )
    out = _layered(
        [
            ("env_vars", config.env_vars),
            (
                "execution.env_vars.evaluation" if nested else "execution.env_vars",
                _execution_env(config, "evaluation"),
            ),
        ],
        "literal",
    )
    out.update(
        _layered(
            [
                ("evaluation.env_vars", config.evaluation.env_vars),
                (f"evaluation.tasks[{index}].env_vars", config.evaluation.tasks[index].env_vars),
            ],
            "host",
        )
    )
    dataset_dir = config.evaluation.tasks[index].dataset_dir
    if dataset_dir:
        # The launcher mounts it and names the mount here; a task here reads it in place.
        key = f"evaluation.tasks[{index}].dataset_dir"
        out["NEMO_EVALUATOR_DATASET_DIR"] = (key, EnvRef("literal", dataset_dir))
    out.update(endpoint_url_env(config))
    return out


# Carries a URL's credentials (`user:password@`, `?api-key=…`) to the job: job.json, the
# store and config.yaml hold the URL with them as *** (contract.spec.EndpointSpec.url_env).
# A secret-looking name, so that Slurm hands it over as it does other secrets (sbatch's
# stdin, never the script).
ENDPOINT_URL_ENV = "EVALFLEET_ENDPOINT_URL_SECRET"


def endpoint_url_env(
    config: RunConfig, environ: Mapping[str, str] | None = None
) -> dict[str, tuple[str, EnvRef]]:
    """The job env entry that carries `target.api_endpoint.url` when it holds credentials
    (none otherwise). From a stored config, whose URL shows them as ***, the value is this
    shell's `$EVALFLEET_ENDPOINT_URL_SECRET` when set (a resume), else the redacted URL,
    which the job refuses with a line saying what to export."""
    from evalfleet.config.redact import REDACTED, url_secrets

    url = config.target.api_endpoint.url
    if config.deployment.type != "none" or not url:
        return {}
    secrets = url_secrets(url)
    if not secrets:
        return {}
    where = "target.api_endpoint.url"
    environ = os.environ if environ is None else environ
    if REDACTED in secrets and ENDPOINT_URL_ENV in environ:
        return {ENDPOINT_URL_ENV: (where, EnvRef("host", ENDPOINT_URL_ENV))}
    return {ENDPOINT_URL_ENV: (where, EnvRef("literal", url))}


def server_env(config: RunConfig, key: str = "deployment") -> dict[str, tuple[str, EnvRef]]:
    """A server's env (`key`: deployment or judge_deployment), weakest first: `env_vars`,
    `execution.env_vars` (flat, or its `deployment`), the section's own `env_vars`."""
    nested = (
        getattr(type(getattr(config.execution, "env_vars", None)), "model_fields", None) is not None
    )
    section = getattr(config, key, None)
    sections: list[tuple[str, Mapping[str, Any]]] = [
        ("env_vars", config.env_vars),
        (
            "execution.env_vars.deployment" if nested else "execution.env_vars",
            _execution_env(config, "deployment"),
        ),
        (f"{key}.env_vars", getattr(section, "env_vars", None) or {}),
    ]
    return _layered(sections, "literal")


def _layered(
    sections: list[tuple[str, Mapping[str, Any]]], legacy: Legacy
) -> dict[str, tuple[str, EnvRef]]:
    out: dict[str, tuple[str, EnvRef]] = {}
    for where, env in sections:
        for name, raw in env.items():
            key = f"{where}.{name}"
            out[name] = (key, parse_env(raw, key, legacy))
    return out
