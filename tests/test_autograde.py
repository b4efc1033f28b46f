"""Autograding a batch through nbgrader's pipeline with the kit's step (toy course)."""

import os
import shutil
import subprocess
import sys

import nbformat
import pytest

from nndl.batch import coordinator as grade
from toy import BATCH_EXPECTED as EXPECTED
from toy import submit_batch
from toy import toy_scores as scores

pytestmark = pytest.mark.slow

@pytest.fixture
def batch(toy_course, submit):
    """A mixed toy batch: right, unanswered, partly wrong, and broken files."""
    return submit_batch(toy_course, submit)


def test_batch_earns_exactly_what_its_answers_earn(batch):
    """Does every submission get its expected score, the broken one included, in one batch?"""
    results = grade.autograde(batch, "toy")
    assert [r.student for r in results] == sorted(EXPECTED)
    assert all(r.graded for r in results), [r.error for r in results]
    assert scores(batch) == EXPECTED
    broken = next(r for r in results if r.student == "d-not-json")
    assert any("not valid JSON" in m for m in broken.messages)


def test_feedback_shows_expected_and_received(batch):
    """Does the autograded notebook tell the student what was expected and what they gave?"""
    grade.autograde(batch, "toy", student="c-wrong-add")
    nb = nbformat.read(str(batch / "autograded/c-wrong-add/toy/toy.ipynb"), as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "add")
    text = "".join(o.get("text", "") for o in cell.outputs)
    assert "add(2, 3): expected 5, received -1" in text
    assert "0 of 2 points" in text


def test_nbgrader_autograde_grades_alike(batch, tmp_path):
    """Do `nbgrader autograde` (its own CLI) and `nndl autograde` record the same grades?"""
    other = tmp_path / "other"
    shutil.copytree(batch, other)
    grade.autograde(batch, "toy")
    # nbgrader's CLI reads the unchanged files: run intake-free on a copy, minus the broken file,
    # which nbgrader alone cannot read (intake is the kit's step before nbgrader).
    shutil.rmtree(other / "submitted" / "d-not-json")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "nbgrader"), "autograde", "toy",
                           "--force"], cwd=other, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ours = scores(batch)
    del ours["d-not-json"]
    assert scores(other) == ours


def test_one_student_only(batch):
    """Does --student grade that submission and no other?"""
    results = grade.autograde(batch, "toy", student="e-half-scale")
    assert [r.student for r in results] == ["e-half-scale"]
    assert scores(batch) == {"e-half-scale": EXPECTED["e-half-scale"]}


def test_grades_already_recorded_stay_when_one_fails(batch, monkeypatch):
    """When one submission cannot be graded at all, do the others keep their recorded grades?"""
    grade.autograde(batch, "toy")
    before = scores(batch)
    # Make the next run of one submission fail inside nbgrader: a file blocks its output folder.
    blocked = batch / "autograded" / "c-wrong-add"
    shutil.rmtree(blocked)
    blocked.write_text("in the way")
    results = grade.autograde(batch, "toy")
    assert {r.student for r in results if not r.graded} == {"c-wrong-add"}
    assert next(r for r in results if not r.graded).error
    after = scores(batch)
    assert after == before


def test_two_workers_grade_alike(batch):
    """Do two worker processes, with only this process writing the gradebook, give the same grades?"""
    results = grade.autograde(batch, "toy", workers=2)
    assert all(r.graded for r in results), [r.error for r in results]
    assert scores(batch) == EXPECTED
    # One verdict per submission: the coordinator replayed what the workers computed
    # (a second verdict would mean it ran the notebook again under another key).
    assert len(list((batch / ".nndl" / "verdicts" / "toy").rglob("*.json"))) == len(EXPECTED)


def test_second_run_replays_instead_of_running(batch, monkeypatch):
    """Does grading again replay the stored verdicts (no notebook runs) and record the same grades?"""
    grade.autograde(batch, "toy")
    first = scores(batch)
    from nndl import grade as run_module

    def no_runs(*args, **kwargs):
        raise AssertionError("a notebook was run again")
    monkeypatch.setattr(run_module.NotebookRun, "execute", no_runs)
    results = grade.autograde(batch, "toy")
    assert all(r.graded and r.attempts == 0 for r in results)
    assert scores(batch) == first == EXPECTED


def test_regrade_runs_again(batch):
    """Does --regrade forget the stored verdicts?"""
    grade.autograde(batch, "toy", student="a-right")
    store = batch / ".nndl" / "verdicts" / "toy"
    before = {p.name for p in store.rglob("*.json")}
    assert before
    grade.autograde(batch, "toy", student="a-right", regrade=True)
    assert {p.name for p in store.rglob("*.json")} == before
    assert scores(batch)["a-right"] == EXPECTED["a-right"]
