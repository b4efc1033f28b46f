"""`nndl autograde`: grade collected submissions into nbgrader's gradebook.

For each submission: intake (`autograder.intake`), then nbgrader's own
autograde with the kit's step in its pipeline (``nbgrader_config.py``). One
submission failing never stops the batch; its reason is reported, and grades
already recorded for others stay.
"""

import dataclasses
import pathlib
import time

from autograder import assignments, build, course, intake, sandbox


@dataclasses.dataclass
class SubmissionResult:
    """How grading one student's submission went."""

    student: str
    graded: bool
    seconds: float
    messages: list
    error: str = ""


def submitted_students(api, assignment):
    """Students with a submission folder for this assignment, sorted."""
    submitted = pathlib.Path(api.coursedir.format_path(api.coursedir.submitted_directory, "*", assignment))
    return sorted(p.parent.name for p in submitted.parent.parent.glob(f"*/{assignment}") if p.is_dir())


def ensure_registered(root, api, assignment, config_overrides=None):
    """Make sure nbgrader's gradebook knows the assignment's master."""
    from nbgrader.api import MissingEntry

    with api.gradebook as gb:
        try:
            gb.find_assignment(assignment)
            return False
        except MissingEntry:
            pass
    build.build(root, assignment=assignment, db_url=api.coursedir.db_url)
    return True


def sandbox_warning(allow_unsandboxed):
    """None when the sandbox works; else the warning to print, if grading without it was allowed.

    Raises:
        CourseError: the sandbox cannot start and grading without it was not allowed.
    """
    problem = sandbox.bubblewrap_problem()
    if problem is None:
        return None
    if not allow_unsandboxed:
        raise course.CourseError(
            f"The sandbox cannot start on this machine: {problem}. Without it, student code can read "
            "the hidden graders and other students' work. Fix the sandbox, or pass "
            "--unsafe-no-sandbox to grade anyway (only for notebooks you trust).")
    return (f"WARNING: grading WITHOUT the sandbox ({problem}). Student code runs with this machine's "
            "files in reach: hidden graders, the gradebook and other students' submissions.")


def autograde(root=course.KIT_ROOT, assignment=None, *, student=None, config_overrides=None,
              progress=None, allow_unsandboxed=False):
    """Grade one or all students' submissions of an assignment.

    Args:
        root: the course directory.
        assignment: the assignment's name.
        student: one student's id; everyone who submitted when None.
        config_overrides: nbgrader config to merge over the course's.
        progress: called with each `SubmissionResult` as it finishes.
        allow_unsandboxed: grade even where the bubblewrap sandbox cannot
            start (a warning goes to every result's messages).

    Returns:
        The list of `SubmissionResult`, one per student.

    Raises:
        CourseError: unknown assignment or student, or no submissions.
    """
    root = pathlib.Path(root).resolve()
    warning = sandbox_warning(allow_unsandboxed)
    if warning:
        config_overrides = {**(config_overrides or {}),
                            "GradeInSandbox": {**(config_overrides or {}).get("GradeInSandbox", {}),
                                               "allow_unsandboxed": True}}
    config = course.load_config(root, config_overrides)
    masters = course.master_notebooks(root, assignment, config)
    try:
        assignments.settings_for(assignment, config.GradeInSandbox.get("graders_root", assignments.GRADERS_ROOT))
    except assignments.UnknownAssignment as error:
        raise course.CourseError(str(error)) from None
    api = course.nbgrader_api(config)
    with course.working_directory(root):
        ensure_registered(root, api, assignment, config_overrides)
    students = submitted_students(api, assignment)
    if student is not None:
        if student not in students:
            raise course.CourseError(
                f"No submission of {assignment!r} by student {student!r} under "
                f"{api.coursedir.submitted_directory}/. Students who submitted: {', '.join(students) or 'none'}. "
                "Collect first (nbgrader collect), or check the id.")
        students = [student]
    if not students:
        raise course.CourseError(
            f"No submissions of {assignment!r} under {root / api.coursedir.submitted_directory}. "
            f"Collect them first: nbgrader collect {assignment}.")
    release_dir = pathlib.Path(api.coursedir.format_path(api.coursedir.release_directory, ".", assignment))
    grade_ids = {m.stem: intake.master_grade_ids(m) for m in masters}
    results = []
    for sid in students:
        started = time.monotonic()
        messages = [warning] if warning else []
        folder = pathlib.Path(api.coursedir.format_path(api.coursedir.submitted_directory, sid, assignment))
        try:
            if folder.is_dir():
                messages += intake.remove_links(folder)
            for master in masters:
                submitted = folder / master.name
                if submitted.exists() or submitted.is_symlink():
                    found = intake.inspect_notebook(submitted, release_dir / master.name, grade_ids[master.stem])
                    messages += found.messages
                else:
                    messages.append(f"{master.name} was not handed in; it earns 0.")
        except OSError as error:
            outcome = {"success": False, "error": f"intake could not read the submission: {error}"}
        else:
            with course.working_directory(root):
                outcome = api.autograde(assignment, sid, force=True, create=True)
        result = SubmissionResult(sid, outcome["success"], time.monotonic() - started, messages,
                                  "" if outcome["success"] else _reason(outcome))
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def _reason(outcome):
    """The line of nbgrader's log that says why a submission failed."""
    text = (outcome.get("log") or "") + "\n" + (outcome.get("error") or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for marker in ("GraderSetupError", "Error", "error"):
        for line in reversed(lines):
            if marker in line:
                return line[:500]
    return lines[-1][:500] if lines else "unknown error"
