"""The worker: claims tasks, renders them, keeps their leases alive, sweeps lost ones.

One ``Worker`` runs ``concurrency`` tasks at a time in threads. A heartbeat thread renews the
lease of every task it holds and, through the same statement, notices when a task is no longer
its own (cancelled by its owner, or swept after a stall); the render then stops at its next
cancellation check. Any worker also sweeps: tasks whose lease expired go back to QUEUED, or fail
with 1006 after their last attempt; and, in a thread of its own, finished tasks and uploads whose
retention is over (``reelgate.retention``). At its start it removes the scratch folders that
killed workers of its host left (``reelgate.worker.scratch``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from reelgate.core.catalogue import get_model
from reelgate.core.errors import (
    GenerationFailed,
    InternalError,
    LockConflict,
    ReelgateError,
    StorageError,
    StoreError,
    TaskCancelled,
    TaskTimedOut,
)
from reelgate.core.faults import Faults
from reelgate.core.status import TaskStatus
from reelgate.engines.base import Engine, RemoteEngine, RemoteJob, RenderContext
from reelgate.engines.registry import load_engine
from reelgate.logs import task_context
from reelgate.media.fetch import MediaFetcher
from reelgate.retention import sweep as sweep_expired
from reelgate.runtime import Runtime
from reelgate.storage.base import claim_folder, result_key
from reelgate.store import queue
from reelgate.store.queue import ClaimedTask
from reelgate.store.tables import utcnow
from reelgate.webhooks.dispatcher import WebhookDispatcher
from reelgate.worker import scratch as scratch_folders
from reelgate.worker.jobs import prepare
from reelgate.worker.remote import remote_context

log = logging.getLogger("reelgate.worker")


@dataclass
class _Active:
    task: ClaimedTask
    progress: float = 0.0
    #: Set when the task stopped being ours (cancelled or swept) or we are handing it back.
    stop: threading.Event = field(default_factory=threading.Event)
    #: Set (with ``stop``) when the reason is that its owner cancelled it.
    cancelled: threading.Event = field(default_factory=threading.Event)
    #: This claim's own, for the folder its outputs are stored in (``claim_folder``).
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int = 1,
        engine: Engine | RemoteEngine | None = None,
        worker_id: str | None = None,
        shutdown_grace_seconds: float | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.db = runtime.db
        self.concurrency = max(1, concurrency)
        #: Engines by name: the default one and every one that a route names.
        self.engines: dict[str, Engine | RemoteEngine] = {
            name: load_engine(name, self.settings, runtime.db) if engine is None else engine
            for name in self.settings.engines_in_use()
        }
        self.engine = self.engines[self.settings.engine]
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.shutdown_grace_seconds = (
            self.settings.worker.shutdown_grace_seconds
            if shutdown_grace_seconds is None
            else shutdown_grace_seconds
        )
        self.fetcher = MediaFetcher(
            self.settings.media,
            allow_private_networks=self.settings.allow_private_networks,
            allowed_networks=self.settings.media.allowed_networks,
            own_file=runtime.own_file,
        )
        self._active: dict[int, _Active] = {}
        self._lock = threading.Lock()
        self._last_sweep = 0.0
        #: The last claim failed on the database (logged once per outage, not per poll).
        self._store_down = False

    # -- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set, then finish or hand back what is running."""
        with self.db.write() as session:
            queue.register_worker(session, self.id, socket.gethostname(), os.getpid())
        # What workers of this host left when they were killed (``finally`` never ran).
        scratch_folders.remove_orphans()
        log.info(
            "worker %s started (engine %s, concurrency %d)",
            self.id,
            self.engine.name,
            self.concurrency,
        )
        heartbeat_stop = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat_loop, args=(heartbeat_stop,), name="heartbeat", daemon=True
        )
        heartbeat.start()
        # Webhook events go out from every worker process; they share the outbox safely.
        dispatcher = WebhookDispatcher(self.runtime)
        delivering_stop = threading.Event()
        delivering = threading.Thread(
            target=dispatcher.run, args=(delivering_stop,), name="webhooks", daemon=True
        )
        delivering.start()
        retention = threading.Thread(
            target=self._retention_loop, args=(delivering_stop,), name="retention", daemon=True
        )
        retention.start()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="render")
        futures: set[Future[None]] = set()
        # Ends the idle wait at once: set when a commit announces a claimable task (see
        # ``store.wakeup``), when one of our renders ends, and when we are to stop. Polling
        # stays, for whatever is not announced (a queue delay running out) or not heard.
        wake = threading.Event()
        listener = self.db.listen_for_tasks(wake)
        running = threading.Event()
        running.set()
        threading.Thread(
            target=_set_on_stop, args=(stop, wake, running), name="stop-watch", daemon=True
        ).start()
        try:
            while not stop.is_set():
                wake.clear()
                self._maybe_sweep()
                futures = {f for f in futures if not f.done()}
                claimed = self._claim() if len(futures) < self.concurrency else None
                if claimed is None:
                    wake.wait(self.settings.worker.poll_seconds * random.uniform(0.75, 1.25))
                    continue
                future = pool.submit(self._process, claimed)
                future.add_done_callback(lambda _: wake.set())
                futures.add(future)
        finally:
            running.clear()
            if listener is not None:
                listener.close()
            self._shut_down(futures)
            pool.shutdown(wait=True)
            heartbeat_stop.set()
            heartbeat.join()
            delivering_stop.set()
            delivering.join()
            retention.join()
            dispatcher.close()
            with self.db.write() as session:
                queue.unregister_worker(session, self.id)
            self.fetcher.close()
            log.info("worker %s stopped", self.id)

    def run_once(self) -> int | None:
        """Claim and process one task in this thread (for tests and scripts); its id or None."""
        claimed = self._claim()
        if claimed is None:
            return None
        self._process(claimed)
        return claimed.id

    def _claim(self) -> ClaimedTask | None:
        try:
            with self.db.write() as session:
                claimed = queue.claim_next(session, self.id, self.settings.worker.lease_seconds)
        except LockConflict:
            # The claim waited for a key's row while the holder (an operator cancelling that
            # key's tasks) waited for the task the claim had locked; PostgreSQL ended the claim.
            # Nothing was claimed, and the next attempt finds the queue as the operator left it.
            log.info("a claim lost a lock race with another transaction; claiming again later")
            return None
        except StoreError:
            # The database is out of reach: the worker waits it out (the loop tries again at
            # its next poll) instead of exiting. A claim whose commit failed after all is
            # left to its lease.
            if not self._store_down:
                log.exception("cannot claim tasks: the database failed; trying again")
            self._store_down = True
            return None
        if self._store_down:
            log.info("claiming tasks again: the database answers")
            self._store_down = False
        if claimed is not None:
            with self._lock:
                self._active[claimed.id] = _Active(claimed)
        return claimed

    def _shut_down(self, futures: set[Future[None]]) -> None:
        deadline = time.monotonic() + self.shutdown_grace_seconds
        for future in list(futures):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Errors are recorded on the task by _process; here we only wait.
            with contextlib.suppress(Exception):
                future.result(timeout=remaining)
        with self._lock:
            leftovers = list(self._active.values())
        for active in leftovers:
            active.stop.set()
            self._hand_back(active.task.id)

    def _hand_back(self, task_id: int) -> None:
        """Return a task we cannot finish to the queue, without charging it an attempt."""
        try:
            with self.db.write() as session:
                queue.hand_back(session, task_id, worker_id=self.id)
        except StoreError:
            log.exception("task %s could not be handed back; its lease will run out", task_id)

    # -- one task ------------------------------------------------------------------------

    def _process(self, claimed: ClaimedTask) -> None:
        # Every line logged while the task is processed, by any code, carries its id.
        with task_context(claimed.id):
            self._process_claimed(claimed)

    def _process_claimed(self, claimed: ClaimedTask) -> None:
        log.info("task %s started: %s, attempt %d", claimed.id, claimed.model, claimed.attempts)
        active = self._active[claimed.id]
        faults = Faults.from_stored(claimed.faults)
        if faults is not None and faults.fails_task(claimed.id):
            # Fault injection: the task fails as a real one would, refunded, without rendering.
            log.info("task %s fails by its key's fault settings", claimed.id)
            try:
                self._fail(claimed.id, faults.failure())
            finally:
                with self._lock:
                    self._active.pop(claimed.id, None)
            return
        scratch = scratch_folders.make(claimed.id)
        try:
            self._render(active, scratch)
        except TaskCancelled:
            log.info(
                "task %s stopped: no longer ours (cancelled, swept or handed back)", claimed.id
            )
        except StoreError:
            # The database failed, not the task: failing it would turn an outage into lost
            # work. It is left to its lease, which runs out unrenewed, and the sweeper queues it
            # again (as for a worker that died).
            log.exception("task %s: the database failed; left to its lease", claimed.id)
        except ReelgateError as error:
            self._fail(claimed.id, error)
        except Exception as exc:  # a bug or an engine crash: the task fails, the worker lives
            log.exception("task %s crashed", claimed.id)
            self._fail(claimed.id, GenerationFailed(f"{type(exc).__name__}: {exc}"[:500]))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            with self._lock:
                self._active.pop(claimed.id, None)

    def _render(self, active: _Active, scratch: Path) -> None:
        claimed = active.task
        model = get_model(claimed.model)
        engine = self.engines[self.settings.engine_for(claimed.model)]

        def report(fraction: float) -> None:
            active.progress = min(1.0, max(active.progress, fraction))

        charge: int | None = None
        if isinstance(engine, RemoteEngine) and engine.remote:
            job = RemoteJob(claimed.id, claimed.model, claimed.params, claimed.attempts)
            ctx = remote_context(
                self.runtime,
                claimed,
                self.id,
                scratch,
                report_progress=report,
                owner_cancelled=active.cancelled.is_set,
                should_stop=active.stop.is_set,
                fetcher=self.fetcher,
            )
            result = engine.run(job, ctx)
            charge = result.charge
        else:
            if model is None or not isinstance(engine, Engine):
                raise InternalError(f"model {claimed.model!r} is not in this server's catalogue")
            prepared = prepare(model, claimed.params, self.fetcher, scratch)
            render_ctx = RenderContext(
                scratch_dir=scratch,
                report_progress=report,
                is_cancelled=active.stop.is_set,
                watermark=self.settings.preview_watermark,
            )
            render_ctx.raise_if_cancelled()
            result = engine.render(prepared.spec, render_ctx)
            charge = model.final_cost(model.parse(claimed.params), prepared.input_seconds)
        if active.stop.is_set():
            raise TaskCancelled()
        # This claim's own folder: if the task was swept from us meanwhile and finished by
        # another claim, storing ours writes over nothing of theirs.
        claim = claim_folder(claimed.attempts, active.token)
        stored: list[dict[str, str | int]] = []
        try:
            for n, output in enumerate(result.outputs, start=1):
                key = result_key(claimed.id, claim, n, output.output_type)
                size = self.runtime.storage.put_file(key, output.path, move=True)
                stored.append({"key": key, "outputType": output.output_type, "size": size})
            with self.db.write() as session:
                moved = queue.finish(
                    session,
                    claimed.id,
                    worker_id=self.id,
                    results=stored,
                    charge=charge,
                    detail="; ".join(result.notes),
                )
        except StoreError:
            # The finish may have been committed all the same: the files stay (retention
            # deletes the task's folder, whichever claim they turn out to be).
            raise
        except BaseException:
            self._discard(claimed.id, stored)
            raise
        if moved is None:
            # They belong to no one: the task is another claim's now, or ended without us.
            self._discard(claimed.id, stored)
            log.info("task %s finished but was no longer ours; result discarded", claimed.id)
        else:
            log.info("task %s succeeded", claimed.id)

    def _discard(self, task_id: int, stored: list[dict[str, str | int]]) -> None:
        """Delete the files this claim stored for a task it did not finish."""
        if not stored:
            return
        try:
            self.runtime.storage.delete(str(item["key"]) for item in stored)
        except StorageError:
            log.exception(
                "task %s: the files of a discarded result could not be deleted; they go with "
                "the task's folder at its retention",
                task_id,
            )

    def _fail(self, task_id: int, error: ReelgateError) -> None:
        log.info("task %s failed: %s %s", task_id, error.code, error.message)
        try:
            with self.db.write() as session:
                queue.fail(session, task_id, worker_id=self.id, error=error)
        except StoreError:
            log.exception("task %s: its failure could not be recorded; left to its lease", task_id)

    # -- leases and sweeping -------------------------------------------------------------

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        interval = self.settings.worker.heartbeat_seconds
        while not stop.wait(interval):
            try:
                self.heartbeat()
            except Exception:  # the database may be briefly unreachable; try again next beat
                log.exception("heartbeat failed")

    def heartbeat(self) -> None:
        with self._lock:
            active = list(self._active.values())
        with self.db.write() as session:
            queue.touch_worker(session, self.id)
            for item in active:
                ours = queue.renew_lease(
                    session,
                    item.task.id,
                    self.id,
                    self.settings.worker.lease_seconds,
                    item.progress,
                )
                if not ours:
                    if queue.task_status(session, item.task.id) is TaskStatus.CANCEL:
                        item.cancelled.set()
                    item.stop.set()

    def _retention_loop(self, stop: threading.Event) -> None:
        """Delete expired tasks' results and expired uploads now and then, until ``stop``."""
        retention = self.settings.retention
        if not (retention.results_seconds or retention.uploads_seconds):
            return
        while not stop.wait(retention.sweep_seconds * random.uniform(0.5, 1.0)):
            try:
                sweep_expired(self.runtime, stop=stop)
            except Exception:  # storage or database briefly unreachable: the next sweep redoes it
                log.exception("retention sweep failed")

    def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < self.settings.worker.sweep_seconds:
            return
        self._last_sweep = now
        try:
            sweep(self.runtime, actor=self.id)
            for engine in self.engines.values():
                if isinstance(engine, RemoteEngine) and engine.remote:
                    engine.sweep()
        except Exception:
            log.exception("sweep failed")


