"""The main loop of a jetbatch handler process: ``python -m jetbatch._runner SETTINGS_JSON``, started by a worker
thread with the project folder as its working directory.

It imports ``handler.py`` once, constructs a ``Handler`` per job (``__init__(self, config[, job_spec])``), runs
``handle_batch(self, payload[, batch_id])`` per batch and ``on_job_complete(self[, summary])`` once per job, one
request at a time, and answers each request with one frame (``_frames.py``). Failures are answers, not crashes:
the worker thread turns them into outcomes exactly as it does for JavaScript handlers.
"""
import collections
import importlib.util
import inspect
import json
import os
import signal
import sys
import time
import traceback


def _die_with_parent():
    """SIGKILL this process when the thread that spawned it ends (a terminated worker thread, a dead daemon)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _limit_memory(mb):
    """memory_limit_mb caps the data segment (heap, malloc'd and mmap'd writable memory): beyond it, allocations
    raise MemoryError. Address space reserved but not written (CUDA's) does not count."""
    if not mb:
        return
    try:
        import resource

        limit = int(mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    except (ValueError, OSError) as e:
        sys.stderr.write("jetbatch: cannot apply memory_limit_mb=%s: %s\n" % (mb, e))


def error_info(exc, code=None, prefix=""):
    """What the worker thread needs of an exception: the Python traceback (without the runner's own frames) is the
    stack."""
    own = getattr(exc, "code", None)
    message = str(exc) or type(exc).__name__
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return {
        "name": type(exc).__name__,
        "message": prefix + message,
        "stack": "".join(traceback.format_exception(type(exc), exc, tb)),
        "code": own if isinstance(own, str) else code,
        "permanent": getattr(exc, "permanent", False) is True,
        "oom": isinstance(exc, MemoryError),
    }


def positional_arity(fn, most):
    """How many positional arguments ``fn`` takes (bound methods: without self), at most ``most``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return most
    n = 0
    for p in params:
        if p.kind == p.VAR_POSITIONAL:
            return most
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return min(n, most)


class _Job:
    __slots__ = ("handle", "batch_args", "hook", "hook_args")

    def __init__(self, instance):
        self.handle = getattr(instance, "handle_batch")
        self.batch_args = positional_arity(self.handle, 2)
        hook = getattr(instance, "on_job_complete", None)
        self.hook = hook if callable(hook) else None
        self.hook_args = positional_arity(hook, 1) if self.hook else 0


class Runner:
    def __init__(self, channel, settings, msgpack, to_msgpack):
        self.channel = channel
        self.settings = settings
        self.msgpack = msgpack
        self.to_msgpack = to_msgpack
        self.path = settings["handler"]
        self.cls = None
        self.load_error = None
        self.jobs = {}
        self.seq = 0
        #: Requests read while a client call waited for its answer (the thread writes a task's batches ahead).
        self.backlog = collections.deque()

    # --- loading -------------------------------------------------------------------------------------------------

    def load(self):
        """Imports handler.py (as module ``handler``) and finds its Handler class; a failure is kept for the next
        init to report."""
        try:
            project = os.path.dirname(os.path.abspath(self.path))
            if project not in sys.path:
                sys.path.insert(0, project)
            spec = importlib.util.spec_from_file_location("handler", self.path)
            module = importlib.util.module_from_spec(spec)
            sys.modules["handler"] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop("handler", None)
                raise
            cls = getattr(module, "Handler", None)
            if not isinstance(cls, type):
                raise ImportError("%s defines no class Handler" % self.path)
            if not callable(getattr(cls, "handle_batch", None)):
                raise ImportError("class Handler of %s has no handle_batch method" % self.path)
            self.cls = cls
        except BaseException as e:  # SystemExit and KeyboardInterrupt in a module are load failures too
            self.load_error = e

    # --- requests ------------------------------------------------------------------------------------------------

    def serve(self):
        while True:
            if self.backlog:
                header, tail = self.backlog.popleft()
            else:
                try:
                    header, tail = self.channel.read()
                except EOFError:
                    return
            kind = header[0]
            if kind == "batch":
                self.batch(header[1], header[2], tail)
            elif kind == "batches":
                self.batches(header[1], header[2], header[3], tail)
            elif kind == "init":
                self.init(header[1], header[2])
            elif kind == "complete":
                self.complete(header[1], header[2])
            elif kind == "drop":
                self.jobs.pop(header[1], None)

    def init(self, job_id, spec):
        if self.cls is None:
            if self.load_error is None:
                self.load()
            if self.cls is None:
                err, self.load_error = self.load_error, None
                self.channel.write(["error", "load", error_info(err, "JB_HANDLER_LOAD_FAILED", "cannot import handler %s: %s: " % (self.path, type(err).__name__))])
                return
        t0 = time.perf_counter()
        try:
            args = (spec.get("config") or {}, spec)[:positional_arity(self.cls, 2)]
            job = _Job(self.cls(*args))
        except BaseException as e:
            self.channel.write(["error", "init", error_info(e, "JB_HANDLER_INIT_FAILED")])
            return
        self.jobs[job_id] = job
        self.channel.write(["ok", (time.perf_counter() - t0) * 1000, job.hook is not None])

    def batch(self, job_id, batch_id, tail):
        job = self.jobs.get(job_id)
        if job is None:
            # Dropped (the job ended, then ran again) after the thread last constructed it: the thread sends init.
            self.channel.write(["error", "missing", None])
            return
        self.run_batch(job, batch_id, tail)

    def batches(self, job_id, batch_ids, ends, tail):
        """A task's batches in one request (``tail`` holds them back to back; batch i ends at ``ends[i]``), answered
        one reply per batch, in order, exactly as that many ``batch`` requests would be."""
        job = self.jobs.get(job_id)
        start = 0
        for batch_id, end in zip(batch_ids, ends):
            if job is None:
                self.channel.write(["error", "missing", None])
            else:
                self.run_batch(job, batch_id, tail[start:end])
            start = end

    def run_batch(self, job, batch_id, tail):
        """Runs one batch and answers it: ``["ok", has_result, ms]`` (+ the result) or ``["error", stage, info, ms]``,
        ms being the batch's own time here (decode, handle_batch, encode)."""
        t0 = time.perf_counter()
        try:
            payload = self.msgpack.unpackb(tail, raw=False, strict_map_key=False, timestamp=3)
            if not isinstance(payload, list):
                raise TypeError("batch payload is a %s, not a list" % type(payload).__name__)
        except Exception as e:
            self.channel.write(["error", "decode", error_info(e, "JB_UNDECODABLE"), (time.perf_counter() - t0) * 1000])
            return
        del tail
        try:
            result = job.handle(payload, batch_id) if job.batch_args >= 2 else job.handle(payload)
        except BaseException as e:
            self.channel.write(["error", "batch", error_info(e), (time.perf_counter() - t0) * 1000])
            return
        if result is None:
            self.channel.write(["ok", False, (time.perf_counter() - t0) * 1000])
            return
        try:
            data = self.msgpack.packb(result, use_bin_type=True, default=self.to_msgpack)
        except Exception as e:
            info = error_info(e, None, "handle_batch returned a value MessagePack cannot encode: ")
            self.channel.write(["error", "batch" if info["oom"] else "result", info, (time.perf_counter() - t0) * 1000])
            return
        self.channel.write(["ok", True, (time.perf_counter() - t0) * 1000], data)

    def complete(self, job_id, summary):
        job = self.jobs.pop(job_id, None)
        if job is None:
            self.channel.write(["error", "missing", None])
            return
        if job.hook is not None:
            try:
                job.hook(summary) if job.hook_args >= 1 else job.hook()
            except BaseException as e:
                self.channel.write(["error", "complete", error_info(e)])
                return
        self.channel.write(["ok"])

    # --- client calls --------------------------------------------------------------------------------------------

    def call(self, method, args):
        """Asks the worker thread to run a client method; blocks until its answer: (ok, value)."""
        self.seq += 1
        seq = self.seq
        self.channel.write(["call", seq, method, args])
        while True:
            header, tail = self.channel.read()
            if header[0] == "reply" and header[1] == seq:
                return header[2], header[3]
            # Anything else is a request written ahead (or a drop after it): served in order once this batch is done.
            self.backlog.append((header, tail))


def main():
    settings = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    _die_with_parent()
    _limit_memory(settings.get("memory_limit_mb"))
    try:
        import msgpack
    except ImportError:
        sys.stderr.write("jetbatch: %s cannot import msgpack: install it in this interpreter (Debian: apt-get install "
                         "python3-msgpack; a virtualenv: pip install msgpack), or set apis[].python\n" % sys.executable)
        sys.exit(3)
    if settings.get("check"):
        # The daemon's project check (daemon/pools/project-check.ts): import handler.py as a process would, print
        # null or the error as one JSON line on stdout, exit.
        runner = Runner(None, settings, msgpack, None)
        runner.load()
        error = None if runner.load_error is None else error_info(runner.load_error, prefix="cannot load %s: " % runner.path)
        sys.__stdout__.write("\n" + json.dumps(error) + "\n")
        sys.__stdout__.flush()
        os._exit(0)
    from . import _log, _state
    from ._frames import Channel, to_msgpack

    channel = Channel(3, 4)
    runner = Runner(channel, settings, msgpack, to_msgpack)
    _state.channel = channel
    _state.call = runner.call
    _state.settings = settings
    _log.configure(settings.get("log_level", "info"))
    # print() and Python-level stderr become log lines on the channel; a crash's C-level traceback goes to fd 2.
    sys.stdout = _log.StreamToLog("info", "stdout", 1)
    sys.stderr = _log.StreamToLog("warn", "stderr", 2)
    try:
        import faulthandler

        faulthandler.enable(file=sys.__stderr__)
    except Exception:
        pass
    runner.load()
    channel.write(["ready", os.getpid()])
    runner.serve()


if __name__ == "__main__":
    main()
