"""jetbatch Python bench handler: a no-op (returns None, so no result is stored) or, with ``config["iterations"]``,
fixed CPU work in pure Python (bench_work.burn). Its first batch of a job writes the time (epoch ms) to
``config["marks_dir"]/<job id>.<pid>``: the start of the measured interval, as the JS handlers' BroadcastChannel
mark (the benchmark takes the earliest of the job's processes)."""
import os
import time

from bench_work import burn


class Handler:
    def __init__(self, config, job_spec):
        self.iterations = int(config.get("iterations") or 0)
        self.mark = None
        marks = config.get("marks_dir")
        if marks:
            self.mark = os.path.join(marks, "%s.%d" % (job_spec["job_id"], os.getpid()))

    def handle_batch(self, payload):
        if self.mark is not None:
            t = time.time() * 1000
            with open(self.mark, "w") as f:
                f.write(repr(t))
            self.mark = None
        if self.iterations:
            burn(self.iterations)
