"""One submission's grading job as plain data, and the worker side that runs it.

The coordinator (`autograder.grade`) turns each collected submission into a
`GradingJob`: its notebooks sanitised as nbgrader's autograde sanitises them,
the files handed in beside them and the master's, and the kit step's
settings. A worker, a local process or a Ray task on another machine, runs
`run_job` with the assignment's hidden graders, which also travel as data
from the instructor's side, and returns the verdicts as data. So workers need
no shared filesystem, never read a submission folder, and never touch the
gradebook: the coordinator stores the verdicts and records them.
"""

import dataclasses
import os
import pathlib
import resource
import socket
import tempfile
import time

import nbformat

from autograder import assignments
from autograder.run import MAX_FILE_BYTES

# A submission's files beside its notebooks, all together, travel up to this size.
MAX_JOB_FILE_BYTES = 512 * 2**20


@dataclasses.dataclass
class GradingJob:
    """Everything a worker needs to grade one student's submission."""

    assignment: str
    student: str
    notebooks: list  # [{"name": ..., "key": ..., "nb": sanitised notebook JSON}]
    files: dict  # relative path -> bytes: the submission's other files, then the master's
    step: dict  # GradeInSandbox trait values (timeouts, memory, sandbox choice)
    limits: dict  # the assignment's [limits]
    gpu: bool
    notes: list = dataclasses.field(default_factory=list)  # what was left out of `files`, and why


@dataclasses.dataclass
class JobResult:
    """A finished job: a verdict per notebook key, and how the worker fared."""

    student: str
    verdicts: dict
    worker: dict


def grader_files(grader_dir):
    """An assignment's hidden-grader folder as data: relative path -> bytes."""
    grader_dir = pathlib.Path(grader_dir)
    files = {}
    for path in sorted(grader_dir.rglob("*")):
        if path.is_file() and not path.is_symlink() and "__pycache__" not in path.parts:
            files[str(path.relative_to(grader_dir))] = path.read_bytes()
    return files


def write_files(folder, files):
    """Write `files` (relative path -> bytes) under `folder`, refusing paths that leave it."""
    folder = pathlib.Path(folder).resolve()
    for relative, content in files.items():
        target = (folder / relative).resolve()
        if folder not in target.parents:
            raise ValueError(f"refusing to write {relative!r} outside {folder}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def collect_files(*folders):
    """The regular files (not notebooks, not links) of `folders`, later folders winning.

    This is what nbgrader's autograde puts beside the notebook: the
    submission's files, then the master's over them.

    Returns:
        ``(files, notes)``: relative path -> bytes, and a sentence for each file left out.
    """
    files, notes, total = {}, [], 0
    for folder in folders:
        folder = pathlib.Path(folder)
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or not path.is_file() or path.suffix == ".ipynb":
                continue
            if any(part.startswith(".nndl") for part in path.relative_to(folder).parts):
                continue
            size = path.stat().st_size
            relative = str(path.relative_to(folder))
            if size > MAX_FILE_BYTES or total + size > MAX_JOB_FILE_BYTES:
                notes.append(f"{relative} ({size / 2**20:.0f} MiB) was left out: a file may be at most "
                             f"{MAX_FILE_BYTES // 2**20} MiB and a submission's files "
                             f"{MAX_JOB_FILE_BYTES // 2**20} MiB in all.")
                continue
            total += size - len(files.get(relative, b""))
            files[relative] = path.read_bytes()
    return files, notes


def run_job(job, graders):
    """Grade one submission here: the worker side of a job.

    Args:
        job: a `GradingJob`.
        graders: the assignment's grader folder as data (`grader_files`).

    Returns:
        A `JobResult` holding one verdict per notebook, keyed as the coordinator keyed them.
    """
    from autograder.preprocessors import GradeInSandbox

    started = time.monotonic()
    results = {}
    with tempfile.TemporaryDirectory(prefix="nndl-job-") as workdir:
        grader_dir = pathlib.Path(workdir, "graders", job.assignment)
        write_files(grader_dir, graders)
        files_dir = pathlib.Path(workdir, "files")
        files_dir.mkdir()
        write_files(files_dir, job.files)
        settings = assignments.AssignmentSettings(job.assignment, grader_dir, dict(job.limits), job.gpu)
        step = GradeInSandbox(**job.step)
        for notebook in job.notebooks:
            nb = nbformat.reads(notebook["nb"], as_version=4)
            resources = {"nbgrader": {"notebook": pathlib.Path(notebook["name"]).stem,
                                      "assignment": job.assignment, "student": job.student},
                         "metadata": {"path": str(files_dir)}}
            results[notebook["key"]] = step.compute_verdict(nb, resources, settings, linked=set())
    return JobResult(job.student, results, worker_facts(time.monotonic() - started))


def worker_facts(seconds):
    """Where a job ran and what the worker process has used so far."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"host": socket.gethostname(), "pid": os.getpid(), "seconds": seconds,
            "peak_rss_mb": round(own, 1), "peak_child_rss_mb": round(children, 1),
            "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}


def job_timeout(job):
    """Seconds a worker may take on `job` before it counts as hung.

    Every notebook may run for its whole submission timeout and its graders
    for theirs; two minutes more cover starting kernels and the grader process.
    """
    submission = float(job.limits.get("submission_timeout", job.step["submission_timeout"]))
    graders = float(job.step["grader_timeout"])
    return (submission + graders) * max(1, len(job.notebooks)) + 120
