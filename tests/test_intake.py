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


def _answer_sources(nb):
    return [c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]


def _taken_in(submitted):
    """The notebook intake wrote, read back, and checked with nbformat's own validator."""
    nb = nbformat.read(str(submitted), as_version=4)
    nbformat.validate(nb)
    return nb


@pytest.mark.parametrize("bad_id", [
    "\u0430dd-answer",  # Cyrillic a: looks like "add-answer"
    "add\u2010answer",  # a Unicode hyphen
    "x" * 65,
    "add answer",
    "add-answer\n",  # Python's $ would let it through; JSON Schema's does not
    "",
    5,
    None,
    ["add-answer"],
], ids=["cyrillic", "unicode-hyphen", "65-chars", "space", "newline", "empty", "number", "null", "list"])
def test_invalid_cell_id_is_replaced_and_said(paths, bad_id):
    """Is a cell id nbformat rejects given a valid new one, with a message, the answers untouched?"""
    master, release, submitted = paths
    answers = _answer_sources(nbformat.read(str(submitted), as_version=4))
    nb = json.loads(submitted.read_text())
    nb["cells"][2]["id"] = bad_id
    submitted.write_text(json.dumps(nb))
    found = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    assert found.changed and not found.replaced
    assert any(m.startswith("Cell 3 had an id that the notebook format does not accept") for m in found.messages)
    graded = _taken_in(submitted)
    assert all(intake.valid_cell_id(c.id) for c in graded.cells)
    assert len({c.id for c in graded.cells}) == len(graded.cells)
    assert _answer_sources(graded) == answers


def test_cell_id_rule_is_nbformats_own(paths):
    """Does intake's rule agree with nbformat's validator on the ids nbformat itself rejects and accepts?"""
    for cell_id in ["ok", "a-b_C9", "x" * 64, "x" * 65, "", "\u0430", "a b", "a.b"]:
        try:
            nbformat.validate(cell_id, ref="cell_id", version=4, version_minor=5)
            accepted = True
        except nbformat.ValidationError:
            accepted = False
        assert intake.valid_cell_id(cell_id) == accepted, cell_id


def test_many_invalid_ids_make_one_short_message(paths):
    """Thirty look-alike ids: one message naming a few of them, not thirty."""
    master, release, submitted = paths
    nb = json.loads(submitted.read_text())
    for i in range(30):
        nb["cells"].append({"cell_type": "markdown", "id": f"\u0430{i}" * 10, "metadata": {}, "source": "note"})
    submitted.write_text(json.dumps(nb))
    found = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    about_ids = [m for m in found.messages if "id" in m]
    assert len(about_ids) == 1 and "and 25 more" in about_ids[0] and len(about_ids[0]) < 600
    _taken_in(submitted)


def _set(path, value):
    def change(nb):
        *parents, last = path
        node = nb
        for key in parents:
            node = node[key]
        node[last] = value
    return change


