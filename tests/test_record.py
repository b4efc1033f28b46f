"""Recording verdicts into grade cells, with every message capped (nndl.record.cells, nndl.record.caps)."""

import json

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nndl.contracts import CellProblem, TestOutcome, Verdict
from nndl.record import caps, cells

# What recording writes besides messages, per grade cell: its score line, the score's output
# (an error or a number) and at most one short cut note; a generous bound for those.
CELL_OVERHEAD = 300


def graded_notebook(grade_cells=2):
    """A notebook of `grade_cells` pairs of an answer cell and a 2-point grade cell (``cell0``, ...)."""
    nb = new_notebook()
    for i in range(grade_cells):
        nb.cells.append(new_code_cell("def f():\n    return 1", metadata={"nbgrader": {
            "grade": False, "solution": True, "locked": False, "grade_id": f"answer{i}"}}))
        nb.cells.append(new_code_cell(f"# hidden tests of answer {i}", metadata={"nbgrader": {
            "grade": True, "solution": False, "locked": True, "grade_id": f"cell{i}", "points": 2}}))
    return nb


def verdict(outcomes, problems=(), log=""):
    return Verdict(outcomes=list(outcomes), problems=list(problems), outputs={}, stats={}, log=log)


def failed(message, cell="cell0", name="test_answer"):
    return TestOutcome(f"test_graders.py::{name}", cell, 1.0, False, message)


def written(nb):
    """All the text recording put into the notebook's outputs."""
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.append(output.get("evalue", ""))
            texts.extend(output.get("traceback", []))
            texts.extend(output.get("data", {}).values())
    return "".join(texts)


def cell_text(nb, grade_id):
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return "".join(o.get("text", "") for o in cell.outputs)


def record(nb, given):
    """Record `given` into `nb`; returns how many bytes the notebook's file grew by."""
    before = len(nbformat.writes(nb).encode())
    cells.record_verdict(nb, given)
    return len(nbformat.writes(nb).encode()) - before


def within_total(nb, growth):
    """Is what was written within the documented total, and the file's growth in proportion?"""
    grade_cells = len(cells.autograded_cells(nb))
    bound = caps.SUBMISSION_CHARS + (grade_cells + len(nb.cells)) * CELL_OVERHEAD
    # A character takes at most 6 bytes in the file (\uXXXX for a control character).
    return len(written(nb)) <= bound and growth <= 6 * bound


def test_honest_messages_are_written_as_they_are():
    """Do the messages of ordinary wrong answers reach the grade cell unchanged, word for word?"""
    array = repr(np.arange(25.0).reshape(5, 5) * 1.5)
    messages = ["add(2, 3): expected 5, received -1",
                f"scale(x, 3): expected\n{array}\nreceived\n{array[::-1]}",
                "greet(): expected 'café', received 'cafe'"]
    given = verdict([failed(m, name=f"test_{i}") for i, m in enumerate(messages)],
                    [CellProblem(0, "NameError: name 'np' is not defined")])
    assert caps.cap_verdict(given) == given
    nb = graded_notebook()
    cells.record_verdict(nb, given)
    text = cell_text(nb, "cell0")
    for message in messages + ["NameError: name 'np' is not defined"]:
        assert message in text
    assert "cut" not in written(nb)


def test_a_huge_message_is_cut_and_says_so():
    """76 MiB quoted in one message: a short message that says what was cut, in the verdict and the notebook."""
    huge = "x" * (76 * 2**20)
    given = verdict([failed(f"add(2, 3): expected 5, received {huge!r}")])
    stored = caps.cap_verdict(given)
    assert len(stored.to_json()) < caps.MESSAGE_CHARS + 1000
    note = f"[cut: a message of {len(given.outcomes[0].message):,} characters; the first"
    assert note in stored.outcomes[0].message
    # A verdict stored before the caps existed is capped when it is recorded.
    nb = graded_notebook()
    growth = record(nb, given)
    text = cell_text(nb, "cell0")
    assert "add(2, 3): expected 5, received 'xxxx" in text and note in text
    assert within_total(nb, growth) and len(text) < caps.MESSAGE_CHARS + CELL_OVERHEAD


