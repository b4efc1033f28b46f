"""Fixtures shared by the kit's tests."""

import os
import pathlib
import shutil

import pytest

KIT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def _seeds():
    """Deterministic numerics in tests that draw random numbers."""
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def _built_toy_course(tmp_path_factory):
    from autograder import build

    root = tmp_path_factory.mktemp("toy") / "toy_course"
    shutil.copytree(FIXTURES / "toy_course", root)
    build.build(root)
    return root


@pytest.fixture
def toy_course(_built_toy_course, tmp_path):
    """A fresh copy of the built toy course (two autograded cells, one manual)."""
    root = tmp_path / "toy_course"
    shutil.copytree(_built_toy_course, root)
    return root


@pytest.fixture(scope="session")
def data_dir():
    """The real datasets' folder (NNDL_DATA_DIR), or skip saying what is missing."""
    value = os.environ.get("NNDL_DATA_DIR")
    if not value or not pathlib.Path(value).is_dir():
        pytest.skip("no dataset folder: set NNDL_DATA_DIR (scripts/setup prepares .nndl/data here)")
    return pathlib.Path(value)


@pytest.fixture
def submit():
    """A function placing a notebook as nbgrader's collect would."""
    return _submit


def _submit(course_root, assignment, student, notebook_name, content):
    """Write `content` to submitted/<student>/<assignment>/<notebook_name>."""
    folder = pathlib.Path(course_root) / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / notebook_name
    path.write_text(content) if isinstance(content, str) else path.write_bytes(content)
    return path
