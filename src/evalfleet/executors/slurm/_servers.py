"""How a batch script starts one server with srun: on which nodes, in which container,
with which command — as NeMo Evaluator Launcher lays it out (its slurm executor), in
evalfleet's own code.

- `execution.num_nodes` nodes carry `execution.num_instances` independent instances of
  num_nodes / num_instances nodes each; one srun per instance starts
  `execution.deployment.n_tasks / num_instances` tasks over that instance's nodes. Each task
  gets PROC_ID (its rank in the instance), MASTER_IP (the instance's first node),
  NODES_PER_INSTANCE and ALL_NODE_IPS, which multi-node commands use (vLLM data parallel,
  vllm_ray's head and workers).
- With an image (`deployment.image`, or `execution.container_image`) the server runs in it:
  pyxis (`srun --container-image`) or apptainer (`apptainer exec --nv`), with the
  checkpoint at /checkpoint, cache_path at /cache and `execution.mounts.deployment`; it runs
  `deployment.command` (vllm/sglang/trtllm: `base_command`) through bash, after `pre_cmd`.
- With more than one instance an HAProxy (`execution.proxy`) on the first node spreads the
  requests over the instances' heads; the tasks call it.

Every value is quoted with `shlex.quote`; only the shell's own variables are expanded.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalfleet.exceptions import ConfigError

if TYPE_CHECKING:
    from evalfleet.deployments.servers import ServerSpec
    from evalfleet.executors.slurm.config import SlurmExecution

q = shlex.quote
HAPROXY_CONFIG_IN_IMAGE = "/usr/local/etc/haproxy/haproxy.cfg"
# A judge on nodes of its own: its address, exported for the tasks' job.json judge URL.
JUDGE_HOST_VAR = "EVALFLEET_JUDGE_HOST"


@dataclass(frozen=True)
class Placement:
    """Where a server runs: its first node in the allocation, nodes and instances."""

    first_node: int
    nodes: int
    instances: int
    tasks: int  # srun tasks per instance

    @property
    def nodes_per_instance(self) -> int:
        return self.nodes // self.instances

    @property
    def simple(self) -> bool:
        """One node, one instance, one task: the batch node itself."""
        return self.nodes == 1 and self.instances == 1 and self.tasks == 1


def model_placement(execution: SlurmExecution) -> Placement:
    total = execution.deployment.n_tasks or execution.num_nodes
    if total % execution.num_instances:
        raise ConfigError(
            f"execution.deployment.n_tasks: {total} tasks cannot be split over "
            f"{execution.num_instances} instances"
        )
    return Placement(
        0, execution.num_nodes, execution.num_instances, total // execution.num_instances
    )


def judge_placement(execution: SlurmExecution, judge: Any) -> Placement:
    """Beside the model on the batch node, or (`num_nodes`, as the launcher places an
    auxiliary deployment) on nodes of its own after the model's."""
    if not judge.num_nodes:
        return Placement(0, 1, 1, 1)
    total = judge.n_tasks or judge.num_nodes
    if judge.num_nodes % judge.num_instances or total % judge.num_instances:
        raise ConfigError(
            f"judge_deployment.num_nodes: {judge.num_nodes} nodes cannot be split over "
            f"{judge.num_instances} instances"
        )
    if judge.num_instances > 1:
        raise ConfigError("judge_deployment.num_instances: one judge instance is supported")
    return Placement(execution.num_nodes, judge.num_nodes, 1, total)


def image_of(execution: SlurmExecution, server: ServerSpec) -> str | None:
    """`execution.container_image` replaces a server's image, except NIM's (the server)."""
    if server.type == "nim":
        return server.image
    return execution.container_image or server.image


