"""Every Redis key name the job queue uses, in one place (layout 2).

All keys of one queue share the hash tag ``{<key_prefix>:q:<queue>}`` so that the Lua scripts,
which touch several of them at once, also run on Redis Cluster. Layout 2 has a **fixed set of
keys per queue**: job records are fields of per-queue hashes, so every key a script touches is
passed to it in ``KEYS`` (none is built from data inside a script). Its keys carry a ``v2:``
segment, so that a process still running redkeep 0.1 (layout 1, one hash per job) never reads
or damages them; :mod:`redkeep.queue.upgrade` converts a layout-1 queue.

==============  ======  =====================================================================
name            type    content
==============  ======  =====================================================================
``state``       hash    job id -> state record: ``status|attempts|token|priority|
                        max_attempts|created|run_at|started|finished|worker`` (times in ms;
                        :mod:`redkeep.queue.codec` and ``scripts/lib/state.lua`` read it)
``data``        hash    job id -> immutable record: a JSON header line ``[id, name, timeout,
                        backoff]``, a newline, then the payload as the serializer wrote it
``results``     hash    job id -> result (serializer text)
``errors``      hash    job id -> last failure, JSON ``[type, message, traceback]``
``meta``        hash    ``layout`` (2), ``seq`` (FIFO counter), ``hlease`` (lease in ms of a
                        job handed to an idle worker), ``acks`` (written by ``ack.lua`` so
                        that a replica-acknowledged call that changed nothing waits too),
                        ``paused`` (``1`` while the queue is paused: nothing is claimed),
                        ``rate`` (``<max jobs>|<window ms>``: the rate limit), ``glimit``
                        (``<concurrency>|<max jobs>|<window ms>``: the group limit, 0 =
                        none), ``gturn`` (the groups' round-robin counter)
``waiting``     zset    runnable jobs; score ``-priority * 1e12 + seq``
``delayed``     zset    jobs waiting for their ``run_at``; score run_at (ms)
``active``      zset    claimed jobs; score lease expiry (ms)
``completed``   zset    finished jobs by finish time (ms); also ``failed``, ``cancelled``
``marker``      zset    wake-up marker popped by idle workers (member ``w``)
``handoff``     zset    jobs handed to whichever idle worker pops them first; member
                        ``<state record>\\n<data>``, score hand-off time (ms)
``idle``        zset    worker id -> end of its idle registration (ms)
``workers``     zset    worker id -> time of its last step (ms)
``steps``       hash    worker id -> memo of its last step (request id and reply), so that a
                        re-sent step returns the same jobs
``requests``    hash    request id -> reply of an admin script (cancel, retry, purge,
                        restore), for re-sends; ``reqtimes`` (zset) says when, for trimming
``events``      stream  job events (``scripts/lib/events.lua``): fields ``j`` job id, ``e``
                        event, ``p`` previous status, ``r`` will retry, ``d`` progress JSON;
                        bounded by ``MAXLEN ~`` (``meta.events``: the bound, ``0`` = off)
``throughput``  hash    per-minute counters: 60 slots ``m<slot>`` (minute number), ``c<slot>``
                        completed and ``f<slot>`` failed in that minute
``waits``       hash    job id -> 1 while a ``wait()`` caller waits for it (its finish is
                        then streamed even with events off)
``progress``    hash    job id -> last progress reported by its handler (JSON)
``schedules``   hash    schedule id -> definition (JSON, :mod:`redkeep.queue.schedule_model`)
``schedstate``  hash    schedule id -> ``version|next_ms|paused|last_job_id``
``schedtimes``  zset    schedule id -> next tick (ms), or the end of a worker's claim on it;
                        paused and ended schedules are not in it
``schedclaims`` hash    worker id -> memo of its last schedule claim (request id and ids)
``ratelog``     zset    the rate limit's window: ``<job id>:<token>`` -> start time (ms), one
                        entry per job started in the last window (``scripts/lib/rate.lua``)
``gwait``       zset    grouped waiting jobs (also in ``waiting``, scored after every
                        ungrouped one), scores 0, member ``<group>\\n<run order>\\n<id>``
``groups``      zset    groups that may start a job now, scored by turn (round-robin)
``gactive``     hash    group -> its active jobs
``gsleep``      zset    groups whose rate window is full -> when it has room (ms)
``glog``        zset    starts of each group's rate window, scores 0, member
                        ``<group>\\n<start ms>\\n<id>:<token>`` (``scripts/lib/groups.lua``)
``blocked``     zset    jobs waiting for their parents (``depends_on``); score creation (ms)
``children``    hash    parent job id -> JSON array of the ids of its children (flows,
                        ``scripts/lib/flows.lua``); dropped when the parent is trimmed
``deps``        hash    blocked job id -> ``<parents still unfinished>|<on_parent_failure>``
``outflow``     list    outcomes of parents with children in other queues, JSON
                        ``[child queue, parent id, status, result, error]``, relayed by workers
``removed``     zset    completed jobs removed by retention -> when (ms): the newest 100,000
                        of the last 7 days (``scripts/lib/maintain.lua``); such a parent
                        counts as completed (result None) for new children
==============  ======  =====================================================================

``wake:<worker id>`` (zset) is the only per-worker key: written and popped by plain commands
(an interrupt of that worker's blocking wait), never by a script. The registry of queue names
(``<key_prefix>:queues``) lives outside any queue's tag and is never touched by a script.

The worker registry (:mod:`redkeep.queue.workers`: which workers are alive, for operators) is
one fixed pair of keys under a tag of its own, ``{<key_prefix>:workers}`` (:class:`WorkerKeys`):

==============  ======  =====================================================================
``beats``       zset    worker id -> expiry of its last heartbeat (ms, server clock)
``info``        hash    worker id -> JSON record: host, pid, queues, concurrency, active,
                        processed, started_at and last_heartbeat (ms)
==============  ======  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from redkeep.names import check_name

__all__ = [
    "LAYOUT",
    "WORKER_NAMES",
    "QueueKeys",
    "V1Keys",
    "WorkerKeys",
    "registry_key",
    "validate_queue_name",
]

LAYOUT = 2
"""Storage layout version written to ``meta.layout``."""


def validate_queue_name(name: str) -> str:
    """Return ``name`` when it follows the naming rule of :mod:`redkeep.names` (the same as
    for caches), else raise :class:`~redkeep.errors.InvalidName` (a ``ValueError``)."""
    return check_name(name, "queue name")


def registry_key(key_prefix: str) -> str:
    """The set holding the names of every queue used under ``key_prefix``."""
    return f"{key_prefix}:queues"


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue (layout 2). Attribute names are the names scripts declare in
    their ``-- KEYS[n] <name>`` header lines."""

    key_prefix: str
    queue: str

    @property
    def tag(self) -> str:
        return f"{{{self.key_prefix}:q:{self.queue}}}"

    def _key(self, name: str) -> str:
        return f"{self.tag}:v2:{name}"

    # -- job records -------------------------------------------------------------------------
    @cached_property
    def state(self) -> str:
        return self._key("state")

    @cached_property
    def data(self) -> str:
        return self._key("data")

    @cached_property
    def results(self) -> str:
        return self._key("results")

    @cached_property
    def errors(self) -> str:
        return self._key("errors")

    @cached_property
    def meta(self) -> str:
        return self._key("meta")

    # -- status indexes ----------------------------------------------------------------------
    @cached_property
    def waiting(self) -> str:
        return self._key("waiting")

    @cached_property
    def delayed(self) -> str:
        return self._key("delayed")

    @cached_property
    def active(self) -> str:
        return self._key("active")

    @cached_property
    def completed(self) -> str:
        return self._key("completed")

    @cached_property
    def failed(self) -> str:
        return self._key("failed")

    @cached_property
    def cancelled(self) -> str:
        return self._key("cancelled")

    def status_key(self, status: str) -> str:
        """The zset holding jobs of ``status``."""
        return self._key(status)

    # -- workers -----------------------------------------------------------------------------
    @cached_property
    def marker(self) -> str:
        return self._key("marker")

    @cached_property
    def handoff(self) -> str:
        return self._key("handoff")

    @cached_property
    def idle(self) -> str:
        return self._key("idle")

    @cached_property
    def workers(self) -> str:
        return self._key("workers")

    @cached_property
    def steps(self) -> str:
        return self._key("steps")

    def wake(self, worker_id: str) -> str:
        """The zset a worker's blocking wait also pops, so that it can be interrupted."""
        return self._key(f"wake:{worker_id}")

    # -- re-sent requests --------------------------------------------------------------------
    @cached_property
    def requests(self) -> str:
        return self._key("requests")

    @cached_property
    def reqtimes(self) -> str:
        return self._key("reqtimes")

    # -- events, counters, progress (redkeep.queue.events) -------------------------------------
    @cached_property
    def events(self) -> str:
        return self._key("events")

    @cached_property
    def throughput(self) -> str:
        return self._key("throughput")

    @cached_property
    def waits(self) -> str:
        return self._key("waits")

    @cached_property
    def progress(self) -> str:
        return self._key("progress")

    # -- schedules (redkeep.queue.schedules) ---------------------------------------------------
    @cached_property
    def schedules(self) -> str:
        return self._key("schedules")

    @cached_property
    def schedstate(self) -> str:
        return self._key("schedstate")

    @cached_property
    def schedtimes(self) -> str:
        return self._key("schedtimes")

    @cached_property
    def schedclaims(self) -> str:
        return self._key("schedclaims")

    # -- deduplication (redkeep.queue.dedup) --------------------------------------------------
    @cached_property
    def dedup(self) -> str:
        """Hash: dedup key -> ``<expiry ms>|<job id>``."""
        return self._key("dedup")

    @cached_property
    def dedupexp(self) -> str:
        """Zset: dedup key scored by when its entry may be dropped (see scripts/lib/dedup.lua)."""
        return self._key("dedupexp")

    # -- flow control (redkeep.queue.limits) ---------------------------------------------------
    @cached_property
    def ratelog(self) -> str:
        """Zset: the starts in the rate limit's window (see scripts/lib/rate.lua)."""
        return self._key("ratelog")

    @cached_property
    def gwait(self) -> str:
        """Zset: grouped waiting jobs by group and run order (see scripts/lib/groups.lua)."""
        return self._key("gwait")

    @cached_property
    def groups(self) -> str:
        """Zset: the groups that may start a job now, by turn."""
        return self._key("groups")

    @cached_property
    def gactive(self) -> str:
        """Hash: group -> active jobs."""
        return self._key("gactive")

    @cached_property
    def gsleep(self) -> str:
        """Zset: groups whose rate window is full -> when it has room (ms)."""
        return self._key("gsleep")

    @cached_property
    def glog(self) -> str:
        """Zset: the starts in each group's rate window."""
        return self._key("glog")

    # -- flows (redkeep.queue.flows) -----------------------------------------------------------
    @cached_property
    def blocked(self) -> str:
        """Zset: jobs of status ``blocked`` (waiting for parents), scored by creation (ms)."""
        return self._key("blocked")

    @cached_property
    def children(self) -> str:
        """Hash: parent job id -> JSON array of its children's ids."""
        return self._key("children")

    @cached_property
    def deps(self) -> str:
        """Hash: blocked job id -> ``<unfinished parents>|<on_parent_failure>``."""
        return self._key("deps")

    @cached_property
    def outflow(self) -> str:
        """List: outcomes of parents with children in other queues, to relay (flows.lua)."""
        return self._key("outflow")

    @cached_property
    def removed(self) -> str:
        """Zset: ids of completed jobs removed by retention -> when (ms), bounded (a removed
        parent counts as completed, lib/maintain.lua)."""
        return self._key("removed")

    def names(self, names: tuple[str, ...]) -> list[str]:
        """The keys for the names a script declares (its ``KEYS`` in order)."""
        return [getattr(self, n) for n in names]

    def all_static(self) -> list[str]:
        """Every key of the queue except the per-worker wake keys."""
        return self.names(STATIC_NAMES)


