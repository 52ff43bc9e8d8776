"""The console's routes: the login form, the page and its assets, and the JSON and SVG it reads.

The page is one HTML document (hash routes: ``#/machines``, ``#/executions/ID``...)
with one script and one stylesheet, all in the package. Besides the routes here,
the script calls the HTTP API itself (``/executions``, ``/batches/ID/pause``,
``/mapruns``...).
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field

from orchestrator.api.console.auth import (
    COOKIE,
    expected_token,
    has_session,
    require_session,
    session_value,
    token_matches,
)
from orchestrator.api.console.series import Bucket, failure_rate
from orchestrator.api.context import ApiContext, context
from orchestrator.api.errors import ApiError
from orchestrator.api.routes import to_filter, user_input_errors
from orchestrator.api.schemas import ExecutionQuery
from orchestrator.client import ExecutionFilter
from orchestrator.graph import draw

#: The packaged files the console serves, and their media types.
ASSETS: Final = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "login.js": "text/javascript; charset=utf-8",
}
#: Assets the login form needs, served without a session (they hold no data).
PUBLIC_ASSETS: Final = frozenset({"console.css", "login.js"})
#: Most ended executions read to draw a batch's failure-rate chart.
CHART_LIMIT: Final = 10_000
#: Most Map Runs of one execution listed on its page.
MAP_RUNS_LIMIT: Final = 50
#: Headers of every console response: no caching of data, no framing, no sniffing.
SECURITY_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
}

router = APIRouter(prefix="/console", include_in_schema=False)


def _static(name: str) -> str:
    return resources.files("orchestrator.api.console").joinpath("static", name).read_text()


def _ctx(request: Request) -> ApiContext:
    return context(request)


Ctx = Annotated[ApiContext, Depends(_ctx)]


def session(request: Request, ctx: Ctx) -> None:
    """Dependency: a console session (cookie) or the bearer token, when a token is set."""
    require_session(request, ctx.settings)


Session = Depends(session)


class LoginIn(BaseModel):
    """The login form's body."""

    token: str = Field(max_length=4096)


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def page(request: Request, ctx: Ctx) -> Response:
    """The console page, or the login form without a session."""
    if not has_session(request, ctx.settings):
        return RedirectResponse("/console/login", status_code=303, headers=SECURITY_HEADERS)
    return HTMLResponse(_static("index.html"), headers=SECURITY_HEADERS)


@router.get("/login", response_class=HTMLResponse)
def login_page() -> Response:
    """The login form (the one page served without a session)."""
    return HTMLResponse(_static("login.html"), headers=SECURITY_HEADERS)


@router.post("/login", status_code=204)
def login(body: LoginIn, ctx: Ctx) -> Response:
    """Exchange the API token for a session cookie (ends with the browser session)."""
    if not token_matches(ctx.settings, body.token):
        raise ApiError(401, "Unauthorized", "that is not the API token")
    response = Response(status_code=204, headers=SECURITY_HEADERS)
    token = expected_token(ctx.settings)
    if token is not None:
        response.set_cookie(
            COOKIE, session_value(token), httponly=True, samesite="strict", path="/console"
        )
    return response


