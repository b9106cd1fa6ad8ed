"""Run pytest under CPU load, a bounded number of times (``make test-stress``).

Starts ``--burners`` busy-loop processes (each keeps one core busy, as other jobs on a shared CI
machine do), runs ``pytest ARGS`` ``--runs`` times in a row, and stops the burners by PID
whatever happens. Prints each run's result and duration; exits non-zero when any run failed
(all runs still happen, so one report shows every flaky test)::

    python -m tests.support.stress --runs 2 --burners 2 -- tests/queue -k graceful_stop
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

BURN = "while True: pass"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="pytest runs (1-50)")
    parser.add_argument("--burners", type=int, default=2, help="busy-loop processes (0-16)")
    parser.add_argument("pytest_args", nargs="*", help="arguments for pytest (after --)")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 50 or not 0 <= args.burners <= 16:
        parser.error("--runs must be 1-50 and --burners 0-16")
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(args.burners)]
    results: list[tuple[int, float]] = []
    try:
        for run in range(1, args.runs + 1):
            print(f"== stress run {run}/{args.runs} ({args.burners} burners)", flush=True)
            start = time.monotonic()
            cmd = [sys.executable, "-m", "pytest", "-q", "-rf", *args.pytest_args]
            code = subprocess.call(cmd)
            results.append((code, time.monotonic() - start))
    finally:
        for proc in burners:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    for run, (code, seconds) in enumerate(results, 1):
        print(f"run {run}: {'passed' if code == 0 else f'FAILED (exit {code})'} in {seconds:.0f} s")
    return 0 if all(code == 0 for code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
