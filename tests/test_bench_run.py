"""bench/run.py: what the benchmark waits for and leaves out before it measures."""

import subprocess
import sys
import threading

from bench import run

# Half a second of CPU, then idle: a worker finishing what the last workload sent it.
BUSY_THEN_IDLE = ("import time\nend = time.process_time() + 0.5\n"
                  "while time.process_time() < end: pass\ntime.sleep(60)")


class Workers:
    def __init__(self, *pids):
        self.pids = list(pids)

    def worker_pids(self):
        return self.pids


def test_settle_returns_once_the_workers_are_idle():
    worker = subprocess.Popen([sys.executable, "-c", BUSY_THEN_IDLE])
    try:
        run.settle({"app": Workers(worker.pid)})
        assert worker.poll() is None  # still there, idle
        assert run.process_seconds([worker.pid]) >= 0.5
    finally:
        worker.kill()
        worker.wait()


def test_settle_gives_up_on_workers_that_stay_busy():
    worker = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        waiting = threading.Thread(target=run.settle, args=({"app": Workers(worker.pid)}, 0.5))
        waiting.start()
        waiting.join(timeout=10)
        assert not waiting.is_alive()
    finally:
        worker.kill()
        worker.wait()


def test_the_hash_timed_alone_leaves_out_the_cold_first_one(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(run.time, "perf_counter", lambda: clock[0])
    costs = iter([0.020, 0.011, 0.012, 0.010])

    def compute():
        clock[0] += next(costs)

    assert run.time_one_hash(compute, count=3) == 0.011
