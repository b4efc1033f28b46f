"""`nndl autograde`: grade collected submissions into nbgrader's gradebook.

For each submission: intake (`autograder.intake`), then nbgrader's own
autograde with the kit's step in its pipeline (``nbgrader_config.py``). One
submission failing never stops the batch; its reason is reported, and grades
already recorded for others stay.
"""

import concurrent.futures
import dataclasses
import multiprocessing
import pathlib
import shutil
import time

from autograder import assignments, build, course, intake, sandbox, verdicts


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
              progress=None, allow_unsandboxed=False, workers=1, regrade=False):
    """Grade one or all students' submissions of an assignment.

    Every verdict is kept in ``.nndl/verdicts/<assignment>/`` of the course, so
    a batch stopped at any moment and started again runs only what it had not
    finished; the rest is replayed into the gradebook as it was.

    Args:
        root: the course directory.
        assignment: the assignment's name.
        student: one student's id; everyone who submitted when None.
        config_overrides: nbgrader config to merge over the course's.
        progress: called with each `SubmissionResult` as it finishes.
        allow_unsandboxed: grade even where the bubblewrap sandbox cannot
            start (a warning goes to every result's messages).
        workers: submissions run at once, each in its own worker process;
            this process alone writes the gradebook.
        regrade: forget stored verdicts and run every submission again.

    Returns:
        The list of `SubmissionResult`, one per student, in student order.

    Raises:
        CourseError: unknown assignment or student, or no submissions.
    """
    root = pathlib.Path(root).resolve()
    warning = sandbox_warning(allow_unsandboxed)
    store = root / ".nndl" / "verdicts" / str(assignment)
    if regrade:
        shutil.rmtree(store, ignore_errors=True)
    overrides = dict(config_overrides or {})
    overrides["GradeInSandbox"] = {"verdict_store": str(store), **overrides.get("GradeInSandbox", {})}
    if warning:
        overrides["GradeInSandbox"]["allow_unsandboxed"] = True
    config = course.load_config(root, overrides)
    masters = course.master_notebooks(root, assignment, config)
    try:
        assignments.settings_for(assignment, config.GradeInSandbox.get("graders_root", assignments.GRADERS_ROOT))
    except assignments.UnknownAssignment as error:
        raise course.CourseError(str(error)) from None
    api = course.nbgrader_api(config)
    with course.working_directory(root):
        ensure_registered(root, api, assignment, overrides)
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
    started = {sid: time.monotonic() for sid in students}
    intakes = {sid: _intake(api, assignment, sid, masters, warning) for sid in students}

    def record(sid):
        messages, error = intakes[sid]
        if error:
            outcome = {"success": False, "error": error}
        else:
            with course.working_directory(root):
                outcome = api.autograde(assignment, sid, force=True, create=True)
        result = SubmissionResult(sid, outcome["success"], time.monotonic() - started[sid], messages,
                                  "" if outcome["success"] else _reason(outcome))
        if progress is not None:
            progress(result)
        return result

    runnable = [sid for sid in students if not intakes[sid][1]]
    if workers <= 1 or len(runnable) <= 1:
        return [record(sid) for sid in students]
    results = {sid: record(sid) for sid in students if intakes[sid][1]}
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        jobs = {pool.submit(compute_verdicts, str(root), overrides, assignment, sid): sid for sid in runnable}
        for job in concurrent.futures.as_completed(jobs):
            sid = jobs[job]
            try:
                job.result()
            except Exception as error:  # the worker died or broke: grade it here instead
                intakes[sid][0].append(f"A grading worker failed on this submission ({type(error).__name__}); "
                                       "it was graded again by the coordinator.")
            results[sid] = record(sid)
    return [results[sid] for sid in students]


def _intake(api, assignment, sid, masters, warning):
    """Intake of one student's folder: ``(messages, error or None)``."""
    messages = [warning] if warning else []
    folder = pathlib.Path(api.coursedir.format_path(api.coursedir.submitted_directory, sid, assignment))
    release_dir = pathlib.Path(api.coursedir.format_path(api.coursedir.release_directory, ".", assignment))
    try:
        if folder.is_dir():
            messages += intake.remove_links(folder)
        for master in masters:
            submitted = folder / master.name
            if submitted.exists() or submitted.is_symlink():
                found = intake.inspect_notebook(submitted, release_dir / master.name,
                                                intake.master_grade_ids(master))
                messages += found.messages
            else:
                messages.append(f"{master.name} was not handed in; it earns 0.")
    except OSError as error:
        return messages, f"intake could not read the submission: {error}"
    return messages, None


def compute_verdicts(root, overrides, assignment, student):
    """In a worker: sanitise a student's notebooks as nbgrader does and store their verdicts.

    Reads the gradebook (the master's cells) but never writes it: the
    coordinator records the verdicts afterwards by replaying them.
    """
    import tempfile

    import nbformat
    from nbgrader.converters import Autograde

    from autograder.preprocessors import GradeInSandbox

    config = course.load_config(root, overrides)
    api = course.nbgrader_api(config)
    coursedir = api.coursedir
    folder = pathlib.Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
    source = pathlib.Path(coursedir.format_path(coursedir.source_directory, ".", assignment))
    step = GradeInSandbox(config=config)
    settings = assignments.settings_for(assignment, step.graders_root)
    store = verdicts.VerdictStore(step.verdict_store)
    with tempfile.TemporaryDirectory(prefix="nndl-worker-") as workdir:
        # What nbgrader's autograde puts beside the notebook: the submission, then the master's files.
        for src in (folder, source):
            for path in src.rglob("*"):
                if path.is_file() and not path.is_symlink() and path.suffix != ".ipynb":
                    target = pathlib.Path(workdir) / path.relative_to(src)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
        for notebook in sorted(folder.glob("*.ipynb")):
            nb = nbformat.read(str(notebook), as_version=4)
            resources = {"nbgrader": {"notebook": notebook.stem, "assignment": assignment,
                                      "student": student, "db_url": coursedir.db_url},
                         "metadata": {"path": workdir}}
            for preprocessor in Autograde(coursedir=coursedir, config=config).sanitize_preprocessors:
                nb, resources = preprocessor(config=config).preprocess(nb, resources)
            key = verdicts.notebook_key(nb, assignment, student, settings.grader_dir)
            if store.get(key) is None:
                store.put(key, step.compute_verdict(nb, resources, settings))


def _reason(outcome):
    """The line of nbgrader's log that says why a submission failed."""
    text = (outcome.get("log") or "") + "\n" + (outcome.get("error") or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for marker in ("GraderSetupError", "Error", "error"):
        for line in reversed(lines):
            if marker in line:
                return line[:500]
    return lines[-1][:500] if lines else "unknown error"
