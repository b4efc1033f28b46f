"""nbgrader's whole round trip for a01 through a real exchange directory, graded by the kit."""

import os
import pathlib
import shutil
import subprocess
import sys

import nbformat
import pytest

from nndl import build, course

pytestmark = pytest.mark.slow

from kit import A01, KIT
BIN = pathlib.Path(sys.executable).parent


def nbgrader(cwd, *args, exchange):
    """Run one nbgrader command as a person would, and fail with its output if it fails."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run([str(BIN / "nbgrader"), *args, f"--Exchange.root={exchange}"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def test_release_fetch_submit_collect_grade_feedback(tmp_path):
    """Does a student who fetches, answers and submits end up holding feedback with their scores?"""
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    os.chmod(exchange, 0o777)
    instructor = tmp_path / "instructor"
    shutil.copytree(KIT / "source" / A01, instructor / "source" / A01)
    course.write_course_config(instructor, graders=KIT / "autograder")
    build.build(instructor, assignment=A01)
    nbgrader(instructor, "release_assignment", A01, exchange=exchange)

    student = tmp_path / "alice"
    student.mkdir()
    nbgrader(student, "fetch_assignment", A01, "--course", "nndl", exchange=exchange)
    fetched = student / A01 / "perceptrons_xor.ipynb"
    assert "raise NotImplementedError" in fetched.read_text()
    # Alice answers every question as the worked solution does, except AND NOT, which she gets wrong.
    answers = nbformat.read(str(KIT / "solutions" / A01 / "perceptrons_xor.ipynb"), as_version=4)
    mine = nbformat.read(str(fetched), as_version=4)
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in answers.cells}
    for cell in mine.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = by_id[meta["grade_id"]].source
            if meta["grade_id"] == "mp_neurons_answer":
                cell.source = cell.source.replace("def mp_and_not(a, b):", "def mp_and_not(b, a):")
    nbformat.write(mine, str(fetched))
    nbgrader(student, "submit", A01, "--course", "nndl", "--student", "alice", exchange=exchange)

    nbgrader(instructor, "collect", A01, exchange=exchange)
    assert (instructor / "submitted" / "alice" / A01 / "perceptrons_xor.ipynb").exists()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    graded = subprocess.run([str(BIN / "nndl"), "autograde", A01], cwd=instructor, env=env,
                            capture_output=True, text=True, timeout=900)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    assert "1 graded" in graded.stdout
    nbgrader(instructor, "generate_feedback", A01, exchange=exchange)
    nbgrader(instructor, "release_feedback", A01, exchange=exchange)

    nbgrader(student, "fetch_feedback", A01, "--course", "nndl", "--student", "alice", exchange=exchange)
    feedback = list((student / A01 / "feedback").rglob("perceptrons_xor.html"))
    assert len(feedback) == 1, list((student / A01).rglob("*"))
    html = feedback[0].read_text()
    # mp_and_not with its arguments swapped computes B AND NOT A: 3 of the 4 gate tests pass.
    assert "Hidden tests: 3 of 4 points" in html
    assert "mp and not" in html and "expected" in html
    assert "Hidden tests: 3 of 3 points" in html  # the Keras model, trained in her kernel