def launch_lines(
    execution: SlurmExecution,
    server: ServerSpec,
    var: str,
    placement: Placement,
    env: list[tuple[str, str]],
    secret_names: list[str],
    mounts: dict[str, str],
) -> list[str]:
    """Shell lines that start the server's sruns in the background: `${var}_pids` holds one
    srun per instance, each leading its own process group (setsid), and `${var}_heads` the
    address of each instance's first node. `env` is (name, shell word) for the server;
    `secret_names` are in the job's environment already."""
    image = image_of(execution, server)
    in_container = image is not None
    lines: list[str] = [f"{var}_pids=()", f"{var}_heads=()"]
    env_names = sorted({name for name, _ in env} | set(secret_names))
    if placement.simple and not in_container and not server.pre_cmd:
        # The batch node itself, as evalfleet has always run a CPU or local server.
        lines += [
            "(",
            *_exports(env),
            f"  exec setsid srun --ntasks=1 --nodes=1 --overlap {shlex.join(server.argv)}",
            f') </dev/null >"${var}_log" 2>&1 &',
            f"{var}_pids+=($!)",
            f"{var}_heads+=(127.0.0.1)",
        ]
        return lines
    npi = placement.nodes_per_instance
    lines += [
        f'{var}_nodes=("${{evalfleet_nodes[@]:{placement.first_node}:{placement.nodes}}}")',
        f"{var}_ips=()",
        f'for node in "${{{var}_nodes[@]}}"; do',
        # The batch shell runs on the allocation's first node: ask that one directly.
        '  if [[ "$node" == "${evalfleet_nodes[0]}" ]]; then',
        f"    {var}_ips+=(\"$(hostname --ip-address | awk '{{print $1}}')\")",
        "  else",
        f'    {var}_ips+=("$(srun --nodelist="$node" --nodes=1 --ntasks=1 --overlap '
        "hostname --ip-address | awk '{print $1}')\")",
        "  fi",
        "done",
        f'echo "evalfleet: {var} nodes: ${{{var}_nodes[*]}} (${{{var}_ips[*]}})" >&2',
        f"for ((g = 0; g < {placement.instances}; g++)); do",
        f'  {var}_nodelist=$(IFS=,; echo "${{{var}_nodes[*]:g * {npi}:{npi}}}")',
        # One instance on the batch node: the tasks reach it as 127.0.0.1.
        f'  {var}_heads+=("${{{var}_ips[g * {npi}]}}")'
        if placement.instances > 1 or placement.first_node > 0
        else f"  {var}_heads+=(127.0.0.1)",
        f'  {var}_instance_log="${{{var}_log%.log}}$( ((g == 0)) || echo "-$g").log"',
        "  (",
        *(f"  {line}" for line in _exports(env)),
        f'    export MASTER_IP="${{{var}_ips[g * {npi}]}}"',
        f'    export ALL_NODE_IPS=$(IFS=,; echo "${{{var}_ips[*]}}")',
        *(
            f'    export APPTAINERENV_{name}="${{{name}}}"'
            for name in [*env_names, "MASTER_IP", "ALL_NODE_IPS"]
            if in_container and execution.container_runtime == "apptainer"
        ),
        *_srun(execution, server, image, placement, env_names, mounts, var),
        f'  ) </dev/null >"${var}_instance_log" 2>&1 &',
        f"  {var}_pids+=($!)",
        "done",
    ]
    if var == "judge_server" and placement.first_node > 0:
        lines.append(f'export {JUDGE_HOST_VAR}="${{{var}_heads[0]}}"')
    return lines


def _exports(env: list[tuple[str, str]]) -> list[str]:
    return [f"  export {name}={word}" for name, word in env]


def _srun(
    execution: SlurmExecution,
    server: ServerSpec,
    image: str | None,
    placement: Placement,
    env_names: list[str],
    mounts: dict[str, str],
    var: str,
) -> list[str]:
    flags = [
        "--overlap",
        f'--nodelist="${var}_nodelist"',
        f"--nodes={placement.nodes_per_instance}",
        f"--ntasks={placement.tasks}",
    ]
    inner = ["bash", "-c", inner_script(server, placement, image is not None)]
    words: list[str] = []
    if image is None:
        words = inner
    elif execution.container_runtime == "pyxis":
        flags.insert(0, "--mpi=pmix")
        flags.append(f"--container-image={q(image)}")
        if mounts:
            flags.append(f"--container-mounts={q(_mount_list(mounts))}")
        if not execution.mounts.mount_home:
            flags.append("--no-container-mount-home")
        # pyxis keeps an image's own value of a variable unless it is named here.
        names = sorted({*env_names, "MASTER_IP", "ALL_NODE_IPS"})
        flags.append(f"--container-env={','.join(names)}")
        words = inner
    else:
        apptainer = ["apptainer", "exec", "--nv"]
        if not execution.mounts.mount_home:
            apptainer.append("--no-home")
        if mounts:
            apptainer += ["--bind", _mount_list(mounts)]
        words = [*apptainer, apptainer_image(image), *inner]
    return [
        f"    exec setsid srun {' '.join(flags)} \\",
        f"      {shlex.join(words)}",
    ]


