"""The worker side of a job: grade it here and hand back the verdicts as data.

A worker is a local process of the pool (`worker_loop`) or a Ray task
(`nndl.batch.pool.RayPool`); both call `run_job`, a thin adapter over
`nndl.grade.grade_notebook`. The hidden graders reach a worker as data from
the coordinator, never from a folder of the worker's machine.
"""

import os
import resource
import socket
import time
import traceback

from nndl.contracts import JobResult


def run_job(job, graders):
    """Grade one submission here.

    Args:
        job: a `nndl.contracts.GradingJob`.
        graders: the assignment's grader folder as data (relative path -> bytes).

    Returns:
        A `JobResult` holding one verdict per notebook, keyed as the coordinator keyed them.
    """
    from nndl.grade import grade_notebook
    from nndl.record.plain import grade_plain

    grade = grade_plain if job.settings.plain else grade_notebook  # plain: no hidden graders
    started = time.monotonic()
    verdicts = {}
    for notebook in job.notebooks:
        verdicts[notebook.key] = grade(notebook.notebook, job.settings, job.files, graders)
    return JobResult(job.student, verdicts, worker_facts(time.monotonic() - started))


def worker_facts(seconds):
    """Where a job ran and what the worker process has used so far."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"host": socket.gethostname(), "pid": os.getpid(), "seconds": seconds,
            "peak_rss_mb": round(own, 1), "peak_child_rss_mb": round(children, 1),
            "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}


def describe(error):
    """One line naming an exception and where it came from, for the coordinator's record."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}{where}"[:1000]


def worker_loop(connection, graders, env, runner=run_job):
    """A local worker's loop: take a job, grade it with `runner`, send back the result."""
    os.environ.update(env)
    import nndl.grade  # noqa: F401  (the grading machinery, imported before the first job)

    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            connection.send(("started", None))
        except (BrokenPipeError, OSError):
            return
        try:
            reply = ("ok", runner(job, graders))
        except BaseException as error:  # the coordinator decides what a failed job costs
            reply = ("error", describe(error))
        try:
            connection.send(reply)
        except (BrokenPipeError, OSError):
            return
