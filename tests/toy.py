"""The toy course's submissions and scores, shared by the tests that grade it.

The toy assignment (tests/fixtures/toy_course) has two autograded cells, ``add``
(2 points) and ``scale`` (3 points, weights 2 and 1), and a manual one.
"""

import nbformat

from nndl.record import gradebook

WRONG_ADD = "def add(a, b):\n    return a - b"
# Flattening keeps the values of a 1-d input (weight 2 of 3) but loses a 2-d shape.
HALF_SCALE = "def scale(x, k):\n    return np.asarray(x).ravel() * k"
FULL = {"add": 2.0, "scale": 3.0}
NOTHING = {"add": 0.0, "scale": 0.0}

# A mixed batch: right, unanswered, partly wrong and broken files, and what each earns.
BATCH_EXPECTED = {
    "a-right": FULL,
    "b-release": NOTHING,
    "c-wrong-add": {"add": 0.0, "scale": 3.0},
    "d-not-json": NOTHING,
    "e-half-scale": {"add": 2.0, "scale": 2.0},
    "f-right": FULL,
}


def toy_notebook(course_root, extra_source=None, **replace):
    """The toy solution, some cells (by grade id) replaced, and an optional extra code cell at the end."""
    nb = nbformat.read(str(course_root / "solutions" / "toy" / "toy.ipynb"), as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in replace:
            cell.source = replace[grade_id]
    if extra_source:
        nb.cells.append(nbformat.v4.new_code_cell(extra_source))
    return nbformat.writes(nb)


def submit_batch(course_root, submit):
    """Submit the mixed batch of `BATCH_EXPECTED`."""
    submit(course_root, "toy", "a-right", "toy.ipynb", toy_notebook(course_root))
    submit(course_root, "toy", "b-release", "toy.ipynb", (course_root / "release/toy/toy.ipynb").read_text())
    submit(course_root, "toy", "c-wrong-add", "toy.ipynb", toy_notebook(course_root, add_answer=WRONG_ADD))
    submit(course_root, "toy", "d-not-json", "toy.ipynb", "{ this is not a notebook")
    submit(course_root, "toy", "e-half-scale", "toy.ipynb", toy_notebook(course_root, scale_answer=HALF_SCALE))
    submit(course_root, "toy", "f-right", "toy.ipynb", toy_notebook(course_root))
    return course_root


def toy_scores(course_root):
    """``{student: {grade_id: score}}`` of the autograded cells in the course's SQLite gradebook."""
    _, rows = gradebook.cell_scores(f"sqlite:///{course_root}/gradebook.db", "toy")
    return {row["student"]: {k: v for k, v in row["scores"].items() if k != "explain"} for row in rows}
