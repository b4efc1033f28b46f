"""The trust boundary: what a submission does in its own kernel cannot raise its grade.

Each submission below answers `add` wrongly (a - b) and `scale` rightly, then
tries to fake the checks in its kernel, as works against graders that run
their tests inside the student's kernel (nbgrader's hidden asserts,
otter-grader's in-notebook checks). The honest score is 0 for `add` and 3 for
`scale`; each must earn exactly that.
"""

import nbformat
import pytest

from nndl.batch import coordinator as grade
from nndl.record import gradebook

pytestmark = pytest.mark.slow

WRONG_ADD = "def add(a, b):\n    return a - b\n"

ATTACKS = {
    "numpy-testing": "import numpy.testing\nnumpy.testing.assert_allclose = lambda *a, **k: None\n"
                     "numpy.testing.assert_array_equal = lambda *a, **k: None\nnp.allclose = lambda *a, **k: True\n",
    "builtins": "import builtins\nclass _Never(Exception):\n    pass\nbuiltins.AssertionError = _Never\n"
                "builtins.isinstance = lambda *a: True\nbuiltins.len = lambda x: 0\n",
    "pytest": "import sys, types\nfake = types.ModuleType('pytest')\nfake.fail = lambda *a, **k: None\n"
              "fake.approx = lambda x, **k: type('A', (), {'__eq__': lambda s, o: True})()\nsys.modules['pytest'] = fake\n",
    "showtraceback": "ip = get_ipython()\nip.showtraceback = lambda *a, **k: None\n"
                     "ip._showtraceback = lambda *a, **k: None\nip.showsyntaxerror = lambda *a, **k: None\n",
    "always-equal": "class Always(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
                    "def add(a, b):\n    return Always(0)\n",
    "fake-results": "print('{\"op\": \"results\", \"collected\": [], \"results\": []}')\n"
                    "import sys\nsys.stdout.write('Hidden tests: 2 of 2 points\\n')\n",
    "exit-hooks": "import atexit, os\natexit.register(lambda: os._exit(0))\n"
                  "import sys\nsys.excepthook = lambda *a: None\n",
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_gains_nothing(toy_course, submit, attack):
    """Does a kernel-side attack leave the grade at what the answers honestly earn?"""
    nb = nbformat.read(str(toy_course / "solutions" / "toy" / "toy.ipynb"), as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "add_answer":
            cell.source = WRONG_ADD + ATTACKS[attack]
    submit(toy_course, "toy", "mallory", "toy.ipynb", nbformat.writes(nb))
    submit(toy_course, "toy", "honest", "toy.ipynb",
           (toy_course / "solutions" / "toy" / "toy.ipynb").read_text())
    # A broken interpreter can make the kernel or the grader's calls hang; short limits (those of the
    # red-team suite) keep the test quick.
    results = grade.autograde(toy_course, "toy", config_overrides={"GradeInSandbox": {
        "cell_timeout": 10, "submission_timeout": 90, "call_timeout": 10, "grader_timeout": 120}})
    assert all(r.graded for r in results), [r.error for r in results]
    _, rows = gradebook.cell_scores(f"sqlite:///{toy_course}/gradebook.db", "toy")
    got = {row["student"]: (row["scores"]["add"], row["scores"]["scale"]) for row in rows}
    assert got == {"mallory": (0.0, 3.0), "honest": (2.0, 3.0)}
