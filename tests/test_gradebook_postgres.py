"""A PostgreSQL gradebook (nbgrader's ``db_url``) ends identical to a SQLite one.

The same mixed toy batch is graded from scratch twice, in two copies of the
course: into the course's SQLite ``gradebook.db``, and into a throwaway
PostgreSQL server (the ``postgres_server`` fixture of conftest.py, started by
tests/postgres_server.py from Debian's binaries; the test skips without them,
or with ``NNDL_PG_BIN`` naming a folder that lacks them). An instructor's
manual grades go into both alike. Then everything nbgrader stored is dumped
and compared, and `nndl gradebook` prints the same table from either.
"""

import shutil

import pytest
from sqlalchemy import inspect

from nndl import cli
from nndl.batch import coordinator as grade
from nndl.record import gradebook
from toy import WRONG_ADD, toy_notebook

pytestmark = pytest.mark.slow


def _submit_batch(course_root, submit):
    """Right, unanswered, partly wrong and unreadable submissions."""
    submit(course_root, "toy", "a-right", "toy.ipynb",
           toy_notebook(course_root, explain="Adding a and b gives their sum."))
    submit(course_root, "toy", "b-release", "toy.ipynb", (course_root / "release/toy/toy.ipynb").read_text())
    submit(course_root, "toy", "c-wrong-add", "toy.ipynb",
           toy_notebook(course_root, add_answer=WRONG_ADD))
    submit(course_root, "toy", "d-not-json", "toy.ipynb", "{ this is not a notebook")


# What the answers earn, per auto-graded cell.
EXPECTED = {
    "a-right": {"add": 2.0, "scale": 3.0},
    "b-release": {"add": 0.0, "scale": 0.0},
    "c-wrong-add": {"add": 0.0, "scale": 3.0},
    "d-not-json": {"add": 0.0, "scale": 0.0},
}


def _grade_by_hand(db_url):
    """What an instructor does in formgrader (as its API handlers write it): a manual score and
    comment, and an override with extra credit."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        for student, cell, manual, extra in (("a-right", "explain", 1.0, None),
                                             ("c-wrong-add", "add", 0.5, 0.25)):
            record = gb.find_grade(cell, "toy", "toy", student)
            record.manual_score, record.extra_credit, record.needs_manual_grade = manual, extra, False
        gb.find_comment("explain", "toy", "toy", "a-right").manual_comment = "Clear."
        gb.db.commit()


def _fields(obj):
    """An nbgrader record's stored and computed values, less ids, links and timestamps."""
    return {a.key: getattr(obj, a.key) for a in inspect(type(obj)).column_attrs
            if a.key != "id" and not a.key.endswith("_id") and a.key != "timestamp"}


def _dump(db_url):
    """Everything nbgrader's gradebook holds, keyed by names instead of ids."""
    from nbgrader import api
    from sqlalchemy import text

    with api.Gradebook(db_url) as gb:
        counts = {cls.__tablename__: gb.db.query(cls).count()
                  for cls in (api.Course, api.Assignment, api.Notebook, api.BaseCell, api.SourceCell,
                              api.Student, api.SubmittedAssignment, api.SubmittedNotebook, api.Grade,
                              api.Comment)}
        masters = {
            a.name: {**_fields(a), "course": a.course_id, "notebooks": {
                nb.name: {**_fields(nb),
                          "grade_cells": {c.name: _fields(c) for c in nb.grade_cells},
                          "solution_cells": {c.name: _fields(c) for c in nb.solution_cells},
                          "task_cells": {c.name: _fields(c) for c in nb.task_cells},
                          "source_cells": {c.name: _fields(c) for c in nb.source_cells}}
                for nb in a.notebooks}}
            for a in gb.assignments}
        submissions = {
            s.student_id: {**_fields(s), "assignment": s.assignment.name, "notebooks": {
                nb.name: {**_fields(nb),
                          "grades": {g.name: _fields(g) for g in nb.grades},
                          "comments": {c.name: _fields(c) for c in nb.comments}}
                for nb in s.notebooks}}
            for a in gb.assignments for s in gb.assignment_submissions(a.name)}
        return {"alembic": gb.db.execute(text("SELECT version_num FROM alembic_version")).scalars().all(),
                "counts": counts, "students": {s.id: _fields(s) for s in gb.students},
                "masters": masters, "submissions": submissions}


