"""Secret values never reach the printed config, plan.json or the plan's scripts."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from pathlib import Path

import pytest

from evalfleet.config.redact import is_secret_key, redact, redact_url, scrub, secret_values
from evalfleet.contract.spec import read_job
from evalfleet.exceptions import ConfigError
from tests.engine.conftest import N_SAMPLES, oracle, write_dataset

SECRET = "sk-live-0123456789abcdef"


@pytest.mark.parametrize("key", ["HF_TOKEN", "api_key", "OPENAI_API_KEY", "password", "MY_SECRET"])
def test_secret_looking_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["api_key_name", "secret_name_ref", "token_name_ref", "api_key_secret", "url"]
)
def test_keys_that_hold_names_are_not_secrets(key):
    assert not is_secret_key(key)


# The launcher's `config.params.extra.tokenizer` names a model (its local_vllm_logprobs
# example): hidden, the dry run showed the served model name as *** everywhere.
@pytest.mark.parametrize(
    "key", ["tokenizer", "tokenizer_backend", "TOKENIZERS_PARALLELISM", "author"]
)
def test_tokenizers_and_authors_are_not_secrets(key):
    assert not is_secret_key(key)


@pytest.mark.parametrize("key", ["HF_AUTH_TOKEN", "tokenizer_api_key"])
def test_a_secret_stays_secret_beside_those_words(key):
    assert is_secret_key(key)


def test_redact_keeps_references():
    config = {"envs": {"HF_TOKEN": {"value_from": {"secret_name_ref": "HF"}}, "API_KEY": SECRET}}
    assert redact(config) == {
        "envs": {"HF_TOKEN": {"value_from": {"secret_name_ref": "HF"}}, "API_KEY": "***"}
    }


@pytest.mark.parametrize("executor", ["local", "lepton", "slurm"])
def test_dry_run_never_shows_a_literal_secret(cli, write_yaml, executor):
    lepton_key = (
        ", lepton_platform: {tasks: {env_vars: {MY_KEY: {value_from: {secret_name_ref: K}}}}}"
        if executor == "lepton"
        else ""
    )
    path = write_yaml(
        f"""\
target: {{api_endpoint: {{url: "https://h/v1", model_id: m, api_key_name: MY_KEY}}}}
execution: {{type: {executor}, output_dir: /tmp/out, env_vars: {{WANDB_API_KEY: "{SECRET}"}}{lepton_key}}}
env_vars: {{HF_TOKEN: "{SECRET}"}}
evaluation: {{env_vars: {{OPENAI_API_KEY: "{SECRET}"}}, tasks: [{{name: gsm8k}}]}}
"""
    )
    plan_out = Path("plan.json")
    text = cli("run", "--config", str(path), "--dry-run", "--plan-out", str(plan_out))
    assert text.code == 0, text.err
    as_json = cli("run", "--config", str(path), "--dry-run", "--json", "--plan-out", str(plan_out))
    assert as_json.code == 0
    for output in (text.out, text.err, as_json.out, plan_out.read_text()):
        assert SECRET not in output
    assert "***" in json.dumps(json.loads(as_json.out)["config"])


def test_a_reference_to_a_variable_is_shown_a_literal_is_not():
    config = {
        "env_vars": {"HF_TOKEN": "host:HF_TOKEN", "API_KEY": "runtime:KEY", "PASSWORD": "lit:x"}
    }
    assert redact(config) == {
        "env_vars": {"HF_TOKEN": "host:HF_TOKEN", "API_KEY": "runtime:KEY", "PASSWORD": "***"}
    }
    assert redact({"HF_TOKEN": "host:not a name"}) == {"HF_TOKEN": "***"}


# ----------------------------------------------------------------- credentials in a URL

PASSWORD = "pw-Zq81Xv0TopSecret"
QUERY_KEY = "qk-77HidDenKeyValue"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"https://user:{PASSWORD}@h:8443/v1?api-version=2024-06-01&api-key={QUERY_KEY}",
            "https://user:***@h:8443/v1?api-version=2024-06-01&api-key=***",
        ),
        (f"https://{QUERY_KEY}@h/v1", "https://***@h/v1"),
        (
            f"https://h/v1/chat/completions?key={QUERY_KEY}&sig={PASSWORD}&code=c0de&x=1",
            "https://h/v1/chat/completions?key=***&sig=***&code=***&x=1",
        ),
        (f"https://h/v1?access_token={QUERY_KEY}", "https://h/v1?access_token=***"),
        ("https://h/v1?api-version=2024-06-01", "https://h/v1?api-version=2024-06-01"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("no url: user:pass@ in words", "no url: user:pass@ in words"),
    ],
)
def test_a_urls_credentials_are_hidden_and_the_rest_kept(url, shown):
    assert redact_url(url) == shown
    assert redact({"target": {"api_endpoint": {"url": url}}})["target"]["api_endpoint"] == {
        "url": shown
    }
    assert PASSWORD not in shown and QUERY_KEY not in shown


def test_a_urls_credentials_are_scrubbed_from_a_plan():
    url = f"https://user:{PASSWORD}@h/v1?api-key={QUERY_KEY}"
    hidden = secret_values({"target": {"api_endpoint": {"url": url}}})
    assert hidden == {PASSWORD, QUERY_KEY}
    assert scrub({"script": f"X={url}"}, hidden) == {
        "script": "X=https://user:***@h/v1?api-key=***"
    }


@pytest.mark.parametrize("executor", ["local", "lepton", "slurm"])
def test_dry_run_never_shows_a_urls_credentials(cli, write_yaml, executor):
    path = write_yaml(
        f"""\
