"""Job runners for the pool and the coordinator that run no kernel: faults on demand, in seconds.

A local worker calls its runner with ``(job, graders)`` (`nndl.batch.pool.LocalPool`).
`fake_grading` returns a verdict in which every hidden test of the graders passes,
after carrying out the fault a submission asks for in a file handed in beside
its notebook, ``FAULT``: ``ACTION MARKER`` where ACTION is one of

- ``raise-once`` / ``raise-always``: the runner raises;
- ``kill-once`` / ``kill-always``: the worker process is killed with SIGKILL;
- ``hang-always``: the worker sleeps past any deadline;

and MARKER is a file counting the attempts ("-once" faults strike the first
attempt only). Workers are spawned, so this module must stay importable by name.
"""

import os
import pathlib
import re
import signal
import time

from nndl.batch.worker import worker_facts
from nndl.contracts import JobResult, TestOutcome, Verdict

_TEST = re.compile(r'@pytest\.mark\.grade_cell\("(\w+)"(?:, weight=(\d+))?\)\s*\ndef (test_\w+)')


def all_pass_verdict(graders):
    """A verdict in which every test of the grader files passes."""
    outcomes = []
    for name, content in sorted(graders.items()):
        if name.startswith("test_") and name.endswith(".py"):
            for cell, weight, test in _TEST.findall(content.decode()):
                outcomes.append(TestOutcome(f"{name}::{test}", cell, float(weight or 1), True, ""))
    return Verdict(outcomes=outcomes, problems=[], outputs={}, stats={"execution_seconds": 0.0,
                                                                        "restarts": 0, "peak_memory_mb": 0.0})


def fake_grading(job, graders):
    """Grade a job without a kernel, after its requested fault (see the module's docstring)."""
    fault = job.files.get("FAULT", b"").decode().split()
    if fault:
        action, marker = fault
        marker = pathlib.Path(marker)
        attempt = int(marker.read_text()) + 1 if marker.exists() else 1
        marker.write_text(str(attempt))
        if action.endswith("-always") or attempt == 1:
            if action.startswith("raise"):
                raise RuntimeError(f"fault asked for by {job.student}")
            if action.startswith("kill"):
                os.kill(os.getpid(), signal.SIGKILL)
            if action.startswith("hang"):
                time.sleep(3600)
    verdicts = {n.key: all_pass_verdict(graders) for n in job.notebooks}
    return JobResult(job.student, verdicts, worker_facts(0.0))
