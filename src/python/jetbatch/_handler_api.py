"""What a running handler can tell its worker thread besides logs: the batch is still healthy (extend_lease), and
handler metrics (``metrics``). Both are no-ops outside a jetbatch worker (a handler imported by a test)."""
from . import _state


def extend_lease():
    """Tells the fleet a long batch is still healthy: its deadline moves back by one batch timeout (as
    ``ctx.extendLease()`` does for JavaScript). Call it from a long ``handle_batch`` now and then."""
    if _state.channel is not None and _state.channel.usable():
        _state.channel.write(["lease"])


class _Metrics:
    """Handler metrics, exposed by the daemon as ``jetbatch_handler_<name>{api_name, ...labels}`` (names
    ``[a-zA-Z_][a-zA-Z0-9_]*``; label values from a small set, no ids)."""

    @staticmethod
    def _send(method, name, value, labels):
        if _state.channel is not None and _state.channel.usable():
            _state.channel.write(["metric", method, str(name), float(value), {str(k): str(v) for k, v in (labels or {}).items()}])

    def increment(self, name, value=1, labels=None):
        """Adds ``value`` to a counter."""
        self._send("increment", name, value, labels)

    def gauge(self, name, value, labels=None):
        """Sets a gauge."""
        self._send("gauge", name, value, labels)

    def observe(self, name, value, labels=None):
        """Records one observation in a histogram (seconds, sizes)."""
        self._send("observe", name, value, labels)


metrics = _Metrics()
