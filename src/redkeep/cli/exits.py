"""The exit codes of every ``redkeep`` command: one table, also in docs/deployment.md.

A test checks that the documented table and :data:`MEANINGS` agree, and that the commands exit
with these codes. Scripts can rely on them: after ``1`` a retry may succeed; after ``2`` it
will not until the command line or the settings change.
"""

from __future__ import annotations

import enum

__all__ = ["MEANINGS", "ExitCode"]


class ExitCode(enum.IntEnum):
    """Why a command ended (see :data:`MEANINGS`)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    REFUSED = 4
    INCOMPLETE = 5
    INTERRUPTED = 130


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success (`redkeep health`: the service is ready, or live with `--live`)",
    ExitCode.ERROR: "the command could not do its work: backend or service unreachable, "
    "timeout, authentication refused, strict startup refused, a service that is not ready",
    ExitCode.USAGE: "bad usage or input: unknown option, invalid argument or JSON value, "
    "invalid `REDKEEP_*` settings, a handler spec that does not import, an unsafe bind "
    "(no API token, or one shorter than 16 characters), a port already taken",
    ExitCode.NOT_FOUND: "no such cache key or job",
    ExitCode.REFUSED: "refused: the job's state does not allow it (retrying a job that has "
    "not failed, cancelling a finished one), a confirmation was declined or could not be "
    "asked (no terminal: pass `--yes`); `migrate`: a bad snapshot line aborted the run "
    "before anything was written",
    ExitCode.INCOMPLETE: "`migrate` finished but skipped bad lines or could not verify the counts",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); `serve` and `worker` stop gracefully on "
    "SIGINT or SIGTERM and exit 0 instead",
}
