"""``voicebot serve --workers N``: more than one core.

N call-server processes share the WebSocket port (``SO_REUSEPORT``: the
kernel spreads the connections); a parent process that serves no call owns
the rest: the control port (readiness and metrics of all workers), the one
embedded redis-server (or the connection to ``REDIS_URL``), the replay of the
outcome spill file, and the workers' lives (restart on a crash, drain on
SIGTERM, no orphans). ``--workers 1``, the default, is none of this: one
process serves calls and everything else, as always.

- ``serve``    the parent: port, store, control, pool, signals
- ``pool``     keeping N workers running; readiness; the drain
- ``process``  one worker process seen from the parent (spawn, reap, read)
- ``link``     what parent and worker exchange (sans-IO): identity, reports
- ``worker``   the worker's side of the link; dying with the parent
- ``metrics``  the parent's ``/metrics``: every worker's, labelled ``worker``
- ``slots``    ``--max-calls`` as a total over the workers (file locks)
"""

from server.workers.exceptions import LinkError, WorkerStartError
from server.workers.link import WorkerIdentity
from server.workers.serve import serve_workers

__all__ = ["LinkError", "WorkerIdentity", "WorkerStartError", "serve_workers"]
