"""A task run by its NeMo Evaluator framework package: `evalfleet eval` for a job with
`harness` set.

What nemo-evaluator does for the launcher, evalfleet does here, with its own parts:
the package's virtualenv (`environment.py`, built once and cached), the adapter proxy
(`proxy.py`: the harness's model URL; response cache, retries, adaptive concurrency,
interceptors, request log), the command the package's framework.yml renders
(`command.py`, byte-identical to nemo-evaluator's), then the package's own
`core_evals/<pkg>/output.py` parses what the harness wrote, and evalfleet writes
`results.json` and `samples.jsonl` in its usual form.

The harness runs under `bash` in the job's `harness/` directory (its `config.output_dir`),
in evalfleet eval's process group, and dies with it (PR_SET_PDEATHSIG), so a killed job
leaves no harness sending requests. Killed and resumed, it starts again from the top:
every request it had an answer to is answered from the proxy's cache, none is sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from evalfleet._children import die_with_parent
from evalfleet.config._merge import deep_merge
from evalfleet.contract import EXIT_OK, EXIT_SAMPLE_ERRORS
from evalfleet.contract.spec import HarnessSpec, JobSpec
from evalfleet.engine.environ import job_environ
from evalfleet.engine.transport import TlsSettings
from evalfleet.exceptions import HarnessError

HARNESS_DIR = "harness"
"""The harness's own output directory (its `config.output_dir`) inside the job's."""


def harness_of(job: JobSpec) -> HarnessSpec:
    assert job.harness is not None, "a harness job has job.harness"
    return job.harness


async def run_harness_job(job: JobSpec, progress: Any = None) -> tuple[dict[str, Any], int]:
    """Run the job's framework package through the adapter proxy; (results, exit code)."""
    from evalfleet.engine.cache import ResponseCache
    from evalfleet.engine.client import endpoint_api_key
    from evalfleet.engine.interceptors import build_interceptors
    from evalfleet.engine.results import write_results
    from evalfleet.harness.command import render_command
    from evalfleet.harness.environment import ensure_environment
    from evalfleet.harness.proxy import AdapterProxy, Upstream

    spec = harness_of(job)
    name = f"{spec.harness}.{spec.task}"
    # Absolute: the harness runs in its own directory (a Lepton job's is relative).
    output_dir = Path(job.output_dir).absolute()
    harness_dir = output_dir / HARNESS_DIR
    logs = output_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    harness_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if progress is not None:
        progress.task = job.task
    _eval_log(logs, f"{name}: preparing {spec.package}=={spec.version}")
    _check_offline(name, spec)
    try:
        venv = await asyncio.to_thread(
            ensure_environment, spec.package, spec.version, log=lambda line: _eval_log(logs, line)
        )
    except HarnessError as exc:
        raise HarnessError(f"{name}: {exc}") from None
    api_key = endpoint_api_key(job.endpoint.api_key_name)
    params = job.params
    try:
        merged = _write_run_config(job, spec, harness_dir)
    except ValueError as exc:
        raise HarnessError(f"{name}: {exc}") from None
    # The judge as the package will call it, its own defaults included, so that no judge
    # call bypasses the proxy.
    judge_url, judge_key_name = _judge_settings(merged)
    stand_ins = []
    if judge_key_name and judge_key_name not in job_environ():
        stand_ins.append(judge_key_name)  # the package's client wants one; the proxy has none
    interceptors = build_interceptors(job.interceptors, "job.interceptors")
    model = Upstream(
        url=job.endpoint.request_url,  # with the credentials `url` hides
        api_key=api_key,
        parallelism=params.parallelism,
        timeout_s=params.request_timeout,
        max_retries=params.max_retries,
        tls=TlsSettings(job.endpoint.ca_bundle, insecure=not job.endpoint.verify_tls),
    )
    judge = (
        Upstream(
            url=_chat_url(judge_url),
            api_key=job_environ().get(judge_key_name) if judge_key_name else None,
            parallelism=params.parallelism,
            timeout_s=params.request_timeout,
            max_retries=params.max_retries,
        )
        if judge_url
        else None
    )
    cache = ResponseCache(output_dir / "cache.sqlite")
    samples_path = output_dir / "samples.jsonl"
    samples_path.unlink(missing_ok=True)  # rewritten whole by this run (cached answers too)
    try:
        async with AdapterProxy(
            model, judge=judge, cache=cache, interceptors=interceptors, log_path=samples_path
        ) as proxy:
            run_config = _final_run_config(job, spec, harness_dir, proxy.url, proxy.judge_url)
            try:
                command = render_command(spec.harness, spec.task, run_config)
            except ValueError as exc:
                raise HarnessError(f"{name}: {exc}") from None
            script = logs / "harness_command.sh"
            script.write_text(command + "\n", encoding="utf-8")
            _eval_log(logs, f"{name}: running {command}")
            code = await _run_command(
                script, venv, harness_dir, logs / "harness.log", proxy, progress, stand_ins
            )
            stats = proxy.stats()
    finally:
        cache.close()
    if stats.get("cache_error"):  # answers still reached the harness; resuming would resend
        _eval_log(logs, f"{name}: WARNING the response cache failed: {stats['cache_error']}")
    if code != 0:
        raise HarnessError(
            f"{name}: the harness exited with code {code}: "
            f"{_last_meaningful_line(logs / 'harness.log')} (see {logs / 'harness.log'})"
        )
    parsed = await asyncio.to_thread(_parse_output, venv, spec, harness_dir, logs)
    results = build_harness_results(job, spec, parsed, stats, time.time() - started, command)
    write_results(output_dir / "results.json", results)
    errors = int(results["counts"]["errors"])
    _eval_log(logs, f"{name}: finished, {results['headline_metric']}")
    return results, (EXIT_SAMPLE_ERRORS if errors else EXIT_OK)