@router.post("/logout", status_code=204)
def logout() -> Response:
    """Forget the session cookie."""
    response = Response(status_code=204, headers=SECURITY_HEADERS)
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("/static/{name}")
def asset(name: str, request: Request, ctx: Ctx) -> Response:
    """One packaged asset; all but the login form's need a session."""
    if name not in PUBLIC_ASSETS:
        require_session(request, ctx.settings)
    if name not in ASSETS:
        raise ApiError(404, "NotFound", f"no console asset {name!r}")
    return Response(_static(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)


@router.get("/api/config", dependencies=[Session])
def config(ctx: Ctx) -> dict[str, Any]:
    """What the page needs to know of the settings: the Flower address."""
    return {"flower_url": ctx.settings.flower_url}


def _svg(text: str) -> Response:
    return Response(text, media_type="image/svg+xml", headers=SECURITY_HEADERS)


@router.get("/api/machines/{name}/graph.svg", dependencies=[Session])
def machine_graph(
    name: str, ctx: Ctx, version: Annotated[int | None, Query(ge=1)] = None
) -> Response:
    """A state machine version's graph (the newest version by default)."""
    record = ctx.client.find_version(name, version)
    return _svg(draw(record.definition, "svg", title=f"{name} v{record.version}"))


@router.get("/api/executions/{execution_id}/graph.svg", dependencies=[Session])
def execution_graph(execution_id: str, ctx: Ctx) -> Response:
    """An execution's graph, each state coloured by its outcome."""
    handle = ctx.client.execution(execution_id)
    run = handle.describe()
    record = ctx.client.version(run.version_id)
    svg = draw(
        record.definition,
        "svg",
        events=handle.history(),
        status=run.status.value,
        current_state=run.current_state,
        title=f"{record.state_machine_name} {run.name}",
    )
    return _svg(svg)


@router.get("/api/counts", dependencies=[Session])
def counts(query: Annotated[ExecutionQuery, Query()], ctx: Ctx) -> dict[str, Any]:
    """How many executions match the filters, per status and in all."""
    with user_input_errors():
        found = ctx.client.count_by_status(to_filter(query))
    by_status = {status.value: count for status, count in found.items()}
    return {"total": sum(by_status.values()), "by_status": by_status}


@router.get("/api/executions/{execution_id}/chained", dependencies=[Session])
def chained(execution_id: str, ctx: Ctx) -> dict[str, Any]:
    """Executions started from this one (``source_execution_id``), newest first."""
    page_ = ctx.client.executions(
        ExecutionFilter(source_execution_id=execution_id, limit=50, descending=True)
    )
    items = [
        {"id": e.id, "name": e.name, "status": e.status.value, "batch_id": e.batch_id}
        for e in page_.items
    ]
    return {"items": items}


@router.get("/api/executions/{execution_id}/task-tokens", dependencies=[Session])
def task_tokens(execution_id: str, ctx: Ctx) -> dict[str, Any]:
    """The execution's task tokens, oldest first: where each stands, never the token.

    ``hash`` is the start of the token's SHA-256 (what the store keeps), to tell
    tokens apart; the Task's parameters are left out (they may hold the token).
    """
    ctx.client.execution(execution_id).describe()  # an unknown execution is a 404
    return {
        "items": [
            {
                "hash": t.token_hash[:12],
                "state": t.state_name,
                "attempt": t.attempt,
                "status": t.status.value,
                "created_at": t.created_at.isoformat(),
                "heartbeat_at": _iso(t.heartbeat_at),
                "heartbeat_seconds": t.heartbeat_seconds,
                "timeout_at": _iso(t.timeout_at),
                "completed_at": _iso(t.completed_at),
                "error": t.error,
                "cause": t.cause,
            }
            for t in ctx.client.task_tokens(execution_id)
        ]
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@router.get("/api/batches", dependencies=[Session])
def batches(
    ctx: Ctx,
    machine: Annotated[str | None, Query(max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The newest batches with their counts per status."""
    names = {info.id: info.name for info in ctx.client.state_machines()}
    items = [
        {
            "id": b.id,
            "state_machine": names.get(b.state_machine_id),
            "status": b.status.value,
            "sources": b.source_count,
            "created": b.created_count,
            "started_at": b.started_at.isoformat(),
            "ended_at": b.ended_at.isoformat() if b.ended_at else None,
            "warning": b.warning,
            "counts": ctx.client.batch_counts(b.id),
        }
        for b in ctx.client.batches(state_machine=machine, limit=limit)
    ]
    return {"items": items}


@router.get("/api/batches/{batch_id}/failure-rate", dependencies=[Session])
def batch_failure_rate(
    batch_id: str, ctx: Ctx, buckets: Annotated[int, Query(ge=1, le=200)] = 20
) -> dict[str, Any]:
    """The share of failures among a batch's ended executions, in time buckets."""
    ctx.client.batch(batch_id).record()
    return {"buckets": _buckets(failure_rate(_ends(ctx, batch_id), buckets))}


def _ends(ctx: ApiContext, batch_id: str) -> list[tuple[datetime, str]]:
    ends: list[tuple[datetime, str]] = []
    flt = ExecutionFilter(batch_id=batch_id, limit=1000)
    while len(ends) < CHART_LIMIT:
        found = ctx.client.executions(flt)
        ends.extend((e.ended_at, e.status.value) for e in found.items if e.ended_at is not None)
        if found.next_cursor is None:
            break
        flt = ExecutionFilter(batch_id=batch_id, limit=1000, cursor=found.next_cursor)
    return ends


@router.get("/api/executions/{execution_id}/map", dependencies=[Session])
def execution_map(execution_id: str, ctx: Ctx) -> dict[str, Any]:
    """The execution's place in Distributed Maps: its Map Run (as a child) and its own.

    ``map_run`` is the Map Run it is a child of, with the parent and item index (or
    null); ``map_runs`` are the Map Runs its own Map states opened, newest first.
    """
    run = ctx.client.execution(execution_id).describe()
    parent = None
    if run.map_run_id is not None:
        parent = {
            "id": run.map_run_id,
            "parent_execution_id": run.parent_execution_id,
            "item_index": run.item_index,
        }
    own = [
        {
            "id": m.id,
            "state_name": m.state_name,
            "label": m.label,
            "status": m.status,
            "counts": m.counts(),
        }
        for m in ctx.client.map_runs(execution_id=execution_id, limit=MAP_RUNS_LIMIT)
    ]
    return {"map_run": parent, "map_runs": own}


@router.get("/api/mapruns/{map_run_id}/failure-rate", dependencies=[Session])
def map_run_failure_rate(
    map_run_id: str, ctx: Ctx, buckets: Annotated[int, Query(ge=1, le=200)] = 20
) -> dict[str, Any]:
    """The share of failures among a Map Run's ended children, in time buckets."""
    handle = ctx.client.map_run(map_run_id)
    handle.describe()  # an unknown Map Run is a 404
    ends: list[tuple[datetime, str]] = []
    after = -1
    while len(ends) < CHART_LIMIT:
        page_ = handle.children(after=after, limit=1000)
        ends.extend((c.ended_at, str(c.status)) for c in page_ if c.ended_at is not None)
        if len(page_) < 1000:
            break
        after = page_[-1].item_index
    return {"buckets": _buckets(failure_rate(ends, buckets))}


def _buckets(series: list[Bucket]) -> list[dict[str, Any]]:
    return [
        {
            "start": b.start.isoformat(),
            "end": b.end.isoformat(),
            "ended": b.ended,
            "failed": b.failed,
            "rate": b.rate,
        }
        for b in series
    ]


__all__ = ["ASSETS", "LoginIn", "router", "session"]