def inner_script(server: ServerSpec, placement: Placement, in_container: bool) -> str:
    """What each srun task runs: the launcher's environment for multi-node commands, then
    `pre_cmd` (it may export), then the server's command, all in one bash."""
    command = server.container_script() if in_container else shlex.join(server.argv)
    parts = [
        f"export PROC_ID=${{SLURM_PROCID:-0}} NODES_PER_INSTANCE={placement.nodes_per_instance}"
    ]
    if server.pre_cmd:
        parts.append(
            "{\n" + server.pre_cmd.rstrip("\n") + '\n} || { echo "pre_cmd failed" >&2; exit 1; }'
        )
    parts.append(command)
    return "\n".join(parts)


def _mount_list(mounts: dict[str, str]) -> str:
    return ",".join(f"{source}:{target}" for source, target in mounts.items())


def apptainer_image(image: str) -> str:
    """A registry image as apptainer names it (docker://...); a file or URI as it is."""
    if "://" in image or image.startswith(("/", "./")) or image.endswith((".sif", ".sqsh")):
        return image
    return f"docker://{image}"


def server_mounts(
    execution: SlurmExecution, server: ServerSpec, extra: dict[str, str]
) -> dict[str, str]:
    """The container's mounts: the checkpoint (read-only) and cache, then `extra`."""
    mounts = {source: target for source, target in server.mounts}
    mounts.update(extra)
    bad = [f"{s}:{t}" for s, t in mounts.items() if "," in s + t]
    if bad:
        raise ConfigError(f"execution.mounts: a path contains ',' ({bad[0]!r})")
    return mounts


def proxy_lines(
    execution: SlurmExecution, var: str, port: int, health_path: str, cfg_path: str, log: str
) -> list[str]:
    """An HAProxy on the batch node in front of `${var}_heads` (the instances' heads)."""
    proxy = execution.proxy
    cfg = proxy.config
    header = [
        "global",
        "    maxconn 4096",
        "defaults",
        "    mode http",
        "    timeout connect 10s",
        "    timeout client 100000s",
        "    timeout server 100000s",
        "frontend evalfleet_frontend",
        f"    bind *:{cfg.haproxy_port}",
        "    default_backend evalfleet_servers",
        "backend evalfleet_servers",
        f"    option httpchk GET {cfg.health_check_path or health_path}",
        f"    http-check expect status {cfg.health_check_status}",
        "    option http-server-close",
        "    balance leastconn",
    ]
    image = proxy.image
    if execution.container_runtime == "pyxis":
        launch = (
            f'srun --overlap --nodes=1 --ntasks=1 --nodelist="${{evalfleet_nodes[0]}}" '
            f"--container-image={q(image)} "
            f"--container-mounts={q(f'{cfg_path}:{HAPROXY_CONFIG_IN_IMAGE}:ro')} "
            f"haproxy -f {HAPROXY_CONFIG_IN_IMAGE}"
        )
    else:
        launch = (
            f'srun --overlap --nodes=1 --ntasks=1 --nodelist="${{evalfleet_nodes[0]}}" '
            f"apptainer exec --bind {q(f'{cfg_path}:{HAPROXY_CONFIG_IN_IMAGE}:ro')} "
            f"{q(apptainer_image(image))} haproxy -f {HAPROXY_CONFIG_IN_IMAGE}"
        )
    return [
        "{",
        *(f"  echo {q(line)}" for line in header),
        f'  for i in "${{!{var}_heads[@]}}"; do',
        f'    echo "    server instance$i ${{{var}_heads[$i]}}:{port} check"',
        "  done",
        f"}} >{q(cfg_path)}",
        f"proxy_log={q(log)}",
        'echo "evalfleet: starting the proxy; log: $proxy_log" >&2',
        f'(exec setsid {launch}) </dev/null >"$proxy_log" 2>&1 &',
        "proxy_pid=$!",
    ]


def describe(execution: SlurmExecution, server: ServerSpec, placement: Placement) -> dict[str, Any]:
    """What the plan shows of a server's placement."""
    image = image_of(execution, server)
    return {
        "nodes": placement.nodes,
        "instances": placement.instances,
        "tasks_per_instance": placement.tasks,
        "container": None
        if image is None
        else {"runtime": execution.container_runtime, "image": image},
    }
