"""bench/run.py: what the benchmark waits for and leaves out before it measures;
bench/perf_split.py: how it sorts a profile's samples."""

import subprocess
import sys
import threading

from bench import perf_split, run

# Half a second of CPU, then idle: a worker finishing what the last workload sent it.
BUSY_THEN_IDLE = (
    "import time\nend = time.process_time() + 0.5\n"
    "while time.process_time() < end: pass\ntime.sleep(60)"
)


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
        # /proc counts CPU in clock ticks: the half second may read as 0.49.
        assert run.process_seconds([worker.pid]) >= 0.5 - 1 / run.TICK
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


SODIUM = "/venv/site-packages/nacl/_sodium.abi3.so"
PERF_SCRIPT = f"""gunicorn 
\t           7350e fill_block_with_xor ({SODIUM})
\t           64b99 argon2_fill_memory_blocks ({SODIUM})

gunicorn 
\tffffffff8226dbf9 clear_page_erms ([kernel.kallsyms])
\tffffffff81000130 entry_SYSCALL_64_after_hwframe ([kernel.kallsyms])
\t          10aba4 __mmap (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t           64c01 argon2_ctx ({SODIUM})

gunicorn 
\tffffffff8226dbf9 clear_page_erms ([kernel.kallsyms])
\t          10aba4 __mmap (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t          2a0b1 _PyObject_Malloc (/usr/lib/libpython3.11.so.1.0)

gunicorn 
\tffffffff81e80419 __sys_sendto ([kernel.kallsyms])
\t          10aba4 __send (/usr/lib/x86_64-linux-gnu/libc.so.6)

gunicorn 
\t          1b2c3d _PyEval_EvalFrameDefault (/usr/lib/libpython3.11.so.1.0)

postgres 
\t          5a5a5a ExecInsert (/usr/lib/postgresql/15/bin/postgres)

swapper 
\tffffffff8226e97b default_idle ([kernel.kallsyms])

wrk 
\t          12345 [unknown] ([unknown])

kworker/1:1H-kb 
\tffffffff8226e97b worker_thread ([kernel.kallsyms])
"""


def test_perf_samples_are_sorted_by_what_they_were_doing():
    assert perf_split.parse(PERF_SCRIPT) == {
        "hash": 1,
        "hash_memory": 1,
        "worker_kernel": 2,
        "python": 1,
        "postgres": 1,
        "idle": 1,
        "wrk": 1,
        "other": 1,
    }