@pytest.mark.parametrize("message", ["0\n" * 10_000_000, "0\n" * 100], ids=["ten million lines", "100 lines"])
def test_a_message_of_many_lines_is_cut_to_a_few(message):
    """A message of many short lines (long or not) shows at most MESSAGE_LINES of them, and says so."""
    given = verdict([failed(message)])
    stored = caps.cap_verdict(given).outcomes[0].message
    assert caps.line_count(stored) <= caps.MESSAGE_LINES and "[cut: a message of " in stored
    nb = graded_notebook()
    growth = record(nb, given)
    text = cell_text(nb, "cell0")
    assert caps.line_count(text) <= caps.MESSAGE_LINES + 5
    assert within_total(nb, growth)


def test_many_tests_cannot_add_up_past_the_total():
    """10,000 tests each quoting 1 MiB, over 50 cells: the whole stays within SUBMISSION_CHARS, scores kept."""
    quoting = "received " + "y" * 2**20  # one string, quoted by every test
    outcomes = [failed(quoting, cell=f"cell{i % 50}", name=f"test_{i}") for i in range(10_000)]
    outcomes.append(TestOutcome("test_graders.py::test_passes", "cell7", 3.0, True, ""))
    given = verdict(outcomes)
    stored = caps.cap_verdict(given)
    assert sum(len(o.message) for o in stored.outcomes) <= caps.SUBMISSION_CHARS + 10_000 * len(caps.Budget.CUT)
    assert [(o.grade_cell, o.weight, o.passed) for o in stored.outcomes] == \
        [(o.grade_cell, o.weight, o.passed) for o in outcomes]
    nb = graded_notebook(50)
    growth = record(nb, given)
    fractions = {f"cell{i}": given.cell_fraction(f"cell{i}") for i in range(50)}
    assert cells.record_verdict(graded_notebook(50), given) == fractions
    assert fractions["cell7"] == 3 / (3 + 200)
    assert within_total(nb, growth)
    assert f"reached their limit of {caps.SUBMISSION_CHARS:,} characters" in written(nb)
    # Every cell still shows its score, and nbgrader still reads each one's from its outputs.
    for i in range(50):
        assert cell_text(nb, f"cell{i}").startswith("Hidden tests: ")


def test_one_cell_of_many_tests_is_cut_to_its_cap():
    """Many small failures in one cell: its report keeps CELL_LINES lines, counts the rest, and keeps the notes."""
    given = verdict([failed(f"received {i}", name=f"test_{i}") for i in range(5000)])
    nb = graded_notebook()
    nb.metadata["nndl"] = {"intake": ["Cell 3 had the same id as an earlier cell; it was given a new one."]}
    cells.record_verdict(nb, given)
    text = cell_text(nb, "cell0")
    assert caps.line_count(text) <= caps.CELL_LINES + 2 and len(text) <= caps.CELL_CHARS + CELL_OVERHEAD
    assert "more lines of this cell's report" in text
    assert "Note: Cell 3 had the same id as an earlier cell; it was given a new one." in text


def test_run_problems_and_intake_notes_are_capped():
    """A huge run problem and many huge intake notes: capped under the cell and in every note."""
    nb = graded_notebook(3)
    nb.metadata["nndl"] = {"intake": ["z" * 10_000] * 1000}
    problem = "ValueError: " + "q" * 50_000_000
    given = verdict([failed("wrong", cell=f"cell{i}") for i in range(3)],
                    [CellProblem(0, problem), CellProblem(2, "w" * 2**20)])
    assert within_total(nb, record(nb, given))
    under = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert under.startswith("[autograder] ValueError: qqq")
    assert f"[cut: a message of {len(problem):,} characters" in under


@pytest.mark.parametrize("forged", ["a sentence", {"intake": 5}, 7, None])
def test_intake_notes_of_any_shape_are_shown_as_text(forged):
    """Under nbgrader alone the intake key is the file's: a malformed one is shown, not a crash."""
    nb = graded_notebook()
    nb.metadata["nndl"] = {"intake": forged}
    cells.record_verdict(nb, verdict([failed("wrong")]))
    assert "Hidden tests: 0 of 2 points" in cell_text(nb, "cell0")


