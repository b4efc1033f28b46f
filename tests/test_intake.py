"""Intake: reading what a student handed in without running it (nndl.intake)."""

import json

import nbformat
import pytest

from nndl import intake


@pytest.fixture
def paths(toy_course, tmp_path):
    """The toy master, its release, and a copy of its solution to play the submission."""
    master = toy_course / "source" / "toy" / "toy.ipynb"
    release = toy_course / "release" / "toy" / "toy.ipynb"
    submitted = tmp_path / "toy.ipynb"
    submitted.write_text((toy_course / "solutions" / "toy" / "toy.ipynb").read_text())
    return master, release, submitted


def test_clean_notebook_is_left_untouched(paths):
    """Is a notebook with nothing wrong neither rewritten nor annotated?"""
    master, release, submitted = paths
    before = submitted.read_bytes()
    found = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    assert found.messages == [] and not found.changed
    assert submitted.read_bytes() == before


@pytest.mark.parametrize("content, phrase", [
    ("{ not json", "not valid JSON"),
    (json.dumps({"hello": "world"}), "not a Jupyter notebook"),
    (json.dumps({"nbformat": 3, "cells": [], "metadata": {}}), "format 3"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                 "cells": [{"cell_type": "spreadsheet", "source": ""}]}), "not a valid notebook"),
])
def test_unreadable_notebook_is_graded_as_blank(paths, content, phrase):
    """Is an unreadable file replaced by the release, kept aside, and explained?"""
    master, release, submitted = paths
    submitted.write_text(content)
    found = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    assert found.replaced
    assert any(phrase in m for m in found.messages), found.messages
    graded = nbformat.read(str(submitted), as_version=4)
    assert [c.source for c in graded.cells] == [c.source for c in nbformat.read(str(release), as_version=4).cells]
    assert graded.metadata.nndl.intake == found.messages
    assert (submitted.parent / intake.RECEIVED_DIR / "toy.ipynb").read_text() == content


def test_oversized_notebook_is_refused_unread(paths, monkeypatch):
    """Is a notebook over the size cap refused without parsing it?"""
    master, release, submitted = paths
    monkeypatch.setattr(intake, "MAX_NOTEBOOK_BYTES", 1000)
    found = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    assert found.replaced and "MiB" in found.messages[0]


def test_too_many_cells_is_refused(paths, monkeypatch):
    """Is a notebook with more cells than the cap graded as blank?"""
    master, release, submitted = paths
    monkeypatch.setattr(intake, "MAX_CELLS", 3)
    found = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    assert found.replaced and "cells" in found.messages[0]


def test_duplicated_cell_ids_are_renumbered(paths):
    """Does a pasted cell with a duplicate id get a new id and a message?"""
    master, release, submitted = paths
    nb = nbformat.read(str(submitted), as_version=4)
    copy = nbformat.from_dict(json.loads(json.dumps(nb.cells[2])))
    copy.metadata = {}
    nb.cells.insert(3, copy)
    submitted.write_text(json.dumps(nb))
    found = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    assert found.changed and any("same id" in m for m in found.messages)
    ids = [c.id for c in nbformat.read(str(submitted), as_version=4).cells]
    assert len(ids) == len(set(ids))


def test_deleted_grade_cell_is_reported(paths):
    """Is a grade cell missing from the submission named in a message?"""
    master, release, submitted = paths
    nb = nbformat.read(str(submitted), as_version=4)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "scale"]
    nbformat.write(nb, str(submitted))
    found = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    assert any("'scale' was missing" in m for m in found.messages)


def test_other_language_kernel_is_reported(paths):
    """Is a kernelspec switched to another language reported (nbgrader resets it)?"""
    master, release, submitted = paths
    nb = nbformat.read(str(submitted), as_version=4)
    nb.metadata.kernelspec = {"name": "ir", "display_name": "R", "language": "R"}
    nbformat.write(nb, str(submitted))
    found = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    assert any("'R'" in m for m in found.messages)


def test_forged_intake_messages_are_replaced(paths):
    """Can a student plant their own 'intake' notes in the metadata? They are overwritten."""
    master, release, submitted = paths
    nb = nbformat.read(str(submitted), as_version=4)
    nb.metadata["nndl"] = {"intake": ["Give this student full marks."]}
    nbformat.write(nb, str(submitted))
    intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    assert nbformat.read(str(submitted), as_version=4).metadata.nndl.intake == []


def test_symlink_submission_is_not_followed(paths, tmp_path):
    """Is a submitted notebook that is a symlink (to a grader, say) not read?"""
    master, release, submitted = paths
    secret = tmp_path / "secret.txt"
    secret.write_text("hidden")
    submitted.unlink()
    submitted.symlink_to(secret)
    found = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    assert found.replaced and "not a regular file" in found.messages[0]


def test_intake_twice_keeps_its_findings(paths):
    """Taking in the file intake itself wrote changes nothing and keeps the first findings."""
    master, release, submitted = paths
    submitted.write_text("{ not json")
    first = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    written = submitted.read_bytes()
    again = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    assert again.messages == first.messages and again.replaced and not again.changed
    assert submitted.read_bytes() == written


def test_a_new_submission_is_taken_in_afresh(paths):
    """After intake, a newly collected file replaces the kept original and is judged on its own."""
    master, release, submitted = paths
    good = submitted.read_text()
    submitted.write_text("{ not json")
    intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    submitted.write_text(good)
    found = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    assert found.messages == [] and not found.replaced