def _set_on_stop(stop: threading.Event, wake: threading.Event, running: threading.Event) -> None:
    """Set ``wake`` once ``stop`` is set (or return when the loop ended without it)."""
    while running.is_set():
        if stop.wait(1.0):
            wake.set()
            return


def sweep(runtime: Runtime, *, actor: str = "sweeper") -> int:
    """Requeue RUNNING tasks whose lease expired, or fail them with 1006 after the last attempt."""
    now = utcnow()
    silent_for = timedelta(seconds=10 * runtime.settings.worker.lease_seconds)
    with runtime.db.write() as session:
        queue.forget_silent_workers(session, now - silent_for)
    with runtime.db.read() as session:
        expired = queue.expired_leases(session, now)
    moved = 0
    for task_id, attempts, max_attempts in expired:
        with task_context(task_id):
            with runtime.db.write() as session:
                if attempts >= max_attempts:
                    error = TaskTimedOut(
                        f"its worker stopped responding on attempt {attempts} of {max_attempts}"
                    )
                    done = queue.fail_expired(session, task_id, now=now, error=error, actor=actor)
                else:
                    done = queue.requeue_expired(
                        session, task_id, now=now, attempts=attempts, actor=actor
                    )
            if done is not None:
                outcome = "failed with 1006" if attempts >= max_attempts else "requeued"
                log.info("task %s: lease expired on attempt %d; %s", task_id, attempts, outcome)
        moved += done is not None
    return moved
