"""Every assignment's hidden graders and its master agree on the grade cells."""

import ast

import nbformat
import pytest

from nndl import build, settings as assignments

from kit import KIT


def grader_cells(grader_dir):
    """The grade ids named by `@pytest.mark.grade_cell(...)` in a grader folder."""
    names = set()
    for path in grader_dir.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "grade_cell" and node.args):
                names.add(ast.literal_eval(node.args[0]))
    return names


def autograded_cells(assignment):
    ids = set()
    for master in (KIT / "source" / assignment).glob("*.ipynb"):
        for cell in nbformat.read(str(master), as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
                ids.add(meta["grade_id"])
    return ids


@pytest.mark.parametrize("assignment", build.source_assignments(KIT))
def test_each_autograded_cell_has_hidden_tests_and_no_test_is_orphaned(assignment):
    """Is every autograded cell scored by some hidden test, and does every test score a real cell?"""
    graders = grader_cells(assignments.grader_dir(KIT / "autograder", assignment))
    assert graders == autograded_cells(assignment)


def test_unknown_assignment_names_the_known_ones():
    """Does asking for an assignment with no graders say which ones exist?"""
    with pytest.raises(assignments.UnknownAssignment, match="a01_perceptrons_xor"):
        assignments.grader_dir(KIT / "autograder", "a99_nothing")
    with pytest.raises(assignments.UnknownAssignment):
        assignments.grader_dir(KIT / "autograder", "../tests")