def test_postgres_and_sqlite_gradebooks_end_identical(postgres_server, toy_course, submit, tmp_path, capsys):
    """Graded from scratch into SQLite and into PostgreSQL, do the gradebooks hold the same grades?"""
    _submit_batch(toy_course, submit)
    lite_root, pg_root = toy_course, tmp_path / "pg_course"
    shutil.copytree(lite_root, pg_root)
    # The PostgreSQL copy starts with no SQLite gradebook, so nothing it records can land in one.
    (pg_root / "gradebook.db").unlink()
    lite_url = f"sqlite:///{lite_root / 'gradebook.db'}"
    pg_url = postgres_server.create_database("nndl_toy")

    lite = grade.autograde(lite_root, "toy")
    assert not (pg_root / ".nndl").exists()  # the copy has no verdicts to replay: computed afresh
    # Workers too: they read the master's cells from the PostgreSQL gradebook; only we write it.
    pg = grade.autograde(pg_root, "toy", config_overrides={"CourseDirectory": {"db_url": pg_url}}, workers=2)
    for results in (lite, pg):
        assert [r.student for r in results] == sorted(EXPECTED)
        assert all(r.graded for r in results), [r.error for r in results]
    assert not (pg_root / "gradebook.db").exists(), "the PostgreSQL pass wrote a SQLite gradebook"
    # One verdict per submission in each copy, under the same keys (the same sanitised notebooks).
    stored = [sorted(p.name for p in (root / ".nndl" / "verdicts" / "toy").rglob("*.json"))
              for root in (lite_root, pg_root)]
    assert stored[0] == stored[1] and len(stored[0]) == len(EXPECTED)

    for url in (lite_url, pg_url):
        _grade_by_hand(url)
    lite_dump, pg_dump = _dump(lite_url), _dump(pg_url)
    assert pg_dump == lite_dump

    # What both hold is the batch's real grades, not two empty or default books.
    grades = {student: sub["notebooks"]["toy"]["grades"] for student, sub in pg_dump["submissions"].items()}
    assert {s: {c: g[c]["auto_score"] for c in ("add", "scale")} for s, g in grades.items()} == EXPECTED
    assert {c: g["max_score"] for c, g in grades["a-right"].items()} == {"add": 2.0, "scale": 3.0, "explain": 1.0}
    assert grades["a-right"]["explain"]["needs_manual_grade"] is False
    assert grades["a-right"]["explain"]["score"] == 1.0
    assert grades["c-wrong-add"]["add"]["score"] == 0.75
    comments = pg_dump["submissions"]["a-right"]["notebooks"]["toy"]["comments"]
    assert comments["explain"]["manual_comment"] == "Clear."
    totals = {s: (sub["score"], sub["max_score"]) for s, sub in pg_dump["submissions"].items()}
    assert totals == {"a-right": (6.0, 6.0), "b-release": (0.0, 6.0), "c-wrong-add": (3.75, 6.0),
                      "d-not-json": (0.0, 6.0)}
    assert pg_dump["counts"]["grade"] == 3 * len(EXPECTED)

    # The kit's own readers, and `nndl gradebook` with the course configured for PostgreSQL.
    assert gradebook.cell_scores(pg_url, "toy") == gradebook.cell_scores(lite_url, "toy")
    assert gradebook.max_points(pg_url, "toy") == gradebook.max_points(lite_url, "toy")
    with open(pg_root / "nbgrader_config.py", "a") as config:
        config.write(f"c.CourseDirectory.db_url = {pg_url!r}\n")
    capsys.readouterr()
    assert cli.main(["--course", str(lite_root), "gradebook", "toy"]) == 0
    lite_table = capsys.readouterr().out
    assert cli.main(["--course", str(pg_root), "gradebook", "toy"]) == 0
    pg_table = capsys.readouterr().out
    assert pg_table == lite_table
    assert "c-wrong-add" in pg_table and "3.75/6" in pg_table
    assert not (pg_root / "gradebook.db").exists()