PROXY_PLACEHOLDER = "http://127.0.0.1:<proxy port>"


def preview_command(job: JobSpec) -> str:
    """The job's command with the proxy's URL as a placeholder (dry runs)."""
    from evalfleet.harness.command import merged_run_config, render_command

    spec = harness_of(job)
    harness_dir = Path(job.output_dir) / HARNESS_DIR
    original = _final_run_config(job, spec, harness_dir, job.endpoint.url, None)
    judge_url, _ = _judge_settings(merged_run_config(spec.harness, spec.task, original))
    judge = f"{PROXY_PLACEHOLDER}/judge" if judge_url else None
    run_config = _final_run_config(job, spec, harness_dir, PROXY_PLACEHOLDER, judge)
    return render_command(spec.harness, spec.task, run_config)


def _check_offline(name: str, spec: HarnessSpec) -> None:
    """With downloads off, a package environment that is not built yet is the same
    one-line error as missing benchmark data, with the same fix."""
    from evalfleet.datasets.cache import cache_dir, offline
    from evalfleet.harness.environment import environment_path, is_built

    if offline() and not is_built(spec.package, spec.version):
        where = environment_path(spec.package, spec.version)
        raise HarnessError(
            f"{name}: the {spec.package} {spec.version} environment is not built here "
            f"({where}) and downloads are off (EVALFLEET_OFFLINE); run `evalfleet data pull "
            f"{name}` on a machine with network and copy {cache_dir()} here at the same path "
            "(a virtualenv does not move), or build it where the jobs can see it"
        )


def _final_run_config(
    job: JobSpec, spec: HarnessSpec, harness_dir: Path, proxy_url: str, judge_url: str | None
) -> dict[str, Any]:
    """The run config as nemo-evaluator would see it once its adapter runs: the endpoint
    is the proxy (a base URL, as nemo-evaluator's adapter gives it), the judge too."""
    endpoint: dict[str, Any] = {
        "url": proxy_url,
        "model_id": job.endpoint.model_id,
        "type": job.endpoint.type,
    }
    if job.endpoint.api_key_name:
        endpoint["api_key_name"] = job.endpoint.api_key_name
    layer: dict[str, Any] = {
        "config": {"type": f"{spec.harness}.{spec.task}", "output_dir": str(harness_dir)},
        "target": {"api_endpoint": endpoint},
    }
    if judge_url:
        layer["config"]["params"] = {"extra": {"judge": {"url": judge_url}}}
    return deep_merge(spec.run_config, layer)


