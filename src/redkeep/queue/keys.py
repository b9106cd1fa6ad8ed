"""Every Redis key name the job queue uses, in one place.

All keys of one queue share the hash tag ``{<key_prefix>:q:<queue>}`` so that the Lua scripts,
which touch several of them at once, also run on Redis Cluster. The registry of queue names
lives outside any queue's tag and is never touched by a script.
"""

from __future__ import annotations

from dataclasses import dataclass

from redkeep.names import check_name

__all__ = ["QueueKeys", "registry_key", "validate_queue_name"]


def validate_queue_name(name: str) -> str:
    """Return ``name`` when it follows the naming rule of :mod:`redkeep.names` (the same as
    for caches), else raise :class:`~redkeep.errors.InvalidName` (a ``ValueError``)."""
    return check_name(name, "queue name")


def registry_key(key_prefix: str) -> str:
    """The set holding the names of every queue used under ``key_prefix``."""
    return f"{key_prefix}:queues"


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue. ``job(id)`` is the hash of one job."""

    key_prefix: str
    queue: str

    @property
    def tag(self) -> str:
        return f"{{{self.key_prefix}:q:{self.queue}}}"

    @property
    def base(self) -> str:
        """``{tag}:``; scripts append ``waiting``, ``job:<id>``... to it."""
        return f"{self.tag}:"

    @property
    def job_prefix(self) -> str:
        """Prefix of job hashes; scripts append the job id."""
        return f"{self.tag}:job:"

    def job(self, job_id: str) -> str:
        return f"{self.job_prefix}{job_id}"

    @property
    def waiting(self) -> str:
        """Zset of runnable jobs; score = -priority * 1e12 + FIFO sequence."""
        return f"{self.tag}:waiting"

    @property
    def delayed(self) -> str:
        """Zset of jobs waiting for their run_at (score, ms)."""
        return f"{self.tag}:delayed"

    @property
    def active(self) -> str:
        """Zset of claimed jobs; score = lease expiry (ms)."""
        return f"{self.tag}:active"

    @property
    def completed(self) -> str:
        return f"{self.tag}:completed"

    @property
    def failed(self) -> str:
        return f"{self.tag}:failed"

    @property
    def cancelled(self) -> str:
        return f"{self.tag}:cancelled"

    @property
    def marker(self) -> str:
        """Zset popped with BZPOPMIN by idle workers; written when jobs become runnable."""
        return f"{self.tag}:marker"

    @property
    def idle(self) -> str:
        """Zset of idle workers ready for a direct hand-off: ``<worker id>|<lease ms>`` scored
        by registration expiry (ms)."""
        return f"{self.tag}:idle"

    @property
    def idle_room(self) -> str:
        """Hash: idle worker member -> how many more jobs it may be handed."""
        return f"{self.tag}:idleroom"

    @property
    def inbox_prefix(self) -> str:
        return f"{self.tag}:inbox:"

    def inbox(self, worker_id: str) -> str:
        """Zset through which an enqueue hands a job (already claimed) to an idle worker."""
        return f"{self.inbox_prefix}{worker_id}"

    @property
    def seq(self) -> str:
        """Counter giving FIFO order within a priority."""
        return f"{self.tag}:seq"

    def status_key(self, status: str) -> str:
        """The zset holding jobs of ``status``."""
        return f"{self.tag}:{status}"

    def all_static(self) -> list[str]:
        """Keys of the queue other than job hashes."""
        return [
            self.waiting,
            self.delayed,
            self.active,
            self.completed,
            self.failed,
            self.cancelled,
            self.marker,
            self.seq,
            self.idle,
            self.idle_room,
        ]
