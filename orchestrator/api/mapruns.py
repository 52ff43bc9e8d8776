"""HTTP routes of Map Runs (Distributed Maps): ``GET /mapruns`` and ``GET /mapruns/{id}``.

Read through the app's one client, as every route is; protected by the API token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from orchestrator.api.context import ApiContext, context
from orchestrator.api.schemas import NO_NUL, ErrorOut
from orchestrator.client import MapChild, MapRun

Ctx = Annotated[ApiContext, Depends(context)]
MapRunId = Annotated[
    str, Path(min_length=1, max_length=36, pattern=NO_NUL, description="The Map Run id.")
]

router = APIRouter(prefix="/mapruns", tags=["map runs"])


class MapRunOut(BaseModel):
    """One Map Run: where it stands, its counts per status, its limits and times."""

    id: str
    execution_id: str = Field(description="The parent execution whose Map state opened it.")
    state_name: str
    label: str | None
    status: str
    execution_type: str
    max_concurrency: int
    tolerated_failure_percentage: float | None
    tolerated_failure_count: int | None
    counts: dict[str, int] = Field(description="Children per status, and the total.")
    result_writer: Any = None
    error: str | None
    cause: str | None
    started_at: datetime
    stopped_at: datetime | None

    @classmethod
    def of(cls, run: MapRun) -> MapRunOut:
        """From the client's record."""
        return cls(
            id=run.id,
            execution_id=run.parent_execution_id,
            state_name=run.state_name,
            label=run.label,
            status=run.status,
            execution_type=run.execution_type,
            max_concurrency=run.max_concurrency,
            tolerated_failure_percentage=run.tolerated_failure_percentage,
            tolerated_failure_count=run.tolerated_failure_count,
            counts=run.counts(),
            result_writer=run.result_writer,
            error=run.error,
            cause=run.cause,
            started_at=run.started_at,
            stopped_at=run.stopped_at,
        )


class MapChildOut(BaseModel):
    """One child execution of a Map Run."""

    id: str
    item_index: int
    status: str
    error: str | None
    started_at: datetime
    ended_at: datetime | None

    @classmethod
    def of(cls, child: MapChild) -> MapChildOut:
        """From the client's record."""
        return cls(
            id=child.id,
            item_index=child.item_index,
            status=str(child.status),
            error=child.error,
            started_at=child.started_at,
            ended_at=child.ended_at,
        )


class MapRunList(BaseModel):
    """Map Runs, newest first."""

    items: list[MapRunOut]


class MapRunDetail(MapRunOut):
    """A Map Run with its first children (``children_after``/``children_limit`` page them)."""

    children: list[MapChildOut]


@router.get("", summary="List Map Runs")
def list_map_runs(
    ctx: Ctx,
    execution_id: Annotated[str | None, Query(max_length=255, pattern=NO_NUL)] = None,
    status: Annotated[str | None, Query(pattern="^(RUNNING|SUCCEEDED|FAILED|ABORTED)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> MapRunList:
    """Map Runs, newest first: of one parent execution and/or in one status."""
    runs = ctx.client.map_runs(execution_id=execution_id, status=status, limit=limit)
    return MapRunList(items=[MapRunOut.of(run) for run in runs])


@router.get("/{map_run_id}", summary="Show a Map Run", responses={404: {"model": ErrorOut}})
def get_map_run(
    map_run_id: MapRunId,
    ctx: Ctx,
    children_after: Annotated[int, Query(ge=-1)] = -1,
    children_limit: Annotated[int, Query(ge=0, le=1000)] = 100,
) -> MapRunDetail:
    """One Map Run with a page of its children in item order."""
    handle = ctx.client.map_run(map_run_id)
    run = handle.describe()
    children = handle.children(after=children_after, limit=children_limit)
    return MapRunDetail(
        **MapRunOut.of(run).model_dump(), children=[MapChildOut.of(c) for c in children]
    )


__all__ = ["MapChildOut", "MapRunDetail", "MapRunList", "MapRunOut", "router"]