def _write_run_config(job: JobSpec, spec: HarnessSpec, harness_dir: Path) -> dict[str, Any]:
    """`run_config.yml`, which nemo-evaluator writes before the harness starts and some
    packages' output.py read: the merged configuration, with the endpoint's own URL (the
    adapter's is swapped in only for the command)."""
    import yaml

    from evalfleet.harness.command import merged_run_config

    original = _final_run_config(job, spec, harness_dir, job.endpoint.url, None)
    merged = merged_run_config(spec.harness, spec.task, original)
    merged["target"]["api_endpoint"]["adapter_config"] = None
    (harness_dir / "run_config.yml").write_text(yaml.dump(merged), encoding="utf-8")
    return merged


def _judge_settings(run_config: dict[str, Any]) -> tuple[str | None, str | None]:
    """The judge's URL and the name of its key's env var, where the run config sets them."""
    params = (run_config.get("config") or {}).get("params") or {}
    judge = (params.get("extra") or {}).get("judge") or {}
    if not isinstance(judge, dict):
        return None, None
    url = judge.get("url")
    key = judge.get("api_key_name") or judge.get("api_key")
    return (url if isinstance(url, str) and url else None), (key if isinstance(key, str) else None)


def _chat_url(url: str) -> str:
    """The judge's full chat URL: harnesses take an OpenAI base URL (…/v1) and append the
    path, while the proxy sends every judge request to one URL."""
    base = url.rstrip("/")
    return base if base.endswith("/completions") else base + "/chat/completions"


async def _run_command(
    script: Path,
    venv: Path,
    cwd: Path,
    log_path: Path,
    proxy: Any,
    progress: Any,
    stand_ins: list[str],
) -> int:
    env = dict(job_environ())
    for name in stand_ins:
        env.setdefault(name, "evalfleet-proxy")
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    # Clients that insist on a key get one; the proxy holds the endpoint's real key.
    env.setdefault("OPENAI_API_KEY", "evalfleet-proxy")
    from evalfleet.datasets.cache import offline

    if offline():  # the packages that read Hugging Face datasets then use their cache only
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("HF_DATASETS_OFFLINE", "1")
    with log_path.open("ab") as log, (log_path.parent / "eval.log").open("a") as eval_log:
        process = await asyncio.create_subprocess_exec(
            "bash",
            str(script),
            cwd=str(cwd),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent,
            limit=1 << 20,
        )
        assert process.stdout is not None
        pump = asyncio.ensure_future(_pump(process.stdout, log, eval_log))
        try:
            while True:
                try:
                    await asyncio.wait_for(asyncio.shield(pump), timeout=0.5)
                    return await process.wait()
                except asyncio.TimeoutError:
                    _show(progress, proxy)
        finally:
            if process.returncode is None:  # cancelled (Ctrl-C, SIGTERM): take it down
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), timeout=10)
                except asyncio.TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            _show(progress, proxy)


async def _pump(stream: asyncio.StreamReader, raw_log: Any, eval_log: Any) -> None:
    """The harness's output, as it comes: whole into harness.log, and line by line into
    eval.log, which `evalfleet logs` shows on every backend (a progress bar's redrawn
    line, `\r`-separated, counts as its last state)."""
    pending = b""
    while True:
        chunk = await stream.read(1 << 16)
        if chunk:
            raw_log.write(chunk)
            raw_log.flush()
            *lines, pending = (pending + chunk).split(b"\n")
        else:  # the end: what is left is the last line
            lines, pending = [pending], b""
        for line in lines:
            text = line.decode("utf-8", "replace").rsplit("\r", 1)[-1].rstrip()
            if text:
                eval_log.write(_log_line(f"harness | {text}"))
        eval_log.flush()
        if not chunk:
            return


def _show(progress: Any, proxy: Any) -> None:
    if progress is None:
        return
    stats = proxy.stats()
    progress.done = stats["answered"]
    progress.cached = stats["cached"]
    progress.errors = stats["errors"]
    progress.retries = stats["retries"]
    if progress.fetch_started is None and stats["received"]:
        progress.fetch_started = time.monotonic()


_PARSE = """
import importlib, json, sys
module = importlib.import_module(f"core_evals.{sys.argv[2]}.output")
result = module.parse_output(sys.argv[1])
dump = result.model_dump(exclude_none=True) if hasattr(result, "model_dump") else result
print("EVALFLEET_RESULT " + json.dumps(dump, default=str))
"""


