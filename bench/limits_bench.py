"""Flow-control benchmark (not a test): what rate limits cost, on a private ``redis-server``.

``idle``: the idle cost of a worker the rate limit keeps waiting. A ``redkeep worker`` process
(default settings) serves a queue whose limit (1 job per hour) is used up while 100 jobs wait;
after ``--warmup`` seconds its CPU time (utime + stime, % of one core) and the commands the
server ran per second (``INFO commandstats`` deltas, those Lua scripts run included, minus the
measuring INFO) are taken over ``--seconds``. The same for an idle worker of an empty queue
without a limit, as the reference.

``throughput``: end-to-end jobs/s without any limit set: ``--n`` no-op async jobs enqueued, then
one Worker (concurrency 10) timed from start until all are completed. With ``--ab OTHER_SRC``
(the ``src`` of another checkout, e.g. ``git archive`` of the previous commit), rounds of this
tree and of the other are interleaved, each in a fresh interpreter, and medians compared.

``groups``: the same end-to-end jobs/s with every job in one of 100 groups and a group limit of
concurrency 5 (``set_group_limit(concurrency=5)``), against ungrouped jobs, rounds interleaved
(target: at least 50 % of the ungrouped rate).

``scripts --ab OTHER_SRC``: the enqueue script of this tree and of the other, loaded into one
private server and called alternately (one call of 1,000 jobs, then 200 single enqueues, per
round and tree); the server's own script time per job (``INFO commandstats`` EVALSHA usec
deltas) is compared, so client and scheduling noise of a shared machine mostly drops out.

Everything runs on loopback; the server and the processes started are stopped by PID.

    .venv/bin/python bench/limits_bench.py idle --seconds 20
    .venv/bin/python bench/limits_bench.py groups --rounds 5
    git archive HEAD~1 | tar -x -C /tmp/prev && \\
        .venv/bin/python bench/limits_bench.py throughput --ab /tmp/prev/src --rounds 7
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
REDKEEP = str(Path(sys.executable).with_name("redkeep"))
SRC = str(Path(__file__).resolve().parent.parent / "src")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server() -> Iterator[int]:
    binary = shutil.which("redis-server") or sys.exit("redis-server not found on PATH")
    port, tmp = free_port(), tempfile.mkdtemp(prefix="limits-bench-")
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", tmp],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.1):
                    break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        server.terminate()  # by PID: only the server this script started
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def commands(port: int) -> int:
    """Calls of every command so far, those Lua scripts ran included (one INFO too)."""
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "commandstats"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return sum(int(line.split("calls=", 1)[1].split(",", 1)[0])
               for line in out.splitlines() if line.startswith("cmdstat_"))  # fmt: skip


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


async def _prepare(url: str, queue: str, limited: bool) -> None:
    from redkeep.queue import JobSpec, RedisJobQueue
    from redkeep.redis.mux import MuxClient

    client = MuxClient(url)
    try:
        q = RedisJobQueue(client, queue)
        if limited:
            await q.set_rate_limit(1, 3600)
            await q.enqueue_many([JobSpec("echo", i) for i in range(101)])
    finally:
        await client.close()


def idle(args: argparse.Namespace) -> None:
    rows = []
    with redis_server() as port:
        url = f"redis://127.0.0.1:{port}/0"
        for what, queue, limited in (("rate-limited, 100 waiting", "limited", True),
                                     ("no limit, empty queue", "empty", False)):  # fmt: skip
            asyncio.run(_prepare(url, queue, limited))
            env = {**os.environ, "REDKEEP_REDIS_URL": url, "REDKEEP_LOG_LEVEL": "WARNING"}
            argv = [REDKEEP, "worker", "redkeep.examples:handlers", "-q", queue]
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
            try:
                time.sleep(args.warmup)
                cpu0, cmd0, t0 = cpu_seconds(proc.pid), commands(port), time.monotonic()
                time.sleep(args.seconds)
                cpu1, cmd1, t1 = cpu_seconds(proc.pid), commands(port), time.monotonic()
            finally:
                os.killpg(proc.pid, signal.SIGTERM)  # the group this script started, by id
                proc.wait(15)
            elapsed = t1 - t0
            rows.append((what, 100 * (cpu1 - cpu0) / elapsed, (cmd1 - cmd0 - 1) / elapsed))
            print(f"{what:28} cpu={rows[-1][1]:5.2f}% commands/s={rows[-1][2]:6.2f}", flush=True)
    print(f"\n{args.seconds:g} s per row after {args.warmup:g} s warm-up, "
          f"load {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    print("| worker | CPU % of one core | Redis commands/s (scripts' included) |")
    print("|---|---|---|")
    for what, cpu, rate in rows:
        print(f"| {what} | {cpu:.2f} | {rate:.2f} |")


async def _one_round(url: str, n: int, groups: int = 0) -> float:
    from redkeep.queue import JobSpec, RedisJobQueue, Worker
    from redkeep.redis.mux import MuxClient

    async def noop(job: object) -> None:
        return None

    client = MuxClient(url)
    try:
        q = RedisJobQueue(client, f"tp-{time.monotonic_ns()}", key_prefix="lbench")
        if groups:
            await q.set_group_limit(concurrency=5)
        for start in range(0, n, 1000):
            batch = range(start, min(n, start + 1000))
            if groups:  # (no group argument otherwise: a tree without groups is measured too)
                await q.enqueue_many(JobSpec("h", i, group=f"g{i % groups}") for i in batch)
            else:
                await q.enqueue_many(JobSpec("h", i) for i in batch)
        worker = Worker(q, {"h": noop}, concurrency=10, handle_signals=False)
        began = time.perf_counter()
        task = asyncio.create_task(worker.run())
        while (await q.counts())["completed"] < n:
            await asyncio.sleep(0.005)
        seconds = time.perf_counter() - began
        worker.stop()
        await task
        await q.purge("completed")
        return n / seconds
    finally:
        await client.close()


def _round_in(src: str, url: str, n: int) -> float:
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run([sys.executable, __file__, "_round", url, str(n)], env=env,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return float(out.strip().splitlines()[-1])


def throughput(args: argparse.Namespace) -> None:
    trees = {"this tree": SRC}
    if args.ab:
        trees["other"] = str(Path(args.ab).resolve())
    rates: dict[str, list[float]] = {name: [] for name in trees}
    with redis_server() as port:
        url = f"redis://127.0.0.1:{port}/0"
        for _ in range(args.rounds):
            for name, src in trees.items():
                rates[name].append(_round_in(src, url, args.n))
    print(f"n={args.n}, {args.rounds} interleaved rounds, load {os.getloadavg()[0]:.1f}")
    for name, values in rates.items():
        print(f"{name:10s} ({trees[name]}) median {statistics.median(values):7.0f} jobs/s "
              f"(min {min(values):.0f}, max {max(values):.0f})")  # fmt: skip
    if args.ab:
        ratio = statistics.median(rates["this tree"]) / statistics.median(rates["other"])
        print(f"this tree / other: {ratio:.3f}")


def groups(args: argparse.Namespace) -> None:
    rates: dict[str, list[float]] = {"ungrouped": [], "100 groups, concurrency 5": []}
    with redis_server() as port:
        url = f"redis://127.0.0.1:{port}/0"
        for _ in range(args.rounds):
            rates["ungrouped"].append(asyncio.run(_one_round(url, args.n)))
            rates["100 groups, concurrency 5"].append(asyncio.run(_one_round(url, args.n, 100)))
    print(f"n={args.n}, {args.rounds} interleaved rounds, load {os.getloadavg()[0]:.1f}")
    for name, values in rates.items():
        print(f"{name:26s} median {statistics.median(values):7.0f} jobs/s "
              f"(min {min(values):.0f}, max {max(values):.0f})")  # fmt: skip
    ratio = statistics.median(rates["100 groups, concurrency 5"]) / statistics.median(
        rates["ungrouped"]
    )
    print(f"grouped / ungrouped: {ratio:.3f}")


def scripts_ab(args: argparse.Namespace) -> None:
    import redis

    from redkeep.queue.keys import QueueKeys
    from redkeep.queue.scripts import load_script

    trees = {"this tree": Path(SRC), "other": Path(args.ab).resolve()}
    script = "redkeep/queue/scripts/enqueue.lua"
    loaded = {name: load_script(src / script) for name, src in trees.items()}
    cases = {f"{name} {what}": [] for name in trees for what in ("bulk", "single")}
    with redis_server() as port:
        r = redis.Redis(port=port)

        def usec() -> int:
            return int(r.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0))

        shas = {name: r.script_load(s.source) for name, s in loaded.items()}
        for rnd in range(args.rounds):
            for name, s in loaded.items():
                keys = QueueKeys("sbench", f"{rnd}-{name.replace(' ', '')}").names(s.keys)
                bulk: list[object] = [1000]
                for i in range(1000):
                    bulk += [f"j{i}", "3|0|0|0", f'["j{i}","x",null]\n{{"i":{i}}}']
                u0 = usec()
                r.evalsha(shas[name], len(keys), *keys, *bulk)
                cases[f"{name} bulk"].append((usec() - u0) / 1000)
                u0 = usec()
                for i in range(200):
                    job = [1, f"s{i}", "3|0|0|0", f'["s{i}","x",null]\n1']
                    r.evalsha(shas[name], len(keys), *keys, *job)
                cases[f"{name} single"].append((usec() - u0) / 200)
                r.delete(*keys)
    print(f"{args.rounds} interleaved rounds, load {os.getloadavg()[0]:.1f}; script usec per job")
    for name, values in cases.items():
        print(f"{name:18s} median {statistics.median(values):6.2f}  (min {min(values):.2f})")
    for what in ("bulk", "single"):
        ratio = statistics.median(cases[f"this tree {what}"]) / statistics.median(
            cases[f"other {what}"]
        )
        print(f"{what}: this tree / other {ratio:.3f}")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "_round":  # one measurement, in a fresh process
        print(asyncio.run(_one_round(sys.argv[2], int(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p_idle = sub.add_parser("idle")
    p_idle.add_argument("--seconds", type=float, default=30.0)
    p_idle.add_argument("--warmup", type=float, default=5.0)
    p_tp = sub.add_parser("throughput")
    p_tp.add_argument("--n", type=int, default=5000)
    p_tp.add_argument("--rounds", type=int, default=5)
    p_tp.add_argument("--ab", help="src directory of another checkout to compare with")
    p_scripts = sub.add_parser("scripts")
    p_scripts.add_argument("--ab", required=True, help="src directory of another checkout")
    p_scripts.add_argument("--rounds", type=int, default=40)
    p_groups = sub.add_parser("groups")
    p_groups.add_argument("--n", type=int, default=5000)
    p_groups.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.mode == "idle":
        idle(args)
    elif args.mode == "groups":
        groups(args)
    elif args.mode == "scripts":
        scripts_ab(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
