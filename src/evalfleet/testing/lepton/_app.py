"""The emulator's HTTP face: the workspace API routes, the endpoints' proxy, the test hooks.

- `{base}` = `/api/v2/workspaces/<ws>`: the routes of `reference/lepton-api.md` §2.2 that the
  SDK and evalfleet use (legacy `/deployments` family), Bearer-checked, errors as
  `{"code", "message"}`.
- `/ep/<deployment>/<path>`: a deployment's external endpoint, proxied to its model server;
  401 without one of the deployment's tokens, 503 until the deployment is Ready.
- `/_emulator/faults` (GET/POST), `/_emulator/live` and `/_emulator/requests` (counts by
  route; POST resets): for tests; no token needed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from evalfleet.testing.lepton._workspace import SHAPES, ApiError, Workspace

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Health paths of the server types; the endpoint simulator answers all of them at /health.
HEALTH_PATHS = ("health", "v1/health/ready", "health_generate")
WORKSPACE = web.AppKey("workspace", Workspace)
TOKEN = web.AppKey("token", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)
TASKS = web.AppKey("tasks", set)  # model servers being started: keep them referenced


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


@web.middleware
async def _api_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer check, injected 5xx bursts and ApiError → JSON, for the workspace API only."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    workspace = request.app[WORKSPACE]
    route = request.match_info.route.resource
    key = f"{request.method} {route.canonical if route is not None else request.path}"
    key = key.replace(f"/api/v2/workspaces/{workspace.workspace_id}", "")
    workspace.requests[key] = workspace.requests.get(key, 0) + 1
    if (
        request.headers.get("Authorization") != f"Bearer {request.app[TOKEN]}"
        or workspace.faults.token_revoked
    ):
        return _error(401, "Unauthorized", "invalid or missing workspace token")
    if workspace.faults.server_errors > 0:
        workspace.faults.server_errors -= 1
        return _error(503, "ServiceUnavailable", "injected fault: try again")
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.status, exc.code, exc.message)


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "InvalidBody", "request body is not JSON") from None


def _workspace(request: web.Request) -> Workspace:
    return request.app[WORKSPACE]


# --------------------------------------------------------------------------- workspace


async def workspace_info(request: web.Request) -> web.Response:
    ws = _workspace(request)
    return web.json_response({
        "build_time": "2026-01-01T00:00:00Z", "git_commit": "emulator",
        "workspace_name": ws.workspace_id, "workspace_tier": "enterprise",
        "workspace_state": "normal",
        "supported_shapes": {name: shape for name, shape in SHAPES.items()},
        "workspace_disk_usage_bytes": 0,
        "workloads": {"num_deployments": len(ws.deployments), "num_jobs": len(ws.jobs),
                      "num_pods": 0, "num_secrets": len(ws.secrets), "num_image_pull_secrets": 0},
        "resource_quota": {"limit": {"cpu": 64, "memory": 524288, "accelerator_num": 8},
                           "used": {"cpu": 0, "memory": 0, "accelerator_num": 0}},
        "features": {"enable_new_deployment_api": ws.faults.new_deployment_api, "enable_secure_endpoint_defaults": False},
    })  # fmt: skip


async def workspace_root(request: web.Request) -> web.Response:
    return web.json_response({"display_name": _workspace(request).workspace_id})


# --------------------------------------------------------------------------- deployments


async def list_deployments(request: web.Request) -> web.Response:
    return web.json_response([d.to_json() for d in _workspace(request).deployments.values()])


async def create_deployment(request: web.Request) -> web.Response:
    ws = _workspace(request)
    body = await _body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidBody", "expected a deployment object")
    deployment = ws.create_deployment(body)
    if deployment.forced_state == "Error":
        deployment.logs.add("replica 0: container exited with code 1 (emulated fault)")
        deployment.logs.add("RuntimeError: CUDA out of memory (emulated fault)")
    else:
        request.app[TASKS].add(request.app.loop.create_task(ws.start_model_server(deployment)))
    answer = deployment.to_json()
    answer["spec"] = deployment.spec  # the creating answer shows tokens once
    return web.json_response(answer)


async def get_deployment(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return web.json_response(_workspace(request).get_deployment(name).to_json())


async def delete_deployment(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return web.json_response(_workspace(request).delete_deployment(name).to_json())


async def deployment_events(request: web.Request) -> web.Response:
    deployment = _workspace(request).get_deployment(request.match_info["name"])
    state = deployment.state()
    events = [{"type": "Normal", "reason": "Scheduled", "count": 1,
               "regarding": {"kind": "Deployment", "name": deployment.name},
               "last_observed_time": "2026-01-01T00:00:00Z"}]  # fmt: skip
    if state == "Error":
        events.append({"type": "Warning", "reason": "BackOff", "count": 3,
                       "regarding": {"kind": "Pod", "name": f"{deployment.name}-0"},
                       "last_observed_time": "2026-01-01T00:00:05Z"})  # fmt: skip
    return web.json_response(events)


# --------------------------------------------------------------------------- jobs


def _page(request: web.Request) -> tuple[int, int | None]:
    try:
        page = int(request.query.get("page", "1"))
        size = request.query.get("page_size")
        return page, (int(size) if size is not None else None)
    except ValueError:
        raise ApiError(400, "InvalidQuery", "page and page_size must be integers") from None


async def list_jobs(request: web.Request) -> web.Response:
    mode = request.query.get("job_query_mode", "alive_only")
    jobs = _workspace(request).list_jobs(mode, request.query.get("q"))
    page, size = _page(request)
    if size is not None:
        jobs = jobs[(page - 1) * size : page * size]
    elif page > 1:
        jobs = []
    return web.json_response({"jobs": [job.to_json() for job in jobs]})


async def create_job(request: web.Request) -> web.Response:
    body = await _body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidBody", "expected a job object")
    return web.json_response(_workspace(request).create_job(body).to_json())


async def get_job(request: web.Request) -> web.Response:
    mode = request.query.get("job_query_mode", "alive_and_archive")
    return web.json_response(_workspace(request).get_job(request.match_info["id"], mode).to_json())


async def delete_job(request: web.Request) -> web.Response:
    mode = request.query.get("job_query_mode", "alive_only")
    job = _workspace(request).delete_job(request.match_info["id"], mode)
    return web.json_response(job.to_json())


# --------------------------------------------------------------------------- secrets


async def list_secrets(request: web.Request) -> web.Response:
    names = sorted(_workspace(request).secrets)
    return web.json_response([{"name": name, "visibility": "private"} for name in names])


async def create_secrets(request: web.Request) -> web.Response:
    body = await _body(request)
    items = body if isinstance(body, list) else [body]
    for item in items:
        if not isinstance(item, dict) or not item.get("name") or "value" not in item:
            raise ApiError(400, "InvalidSecret", "each secret needs a name and a value")
        _workspace(request).secrets[str(item["name"])] = str(item["value"])
    return web.json_response({})


async def delete_secret(request: web.Request) -> web.Response:
    if _workspace(request).secrets.pop(request.match_info["name"], None) is None:
        raise ApiError(404, "NotFound", f"secret {request.match_info['name']!r} not found")
    return web.json_response({})


# --------------------------------------------------------------------------- node groups


async def list_node_groups(request: web.Request) -> web.Response:
    return web.json_response(_workspace(request).node_groups)


async def list_nodes(request: web.Request) -> web.Response:
    group = request.match_info["id"]
    if group not in {g["metadata"]["id"] for g in _workspace(request).node_groups}:
        raise ApiError(404, "NotFound", f"node group {group!r} not found")
    return web.json_response([
        {"metadata": {"id": f"{group}-node-{i}"}, "spec": {"unschedulable": False}, "status": None}
        for i in range(2)
    ])  # fmt: skip


# --------------------------------------------------------------------------- logs


async def get_logs(request: web.Request) -> web.Response:
    """Loki-shaped: {"data": {"result": [{"stream": {...}, "values": [[ns, line]]}]}}."""
    ws = _workspace(request)
    query = request.query
    if "job" in query:
        job = ws.get_job(query["job"], query.get("job_query_mode", "alive_and_archive"))
        book, stream = job.logs, {"job": job.id, "job_name": job.name}
    elif "deployment" in query:
        name = query["deployment"]
        if name not in ws.deployment_logs:
            raise ApiError(404, "NotFound", f"deployment {name!r} not found")
        book, stream = ws.deployment_logs[name], {"deployment": name}
    else:
        raise ApiError(400, "InvalidQuery", "give job=<id> or deployment=<name>")
    try:
        start = int(query["start"]) if "start" in query else None
        end = int(query["end"]) if "end" in query else None
        limit = int(query.get("limit", "5000"))
    except ValueError:
        raise ApiError(400, "InvalidQuery", "start, end and limit are integers") from None
    lines = [(stamp, line) for stamp, line in book.lines
             if (start is None or stamp >= start) and (end is None or stamp < end)]  # fmt: skip
    if query.get("direction", "backward") == "backward":
        lines = lines[::-1][:limit]
    else:
        lines = lines[:limit]
    values = [[str(stamp), line] for stamp, line in lines]
    result = [{"stream": stream, "values": values}] if values else []
    return web.json_response(
        {"status": "success", "data": {"resultType": "streams", "result": result}}
    )


# --------------------------------------------------------------------------- endpoints


async def proxy(request: web.Request) -> web.StreamResponse:
    """A deployment's external endpoint: token check, readiness, then the model server."""
    ws = request.app[WORKSPACE]
    deployment = ws.deployments.get(request.match_info["name"])
    if deployment is None or deployment.deleting_since is not None:
        return _error(404, "NotFound", "no such endpoint")
    header = request.headers.get("Authorization", "")
    tokens = ws.endpoint_tokens(deployment)
    if tokens and header.removeprefix("Bearer ") not in tokens:
        return _error(401, "Unauthorized", "invalid or missing endpoint token")
    if deployment.state() != "Ready" or deployment.upstream is None:
        return _error(503, "NotReady", f"endpoint is {deployment.state()}")
    tail = request.match_info["tail"]
    target = "health" if tail.strip("/") in HEALTH_PATHS else tail
    body = await request.read()
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
    async with request.app[SESSION].request(
        request.method, f"{deployment.upstream}/{target}", data=body, headers=headers,
        params=request.query,
    ) as upstream:  # fmt: skip
        payload = await upstream.read()
        deployment.logs.add(f"{request.method} /{tail} {upstream.status}")
        return web.Response(
            body=payload, status=upstream.status,
            content_type=upstream.content_type or "application/json",
        )  # fmt: skip