def _parse_output(venv: Path, spec: HarnessSpec, harness_dir: Path, logs: Path) -> dict[str, Any]:
    """The package's own output.py, run by its own interpreter, on what the harness wrote."""
    import subprocess

    from evalfleet.harness.frameworks import framework

    pkg_name = framework(spec.harness).pkg_name
    completed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _PARSE, str(harness_dir), pkg_name],
        capture_output=True,
        text=True,
        check=False,
    )
    with (logs / "harness.log").open("a", encoding="utf-8") as log:
        log.write(completed.stderr)
    for line in completed.stdout.splitlines():
        if line.startswith("EVALFLEET_RESULT "):
            parsed: dict[str, Any] = json.loads(line.removeprefix("EVALFLEET_RESULT "))
            return parsed
    raise HarnessError(
        f"{spec.harness}.{spec.task}: its output.py could not read the harness's output: "
        f"{_last_meaningful_line_of(completed.stderr)}"
    )


def launcher_metrics(parsed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Metrics under the names NeMo Evaluator Launcher exports them
    (`<task>_<metric>[_<score>]`, groups first), each {value, stderr, n}."""
    metrics: dict[str, dict[str, Any]] = {}

    def visit(task: str, data: dict[str, Any]) -> None:
        for group, group_data in (data.get("groups") or {}).items():
            visit(f"{task}_{group}", group_data)
        for metric, metric_data in (data.get("metrics") or {}).items():
            for score, score_data in (metric_data.get("scores") or {}).items():
                key = f"{task}_{metric}" if score == metric else f"{task}_{metric}_{score}"
                stats = score_data.get("stats") or {}
                entry: dict[str, Any] = {"value": score_data.get("value")}
                if stats.get("stderr") is not None:
                    entry["stderr"] = stats["stderr"]
                if stats.get("count") is not None:
                    entry["n"] = stats["count"]
                metrics.setdefault(key, entry)

    for section in ("groups", "tasks"):
        for task, data in (parsed.get(section) or {}).items():
            visit(task, data)
    return metrics


def build_harness_results(
    job: JobSpec,
    spec: HarnessSpec,
    parsed: dict[str, Any],
    stats: dict[str, Any],
    wall_time_s: float,
    command: str,
) -> dict[str, Any]:
    from evalfleet.engine.results import results_header

    metrics = launcher_metrics(parsed)
    headline = next(iter(metrics), "")
    return {
        **results_header(job),
        "headline_metric": headline,
        "metrics": metrics,
        "counts": {
            "responses": stats["answered"],
            "scored": stats["answered"],
            "cached": stats["cached"],
            "errors": stats["errors"],
            "judge_requests": stats.get("judge_requests", 0),
        },
        "usage": stats.get("usage", {}),
        "latency_s": stats.get("latency_s", {}),
        "requests": {
            "requests": stats["forwarded"],
            "retries": stats["retries"],
            "throttled": stats["throttled"],
        },
        "wall_time_s": round(wall_time_s, 3),
        "params": job.params.model_dump(exclude_none=True),
        "harness": {
            "package": spec.package,
            "version": spec.version,
            "task": f"{spec.harness}.{spec.task}",
            "command": command,
            "results": parsed,
        },
        "versions": {"evalfleet": _evalfleet_version(), spec.package: spec.version},
    }


def _evalfleet_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evalfleet")
    except PackageNotFoundError:
        return "unknown"


def _last_meaningful_line(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    return _last_meaningful_line_of(text)


def _last_meaningful_line_of(text: str) -> str:
    """The line that says what went wrong: the last exception line, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception")) or head in ("ERROR", "Error", "error"):
            return line[:300]
    return lines[-1][:300] if lines else "(no output)"


def _log_line(message: str) -> str:
    """An INFO line in eval.log's format (the engine's logger's)."""
    return f"{time.strftime('%Y-%m-%d %H:%M:%S')},000 INFO {message}\n"


def _eval_log(logs: Path, message: str) -> None:
    with contextlib.suppress(OSError), (logs / "eval.log").open("a", encoding="utf-8") as log:
        log.write(_log_line(message))
