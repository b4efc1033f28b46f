"""The `nndl` command: bad input ends in a sentence that says what to do, and exit status 2."""

import os
import pathlib
import subprocess
import sys

import pytest

NNDL = pathlib.Path(sys.executable).parent / "nndl"


def nndl(cwd, *args):
    env = dict(os.environ, PATH=f"{NNDL.parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([str(NNDL), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_unknown_assignment(toy_course):
    """Does an unknown assignment name say which ones exist?"""
    done = nndl(toy_course, "autograde", "toyy")
    assert done.returncode == 2
    assert "No assignment 'toyy'" in done.stderr and "toy" in done.stderr
    assert "Traceback" not in done.stderr


def test_no_submissions_says_to_collect(toy_course):
    """With nothing collected, does autograde say to run nbgrader collect?"""
    done = nndl(toy_course, "autograde", "toy")
    assert done.returncode == 2 and "nbgrader collect toy" in done.stderr


def test_unknown_student(toy_course, submit):
    """Does --student with an id that did not submit list who did?"""
    submit(toy_course, "toy", "alice", "toy.ipynb", (toy_course / "release/toy/toy.ipynb").read_text())
    done = nndl(toy_course, "autograde", "toy", "--student", "bob")
    assert done.returncode == 2 and "'bob'" in done.stderr and "alice" in done.stderr


def test_not_a_course_directory(tmp_path):
    """Pointed at a folder that is not a course, does it say what a course folder needs?"""
    done = nndl(tmp_path, "--course", str(tmp_path), "build")
    assert done.returncode == 2 and "nbgrader_config.py" in done.stderr


@pytest.mark.slow
def test_autograde_then_gradebook(toy_course, submit):
    """Does a graded submission show up in `nndl gradebook`?"""
    submit(toy_course, "toy", "alice", "toy.ipynb", (toy_course / "solutions/toy/toy.ipynb").read_text())
    done = nndl(toy_course, "autograde", "toy")
    assert done.returncode == 0, done.stderr
    table = nndl(toy_course, "gradebook", "toy").stdout
    assert "alice" in table and "5/6" in table
