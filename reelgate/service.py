"""Use-cases shared by the API and the CLI: keys, submit, query, cancel, uploads and signed files,
account, readiness."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from reelgate import admin
from reelgate.admin import (
    CancelSummary,
    DisabledKey,
    ListedTask,
    TaskFilter,
    checked_key_settings,
)
from reelgate.core.catalogue import ModelSpec, get_model
from reelgate.core.errors import (
    Conflict,
    InsufficientBalance,
    InvalidApiKey,
    InvalidParameters,
    LinkedFileMissing,
    LinkRefused,
    NotReady,
    QueueFull,
    ReelgateError,
    TaskNotFound,
    UnknownModel,
    WebhookNotFound,
)
from reelgate.core.faults import Faults
from reelgate.core.ids import SnowflakeGenerator, is_task_id
from reelgate.core.jsontext import value_depth
from reelgate.core.pricing import yuan_text
from reelgate.core.status import TaskStatus
from reelgate.fleet import FleetMetrics, FleetSnapshot
from reelgate.keycache import RecognisedKeys
from reelgate.limiting import Budget, RateLimits
from reelgate.retention import Swept, collect, is_expired
from reelgate.runtime import Runtime
from reelgate.storage import StoredObject
from reelgate.store import outbox, queue, repo
from reelgate.store.tables import ApiKey, Task, utcnow
from reelgate.store.views import webhook_detail
from reelgate.uploads import IncomingUpload
from reelgate.webhooks.secret import public_secret
from reelgate.webhooks.urls import checked_webhook_url
from reelgate.wire import AccountStatus, QueueStatus
from reelgate.wire.webhooks import WebhookDetail

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from reelgate.config import HttpSettings
    from reelgate.engines.upstream.prices import UpstreamPrices

_ids = SnowflakeGenerator()
#: Length of the column it is stored in.
MAX_IDEMPOTENCY_KEY = 200
#: The longest reason a readiness probe is given.
MAX_READY_REASON = 200


@dataclass(frozen=True)
class UpstreamKeyGauge:
    """One upstream key as the metrics show it (by label, never the key)."""

    label: str
    in_rotation: bool
    in_use: int
    concurrency: int


@dataclass(frozen=True)
class Caller:
    """The authenticated API key behind a request."""

    id: int
    name: str
    concurrency: int
    queue_cap: int
    #: The faults the operator set on this key for its integrators to test with (None: none).
    faults: Faults | None = None
    #: An admin key: the dashboard shows it every key's tasks and the keys themselves.
    admin: bool = False


class Service:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.db = runtime.db
        self.settings = runtime.settings
        self.rate_limits = RateLimits(runtime.settings, runtime.db)
        self.recognised_keys = RecognisedKeys()
        # A worker not heard from within a lease is as good as gone: its tasks get swept.
        self.fleet = FleetMetrics(
            runtime.db, alive_within_seconds=runtime.settings.worker.lease_seconds
        )
        #: Prices of passed-through models, from the upstream (made when first needed).
        self.upstream_prices: UpstreamPrices | None = None
        self._upstream_lock = threading.Lock()

    # -- keys -----------------------------------------------------------------------------

    def authenticate(self, api_key: str | None, budget: Budget = Budget.SUBMIT) -> Caller:
        """The key behind a request, once it is counted against its ``budget``.

        A request that does not say which budget counts against the submits' (the smaller).
        The key is read and, when the limits are counted in the database, counted in one
        transaction.
        """
        token = _token_of(api_key)
        counted_here = self.rate_limits.counts_in_database(budget)
        with self.db.write() if counted_here else self.db.read() as session:
            caller = _caller_of(session, token)
            if counted_here:
                self.rate_limits.check(caller.id, budget, caller.faults, session=session)
        if not counted_here:
            self.rate_limits.check(caller.id, budget, caller.faults)
        self.recognised_keys.add(token)
        return caller

    def recognise(self, api_key: str | None) -> None:
        """Refuse (``InvalidApiKey``) a key that is missing, unknown or disabled, without
        counting the request: the early answer before a body is read. A good key is remembered
        for a few seconds (see ``recognised`` and ``reelgate.keycache``)."""
        token = _token_of(api_key)
        with self.db.read() as session:
            _caller_of(session, token)
        self.recognised_keys.add(token)

    def recognised(self, api_key: str | None) -> bool:
        """Whether ``api_key`` was found good a moment ago (no I/O: for the event loop)."""
        token = api_key.strip() if api_key else ""
        return bool(token) and token in self.recognised_keys

    # -- key administration (the operator's commands) -------------------------------------

    def create_key(
        self,
        name: str,
        *,
        coins: int | None = None,
        concurrency: int | None = None,
        admin: bool = False,
    ) -> repo.NewKey:
        """Create a key (an ``admin`` one manages keys and sees every task in the dashboard);
        amounts left out come from the settings. Only its hash is stored.

        A blank or over-long name and amounts the tables cannot hold (or that would leave the
        key's tasks waiting for ever, like a concurrency of 0) are refused with
        ``InvalidParameters``: nothing is created then.
        """
        coins = self.settings.default_key_coins if coins is None else coins
        if concurrency is None:
            concurrency = self.settings.default_key_concurrency
        name = checked_key_settings(name, coins, concurrency)  # ``admin`` is the flag here
        with self.db.write() as session:
            return repo.create_key(
                session,
                name=name,
                coins=coins,
                concurrency=concurrency,
                queue_cap=self.settings.default_key_queue_cap,
                admin=admin,
            )

    def ensure_first_key(self) -> str | None:
        """On an empty database, create a key, save it in the data dir and return it.

        ``reelgate serve`` calls this so that the embedded default answers its first request
        without any other command; the key is printed once and kept in ``api-key.txt``. It is
        an admin key: whoever reads the data dir runs the server, and signs in to the dashboard
        with it.
        """
        with self.db.write() as session:
            if repo.count_keys(session):
                return None
            key = repo.create_key(
                session,
                name="first key",
                coins=self.settings.default_key_coins,
                concurrency=self.settings.default_key_concurrency,
                queue_cap=self.settings.default_key_queue_cap,
                admin=True,
            )
        path = self.runtime.first_key_path
        path.write_text(key.api_key + "\n")
        path.chmod(0o600)
        return key.api_key

    def list_keys(self) -> list[ApiKey]:
        with self.db.read() as session:
            return repo.list_keys(session)

    def disable_key(self, name: str, *, cancel_running: bool = False) -> DisabledKey:
        """Disable the one key ``name`` designates (the key itself, its prefix or its id), and
        cancel its QUEUED tasks (and its RUNNING ones with ``cancel_running``) with full
        refunds, in the same transaction.

        A prefix is tried before an id, since a prefix may be all digits. A prefix that several
        keys share is refused with their ids (``InvalidParameters``), as is a name that matches
        no key: nothing is disabled then. Disabling a disabled key cancels what is left.
        """
        statuses = admin.CANCELLABLE if cancel_running else (TaskStatus.QUEUED,)
        with self.db.write() as session:
            key = _one_key(session, name)
            # Disabled first: on PostgreSQL this update takes the key's row lock, which a racing
            # claim or submit waits for (and is then refused: the claim's key update and
            # ``repo.take_coins`` check ``disabled``), so no task of the key starts or arrives
            # while its tasks are read and cancelled.
            repo.set_key_disabled(session, key, True)
            candidates = repo.task_states(session, statuses=statuses, key_id=key.id)
            summary = admin.cancel_each(session, candidates, statuses, detail="key disabled")
            session.refresh(key)  # its coins, after the refunds
            return DisabledKey(key, summary)

    def cancel_tasks(
        self,
        *,
        key: str | None = None,
        every_key: bool = False,
        task_ids: list[int] | None = None,
        statuses: tuple[TaskStatus, ...] = (TaskStatus.QUEUED,),
    ) -> CancelSummary:
        """Cancel, with full refunds, the tasks in ``statuses`` (QUEUED, RUNNING) of one key
        (named as ``disable_key`` names it), of ``every_key``, or among ``task_ids``.

        Exactly one of the three selections is required (``InvalidParameters`` otherwise).
        Named tasks in another status, and ids that name no task, are reported as skipped.
        """
        chosen = (key is not None) + every_key + bool(task_ids)
        if chosen != 1:
            raise InvalidParameters(
                "say which tasks to cancel: one key's, every key's, or tasks by id"
                + (" (only one of these)" if chosen else "")
            )
        wanted = admin.checked_statuses(statuses)
        with self.db.write() as session:
            skipped: dict[int, TaskStatus | None] = {}
            if task_ids:
                found = dict(repo.task_states(session, task_ids=task_ids))
                candidates = sorted((i, s) for i, s in found.items() if s in wanted)
                skipped = {
                    i: found.get(i) for i in sorted(set(task_ids)) if found.get(i) not in wanted
                }
            else:
                key_id = _one_key(session, key).id if key is not None else None
                candidates = repo.task_states(session, statuses=wanted, key_id=key_id)
            summary = admin.cancel_each(
                session, candidates, wanted, detail="cancelled by the operator"
            )
        return replace(summary, skipped={**skipped, **summary.skipped})

    def list_tasks(self, filters: TaskFilter) -> list[ListedTask]:
        """Tasks of every key (or of ``filters.key``), newest first, at most ``filters.limit``."""
        if not 1 <= filters.limit <= admin.MAX_TASK_LISTING:
            raise InvalidParameters(
                f"the limit must be between 1 and {admin.MAX_TASK_LISTING}, not {filters.limit}"
            )
        since = admin.stored_time(filters.since) if filters.since is not None else None
        with self.db.read() as session:
            key_id = _one_key(session, filters.key).id if filters.key is not None else None
            rows = repo.list_tasks(
                session,
                limit=filters.limit,
                key_id=key_id,
                statuses=filters.statuses,
                model=filters.model.strip("/") if filters.model is not None else None,
                since=since,
            )
        return [ListedTask(task, key.name, key.key_prefix) for task, key in rows]

    def key_faults(self, name: str) -> tuple[ApiKey, Faults | None]:
        """The key ``name`` designates (as ``disable_key`` resolves it) and its faults."""
        with self.db.read() as session:
            key = _one_key(session, name)
            return key, Faults.from_stored(key.faults)

    def set_key_faults(
        self, name: str, changes: dict[str, Any], *, clear: bool = False
    ) -> tuple[ApiKey, Faults | None]:
        """Change the faults of the key ``name`` designates (as ``disable_key`` resolves it).

        ``changes`` are ``Faults`` fields to set over the key's current ones (over none when
        ``clear``); nothing else changes. Values out of range are refused with
        ``InvalidParameters`` naming the field. Returns the key and its faults now (None when
        none is set).
        """
        with self.db.write() as session:
            key = _one_key(session, name)
            current = None if clear else Faults.from_stored(key.faults)
            base = current.model_dump() if current is not None else {}
            try:
                faults = Faults.model_validate({**base, **changes})
            except ValidationError as error:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in item['loc']) or 'faults'}: {item['msg']}"
                    for item in error.errors()
                )
                raise InvalidParameters(problems) from None
            repo.set_key_faults(session, key, faults.to_stored())
            return key, Faults.from_stored(key.faults)

    # -- tasks ----------------------------------------------------------------------------

    def model(self, model_path: str) -> ModelSpec:
        model = get_model(model_path)
        if model is None:
            raise UnknownModel(model_path)
        return model

    def submit(
        self,
        caller: Caller,
        model_path: str,
        body: Any,
        *,
        idempotency_key: str | None = None,
        links_base_url: str | None = None,
    ) -> Task:
        """Validate, reserve the price and write the task: all in one transaction.

        ``links_base_url`` is the base URL the request came through: the result links inside
        the task's webhook event use it.
        """
        webhook_url, body = self._webhook_of(body)
        path, params, price = self._priced(model_path, body)
        idempotency_key = _checked_idempotency_key(idempotency_key)
        try:
            with self.db.write() as session:
                if idempotency_key:
                    existing = repo.find_by_idempotency_key(session, caller.id, idempotency_key)
                    if existing is not None and self._expired(existing):
                        # Forgotten with its task (the sweep forgets it too): a new task now.
                        repo.forget_idempotency_key(session, existing.id)
                    elif existing is not None:
                        return _same_request(existing, path, params)
                now = utcnow()
                task, paid = queue.enqueue(
                    session,
                    detail=f"{price} coins held",
                    queue_cap=caller.queue_cap,
                    id=_ids.next_id(),
                    api_key_id=caller.id,
                    model=path,
                    params=params,
                    status=TaskStatus.QUEUED.value,
                    error_code="",
                    error_message="",
                    progress=0.0,
                    attempts=0,
                    max_attempts=self.settings.worker.max_attempts,
                    reserved_coins=price,
                    idempotency_key=idempotency_key,
                    created_at=now,
                    webhook_url=webhook_url,
                    links_base_url=links_base_url[:512] if webhook_url and links_base_url else None,
                    run_after=_queue_delay_until(caller.faults, now),
                )
                if not paid:  # raising rolls the task back with the rest
                    refused = repo.why_refused(session, caller.id, caller.queue_cap)
                    if refused == "queue":
                        raise QueueFull(f"this key already has {caller.queue_cap} queued tasks")
                    if refused == "disabled":  # since it was authenticated
                        raise InvalidApiKey("this API key is disabled")
                    balance = repo.key_balance(session, caller.id)
                    raise InsufficientBalance(
                        f"this task needs {price} coins, the key has {balance}"
                    )
                return task
        except Conflict:
            # Two submits raced with one idempotency key: the first one's task is the answer.
            if not idempotency_key:
                raise
            with self.db.read() as session:
                existing = repo.find_by_idempotency_key(session, caller.id, idempotency_key)
                if existing is None:
                    raise
                return _same_request(existing, path, params)

    def submit_as(
        self,
        api_key: str | None,
        model_path: str,
        body: Any,
        *,
        refused: ReelgateError | None = None,
        idempotency_key: str | None = None,
        links_base_url: str | None = None,
    ) -> Task:
        """A v2 submit in one call (one hop from the event loop): the key authenticated against
        the submit budget, then ``refused`` raised (what was wrong with the request's body, told
        only once the key is known good), then ``submit``."""
        caller = self.authenticate(api_key, Budget.SUBMIT)
        if refused is not None:
            raise refused
        return self.submit(
            caller,
            model_path,
            body,
            idempotency_key=idempotency_key,
            links_base_url=links_base_url,
        )

    def _webhook_of(self, body: Any) -> tuple[str | None, Any]:
        """(the checked ``webhookUrl`` or None, the body without it).

        The URL obeys the address rules of input media, checked now so that a refused address
        is answered at submit (1001) rather than discovered when the task ends.
        """
        if not isinstance(body, dict) or body.get("webhookUrl") is None:
            return None, body
        url = body["webhookUrl"]
        if not isinstance(url, str) or not url.strip():
            raise InvalidParameters("webhookUrl must be a non-empty string")
        rest = {name: value for name, value in body.items() if name != "webhookUrl"}
        return checked_webhook_url(url, self.settings), rest

    # -- webhooks -------------------------------------------------------------------------

    def webhook_secret(self, caller: Caller) -> str:
        """The key's signing secret (``whsec_…``), for its owner."""
        with self.db.read() as session:
            key = session.get(ApiKey, caller.id)
            assert key is not None
            return public_secret(key.webhook_secret)

    def webhook_detail(self, caller: Caller, task_id: Any) -> WebhookDetail:
        """The delivery record of a task's event (getWebhookDetail)."""
        task = self.get_task(caller, task_id)
        with self.db.read() as session:
            delivery = outbox.for_task(session, task.id, caller.id)
            if delivery is None:
                raise WebhookNotFound(f"task {task.id} has no webhook event")
            prefix = session.get(ApiKey, caller.id)
            masked = (prefix.key_prefix if prefix else "") + "*" * 18
            return webhook_detail(delivery, masked)

    def retry_webhook(self, caller: Caller, webhook_id: Any, url: str | None) -> None:
        """Send an event again from now on (retryWebhook), to ``url`` when given."""
        if isinstance(webhook_id, int) and not isinstance(webhook_id, bool):
            webhook_id = str(webhook_id)
        if not isinstance(webhook_id, str) or not webhook_id.strip().isdigit():
            raise InvalidParameters("webhookId is required (data.id of getWebhookDetail)")
        if url is not None and (not isinstance(url, str) or not url.strip()):
            raise InvalidParameters("webhookUrl must be a non-empty string")
        checked = checked_webhook_url(url, self.settings) if url else None
        number = int(webhook_id.strip())
        if number >= 2**63:
            raise WebhookNotFound(f"no webhook event {webhook_id}")
        with self.db.write() as session:
            if outbox.redeliver(session, number, caller.id, checked) is None:
                raise WebhookNotFound(f"no webhook event {webhook_id}")

    def _expired(self, task: Task) -> bool:
        return is_expired(task, self.settings.retention.results_seconds)

    def query(
        self, api_key: str | None, task_id: Any, *, refused: ReelgateError | None = None
    ) -> Task:
        """A v2 query in one call (one hop from the event loop) and one transaction: the key
        authenticated against the query budget, then ``refused`` raised (what was wrong with
        the request's body, told only once the key is known good), then the task."""
        problem = refused
        task: Task | None = None
        # One transaction: the key's, its counter's and the task's (the limit's hit is kept
        # when the task is not found, as for any request).
        with self.db.transaction(write=self.rate_limits.counts_in_database(Budget.QUERY)):
            caller = self.authenticate(api_key, Budget.QUERY)
            if problem is None:
                try:
                    task = self.get_task(caller, task_id)
                except (InvalidParameters, TaskNotFound) as error:
                    problem = error
        if problem is not None:
            raise problem
        assert task is not None
        return task

    def get_task(self, caller: Caller, task_id: Any) -> Task:
        task_key = _parse_task_id(task_id)
        with self.db.read() as session:
            task = repo.get_task(session, task_key)
            # Another key's task answers exactly like a missing one: ids are not secrets, but
            # whether a task exists is not another key's business. So does a task past its
            # retention (as on RunningHub), whether its files are deleted yet or not.
            if task is None or task.api_key_id != caller.id or self._expired(task):
                raise TaskNotFound(f"no task {task_key} for this API key")
            return task

    def cancel(self, caller: Caller, task_id: Any) -> Task:
        """Cancel a QUEUED or RUNNING task at once; a running render stops at its next check."""
        task = self.get_task(caller, task_id)
        for expected in (TaskStatus.QUEUED, TaskStatus.RUNNING):
            if task.status != expected.value:
                continue
            with self.db.write() as session:
                moved = queue.cancel(session, task.id, expected=expected, actor="api")
            if moved is not None:
                break
            task = self.get_task(caller, task.id)  # it moved meanwhile; look again
        return self.get_task(caller, task.id)

    # -- uploads --------------------------------------------------------------------------

    def begin_upload(self, caller: Caller, filename: str, *, max_bytes: int) -> IncomingUpload:
        """An upload of ``caller``'s, to be written chunk by chunk as it arrives (blocking)."""
        return IncomingUpload(self.runtime, caller.id, filename, max_bytes=max_bytes)

    def upload_url(self, base_url: str, key: str) -> str:
        return self.runtime.upload_url(base_url, key)

    def result_url(self, base_url: str, key: str) -> str:
        return self.runtime.result_url(base_url, key)

    def open_signed_file(self, key: str, expires: str, signature: str) -> StoredObject:
        """The stored file behind a signed link (``/files/{key}?expires=…&signature=…``); read
        it with ``read_file``.

        Raises ``LinkRefused`` when the link is not valid, ``LinkedFileMissing`` when no file
        is stored under ``key`` (or ``key`` could not name one: expired files are deleted), and
        ``StorageError`` when the storage cannot be reached.
        """
        problem = self.runtime.signer.verify(key, expires, signature)
        if problem:
            raise LinkRefused(problem)
        stored = self.runtime.storage.stat(key)
        if stored is None:
            raise LinkedFileMissing()
        return stored

    def read_file(self, stored: StoredObject, start: int, end: int) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of a file ``open_signed_file`` found, as they arrive."""
        return self.runtime.storage.read(stored.key, start, end)

    # -- operations -----------------------------------------------------------------------

    def ready(self) -> None:
        """Return when the database and the storage answer; raise ``NotReady`` when one does
        not, its reason naming which (``database: …``, ``storage: …``) and why."""
        problems = [
            f"{part}: {problem}"
            for part, problem in (
                ("database", self.db.ping()),
                ("storage", self.runtime.storage.check()),
            )
            if problem
        ]
        if problems:
            # Each gets its share of the reason's room, so that both show when both fail.
            room = MAX_READY_REASON // len(problems) - len("; ")
            raise NotReady("; ".join(problem[:room] for problem in problems))

    def collect_garbage(self, *, dry_run: bool) -> Swept:
        """Delete now what retention would delete at the next sweep (``reelgate gc``); with
        ``dry_run``, only say what that is."""
        return collect(self.runtime, dry_run=dry_run)

    # -- account --------------------------------------------------------------------------

    def account(self, caller: Caller) -> AccountStatus:
        with self.db.read() as session:
            key = session.get(ApiKey, caller.id)
            assert key is not None
            counts = repo.status_counts(session, caller.id)
        return AccountStatus(
            remain_coins=str(key.coins),
            current_task_counts=str(sum(counts.values())),
            remain_money=yuan_text(key.coins),
            currency="CNY",
            api_type="SHARED",
        )

    def queue_status(self, caller: Caller) -> QueueStatus:
        with self.db.read() as session:
            counts = repo.status_counts(session, caller.id)
        running = counts.get(TaskStatus.RUNNING.value, 0)
        queued = counts.get(TaskStatus.QUEUED.value, 0)
        return QueueStatus(
            api_key_type="SHARED",
            concurrent_limit=caller.concurrency,
            running_count=running,
            queued_count=queued,
            total_current_tasks=running + queued,
            instance_count=0,
        )

    def fleet_snapshot(self) -> FleetSnapshot:
        """Tasks, queue, webhook outbox and workers as the database has them, for ``/metrics``."""
        return self.fleet.read()

    def upstream_key_gauges(self) -> list[UpstreamKeyGauge]:
        """The upstream key pool's state, for ``/metrics``."""
        with self.db.read() as session:
            keys = repo.upstream_keys(session)
            in_use = queue.remote_slots_in_use(session)
        now = utcnow()
        return [
            UpstreamKeyGauge(
                key.label,
                not key.out_of_rotation and (key.resting_until is None or key.resting_until <= now),
                in_use.get(key.fingerprint, 0),
                key.concurrency,
            )
            for key in keys
        ]

    def price(self, model_path: str, body: Any) -> int:
        return self._priced(model_path, body)[2]

    def _priced(self, model_path: str, body: Any) -> tuple[str, dict[str, Any], int]:
        """(model path, params to store, coins to hold) of a valid request, or its 1007.

        A model outside the catalogue that routing sends upstream is passed through: the
        upstream checks and prices the body, which is stored as sent.
        """
        model = get_model(model_path)
        if model is not None:
            request = model.parse(body)
            params = request.parameters()
            return model.path, params, model.reserve_cost(request)
        path = model_path.strip("/")
        if self.settings.engine_for(path) != "upstream":
            raise UnknownModel(path)
        if not isinstance(body, dict):
            raise InvalidParameters("the request body must be a JSON object")
        _check_passed_through(body, self.settings.http)
        return path, body, self._upstream().coins(path, body)

    def _upstream(self) -> UpstreamPrices:
        with self._upstream_lock:
            if self.upstream_prices is None:
                from reelgate.engines.upstream.prices import UpstreamPrices

                self.upstream_prices = UpstreamPrices(self.settings)
            return self.upstream_prices