def test_lone_surrogates_can_still_be_written():
    """A grader printing a student's string as is may quote a lone surrogate: the notebook is still written."""
    nb = graded_notebook()
    cells.record_verdict(nb, verdict([failed("received '\ud800'")]))
    again = nbformat.reads(nbformat.writes(nb).encode("utf-8").decode("utf-8"), as_version=4)
    assert "received '\\ud800'" in cell_text(again, "cell0")


def test_test_names_are_one_short_line():
    """A test name of a million characters over two lines is shown on one line of at most TEST_NAME_CHARS."""
    name = "test_" + "n" * 1_000_000 + "\nsecond line"
    nb = graded_notebook()
    cells.record_verdict(nb, verdict([failed("wrong", name=name)]))
    line = cell_text(nb, "cell0").splitlines()[1]
    assert line.startswith(f"{cells.FAIL} nnnn") and line.endswith(": wrong")
    assert len(line) <= caps.TEST_NAME_CHARS + 20 and "second line" not in line
    assert "\n" not in caps.cap_verdict(verdict([failed("x", name=name)])).outcomes[0].test


def test_the_log_keeps_its_end():
    """pytest's log kept with a verdict: its last LOG_LINES lines within LOG_CHARS, the summary last."""
    log = "".join(f"line {i}\n" for i in range(1_000_000)) + "=== 3 failed in 1.0s ==="
    kept = caps.cap_verdict(verdict([], log=log)).log
    assert len(kept) <= caps.LOG_CHARS and caps.line_count(kept) <= caps.LOG_LINES
    assert kept.endswith("=== 3 failed in 1.0s ===") and kept.startswith("[cut: the first ")


@pytest.mark.parametrize("text", ["", "short", "x" * 10**6, "a\n" * 10**5, "\r" * 5000, "é\ud800" * 3000,
                                  "line\n" * 24 + "last"])
def test_capping_twice_changes_nothing(text):
    """A capped text is within its caps, so the second place that caps it leaves it as it is."""
    once = caps.cap_text(text)
    assert len(once) <= caps.MESSAGE_CHARS and caps.line_count(once) <= caps.MESSAGE_LINES
    assert caps.cap_text(once) == once
    given = verdict([failed(text)], [CellProblem(0, text)], log=text)
    assert caps.cap_verdict(caps.cap_verdict(given)) == caps.cap_verdict(given)
    json.dumps(caps.cap_verdict(given).to_dict(), ensure_ascii=False).encode("utf-8")


@pytest.mark.slow
def test_a_huge_answer_gives_a_capped_feedback(toy_course, submit):
    """An answer returning 50 million characters, quoted by the toy graders: a small notebook that says so."""
    from nndl.batch import coordinator as grade
    from toy import toy_notebook, toy_scores

    submitted = submit(toy_course, "toy", "huge", "toy.ipynb",
                       toy_notebook(toy_course, add_answer='def add(a, b):\n    return "x" * 50_000_000'))
    results = grade.autograde(toy_course, "toy")
    assert [r.graded for r in results] == [True], [r.error for r in results]
    assert toy_scores(toy_course) == {"huge": {"add": 0.0, "scale": 3.0}}
    autograded = toy_course / "autograded" / "huge" / "toy" / "toy.ipynb"
    nb = nbformat.read(str(autograded), as_version=4)
    bound = caps.SUBMISSION_CHARS + len(nb.cells) * CELL_OVERHEAD
    assert autograded.stat().st_size <= submitted.stat().st_size + 6 * bound
    text = cell_text(nb, "add")
    assert "add(2, 3): expected 5, received 'xxxx" in text
    assert "[cut: a message of " in text and " characters; the first " in text
    for path in (toy_course / ".nndl" / "verdicts" / "toy").rglob("*.json"):
        assert path.stat().st_size <= 6 * bound