# --------------------------------------------------------------------------- test hooks


async def faults(request: web.Request) -> web.Response:
    ws = request.app[WORKSPACE]
    if request.method == "POST":
        try:
            return web.json_response(ws.faults.update(await _body(request)))
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message)
    return web.json_response(dict(ws.faults.__dict__))


async def live(request: web.Request) -> web.Response:
    return web.json_response(request.app[WORKSPACE].live())


async def requests(request: web.Request) -> web.Response:
    """Workspace-API requests so far, by `METHOD /route`; POST resets the counts."""
    workspace = request.app[WORKSPACE]
    counts = dict(workspace.requests)
    if request.method == "POST":
        workspace.requests.clear()
    return web.json_response(counts)


def build_app(workspace: Workspace, token: str) -> web.Application:
    app = web.Application(middlewares=[_api_guard], client_max_size=64 << 20)
    app[WORKSPACE] = workspace
    app[TOKEN] = token
    app[TASKS] = set()
    base = f"/api/v2/workspaces/{workspace.workspace_id}"
    app.router.add_get(base, workspace_root)
    app.router.add_get(f"{base}/workspace", workspace_info)
    app.router.add_get(f"{base}/deployments", list_deployments)
    app.router.add_post(f"{base}/deployments", create_deployment)
    app.router.add_get(f"{base}/deployments/{{name}}", get_deployment)
    app.router.add_delete(f"{base}/deployments/{{name}}", delete_deployment)
    app.router.add_get(f"{base}/deployments/{{name}}/events", deployment_events)
    app.router.add_get(f"{base}/jobs", list_jobs)
    app.router.add_post(f"{base}/jobs", create_job)
    app.router.add_get(f"{base}/jobs/{{id}}", get_job)
    app.router.add_delete(f"{base}/jobs/{{id}}", delete_job)
    app.router.add_get(f"{base}/usersecrets", list_secrets)
    app.router.add_post(f"{base}/usersecrets", create_secrets)
    app.router.add_delete(f"{base}/usersecrets/{{name}}", delete_secret)
    app.router.add_get(f"{base}/dedicated-node-groups", list_node_groups)
    app.router.add_get(f"{base}/dedicated-node-groups/{{id}}/nodes", list_nodes)
    app.router.add_get(f"{base}/logs", get_logs)
    app.router.add_route("*", "/ep/{name}/{tail:.*}", proxy)
    app.router.add_route("*", "/_emulator/faults", faults)
    app.router.add_get("/_emulator/live", live)
    app.router.add_route("*", "/_emulator/requests", requests)

    async def session(app: web.Application) -> Any:
        app[SESSION] = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=600), trust_env=False
        )
        yield
        await app[SESSION].close()
        await workspace.shutdown()

    app.cleanup_ctx.append(session)
    return app
