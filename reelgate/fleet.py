"""The fleet as ``/metrics`` shows it: tasks, queue, webhook outbox and workers, read from the
database at each scrape.

Workers run in other processes than the API, often on other hosts. The database is the one place
every process writes to, and it already holds each task's submit, first claim and end, each
webhook event's status and each worker's heartbeat. So the API derives these metrics from it when
scraped: one scrape target shows the whole fleet however many workers and hosts there are, every
API process answers the same numbers, and nothing starts again at zero when a process restarts.
Metrics kept inside each worker would need a scrape target per worker, found by service
discovery, and would lose their counts with every restart.

The duration histograms are cumulative, as Prometheus expects of a histogram (``rate()`` and
``histogram_quantile()`` work on them), so they count every task ever run, not a recent window.
To keep a scrape cheap as history grows, the tasks below a *settled* id are tallied once and
kept: every one of them has ended, and a task never leaves an end state, so their counts and
durations cannot change any more. The settled id is the lowest id still QUEUED or RUNNING, and
never above the ids made ``settle_seconds`` ago (ids come from the clock of the API that took
the submit; the margin covers clocks apart and a submit still committing). A scrape reads only
the tasks above it, and each newly settled range once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from reelgate.core.ids import first_id_at
from reelgate.store import stats
from reelgate.store.db import Database
from reelgate.store.stats import Distribution, TaskTally
from reelgate.store.tables import utcnow

__all__ = ["DISPATCH_BOUNDS", "RUN_BOUNDS", "Distribution", "FleetMetrics", "FleetSnapshot"]

#: Upper bounds (seconds) of the run histogram: preview renders take seconds, real models minutes.
RUN_BOUNDS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
#: Upper bounds (seconds) of the dispatch histogram: an idle worker claims within its poll.
DISPATCH_BOUNDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass(frozen=True)
class FleetSnapshot:
    tasks: TaskTally
    #: QUEUED tasks, and how long the oldest of them has been claimable (0 when none is).
    queue_depth: int
    oldest_queued_seconds: float
    #: Webhook events by delivery status, and the age of the oldest undelivered one (0: none).
    webhook_deliveries: dict[str, int]
    oldest_undelivered_seconds: float
    #: Registered workers heard from within a lease, and those silent for longer.
    workers_alive: int
    workers_silent: int


class FleetMetrics:
    def __init__(
        self, db: Database, *, alive_within_seconds: float, settle_seconds: float = 300.0
    ) -> None:
        self.db = db
        self.alive_within_seconds = alive_within_seconds
        self.settle_seconds = settle_seconds
        self._lock = threading.Lock()
        #: Every task below this id is tallied in ``_settled``.
        self._settled_below = 0
        self._settled = TaskTally()

    def read(self) -> FleetSnapshot:
        with self._lock, self.db.read() as session:
            tasks = self._tasks(session)
            depth, claimable_since = stats.queue_depth(session)
            deliveries, undelivered_since = stats.webhook_deliveries(session)
            now = utcnow()
            alive, silent = stats.workers(
                session, now - timedelta(seconds=self.alive_within_seconds)
            )
        return FleetSnapshot(
            tasks=tasks,
            queue_depth=depth,
            oldest_queued_seconds=_age(now, claimable_since),
            webhook_deliveries=deliveries,
            oldest_undelivered_seconds=_age(now, undelivered_since),
            workers_alive=alive,
            workers_silent=silent,
        )

    def _tasks(self, session: Session) -> TaskTally:
        settled_below = first_id_at(time.time() - self.settle_seconds)
        lowest_open = stats.lowest_open_id(session)
        if lowest_open is not None:
            settled_below = min(settled_below, lowest_open)
        if settled_below > self._settled_below:
            newly_settled = self._tally(session, self._settled_below, settled_below)
            self._settled = self._settled.plus(newly_settled)
            self._settled_below = settled_below
        return self._settled.plus(self._tally(session, self._settled_below, None))

    def _tally(self, session: Session, ids_from: int, ids_below: int | None) -> TaskTally:
        return stats.tally_tasks(
            session,
            ids_from=ids_from,
            ids_below=ids_below,
            run_bounds=RUN_BOUNDS,
            dispatch_bounds=DISPATCH_BOUNDS,
        )


def _age(now: datetime, since: datetime | None) -> float:
    return 0.0 if since is None else max(0.0, (now - since).total_seconds())
