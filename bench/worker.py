"""Bench-only worker launcher.

    python bench/worker.py [start_worker.py's options]   TARS's worker, also listening on the raw bench queue
    python bench/worker.py --raw [--name N]               a plain rq.Worker on the raw bench queue only

The first form runs start_worker.main() itself (settings, logging, the progress delivery process, the same Worker class and
arguments); only the Worker it builds is given one more queue, so TARS jobs and raw RQ jobs run on the very
same forking worker process. The second is what `rq worker bench_raw` would run, with the raw jobs' module
preloaded in the parent, as start_worker.py preloads core.background_worker (otherwise every work-horse would
import anthropic after its fork and the baseline would be slower for no reason of RQ's).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rq import Queue, Worker  # noqa: E402
from rq.worker import BaseWorker  # noqa: E402

import bench.jobs  # noqa: E402,F401  preloaded: the horses inherit it
import start_worker  # noqa: E402
from bench.jobs import RAW_QUEUE  # noqa: E402
from core.redis_conn import connect  # noqa: E402


def with_raw_queue(worker_class: type) -> type:
    def __init__(self, queues, *args, connection=None, **kwargs):
        worker_class.__init__(self, [*queues, Queue(RAW_QUEUE, connection=connection)], *args,
                              connection=connection, **kwargs)

    return type(worker_class.__name__, (worker_class,), {"__init__": __init__, "__module__": worker_class.__module__})


def main(argv: list[str]) -> int:
    if "--raw" not in argv:
        # Whatever worker classes start_worker.py builds from (rq's Worker, TARS's subclass, the macOS spawn
        # variant): the same class, given one more queue.
        for attr, value in list(vars(start_worker).items()):
            if isinstance(value, type) and issubclass(value, BaseWorker):
                setattr(start_worker, attr, with_raw_queue(value))
        return start_worker.main(argv)
    parser = argparse.ArgumentParser()
    parser.add_argument("--raw", action="store_true")
    parser.add_argument("--name")
    args = parser.parse_args(argv)
    connection = connect(os.environ["REDIS_URL"])
    level = os.environ.get("LOG_LEVEL", "INFO")
    worker = Worker([Queue(RAW_QUEUE, connection=connection)], connection=connection,
                    name=args.name or f"{socket.gethostname()}.{os.getpid()}")
    worker.work(logging_level=level)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