def _check_passed_through(body: dict[str, Any], limits: HttpSettings) -> None:
    """A body passed through is stored as sent, so it is held to a model body's size and to the
    JSON depth here too, whoever calls (the HTTP layer checks the text before parsing it)."""
    if value_depth(body, limits.max_json_depth) > limits.max_json_depth:
        raise InvalidParameters(
            f"the request body is nested deeper than {limits.max_json_depth} levels"
        )
    size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
    if size > limits.max_model_json_bytes:
        raise InvalidParameters(
            f"the request body is larger than {limits.max_model_json_bytes} bytes"
        )


def _queue_delay_until(faults: Faults | None, now: datetime) -> datetime | None:
    """When a new task may first be claimed: later than now only by a fault-injected delay."""
    if faults is None or faults.queue_delay_seconds <= 0:
        return None
    return now + timedelta(seconds=faults.queue_delay_seconds)


def _checked_idempotency_key(value: str | None) -> str | None:
    """The header's key; blank means none, and a key too long to store is refused, not cut."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > MAX_IDEMPOTENCY_KEY:
        raise InvalidParameters(
            f"the Idempotency-Key header is longer than {MAX_IDEMPOTENCY_KEY} characters"
        )
    return value


def _same_request(existing: Task, model: str, params: dict[str, Any]) -> Task:
    if existing.model != model or existing.params != params:
        raise InvalidParameters("this Idempotency-Key was already used with a different request")
    return existing


def _token_of(api_key: str | None) -> str:
    if not api_key or not api_key.strip():
        raise InvalidApiKey("no API key was sent")
    return api_key.strip()


def _caller_of(session: Session, api_key: str) -> Caller:
    key = repo.key_of_request(session, api_key)
    if key is None:
        raise InvalidApiKey("unknown API key")
    if key.disabled:
        raise InvalidApiKey("this API key is disabled")
    return Caller(
        key.id,
        key.name,
        key.concurrency,
        key.queue_cap,
        Faults.from_stored(key.faults),
        admin=key.admin,
    )


def _parse_task_id(task_id: Any) -> int:
    if isinstance(task_id, int) and not isinstance(task_id, bool):
        task_id = str(task_id)
    if not isinstance(task_id, str) or not task_id.strip():
        raise InvalidParameters("taskId is required")
    task_id = task_id.strip()
    if not is_task_id(task_id) or int(task_id) >= 2**63:
        raise TaskNotFound(f"no task {task_id}")
    return int(task_id)


def _one_key(session: Session, name: str) -> ApiKey:
    """The one key ``name`` designates: the key itself, its prefix or its id.

    A prefix is tried before an id, since a prefix may be all digits. A prefix that several
    keys share is refused with their ids (``InvalidParameters``), as is a name that matches no
    key.
    """
    found = repo.keys_named(session, name)
    if not found:
        raise InvalidParameters(f"no key matches {name!r}")
    if len(found) > 1:
        ids = ", ".join(str(key.id) for key in found)
        raise InvalidParameters(
            f"{len(found)} keys start with {name!r} (ids {ids}); name one by its id"
        )
    return found[0]
