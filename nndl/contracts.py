"""The data that crosses between the grading steps: jobs, verdicts, test outcomes.

This module sits at the bottom of the engine's import graph (it imports
nothing of the kit), so every step can use it. Each type turns into plain
JSON and back (`to_json` / `from_json`): a job goes to a worker on another
machine, a verdict comes back and is stored on disk, and nothing crosses as
a pickle of live objects.
"""

import base64
import dataclasses
import hashlib
import json


@dataclasses.dataclass
class TestOutcome:
    """One hidden test's verdict."""

    __test__ = False  # not a pytest test class, whatever its name says

    test: str
    grade_cell: str
    weight: float
    passed: bool
    message: str


@dataclasses.dataclass
class CellProblem:
    """Something that went wrong in one cell while the notebook ran, said for the student."""

    index: int
    message: str


@dataclasses.dataclass
class GraderReport:
    """What the hidden graders of one notebook decided: each test's outcome, and pytest's log.

    `measurements` are the figures graders measured against a calibrated
    threshold (`calibration.check`): name -> {"value": float, "data": dataset or None}.
    """

    outcomes: list
    log: str
    measurements: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Verdict:
    """Everything grading one sanitised notebook produced.

    The hidden tests' outcomes, the run's problems, the executed cells'
    outputs (by cell index) and figures about the run. Recording a verdict
    gives the gradebook the same grades whether it was just computed or
    replayed from the store.
    """

    outcomes: list  # [TestOutcome]
    problems: list  # [CellProblem]
    outputs: dict  # str(cell index) -> list of nbformat output dicts
    stats: dict  # execution_seconds (kernel_start_seconds of it), grader_start_seconds, restarts, peak_memory_mb, seed
    log: str = ""
    #: What graders measured against calibrated thresholds (see `GraderReport`).
    measurements: dict = dataclasses.field(default_factory=dict)

    def cell_outcomes(self, grade_id):
        """The outcomes of the tests that score one grade cell."""
        return [o for o in self.outcomes if o.grade_cell == grade_id]

    def cell_fraction(self, grade_id):
        """Share of the cell's weight earned, or None if no test scores it."""
        tests = self.cell_outcomes(grade_id)
        total = sum(o.weight for o in tests)
        if not tests or total <= 0:
            return None
        return sum(o.weight for o in tests if o.passed) / total

    def to_dict(self):
        return {"outcomes": [dataclasses.asdict(o) for o in self.outcomes],
                "problems": [dataclasses.asdict(p) for p in self.problems],
                "outputs": self.outputs, "stats": self.stats, "log": self.log,
                "measurements": self.measurements}

    @classmethod
    def from_dict(cls, data):
        return cls(outcomes=[TestOutcome(**o) for o in data["outcomes"]],
                   problems=[CellProblem(**p) for p in data["problems"]],
                   outputs=dict(data["outputs"]), stats=dict(data["stats"]), log=data.get("log", ""),
                   measurements=dict(data.get("measurements", {})))

    def to_json(self):
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))


@dataclasses.dataclass
class NotebookJob:
    """One notebook of a job: its file name, its verdict's key, and the sanitised notebook as JSON text."""

    name: str
    key: str
    notebook: str


@dataclasses.dataclass
class GradingJob:
    """Everything a worker needs to grade one student's submission, as data.

    The hidden graders do not travel in the job: a batch sends them to its
    workers once (`nndl.batch.pool`), and their digest is part of every key.
    """

    assignment: str
    student: str
    notebooks: list  # [NotebookJob]
    files: dict  # relative path -> bytes: the submission's other files, then the master's
    settings: object  # nndl.settings.GradingSettings
    notes: list = dataclasses.field(default_factory=list)  # what was left out of `files`, and why

    def to_json(self):
        return json.dumps({
            "assignment": self.assignment, "student": self.student,
            "notebooks": [dataclasses.asdict(n) for n in self.notebooks],
            "files": {path: base64.b64encode(data).decode("ascii") for path, data in self.files.items()},
            "settings": self.settings.to_dict(), "notes": list(self.notes)})

    @classmethod
    def from_json(cls, text):
        from nndl.settings import GradingSettings

        data = json.loads(text)
        return cls(assignment=data["assignment"], student=data["student"],
                   notebooks=[NotebookJob(**n) for n in data["notebooks"]],
                   files={path: base64.b64decode(b) for path, b in data["files"].items()},
                   settings=GradingSettings.from_dict(data["settings"]), notes=list(data["notes"]))


@dataclasses.dataclass
class JobResult:
    """A finished job: a verdict per notebook key, and where and how the worker ran it."""

    student: str
    verdicts: dict  # key -> Verdict
    worker: dict

    def to_json(self):
        return json.dumps({"student": self.student, "worker": self.worker,
                           "verdicts": {k: v.to_dict() for k, v in self.verdicts.items()}})

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        return cls(student=data["student"], worker=dict(data["worker"]),
                   verdicts={k: Verdict.from_dict(v) for k, v in data["verdicts"].items()})


def graders_digest(graders):
    """A digest of an assignment's grader folder given as data (relative path -> bytes)."""
    digest = hashlib.sha256()
    for relative in sorted(graders):
        digest.update(relative.encode() + b"\0")
        digest.update(hashlib.sha256(graders[relative]).digest())
    return digest.hexdigest()


def notebook_key(nb, assignment, student, graders_digest, profile="full"):
    """The key of a student's sanitised notebook's verdict: the one function that computes it.

    The student is part of it (files handed in beside the notebook may change
    what it does, so two students never share a verdict), and so are the
    graders and the grading profile: changed graders, or grading at another
    scale, never reuse an old verdict.
    """
    cells = [{"type": c["cell_type"], "source": c["source"],
              "nbgrader": c.get("metadata", {}).get("nbgrader", {})} for c in nb["cells"]]
    intake = nb.get("metadata", {}).get("nndl", {}).get("intake", [])
    payload = json.dumps({"assignment": assignment, "student": student, "cells": cells,
                          "intake": intake, "graders": graders_digest, "profile": profile}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()
