"""Step 5 of DESIGN.md: turn hidden-grader verdicts into nbgrader grade-cell outputs.

nbgrader scores an autograded cell from its outputs (`nbgrader.utils.
determine_grade`): an error output earns 0, an ``execute_result`` holding a
number earns that many points, anything else full marks. So the kit replaces
each grade cell's outputs with what its hidden tests decided, and nbgrader's
own `SaveAutoGrades` records the score; formgrader, feedback and
`nbgrader export` then work unchanged. The maximum comes from the master,
through nbgrader's gradebook, never from the submission.
"""

from nbformat.v4 import new_output

from nbgrader import utils

PASS = "\N{CHECK MARK}"
FAIL = "\N{BALLOT X}"


def autograded_cells(nb):
    """The notebook's autograded grade cells (code, graded, not an answer)."""
    return [cell for cell in nb.cells
            if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)]


def record_verdict(nb, verdict):
    """Write a verdict into the notebook: run problems under their cells, outcomes in the grade cells.

    Returns:
        ``{grade_id: fraction}`` for the cells scored, for logging.
    """
    annotate_problems(nb, verdict.problems)
    notices = list(nb.metadata.get("nndl", {}).get("intake", [])) + [p.message for p in verdict.problems]
    return write_verdicts(nb, verdict, notices)


def write_verdicts(nb, report, notices=()):
    """Replace every autograded cell's outputs with its hidden tests' verdict.

    Args:
        nb: the executed notebook.
        report: a `nndl.contracts.Verdict` (its outcomes).
        notices: sentences about the whole submission (intake and run
            problems); shown in every cell that lost points, so that a student
            reading any one of them learns why.

    Returns:
        ``{grade_id: fraction}`` for the cells scored, for logging.
    """
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
                text = outcome.test.rsplit("::", 1)[-1].removeprefix("test_").replace("_", " ")
                lines.append(f"{mark} {text}" + ("" if outcome.passed else f": {outcome.message}"))
        if fraction < 1:
            lines.extend(f"Note: {notice}" for notice in notices)
        fractions[grade_id] = fraction
        summary = "\n".join(lines) + "\n"
        cell.outputs = [new_output("stream", name="stdout",
                                   text=f"Hidden tests: {fraction * points:g} of {points:g} points\n{summary}")]
        if fraction <= 0:
            cell.outputs.append(new_output("error", ename="HiddenTestsFailed",
                                           evalue=f"0 of {points:g} points",
                                           traceback=[f"HiddenTestsFailed: 0 of {points:g} points"]))
        elif fraction < 1:
            cell.outputs.append(new_output("execute_result", data={"text/plain": repr(round(fraction * points, 6))},
                                           execution_count=cell.get("execution_count")))
    return fractions


def annotate_problems(nb, problems):
    """Show each run problem as an error output under the cell it happened in."""
    for problem in problems:
        if 0 <= problem.index < len(nb.cells):
            cell = nb.cells[problem.index]
            if cell.cell_type == "code" and not (utils.is_grade(cell) and not utils.is_solution(cell)):
                cell.outputs.append(new_output("stream", name="stderr", text=f"[autograder] {problem.message}\n"))