target: {{api_endpoint: {{url: "https://user:{PASSWORD}@h/v1?api-version=1&api-key={QUERY_KEY}", model_id: m}}}}
execution: {{type: {executor}, output_dir: /tmp/out}}
evaluation: {{tasks: [{{name: gsm8k}}]}}
"""
    )
    plan_out = Path("plan.json")
    text = cli("run", "--config", str(path), "--dry-run", "--plan-out", str(plan_out))
    assert text.code == 0, text.err
    as_json = cli("run", "--config", str(path), "--dry-run", "--json", "--plan-out", str(plan_out))
    assert as_json.code == 0, as_json.err
    for output in (text.out, text.err, as_json.out, as_json.err, plan_out.read_text()):
        assert PASSWORD not in output and QUERY_KEY not in output
    shown = json.loads(as_json.out)
    assert shown["config"]["target"]["api_endpoint"]["url"] == (
        "https://user:***@h/v1?api-version=1&api-key=***"
    )


def _job_file(tmp_path: Path, url: str, url_env: str | None = "URL_VAR") -> Path:
    endpoint = {"url": url, "model_id": "m", "type": "chat"}
    if url_env:
        endpoint["url_env"] = url_env
    path = tmp_path / "job.json"
    spec = {"invocation_id": "i", "job_id": "j", "task": "gsm8k", "output_dir": str(tmp_path),
            "endpoint": endpoint, "params": {}}  # fmt: skip
    path.write_text(json.dumps(spec))
    return path


def test_the_job_sends_to_the_url_its_environment_carries(tmp_path):
    shown = "https://user:***@h:8443/v1/chat/completions?api-version=1&api-key=***"
    path = _job_file(tmp_path, shown)
    full = f"https://user:{PASSWORD}@h:8443/v1?api-version=1&api-key={QUERY_KEY}"
    job = read_job(path, {"URL_VAR": full})
    assert job.endpoint.url == shown  # what every message and file shows
    assert job.endpoint.request_url == (
        f"https://user:{PASSWORD}@h:8443/v1/chat/completions?api-version=1&api-key={QUERY_KEY}"
    )
    assert PASSWORD not in job.model_dump_json()


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({}, "URL_VAR is not set in the environment"),
        ({"URL_VAR": "https://user:x@other:8443/v1"}, "holds a URL for another host"),
        ({"URL_VAR": "https://user:***@h:8443/v1?api-key=***"}, "export URL_VAR=<the URL"),
    ],
)
def test_a_job_without_its_urls_credentials_stops_with_one_line(tmp_path, environ, says):
    path = _job_file(tmp_path, "https://user:***@h:8443/v1/chat/completions?api-key=***")
    with pytest.raises(ConfigError) as caught:
        read_job(path, environ)
    (line,) = str(caught.value).splitlines()
    assert says in line and "endpoint.url_env" in line


class _AuthCheckingEndpoint:
    """A raw asyncio HTTP/1.1 chat endpoint (in a thread) that answers only requests
    carrying the URL's credentials: Basic auth from `user:password@` and `api-key` in the
    query; anything else gets a 401."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.authorized = 0
        self.refused: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> _AuthCheckingEndpoint:
        self._thread.start()
        assert self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _serve(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        for writer in list(self._writers):
            writer.close()
        await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._writers.add(writer)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                target = head[0].split(" ")[1]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in head[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                expected = "Basic " + base64.b64encode(f"user:{PASSWORD}".encode()).decode()
                wanted = f"/v1/chat/completions?api-version=2024-06-01&api-key={QUERY_KEY}"
                if target != wanted or headers.get("authorization") != expected:
                    self.refused.append(target)
                    reply, status = b'{"error": {"message": "unauthorized"}}', "401 Unauthorized"
                else:
                    self.authorized += 1
                    prompt = json.loads(body)["messages"][-1]["content"]
                    content = self.answers.get(prompt, "I am not sure.")
                    reply = json.dumps({
                        "id": "x", "object": "chat.completion", "model": "m",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }).encode()  # fmt: skip
                    status = "200 OK"
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(reply)}\r\n\r\n".encode()
                    + reply
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def test_a_urls_credentials_reach_the_endpoint_and_nothing_else(cli, write_yaml, tmp_path):
    dataset = write_dataset(tmp_path)
    with _AuthCheckingEndpoint(oracle()) as endpoint:
        url = (
            f"http://user:{PASSWORD}@127.0.0.1:{endpoint.port}/v1"
            f"?api-version=2024-06-01&api-key={QUERY_KEY}"
        )
        path = write_yaml(
            f"""\
target: {{api_endpoint: {{url: "{url}", model_id: m}}}}
execution: {{type: local, output_dir: results}}
evaluation:
  params: {{parallelism: 4, max_retries: 0}}
  tasks: [{{name: adds, dataset: {{path: {dataset}}}, scorer: numeric}}]
"""
        )
        run = cli("run", "--config", str(path))
        status = cli("status", run.out.strip().splitlines()[-1], "--json")
        exported = cli("export", run.out.strip().splitlines()[-1], "--output-dir", "exported")
        logs = cli("logs", run.out.strip().splitlines()[-1])
    assert run.code == 0, run.err
    assert endpoint.authorized == N_SAMPLES and not endpoint.refused
    (row,) = json.loads(status.out)
    assert row["state"] == "SUCCESS", row
    assert exported.code == 0, exported.err
    shown = [
        run.out,
        run.err,
        status.out,
        status.err,
        exported.out,
        exported.err,
        logs.out,
        logs.err,
    ]
    for text in shown:
        assert PASSWORD not in text and QUERY_KEY not in text
    home = Path(os.environ["EVALFLEET_HOME"])
    files = [p for root in (Path("results"), Path("exported"), home) for p in root.rglob("*")]
    files = [p for p in files if p.is_file()]
    assert any(p.name == "store.sqlite" or p.suffix == ".sqlite" for p in files), files
    assert any(p.name == "job.json" for p in files) and any(p.name == "eval.log" for p in files)
    for file in files:
        data = file.read_bytes()
        assert PASSWORD.encode() not in data and QUERY_KEY.encode() not in data, file
    (job_file,) = Path("results").rglob("job.json")
    endpoint_spec = json.loads(job_file.read_text())["endpoint"]
    assert endpoint_spec["url_env"] == "EVALFLEET_ENDPOINT_URL_SECRET"
    assert endpoint_spec["url"].endswith("/v1/chat/completions?api-version=2024-06-01&api-key=***")
    (config_yaml,) = Path("results").rglob("config.yaml")
    assert "user:***@127.0.0.1" in config_yaml.read_text()
