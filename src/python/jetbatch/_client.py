"""``jetbatch.client()``: submit and follow jobs from a handler, through the worker thread's client (the daemon's
NATS settings); no NATS package is needed in Python. Calls block until the answer arrives and may only be made from
the handler's own thread while the handler runs (``__init__``, ``handle_batch``, ``on_job_complete``)."""
import threading

from . import _state


class ClientError(Exception):
    """A client call failed; ``code`` is jetbatch's error code (``JB_...``, see docs/errors.md)."""

    def __init__(self, message, code=None, name=None):
        super().__init__(message)
        self.code = code
        self.name = name


class Client:
    def submit(self, submission):
        """Submits a job (the same fields as ``jetbatch submit`` / the TypeScript client) and returns its record."""
        return self._call("submit", [submission])

    def status(self, job_id):
        """The job's status: ``status``, ``batch_metrics``, ``batches_in_queue``, ..."""
        return self._call("status", [job_id])

    def wait(self, job_id, timeout=None):
        """Blocks until the job ends (or ``timeout`` seconds pass: ClientError JB_TIMEOUT) and returns its status."""
        return self._call("wait", [job_id, timeout])

    def results(self, job_id):
        """Every stored result of the job, by ascending batch id: ``{job_id, batch_id, result, ...}`` dicts."""
        return self._call("results", [job_id])

    def stop(self, job_id):
        """Stops the job and returns its record."""
        return self._call("stop", [job_id])

    @staticmethod
    def _call(method, args, what="jetbatch.client()"):
        if _state.call is None:
            raise ClientError("%s works only inside a jetbatch worker" % what, "JB_INTERNAL")
        if not _state.channel.usable():
            raise ClientError("%s cannot be used in a process forked by the handler" % what, "JB_INTERNAL")
        if threading.current_thread() is not threading.main_thread():
            raise ClientError("%s calls must be made from the handler's main thread" % what, "JB_INTERNAL")
        ok, value = _state.call(method, args)
        if ok:
            return value
        raise ClientError(value.get("message", "client call failed"), value.get("code"), value.get("name"))


_client = Client()


def client():
    """The client of this worker (one per process)."""
    return _client