STATIC_NAMES = (
    "state", "data", "results", "errors", "meta", "waiting", "delayed", "active", "completed",
    "failed", "cancelled", "marker", "handoff", "idle", "workers", "steps", "requests",
    "reqtimes", "events", "throughput", "waits", "progress", "schedules", "schedstate",
    "schedtimes", "schedclaims", "dedup", "dedupexp", "ratelog",
    "gwait", "groups", "gactive", "gsleep", "glog", "blocked", "children", "deps", "outflow",
    "removed",
)  # fmt: skip
"""Names of a queue's fixed keys (the attributes of :class:`QueueKeys`)."""


@dataclass(frozen=True)
class V1Keys:
    """The keys of a queue written by redkeep 0.1 (layout 1: one hash per job), read only by
    :mod:`redkeep.queue.upgrade`."""

    key_prefix: str
    queue: str

    @property
    def tag(self) -> str:
        return f"{{{self.key_prefix}:q:{self.queue}}}"

    def job(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}"

    def status_key(self, status: str) -> str:
        return f"{self.tag}:{status}"

    @property
    def seq(self) -> str:
        return f"{self.tag}:seq"

    @property
    def inbox_pattern(self) -> str:
        """SCAN pattern of the per-worker inboxes (hash tag braces escaped)."""
        return f"\\{{{self.key_prefix}:q:{self.queue}\\}}:inbox:*"

    def others(self) -> list[str]:
        """Layout-1 keys other than job hashes, inboxes and status zsets."""
        return [f"{self.tag}:{n}" for n in ("marker", "seq", "idle", "idleroom")]


@dataclass(frozen=True)
class WorkerKeys:
    """The keys of the worker registry under ``key_prefix`` (fixed, one hash tag: the heartbeat
    script touches both at once). Attribute names are the names ``worker_beat.lua`` declares."""

    key_prefix: str

    @property
    def tag(self) -> str:
        return f"{{{self.key_prefix}:workers}}"

    @cached_property
    def beats(self) -> str:
        """Zset: worker id -> expiry of its last heartbeat (ms, server clock)."""
        return f"{self.tag}:beats"

    @cached_property
    def info(self) -> str:
        """Hash: worker id -> the worker's JSON record."""
        return f"{self.tag}:info"

    def names(self, names: tuple[str, ...]) -> list[str]:
        """The keys for the names a script declares (its ``KEYS`` in order)."""
        return [getattr(self, n) for n in names]


WORKER_NAMES = ("beats", "info")
"""Names of the worker registry's keys (the attributes of :class:`WorkerKeys`)."""
