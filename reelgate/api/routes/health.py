"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from reelgate.api.deps import service
from reelgate.core.catalogue import get_model
from reelgate.core.errors import NotReady, StoreError
from reelgate.fleet import Distribution, FleetSnapshot
from reelgate.service import UpstreamKeyGauge
from reelgate.store.stats import TaskTally

router = APIRouter(tags=["operations"])
log = logging.getLogger("reelgate.metrics")

#: From a millisecond (a cached answer) to ten seconds (an upload).
HTTP_SECONDS_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


#: The ``model`` label of a model outside the catalogue (one passed through upstream): models
#: are label values only as the catalogue names them, so requests cannot add series.
OTHER_MODEL = "other"


def model_label(model: str) -> str:
    """The ``model`` label of a task's model: its catalogue path, or ``other``."""
    spec = get_model(model)
    return spec.path if spec is not None else OTHER_MODEL


class Metrics:
    def __init__(
        self,
        upstream_keys: Callable[[], list[UpstreamKeyGauge]],
        fleet: Callable[[], FleetSnapshot],
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_FromDatabase([_Fleet(fleet), _UpstreamKeys(upstream_keys)]))
        self.submitted = Counter(
            "reelgate_tasks_submitted",
            "Tasks accepted, by model",
            ["model"],
            registry=self.registry,
        )
        self.http_request_duration = Histogram(
            "reelgate_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template and "
            "method (routes: the API's paths with their {placeholders}; 'unmatched' for a "
            "request answered before or without a route)",
            ["route", "method"],
            buckets=HTTP_SECONDS_BUCKETS,
            registry=self.registry,
        )
        # Each API process answers scrapes with its own figures (``serve --api-workers N``
        # runs N): this says which process a scrape reached.
        Gauge(
            "reelgate_api_process",
            "1, labelled with the process id of the API process that answered this scrape",
            ["pid"],
            registry=self.registry,
        ).labels(pid=str(os.getpid())).set(1)

    def task_submitted(self, model: str) -> None:
        """Count a task this process accepted (by ``model_label``)."""
        self.submitted.labels(model=model_label(model)).inc()


class _FromDatabase(Collector):
    """The metrics read from the database at each scrape, and ``reelgate_database_up``.

    While the database does not answer, a scrape still answers what this process knows by
    itself (its requests, its submits), with ``reelgate_database_up 0`` in place of what the
    database would have said; the outage is logged once, not at every scrape, and so is its
    end."""

    def __init__(self, parts: list[Collector]) -> None:
        self._parts = parts
        self._lock = threading.Lock()
        self._down = False

    def collect(self) -> Iterable[Metric]:
        try:
            # All of them or none: never half of the fleet's figures.
            metrics = [metric for part in self._parts for metric in part.collect()]
        except StoreError as exc:
            self._went(down=True, reason=exc)
            metrics, up = [], False
        else:
            self._went(down=False)
            up = True
        yield from metrics
        yield GaugeMetricFamily(
            "reelgate_database_up",
            "1 when the database answered this scrape, 0 when it did not (then the metrics "
            "read from it are missing)",
            value=1.0 if up else 0.0,
        )

    def _went(self, *, down: bool, reason: Exception | None = None) -> None:
        with self._lock:
            changed, self._down = self._down != down, down
        if changed and down:
            cause = reason.__cause__ if reason is not None else None
            text = f"{reason}: {cause}" if cause else str(reason)
            why = " ".join(text.split())[:300]  # one line: a driver's message spans several
            log.warning(
                "metrics: the database does not answer (%s); scrapes answer without what it "
                "holds until it does",
                why,
            )
        elif changed:
            log.info("metrics: the database answers again")


