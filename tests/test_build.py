"""`nndl build`: release/ and solutions/ are generated, current, and leak nothing."""

import json
import re

import pytest

from nndl import build

from kit import KIT, code_lines
ASSIGNMENTS = build.source_assignments(KIT)


def files_under(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def fresh_build(tmp_path_factory):
    """release/ and solutions/ built from source/ into a scratch folder (its own gradebook)."""
    out = tmp_path_factory.mktemp("build")
    build.build(KIT, out=out, db_url=f"sqlite:///{out}/gradebook.db")
    return out


def test_there_is_something_to_build():
    """Does source/ hold the course's assignments (so the checks below check something)?"""
    assert "a01_perceptrons_xor" in ASSIGNMENTS


@pytest.mark.parametrize("folder", ["release", "solutions"])
def test_committed_folders_match_a_fresh_build(fresh_build, folder):
    """Are the committed release/ and solutions/ exactly what `nndl build` makes now?"""
    committed = files_under(KIT / folder)
    fresh = files_under(fresh_build / folder)
    assert sorted(map(str, committed)) == sorted(map(str, fresh)), f"run `nndl build`: {folder}/ has other files"
    stale = [str(p) for p in fresh if committed[p] != fresh[p]]
    assert not stale, f"{folder}/ is stale; run `nndl build` and commit: {stale}"


def _solution_lines(assignment):
    """Substantial lines of the masters' answers that the public part does not also show."""
    secret, public = set(), set()
    for master in (KIT / "source" / assignment).glob("*.ipynb"):
        for cell in json.loads(master.read_text())["cells"]:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            meta = cell.get("metadata", {}).get("nbgrader", {})
            inside = cell["cell_type"] == "markdown" and meta.get("solution", False)
            for line in source.splitlines():
                if "BEGIN SOLUTION" in line:
                    inside = True
                elif "END SOLUTION" in line:
                    inside = False
                elif len(line.strip()) > 12 and not line.strip().startswith("#"):
                    (secret if inside else public).add(line.strip())
            if cell["cell_type"] == "markdown" and meta.get("solution"):
                inside = False
    # An instruction may quote a line the answer also uses (a call signature, say):
    # only what appears nowhere but inside an answer is secret.
    return {line for line in secret if not any(line in p for p in public)}


def find_leaks(folder, assignment):
    """What in `folder` students must not see: markers, grader paths and code, answers."""
    text = "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())
    found = [f"marker {m!r}" for m in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS",
                                        "END HIDDEN TESTS", "autograder", "reference.py", "grade_cell(",
                                        "student.call", "student.value") if m in text]
    found += [f"answer line {line!r}" for line in _solution_lines(assignment) if line in text]
    for py in (KIT / "autograder" / assignment).glob("*.py"):
        for line in code_lines(py):
            if len(line) > 30 and not line.startswith(("import", "from", "def ", "@", "assert")) and line in text:
                found.append(f"line of {py.name} {line!r}")
    extra = {p.name for p in folder.rglob("*") if p.is_file()} - \
        {p.name for p in (KIT / "source" / assignment).rglob("*") if p.is_file()}
    found += [f"file {name!r} not in source/" for name in sorted(extra)]
    return found


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_leaks_nothing(assignment):
    """Does the student version hold no solution, hidden test, grader path or reference code?"""
    assert find_leaks(KIT / "release" / assignment, assignment) == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_leak_check_sees_the_answers_in_solutions(assignment):
    """Would the leak check notice answers? Run on solutions/, it must find them."""
    assert any(leak.startswith("answer line") for leak in find_leaks(KIT / "solutions" / assignment, assignment))


def test_student_side_package_holds_no_grader():
    """Does the package students may install (nndl_datasets) stay free of graders and answers?"""
    text = "\n".join(p.read_text() for p in (KIT / "nndl_datasets").rglob("*.py"))
    assert not re.search(r"autograder|grade_cell|SOLUTION|reference", text)
