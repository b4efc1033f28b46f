"""Read grades back out of nbgrader's gradebook, for people and for tests."""

from nbgrader.api import Gradebook, MissingEntry


def cell_scores(db_url, assignment):
    """Scores per student and grade cell, from nbgrader's gradebook.

    Returns:
        ``(grade_ids, rows)``: the grade ids in notebook order, and for each
        student a dict ``{"student", "total", "max", "needs_manual",
        "scores": {grade_id: score or None}}``.
    """
    with Gradebook(db_url) as gb:
        try:
            record = gb.find_assignment(assignment)
        except MissingEntry:
            return [], []
        grade_ids = [cell.name for nb in record.notebooks for cell in nb.grade_cells]
        rows = []
        for submission in sorted(gb.assignment_submissions(assignment), key=lambda s: s.student_id):
            scores = {}
            needs_manual = False
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    scores[grade.name] = grade.score if (grade.auto_score is not None
                                                         or grade.manual_score is not None) else None
                    needs_manual = needs_manual or grade.needs_manual_grade
            rows.append({"student": submission.student_id, "total": submission.score,
                         "max": submission.max_score, "needs_manual": needs_manual, "scores": scores})
        return grade_ids, rows


def format_table(grade_ids, rows, max_points=None, notes=None):
    """A plain-text table of `cell_scores`, one row per student."""
    notes = notes or {}
    headers = ["student"] + grade_ids + ["total"] + (["note"] if notes else [])
    table = [headers]
    if max_points:
        table.append(["(max)"] + [f"{max_points.get(g, 0):g}" for g in grade_ids]
                     + [f"{sum(max_points.values()):g}"] + ([""] if notes else []))
    for row in rows:
        cells = [row["student"]]
        for grade_id in grade_ids:
            score = row["scores"].get(grade_id)
            cells.append("manual" if score is None else f"{score:g}")
        cells.append(f"{row['total']:g}/{row['max']:g}")
        if notes:
            cells.append(notes.get(row["student"], ""))
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(table):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def max_points(db_url, assignment):
    """``{grade_id: max points}`` from the master, as nbgrader recorded it."""
    with Gradebook(db_url) as gb:
        record = gb.find_assignment(assignment)
        return {cell.name: cell.max_score for nb in record.notebooks for cell in nb.grade_cells}


def drop_ungraded_submission(db_url, assignment, student):
    """Remove a student's submission row if it holds no score at all; True if it did.

    nbgrader creates the row before it grades, and keeps it when grading
    fails: a row of "manual" cells that looks graded. A row holding any score
    (an earlier grade, an instructor's manual grade) is kept.
    """
    with Gradebook(db_url) as gb:
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            return False
        grades = [grade for notebook in submission.notebooks for grade in notebook.grades]
        if any(g.auto_score is not None or g.manual_score is not None for g in grades):
            return False
        gb.remove_submission(assignment, student)
        return True
