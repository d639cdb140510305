"""``GET /api/v1/controller``: this replica, the one leading, and the singleton jobs."""

# No "from __future__ import annotations": FastAPI resolves the dependency aliases at run time.

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from stockade.api.access import Reader
from stockade.api.leader import SingletonWorker
from stockade.model.redact import redact

router = APIRouter()


@router.get("/api/v1/controller")
async def controller(request: Request, _: Reader) -> dict[str, Any]:
    """Which replica holds the leader lock (and so runs the response rules and the other
    singleton jobs), and whether it is this one."""
    worker: SingletonWorker = request.app.state.singletons
    leadership = worker.leadership
    leader = await run_in_threadpool(leadership.leader)
    out: dict[str, Any] = redact(
        {
            "replica": leadership.replica,
            "leader": leader,
            "is_leader": leadership.is_leader,
            "store": request.app.state.store.dialect,
            "jobs": [{"name": j.name, "interval": j.interval} for j in worker.jobs],
        }
    )
    return out
