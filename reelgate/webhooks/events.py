"""The body of a task's ``TASK_END`` event, built from the stored task."""

from __future__ import annotations

import json

from reelgate.runtime import Runtime
from reelgate.store import repo
from reelgate.store.views import task_object
from reelgate.wire.webhooks import TaskEndEvent


def event_data(runtime: Runtime, task_id: int) -> str:
    """The task object of ``/openapi/v2/query`` as a JSON string (RunningHub's ``eventData``).

    Result links use the base URL the task was submitted through (or ``REELGATE_PUBLIC_URL``).
    """
    with runtime.db.read() as session:
        task = repo.get_task(session, task_id)
        if task is None:
            raise LookupError(f"task {task_id} is gone")
        base = runtime.settings.public_url or task.links_base_url or ""
        answer = task_object(task, lambda key: runtime.result_url(base.rstrip("/"), key))
    return _compact(answer.to_wire())


def event_body(task_id: int, data: str) -> bytes:
    """The exact bytes POSTed: ``{"event":"TASK_END","taskId":…,"eventData":…}``."""
    event = TaskEndEvent(task_id=str(task_id), event_data=data)
    return _compact(event.to_wire()).encode()


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
