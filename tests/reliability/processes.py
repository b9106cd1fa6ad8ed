"""Worker subprocesses for the reliability suite: start, SIGKILL, restart, stop by PID.

Each process runs ``python -m tests.reliability.worker_proc`` (or another ``module``) from the
repository root with its output in a log file, so a failing scenario can show what the workers
printed. Only processes started here are signalled, always by their own PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.reliability.harness import ROOT, Deadline

READY_LINE = "worker-ready"


class WorkerProcess:
    """One worker subprocess that can be killed and restarted any number of times."""

    def __init__(
        self,
        name: str,
        args: list[str],
        log_dir: Path,
        module: str = "tests.reliability.worker_proc",
    ) -> None:
        self.name = name
        self.args = args
        self.module = module
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Launch the process (appending to its log); it must not be running already."""
        if self.alive:
            raise RuntimeError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.starts += 1

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Block until this start printed :data:`READY_LINE`; fail if it died or timed out."""
        deadline = Deadline(timeout)
        while not deadline.expired:
            if READY_LINE in self.output(since_start=True):
                return
            if not self.alive:
                raise AssertionError(f"{self.name} exited early:\n{self.tail()}")
            time.sleep(0.05)
        raise AssertionError(f"{self.name} not ready after {timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL the process (no cleanup runs) and reap it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.kills += 1

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful stop), then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def output(self, *, since_start: bool = False) -> str:
        if not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes()
        if since_start:
            data = data[self._log_offset :]
        return data.decode("utf-8", "replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


class WorkerPool:
    """A fixed set of :class:`WorkerProcess`; ``close()`` stops every one of them."""

    def __init__(self, count: int, args: list[str], log_dir: Path, name: str = "worker") -> None:
        self.workers = [WorkerProcess(f"{name}-{i}", args, log_dir) for i in range(count)]

    def start(self, *, ready_timeout: float = 20.0) -> None:
        for w in self.workers:
            w.start()
        for w in self.workers:
            w.wait_ready(ready_timeout)

    @property
    def kills(self) -> int:
        return sum(w.kills for w in self.workers)

    def close(self) -> None:
        for w in self.workers:
            with contextlib.suppress(Exception):
                w.stop(timeout=5.0)

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.tail()}" for w in self.workers)
