"""Step 5 of DESIGN.md: turn hidden-grader verdicts into nbgrader grade-cell outputs.

nbgrader scores an autograded cell from its outputs (`nbgrader.utils.
determine_grade`): an error output earns 0, an ``execute_result`` holding a
number earns that many points, anything else full marks. So the kit replaces
each grade cell's outputs with what its hidden tests decided, and nbgrader's
own `SaveAutoGrades` records the score; formgrader, feedback and
`nbgrader export` then work unchanged. The maximum comes from the master,
through nbgrader's gradebook, never from the submission.

Every text written here is capped (`nndl.record.caps`): each message, each
grade cell's report, and all of a submission's together, whatever verdict it
comes from, so a grader quoting a huge student value cannot fill the
notebook, the gradebook or the feedback.
"""

from nbformat.v4 import new_output

from nbgrader import utils

from nndl.record import caps

PASS = "\N{CHECK MARK}"
FAIL = "\N{BALLOT X}"


def autograded_cells(nb):
    """The notebook's autograded grade cells (code, graded, not an answer)."""
    return [cell for cell in nb.cells
            if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)]


def record_verdict(nb, verdict):
    """Write a verdict into the notebook: run problems under their cells, outcomes in the grade cells.

    The verdict is capped first (`caps.cap_verdict`), and what is written
    shares one `caps.SUBMISSION_CHARS` budget: the grade cells' reports
    first, then the notes under the cells where run problems happened.

    Returns:
        ``{grade_id: fraction}`` for the cells scored, for logging.
    """
    verdict = caps.cap_verdict(verdict)
    budget = caps.Budget()
    notices = intake_notices(nb) + [p.message for p in verdict.problems]
    fractions = write_verdicts(nb, verdict, notices, budget=budget)
    annotate_problems(nb, verdict.problems, budget=budget)
    return fractions


def intake_notices(nb):
    """The sentences intake left in the notebook's metadata (``metadata.nndl.intake``), as text.

    Only intake writes that key in the kit's pipeline; under ``nbgrader
    autograde`` alone it is whatever the file says, so anything but a list of
    text is shown as one text, and each is capped.
    """
    kit = nb.metadata.get("nndl")
    found = kit.get("intake", []) if isinstance(kit, dict) else []
    if not isinstance(found, list):
        found = [found]
    return [caps.cap_text(notice) for notice in found[:caps.CELL_LINES]]


def write_verdicts(nb, report, notices=(), budget=None):
    """Replace every autograded cell's outputs with its hidden tests' verdict.

    Args:
        nb: the executed notebook.
        report: a `nndl.contracts.Verdict` (its outcomes).
        notices: sentences about the whole submission (intake and run
            problems); shown in every cell that lost points, so that a student
            reading any one of them learns why.
        budget: the submission's `caps.Budget` (a fresh one if None). Each
            cell's report below its score is capped to `caps.CELL_CHARS` and
            `caps.CELL_LINES`, and to what is left of the budget; the score
            line and the score's output are always written.

    Returns:
        ``{grade_id: fraction}`` for the cells scored, for logging.
    """
    budget = budget if budget is not None else caps.Budget()
    notices = [caps.cap_text(notice) for notice in notices]
    fractions = {}
    for cell in autograded_cells(nb):
        grade_id = cell.metadata.nbgrader["grade_id"]
        points = float(cell.metadata.nbgrader.get("points", 0))
        fraction = report.cell_fraction(grade_id)
        if fraction is None:
            fraction = 0.0
            lines = [f"{FAIL} No hidden test scores this cell; ask your instructor."]
        else:
            lines = []
            for outcome in report.cell_outcomes(grade_id):
                mark = PASS if outcome.passed else FAIL
                name = caps.cap_text(outcome.test, caps.TEST_NAME_CHARS, 1)
                text = name.rsplit("::", 1)[-1].removeprefix("test_").replace("_", " ")
                lines.append(f"{mark} {text}" + ("" if outcome.passed else f": {caps.cap_text(outcome.message)}"))
        notes = [f"Note: {notice}" for notice in notices] if fraction < 1 else []
        fractions[grade_id] = fraction
        summary = _report(lines, notes, budget)
        cell.outputs = [new_output("stream", name="stdout",
                                   text=f"Hidden tests: {fraction * points:g} of {points:g} points\n{summary}\n")]
        if fraction <= 0:
            cell.outputs.append(new_output("error", ename="HiddenTestsFailed",
                                           evalue=f"0 of {points:g} points",
                                           traceback=[f"HiddenTestsFailed: 0 of {points:g} points"]))
        elif fraction < 1:
            cell.outputs.append(new_output("execute_result", data={"text/plain": repr(round(fraction * points, 6))},
                                           execution_count=cell.get("execution_count")))
    return fractions


def _report(test_lines, notes, budget):
    """A grade cell's report: its tests' lines, then the notes, within the cell's caps and the `budget`.

    The notes (why the whole submission lost points) keep up to half the
    cell's room even when its tests' lines would fill it.
    """
    if budget.left <= 0:
        return budget.note()
    chars = min(caps.CELL_CHARS, budget.left)
    noted = caps.cap_lines(notes, chars // 2, caps.CELL_LINES // 2, "notes") if notes else ""
    lines_left = caps.CELL_LINES - (caps.line_count(noted) if noted else 0)
    tested = caps.cap_lines(test_lines, chars - len(noted), lines_left, "lines of this cell's report")
    return budget.spend("\n".join(part for part in (tested, noted) if part))


def annotate_problems(nb, problems, budget=None):
    """Show each run problem as an error output under the cell it happened in, within the `budget`."""
    budget = budget if budget is not None else caps.Budget()
    for problem in problems:
        if 0 <= problem.index < len(nb.cells):
            cell = nb.cells[problem.index]
            if cell.cell_type == "code" and not (utils.is_grade(cell) and not utils.is_solution(cell)):
                message = caps.cap_message(problem.message, budget)
                cell.outputs.append(new_output("stream", name="stderr", text=f"[autograder] {message}\n"))