class _UpstreamKeys(Collector):
    """The upstream key pool, read from the database at each scrape (workers change it)."""

    def __init__(self, read: Callable[[], list[UpstreamKeyGauge]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        in_rotation = GaugeMetricFamily(
            "reelgate_upstream_key_in_rotation",
            "1 while an upstream key takes new tasks, 0 once out of rotation (no balance, "
            "refused) or resting",
            labels=["key"],
        )
        in_use = GaugeMetricFamily(
            "reelgate_upstream_key_slots_in_use",
            "Tasks holding a slot of an upstream key",
            labels=["key"],
        )
        capacity = GaugeMetricFamily(
            "reelgate_upstream_key_concurrency", "Slots of an upstream key", labels=["key"]
        )
        for key in self._read():
            in_rotation.add_metric([key.label], 1.0 if key.in_rotation else 0.0)
            in_use.add_metric([key.label], key.in_use)
            capacity.add_metric([key.label], key.concurrency)
        yield from (in_rotation, in_use, capacity)


class _Fleet(Collector):
    """Tasks, queue, webhook outbox and workers, read from the database at each scrape: the
    workers that change them run in other processes, often on other hosts (see
    ``reelgate.fleet``)."""

    def __init__(self, read: Callable[[], FleetSnapshot]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        fleet = self._read()
        tallied = _by_label(fleet.tasks)
        tasks = GaugeMetricFamily(
            "reelgate_tasks",
            "Tasks in the database, by model and status",
            labels=["model", "status"],
        )
        for (model, status), count in sorted(tallied.counts.items()):
            tasks.add_metric([model, status], count)
        run = HistogramMetricFamily(
            "reelgate_task_duration_seconds",
            "Tasks that ran, by model and final status: seconds from their first claim to "
            "their end",
            labels=["model", "status"],
        )
        for (model, status), histogram in sorted(tallied.run_seconds.items()):
            _add_histogram(run, [model, status], histogram)
        dispatch = HistogramMetricFamily(
            "reelgate_task_dispatch_latency_seconds",
            "Tasks claimed by a worker, by model: seconds from their submit to their first claim",
            labels=["model"],
        )
        for model, histogram in sorted(tallied.dispatch_seconds.items()):
            _add_histogram(dispatch, [model], histogram)
        deliveries = GaugeMetricFamily(
            "reelgate_webhook_deliveries",
            "Webhook events by delivery status (PENDING, RETRYING, SUCCESS, FAILED)",
            labels=["status"],
        )
        for status, count in fleet.webhook_deliveries.items():
            deliveries.add_metric([status], count)
        yield from (tasks, run, dispatch, deliveries)
        yield GaugeMetricFamily("reelgate_queue_depth", "QUEUED tasks", value=fleet.queue_depth)
        yield GaugeMetricFamily(
            "reelgate_queue_oldest_age_seconds",
            "Seconds the oldest QUEUED task has waited to be claimed (0 when none waits)",
            value=fleet.oldest_queued_seconds,
        )
        yield GaugeMetricFamily(
            "reelgate_webhook_oldest_pending_age_seconds",
            "Seconds since the oldest webhook event still PENDING or RETRYING was written "
            "(0 when none is)",
            value=fleet.oldest_undelivered_seconds,
        )
        yield GaugeMetricFamily(
            "reelgate_workers_alive",
            "Workers whose heartbeat came within a lease",
            value=fleet.workers_alive,
        )
        yield GaugeMetricFamily(
            "reelgate_workers_silent",
            "Registered workers without a heartbeat for longer than a lease (forgotten after ten)",
            value=fleet.workers_silent,
        )


def _by_label(tally: TaskTally) -> TaskTally:
    """``tally`` by ``model_label``: the models outside the catalogue summed as ``other``."""
    merged = TaskTally()
    for (model, status), count in tally.counts.items():
        merged = merged.plus(TaskTally(counts={(model_label(model), status): count}))
    for (model, status), run in tally.run_seconds.items():
        merged = merged.plus(TaskTally(run_seconds={(model_label(model), status): run}))
    for model, dispatch in tally.dispatch_seconds.items():
        merged = merged.plus(TaskTally(dispatch_seconds={model_label(model): dispatch}))
    return merged


def _add_histogram(family: HistogramMetricFamily, labels: list[str], data: Distribution) -> None:
    buckets = [(repr(float(b)), n) for b, n in zip(data.bounds, data.at_most, strict=True)]
    family.add_metric(labels, [*buckets, ("+Inf", data.count)], sum_value=data.total)


class Health(BaseModel):
    """Liveness and readiness answers (``503`` with a ``reason`` when not ready)."""

    status: Literal["ok", "ready", "unavailable"]
    reason: str | None = Field(None, exclude_if=lambda value: value is None)


@router.get("/healthz", response_model=Health, summary="The process answers")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="The database and the storage answer",
    responses={
        503: {
            "model": Health,
            "description": "Not ready: the database or the storage does not answer; the reason "
            "names which (`database: …`, `storage: …`) and why.",
        }
    },
)
async def readyz(request: Request) -> Health | JSONResponse:
    try:
        await run_in_threadpool(service(request).ready)
    except NotReady as exc:
        not_ready = Health(status="unavailable", reason=exc.reason[:200])
        return JSONResponse(not_ready.model_dump(mode="json"), status_code=503)
    return Health(status="ready")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