# Readable notebooks that nbformat's validator rejects, or that nbgrader fails to write; each
# with the phrase of its message. Cell 3 (index 2) is the answer to `add`.
MALFORMED = {
    "tags-not-a-list": (_set(["cells", 0, "metadata", "tags"], 5), "metadata entries"),
    "cell-metadata-not-a-mapping": (_set(["cells", 1, "metadata"], [1]), "metadata that is not a mapping"),
    "field-a-cell-cannot-have": (_set(["cells", 2, "wat"], 1), "fields a notebook cell cannot have"),
    "invalid-output": (_set(["cells", 2, "outputs"], [{"output_type": "stream"}]), "saved outputs"),
    "execution-count-text": (_set(["cells", 2, "execution_count"], "x"), "saved outputs"),
    "attachments-not-a-mapping": (_set(["cells", 0, "attachments"], 5), "attachments"),
    "kernelspec-incomplete": (_set(["metadata", "kernelspec"], {"name": 5}), "'kernelspec' was not valid"),
    "notebook-metadata-not-a-mapping": (_set(["metadata"], [1]), "metadata was not a mapping"),
    "field-a-notebook-cannot-have": (_set(["extra"], 1), "fields a notebook cannot have"),
    "minor-version-text": (_set(["nbformat_minor"], "5"), "minor version"),
    "minor-version-future": (_set(["nbformat_minor"], 99), "minor version"),
    "lone-surrogate": (_set(["cells", 4, "source"], "def scale(x, k):\n    return x * k  # \ud800"),
                       "lone UTF-16 surrogates"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_notebook_is_repaired_until_nbformat_accepts_it(paths, name):
    """Whatever nbformat's validator rejects is repaired with a message, the answers kept, and it validates."""
    change, phrase = MALFORMED[name]
    master, release, submitted = paths
    add_answer = _answer_sources(nbformat.read(str(submitted), as_version=4))[0]
    nb = json.loads(submitted.read_text())
    change(nb)
    submitted.write_text(json.dumps(nb))
    found = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    assert found.changed and not found.replaced, found.messages
    assert any(phrase in m for m in found.messages), found.messages
    graded = _taken_in(submitted)
    assert [c.source for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "add_answer"] == \
        [add_answer]


def _released_marks(release):
    return {c.metadata.nbgrader.grade_id: c.metadata.nbgrader
            for c in nbformat.read(str(release), as_version=4).cells if "nbgrader" in c.metadata}


# nbgrader marks that make nbgrader fail when it records the notebook, and the phrase said.
MARKS = {
    "not-a-mapping": (_set(["cells", 1, "metadata", "nbgrader"], "x"), "not the assignment's"),
    "foreign-grade-cell": (lambda nb: nb["cells"].append({
        "cell_type": "code", "id": "extra", "execution_count": None, "outputs": [], "source": "1",
        "metadata": {"nbgrader": {"grade": True, "solution": False, "locked": False, "grade_id": "bonus",
                                  "points": 100, "schema_version": 3}}}), "not the assignment's"),
    "copied-answer-cell": (lambda nb: nb["cells"].insert(3, dict(nb["cells"][2], id="pasted")), "copy an earlier"),
    "answer-marked-graded": (lambda nb: nb["cells"][2]["metadata"]["nbgrader"].update(grade=True, points="abc"),
                             "put back as released"),
    "points-changed": (lambda nb: nb["cells"][3]["metadata"]["nbgrader"].update(points=1000), "put back"),
    "grade-id-not-text": (_set(["cells", 0, "metadata", "nbgrader"], {"grade_id": ["x"]}), "not the assignment's"),
}


@pytest.mark.parametrize("name", MARKS)
def test_nbgrader_marks_are_kept_only_as_released(paths, name):
    """Marks nbgrader would fail on (or grade wrongly) are put back as released or removed, with a message."""
    change, phrase = MARKS[name]
    master, release, submitted = paths
    nb = json.loads(submitted.read_text())
    change(nb)
    submitted.write_text(json.dumps(nb))
    found = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    assert found.changed and not found.replaced
    assert any(phrase in m for m in found.messages), found.messages
    released = _released_marks(release)
    marks = [c.metadata.nbgrader for c in _taken_in(submitted).cells if "nbgrader" in c.metadata]
    grade_ids = [m.grade_id for m in marks]
    assert sorted(grade_ids) == sorted(set(grade_ids)) and set(grade_ids) <= set(released)
    for found_marks in marks:
        expected = {k: v for k, v in released[found_marks.grade_id].items() if k not in ("checksum", "cell_type")}
        assert {k: v for k, v in found_marks.items() if k not in ("checksum", "cell_type")} == expected


def test_too_deeply_nested_notebook_is_graded_as_blank(paths):
    """JSON nested deeper than nbformat can read: graded as unanswered, with a message, not a crash."""
    master, release, submitted = paths
    nb = json.loads(submitted.read_text())
    nb["metadata"]["deep"] = "DEEP"
    submitted.write_text(json.dumps(nb).replace('"DEEP"', "[" * 3000 + "]" * 3000))
    found = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    assert found.replaced and "nested too deeply" in found.messages[0]
    _taken_in(submitted)


def test_notebook_still_invalid_after_repairs_is_graded_as_blank(paths, monkeypatch):
    """If the repairs ever miss something nbformat rejects, the notebook is graded as unanswered, and said."""
    master, release, submitted = paths
    monkeypatch.setattr(intake, "_repair_cells", lambda nb: [])
    nb = json.loads(submitted.read_text())
    nb["cells"][0]["metadata"]["tags"] = 5
    submitted.write_text(json.dumps(nb))
    found = intake.inspect_notebook(submitted, release, intake.master_grade_ids(master))
    assert found.replaced and "not a valid notebook" in found.messages[0]
    _taken_in(submitted)


@pytest.mark.slow
def test_look_alike_cell_ids_are_graded_in_full(toy_course, submit):
    """Every cell id with a Cyrillic look-alike letter: graded with full marks and told why the ids changed."""
    from nndl.batch import coordinator as grade
    from toy import FULL, toy_notebook, toy_scores

    nb = json.loads(toy_notebook(toy_course))
    for cell in nb["cells"]:
        cell["id"] = cell["id"].replace("a", "\u0430") if "a" in cell["id"] else "\u0430" + cell["id"]
    submit(toy_course, "toy", "lookalike", "toy.ipynb", json.dumps(nb))
    results = grade.autograde(toy_course, "toy")
    assert [r.graded for r in results] == [True], [r.error for r in results]
    assert toy_scores(toy_course) == {"lookalike": FULL}
    assert any("ids that the notebook format does not accept ('\\u0430" in m for m in results[0].messages)
    graded = nbformat.read(str(toy_course / "autograded" / "lookalike" / "toy" / "toy.ipynb"), as_version=4)
    nbformat.validate(graded)
