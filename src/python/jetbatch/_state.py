"""What the runner shares with the logger and the client: the channel to the worker thread, when there is one."""

#: The Channel to the worker thread (None outside a jetbatch worker: a handler imported by a test or a notebook).
channel = None
#: Sends a client call and returns its answer; set by the runner.
call = None
#: Settings given by the worker thread (log level, line limit).
settings = {}
