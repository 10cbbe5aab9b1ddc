"""A local sweep worker: ``python -m sim.sweeps.serve PARENT_PID TASK_FD RESULT_FD``.

It dies with its sweep (``sim.sweeps.worker.die_with_parent``), leaves Ctrl-C to the sweep
(which stops it with SIGTERM), prepares itself (BLAS on one thread, Brian2 imported), says it
is ready, warms up on the sweep's first point when asked (``warm_up``), then runs the points
it is sent (``run_point``) until it is sent None, or until a point is interrupted (SIGTERM:
the sweep stopping its workers, or a scheduler stopping the job), after which it exits.
"""

from __future__ import annotations

import os
import signal
import sys
from multiprocessing.connection import Connection

from sim import temp_folder
from sim.stop_signals import repeated_signals_only_ask


def main(argv: list[str]) -> int:
    from sim.sweeps.worker import die_with_parent, prepare_process, run_point, warm_up

    parent, task_fd, result_fd = (int(a) for a in argv)
    die_with_parent(parent)
    temp_folder.enter()  # inside the sweep's own (its TMPDIR): removed with it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    repeated_signals_only_ask()  # its sweep escalates with SIGKILL (sim.stop_signals)
    tasks = Connection(task_fd, writable=False)
    results = Connection(result_fd, readable=False)
    prepare_process()
    results.send(("ready", os.getpid()))
    while True:
        try:
            task = tasks.recv()
        except EOFError:  # the sweep is gone
            return 0
        if task is None:
            return 0
        if "warm" in task:  # start-up: the sweep's first point, one step (``warm_up``)
            warm_up(task["warm"])
            results.send(("warm", os.getpid()))
            continue
        outcome = run_point(task)
        results.send(("result", outcome))
        if outcome["status"] == "interrupted":  # SIGTERM: its sweep is stopping its workers
            return 0  # (else it waited for a task until the sweep killed it, GRACE_S later)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
