"""Fixtures shared by the kit's tests."""

import os
import pathlib
import shutil

import pytest

from kit import FIXTURES, KIT  # noqa: F401  (re-exported for older imports)


@pytest.fixture(autouse=True)
def _seeds():
    """Deterministic numerics in tests that draw random numbers."""
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def _built_toy_course(tmp_path_factory):
    from nndl import build

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


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server (tests/postgres_server.py), or skip saying what is missing.

    ``create_database(name)`` on it gives an empty database's SQLAlchemy URL.
    """
    pytest.importorskip("psycopg2", reason="no PostgreSQL driver: pip install psycopg2-binary "
                                           "(the kit's dev extra has it)")
    import postgres_server

    try:
        server = postgres_server.Server().start()
    except postgres_server.Unavailable as error:
        pytest.skip(f"no PostgreSQL server: {error}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster for the session: 2 CPUs and one declared (fake) GPU.

    Yields its address; the kit's Ray pool in this process uses the
    connection, and `nndl autograde --ray ADDRESS` in a subprocess joins it.
    """
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]' (scripts/setup does)")
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, object_store_memory=256 * 2**20,
             log_to_driver=False, logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
