"""Idle cost (not a test): CPU of an idle worker and service, and the Redis commands they send.

For each transport (``mux``, ``redis-py``) and busy-poll setting (``REDKEEP_BUSY_POLL`` at its
default and 0), it starts on a private ``redis-server``, one at a time:
- a worker: ``redkeep worker redkeep.examples:handlers`` (default settings, no jobs);
- the service: ``redkeep serve --no-worker`` (default settings, no requests);
waits ``--warmup`` seconds, then measures for ``--seconds`` (default 60): the process's CPU
time (utime + stime from ``/proc/<pid>/stat``) as % of one core, and the commands the server
executed per second: ``INFO commandstats`` before and after (every command, those a Lua script
runs included), minus the measuring ``INFO`` itself; and the commands the process *sent* per
second (a script call counts once, as a managed Redis that bills per command counts it), from
``MONITOR`` over the same interval. Targets (issue 14): under 1 % of one core and under 20
commands/s.

CPU % on a shared machine is noisy: run it when the machine is quiet, or compare rows of one
run. Everything runs on loopback and is stopped by PID at the end.

    .venv/bin/python bench/idle_cost.py                  # 8 rows x (60 s + warm-up)
    .venv/bin/python bench/idle_cost.py --seconds 20     # a quicker look
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
REDKEEP = str(Path(sys.executable).with_name("redkeep"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, check=True
    ).stdout


def commands(port: int) -> int:
    """Calls of every command so far, those Lua scripts ran included (one INFO too)."""
    total = 0
    for line in cli(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            total += int(line.split("calls=", 1)[1].split(",", 1)[0])
    return total


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def measure(
    argv: list[str], env: dict[str, str], port: int, warmup: float, seconds: float
) -> tuple[float, float, float]:
    """``(CPU % of one core, Redis commands/s run, commands/s sent)`` of the process ``argv``
    once warmed up."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            time.sleep(warmup)
            if proc.poll() is not None:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-2000:]
                raise SystemExit(f"{argv} exited with {proc.returncode}:\n{tail}")
            cpu0, cmd0, t0 = cpu_seconds(proc.pid), commands(port), time.monotonic()
            with tempfile.TemporaryFile() as seen:
                monitor = subprocess.Popen(["redis-cli", "-p", str(port), "MONITOR"], stdout=seen)
                time.sleep(seconds)
                monitor.terminate()  # by PID: the MONITOR this function started
                monitor.wait(10)
                cpu1, cmd1, t1 = cpu_seconds(proc.pid), commands(port), time.monotonic()
                seen.seek(0)
                sent = sum(1 for line in seen if _sent_by_a_client(line))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # the group this script started, by id
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
    elapsed = t1 - t0
    return 100 * (cpu1 - cpu0) / elapsed, (cmd1 - cmd0 - 1) / elapsed, sent / elapsed


def _sent_by_a_client(line: bytes) -> bool:
    """A MONITOR line of a command a client sent (not one a Lua script ran, not our INFO)."""
    head, _, command = line.partition(b"] ")
    return b"[" in head and not head.endswith(b" lua") and not command.startswith(b'"INFO"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()
    binary = shutil.which("redis-server") or sys.exit("redis-server not found on PATH")
    port, tmp = free_port(), tempfile.mkdtemp(prefix="idle-cost-")
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows = []
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if cli(port, "PING").strip() == "PONG":
                    break
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.05)
        # Another process may have taken the port first (the server then exits): measuring its
        # server would count its clients' commands.
        if f"process_id:{server.pid}" not in cli(port, "INFO", "server"):
            raise SystemExit(f"port {port}: not the redis-server this script started")
        for transport in ("mux", "redis-py"):
            for busy_poll in ("0.0002", "0"):
                processes = {
                    "worker": [REDKEEP, "worker", "redkeep.examples:handlers", "-q", "idle"],
                    "service": [REDKEEP, "serve", "--no-worker", "--port", str(free_port())],
                }
                for what, argv in processes.items():
                    env = {
                        **os.environ,
                        "REDKEEP_REDIS_URL": f"redis://127.0.0.1:{port}/0",
                        "REDKEEP_REDIS_TRANSPORT": transport,
                        "REDKEEP_BUSY_POLL": busy_poll,
                        "REDKEEP_LOG_LEVEL": "WARNING",
                    }
                    cpu, rate, sent = measure(argv, env, port, args.warmup, args.seconds)
                    rows.append((what, transport, busy_poll, cpu, rate, sent))
                    print(
                        f"{what:8} {transport:9} busy_poll={busy_poll:7} cpu={cpu:5.2f}% "
                        f"commands/s={rate:6.2f} sent/s={sent:6.2f}",
                        flush=True,
                    )
    finally:
        server.terminate()  # by PID: only the server this script started
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\n{args.seconds:g} s per row after {args.warmup:g} s warm-up, "
        f"load {os.getloadavg()[0]:.1f} (CPU % is noisy on a shared machine)\n"
    )
    print(
        "| process | transport | REDKEEP_BUSY_POLL | CPU % of one core "
        "| commands/s run (scripts' included) | commands/s sent |"
    )
    print("|---|---|---|---|---|---|")
    for what, transport, busy_poll, cpu, rate, sent in rows:
        print(f"| {what} | {transport} | {busy_poll} | {cpu:.2f} | {rate:.2f} | {sent:.2f} |")


if __name__ == "__main__":
    main()
