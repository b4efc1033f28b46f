"""Verdicts kept on disk, so that no submission is run and graded twice.

A verdict is everything grading one sanitised notebook produced: the hidden
tests' outcomes, the run's problems, and the executed cells' outputs. It is
stored under a key made of the sanitised notebook (what nbgrader hands the
kit's step, outputs cleared), the assignment, the student and the graders' own files, so a
changed submission or changed graders never reuse an old verdict.

With a store configured (``GradeInSandbox.verdict_store``), grading becomes
resumable: a batch stopped at any moment and started again replays the
verdicts it already has instead of running those notebooks again, and
recording a replayed verdict gives the gradebook exactly what recording it
the first time gave. Workers can compute verdicts anywhere and hand them to
the one process that records them.
"""

import hashlib
import json
import os
import pathlib

import nbformat

from autograder.run import CellProblem
from autograder.score.runner import GraderReport, TestOutcome


def graders_digest(graders):
    """A digest of an assignment's grader folder, as data (`autograder.jobs.grader_files`)."""
    digest = hashlib.sha256()
    for relative in sorted(graders):
        digest.update(relative.encode() + b"\0")
        digest.update(hashlib.sha256(graders[relative]).digest())
    return digest.hexdigest()


def notebook_key(nb, assignment, student, graders):
    """The key of a student's sanitised notebook's verdict.

    The student is part of it: files handed in beside the notebook may change
    what it does, so two students never share a verdict.

    Args:
        graders: the `graders_digest` of the assignment's grader folder.
    """
    cells = [{"type": c.cell_type, "source": c.source, "nbgrader": c.metadata.get("nbgrader", {})}
             for c in nb.cells]
    payload = json.dumps({"assignment": assignment, "student": student, "cells": cells,
                          "intake": nb.metadata.get("nndl", {}).get("intake", []),
                          "graders": graders}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def make_verdict(nb, report, problems, stats):
    """A verdict as plain data (JSON-ready)."""
    return {
        "outcomes": [vars(o) for o in report.outcomes],
        "log": report.log[-5000:],
        "problems": [{"index": p.index, "message": p.message} for p in problems],
        "outputs": {str(i): c.outputs for i, c in enumerate(nb.cells) if c.cell_type == "code"},
        "stats": stats,
    }


def apply_outputs(nb, verdict):
    """Give the notebook's code cells the outputs its run produced."""
    for index, outputs in verdict["outputs"].items():
        cell = nb.cells[int(index)]
        if cell.cell_type == "code":
            cell.outputs = [nbformat.from_dict(o) for o in outputs]


def report_of(verdict):
    """The `GraderReport` and problems a verdict holds."""
    report = GraderReport([TestOutcome(**o) for o in verdict["outcomes"]], verdict.get("log", ""))
    problems = [CellProblem(p["index"], p["message"]) for p in verdict["problems"]]
    return report, problems


class VerdictStore:
    """Verdicts in a folder, one JSON file each, written atomically."""

    def __init__(self, folder):
        self.folder = pathlib.Path(folder)

    def _path(self, key):
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key):
        """The verdict stored under `key`, or None."""
        try:
            return json.loads(self._path(key).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def put(self, key, verdict):
        """Store a verdict; a reader never sees half of one."""
        write_json_atomically(self._path(key), verdict)


def write_json_atomically(path, data, **dumps):
    """Write `data` as JSON to `path` (folders made as needed); a reader never sees half of it."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(data, **dumps))
    os.replace(partial, path)
