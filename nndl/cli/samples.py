"""Sample submissions of an assignment: for the demo, the tests and the benchmarks.

Made from the committed solutions and release: the solution (full marks), the
untouched release (nothing earned), the assignment's own flawed variants
(``autograder/<assignment>/samples.py`` of the course: solution cells replaced, with the
score each grade cell should earn) and broken files any assignment can
receive (not JSON, a deleted grade cell, a duplicated cell id, a kernel that
dies). Each sample says what it should earn, worked out from the graders,
not from a previous run.
"""

import copy
import dataclasses
import importlib.util
import json
import pathlib

import nbformat

from nbgrader import utils


@dataclasses.dataclass
class Sample:
    """One sample submission of one notebook."""

    student: str
    description: str
    content: str
    #: ``{grade_id: points}`` for every autograded cell; None when not predicted.
    expected: dict
    #: A phrase the student's feedback must contain (intake or run messages).
    message: str = ""


def autograded_points(nb):
    """``{grade_id: points}`` of a notebook's autograded grade cells."""
    return {c.metadata.nbgrader["grade_id"]: float(c.metadata.nbgrader["points"])
            for c in nb.cells
            if c.cell_type == "code" and utils.is_grade(c) and not utils.is_solution(c)}


def _write(nb):
    # Plain JSON: nbformat.writes would repair what some samples break on purpose (duplicate ids).
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def _cell_index(nb, grade_id):
    for index, cell in enumerate(nb.cells):
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return index
    raise KeyError(f"no cell with grade id {grade_id!r}")


def with_replaced_cells(nb, replace):
    """A copy of `nb` whose solution cells (by grade id) hold other code."""
    nb = copy.deepcopy(nb)
    for grade_id, source in replace.items():
        nb.cells[_cell_index(nb, grade_id)].source = source
    return nb


def assignment_samples_module(grader_dir):
    """An assignment's ``samples.py``, read from its grader folder (None when it has none).

    It holds `SAMPLES` (flawed submissions); it may name in `BROKEN_BASE` the
    flawed sample whose notebook the broken kinds are made from, instead of
    the solution (for an assignment whose solution is costly to run), and
    describe in `SUBMITTED` submissions graded with handed-in files.
    """
    path = pathlib.Path(grader_dir) / "samples.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"nndl_samples_{pathlib.Path(grader_dir).name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assignment_samples(root, assignment):
    """All samples of one assignment's first notebook, in a fixed order."""
    root = pathlib.Path(root)
    notebooks = sorted((root / "solutions" / assignment).glob("*.ipynb"))
    solution_path = notebooks[0]
    solution = nbformat.read(str(solution_path), as_version=4)
    release = nbformat.read(str(root / "release" / assignment / solution_path.name), as_version=4)
    full = autograded_points(solution)
    zero = {k: 0.0 for k in full}
    samples = [
        Sample("s01-solution", "the worked solution", _write(solution), dict(full)),
        Sample("s02-untouched-release", "the release handed back unanswered", _write(release), dict(zero)),
    ]
    module = assignment_samples_module(root / "autograder" / assignment)
    base, base_expected, base_name = solution, full, "the solution"
    for number, spec in enumerate(module.SAMPLES if module else [], start=3):
        expected = dict(full)
        expected.update({k: float(v) for k, v in spec["expected"].items()})
        nb = with_replaced_cells(solution, spec["replace"])
        samples.append(Sample(f"s{number:02d}-{spec['name'].replace('_', '-')}", spec["description"],
                              _write(nb), expected, spec.get("message", "")))
        if spec["name"] == getattr(module, "BROKEN_BASE", None):
            base, base_expected, base_name = nb, expected, f"the sample {spec['name']!r}"
    number = len(samples) + 1
    text = _write(base)
    samples.append(Sample(f"s{number:02d}-not-json", "a notebook cut off half way (not valid JSON)",
                          text[: len(text) // 2], dict(zero), "not valid JSON"))
    first_graded = next(i for i, c in enumerate(base.cells)
                        if c.metadata.get("nbgrader", {}).get("grade_id") in full)
    deleted = copy.deepcopy(base)
    gone = deleted.cells.pop(first_graded).metadata.nbgrader["grade_id"]
    samples.append(Sample(f"s{number + 1:02d}-deleted-grade-cell",
                          f"{base_name} with the visible-check cell {gone!r} deleted: restored, and graded on "
                          "the answers", _write(deleted), dict(base_expected), "was missing from the notebook"))
    duplicated = copy.deepcopy(base)
    duplicated.cells.insert(first_graded, copy.deepcopy(duplicated.cells[first_graded - 1]))
    duplicated.cells[first_graded]["metadata"] = {}
    samples.append(Sample(f"s{number + 2:02d}-duplicated-cell-id",
                          f"{base_name} with a cell pasted twice with the same cell id",
                          _write(duplicated), dict(base_expected), "same id as an earlier cell"))
    dying = copy.deepcopy(base)
    dying.cells.insert(first_graded, nbformat.v4.new_code_cell("import os\nos._exit(1)"))
    samples.append(Sample(f"s{number + 3:02d}-kernel-dies",
                          f"{base_name} with an extra cell that kills the kernel: skipped, the rest graded",
                          _write(dying), dict(base_expected), "made the kernel die"))
    return solution_path.name, samples


def write_submissions(course_root, assignment, samples, notebook_name, submitted="submitted"):
    """Write samples as nbgrader submissions: ``submitted/<student>/<assignment>/``."""
    for sample in samples:
        folder = pathlib.Path(course_root) / submitted / sample.student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        (folder / notebook_name).write_text(sample.content)
