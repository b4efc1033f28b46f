"""`nndl autograde`: grade collected submissions into nbgrader's gradebook.

This process is the batch's coordinator. For each submission: intake
(`autograder.intake`); a job, unless its verdicts are stored already
(`autograder.jobs`), run by a pool of workers (`autograder.workers`: local
processes or a Ray cluster); then nbgrader's own autograde with the kit's
step in its pipeline (``nbgrader_config.py``), which replays the verdict and
records it. Only this process writes the gradebook. One submission failing
never stops the batch; its reason is reported, and grades already recorded
for others stay.
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import time

from autograder import assignments, build, course, intake, jobs, report, sandbox, verdicts
from autograder import workers as workers_module


@dataclasses.dataclass
class SubmissionResult:
    """How grading one student's submission went."""

    student: str
    graded: bool
    seconds: float  # on this submission: its worker's run (none when replayed) and its recording
    messages: list
    error: str = ""
    attempts: int = 0  # worker runs it took; 0 when its verdict was already stored
    worker: dict = dataclasses.field(default_factory=dict)  # where it ran, and the worker's peak memory
    prepare_seconds: float = 0.0  # the coordinator's intake and job preparation, before any worker


def submitted_students(api, assignment):
    """Students with a submission folder for this assignment, sorted.

    Args:
        api: an nbgrader API, or a course directory.
    """
    if not hasattr(api, "coursedir"):
        api = course.nbgrader_api(course.load_config(api))
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
              progress=None, allow_unsandboxed=False, workers=None, ray_address=None, regrade=False,
              retries=1, job_timeout=None, report_path=None):
    """Grade one or all students' submissions of an assignment.

    Each submission needing a run becomes a job (`autograder.jobs`) for a
    pool of workers (`autograder.workers`): local processes, or tasks on a Ray
    cluster. Workers return verdicts; this process alone stores them (in
    ``.nndl/verdicts/<assignment>/`` of the course) and records them in the
    gradebook through nbgrader's autograde, whose kit step replays them. So a
    batch stopped at any moment and started again runs only what it had not
    finished. A job whose worker fails, dies, hangs or is lost is tried
    `retries` more times, then its submission is recorded as could not be
    graded, with the reason; the rest of the batch goes on.

    Args:
        root: the course directory.
        assignment: the assignment's name.
        student: one student's id; everyone who submitted when None.
        config_overrides: nbgrader config to merge over the course's.
        progress: called with each `SubmissionResult` as it finishes.
        allow_unsandboxed: grade even where the bubblewrap sandbox cannot
            start (a warning goes to every result's messages).
        workers: local worker processes (ignored with `ray_address`); default:
            what this machine holds (`default_workers`).
        ray_address: run the jobs on this Ray cluster (``"auto"``: the one
            this machine belongs to) instead of local processes.
        regrade: forget stored verdicts and run every submission again.
        retries: further attempts for a job whose worker brought nothing back.
        job_timeout: seconds a worker may spend on one submission before it
            counts as hung; default: from the assignment's limits
            (`autograder.jobs.job_timeout`).
        report_path: where to write the run's JSON report; default
            ``.nndl/reports/<assignment>/<UTC time>.json`` in the course.

    Returns:
        The list of `SubmissionResult`, one per student, in student order.

    Raises:
        CourseError: unknown assignment or student, no submissions, or a Ray
            cluster that cannot be reached or cannot run the jobs.
    """
    batch_started = time.time()
    root = pathlib.Path(root).resolve()
    warning = sandbox_warning(allow_unsandboxed)
    store_dir = root / ".nndl" / "verdicts" / str(assignment)
    if regrade:
        shutil.rmtree(store_dir, ignore_errors=True)
    overrides = dict(config_overrides or {})
    overrides["GradeInSandbox"] = {"verdict_store": str(store_dir), **overrides.get("GradeInSandbox", {})}
    if warning:
        overrides["GradeInSandbox"]["allow_unsandboxed"] = True
    config = course.load_config(root, overrides)
    masters = course.master_notebooks(root, assignment, config)
    from autograder.preprocessors import GradeInSandbox

    step = GradeInSandbox(config=config)
    try:
        settings = assignments.settings_for(assignment, step.graders_root)
    except assignments.UnknownAssignment as error:
        raise course.CourseError(str(error)) from None
    if workers is None:
        workers = default_workers(int(settings.limits.get("memory_mb", step.memory_mb)))
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
    graders = jobs.grader_files(settings.grader_dir)  # read once: keys every job, and goes to the workers
    digest = verdicts.graders_digest(graders)
    store = verdicts.VerdictStore(store_dir)
    not_graded = NotGradedRecords(root, assignment)
    prepared = {}  # seconds the coordinator spent taking in and preparing each submission
    intakes = {}
    for sid in students:
        began = time.monotonic()
        intakes[sid] = _intake(api, assignment, sid, masters, warning)
        prepared[sid] = time.monotonic() - began
    results = {}

    def record(sid, *, seconds=0.0, worker=None, attempts=0, lost=()):
        messages, error = intakes[sid]
        messages = messages + [f"Attempt {n} failed: {reason}; it was tried again." for n, reason in
                               enumerate(lost, 1)]
        recording = time.monotonic()
        if error:
            outcome = {"success": False, "error": error}
        else:
            with course.working_directory(root):
                outcome = api.autograde(assignment, sid, force=True, create=True)
        result = SubmissionResult(sid, outcome["success"], seconds + time.monotonic() - recording, messages,
                                  "" if outcome["success"] else _reason(outcome),
                                  attempts=attempts, worker=worker or {}, prepare_seconds=prepared[sid])
        if result.graded:
            not_graded.clear(sid)
        finish(result)

    def could_not_grade(sid, attempts, lost):
        reason = lost[-1]
        result = SubmissionResult(
            sid, False, 0.0, intakes[sid][0] + [f"Attempt {n}: {why}" for n, why in enumerate(lost, 1)],
            f"could not be graded after {attempts} attempt{'s' if attempts > 1 else ''}: {reason}. "
            f"Grades recorded before stay. Run again to retry: nndl autograde {assignment} --student {sid}",
            attempts=attempts, prepare_seconds=prepared[sid])
        not_graded.put(sid, result.error)
        finish(result)

    def finish(result):
        results[result.student] = result
        if progress is not None:
            progress(result)

    jobs_to_run, attempts, lost, timeouts = {}, {}, {}, {}
    pool_facts = {"kind": "none"}
    waiting = [sid for sid in students if not intakes[sid][1]]
    for sid in students:
        if intakes[sid][1]:
            record(sid)
    with contextlib.ExitStack() as cleanup:
        pool = None
        in_hand = 0  # jobs submitted and not finished

        def feed():
            """Prepare jobs until the pool has two per worker in hand; record what needs no run."""
            nonlocal pool, pool_facts, in_hand
            while waiting and (pool is None or in_hand < 2 * pool.size):
                sid = waiting.pop(0)
                began = time.monotonic()
                job = make_job(api, config, step, settings, digest, sid)
                prepared[sid] += time.monotonic() - began
                intakes[sid][0].extend(job.notes)
                job.notebooks = [n for n in job.notebooks if store.get(n["key"]) is None]
                if not job.notebooks:
                    record(sid)
                    continue
                if pool is None:  # started at the first job, so workers warm up while more are prepared
                    pool = cleanup.enter_context(_pool(settings, graders, workers, ray_address))
                    pool_facts = {"kind": pool.kind, "size": pool.size, "address": ray_address}
                jobs_to_run[sid], attempts[sid], lost[sid] = job, 1, []
                timeouts[sid] = job_timeout or jobs.job_timeout(job)
                pool.submit(sid, job, timeouts[sid])
                in_hand += 1

        feed()
        while pool is not None and (finished := pool.next_result()) is not None:
            sid, outcome = finished
            if isinstance(outcome, workers_module.WorkerLost):
                lost[sid].append(outcome.reason)
                if attempts[sid] <= retries:
                    attempts[sid] += 1
                    pool.submit(sid, jobs_to_run[sid], timeouts[sid])
                    continue
                could_not_grade(sid, attempts[sid], lost[sid])
            else:
                for key, verdict in outcome.verdicts.items():
                    store.put(key, verdict)
                record(sid, seconds=outcome.worker.get("seconds", 0.0), worker=outcome.worker,
                       attempts=attempts[sid], lost=lost[sid])
            in_hand -= 1
            jobs_to_run[sid] = None  # its notebooks and files are no longer needed
            feed()
    ordered = [results[sid] for sid in students]
    report.write_report(report_path or report.default_path(root, assignment), assignment=assignment,
                        results=ordered, started=batch_started, pool=pool_facts,
                        db_url=api.coursedir.db_url)
    return ordered


def default_workers(memory_mb):
    """Local workers by default: what the machine can hold.

    One per two CPU cores (a kernel and its grader process keep about two
    busy), and no more than the free memory holds at `memory_mb` (a
    submission's memory limit) plus 1 GiB (its worker and grader process) each.
    """
    import psutil

    by_cores = len(os.sched_getaffinity(0)) // 2
    by_memory = psutil.virtual_memory().available // ((memory_mb + 1024) * 2**20)
    return max(1, min(by_cores, by_memory))


def _pool(settings, graders, workers, ray_address):
    """The pool that runs this batch's jobs: a Ray cluster's, or local processes."""
    if ray_address:
        try:
            return workers_module.RayPool(ray_address, graders, cpus=settings.cpus,
                                          gpus=1 if settings.gpu else 0, memory_mb=settings.memory_mb)
        except workers_module.RayUnavailable as error:
            raise course.CourseError(str(error)) from None
    return workers_module.LocalPool(workers, graders,
                                    gpu_devices=sandbox.gpu_devices() if settings.gpu else ())


def make_job(api, config, step, settings, graders_digest, student):
    """One student's submission as a `GradingJob`: notebooks sanitised as nbgrader's autograde does.

    Reads the gradebook (the master's cells, for nbgrader's checks) and never writes it.
    `graders_digest` (`autograder.verdicts.graders_digest`) keys the verdicts.
    """
    import nbformat
    from nbgrader.converters import Autograde

    coursedir = api.coursedir
    assignment = settings.name
    folder = pathlib.Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
    source = pathlib.Path(coursedir.format_path(coursedir.source_directory, ".", assignment))
    files, notes = jobs.collect_files(folder, source)
    notebooks = []
    sanitizers = Autograde(coursedir=coursedir, config=config).sanitize_preprocessors
    for notebook in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(str(notebook), as_version=4)
        resources = {"nbgrader": {"notebook": notebook.stem, "assignment": assignment,
                                  "student": student, "db_url": coursedir.db_url},
                     "metadata": {"path": str(folder)}}
        for preprocessor in sanitizers:
            nb, resources = preprocessor(config=config).preprocess(nb, resources)
        notebooks.append({"name": notebook.name, "nb": nbformat.writes(nb),
                          "key": verdicts.notebook_key(nb, assignment, student, graders_digest)})
    # The step's settings travel; where graders and verdicts live on this machine does not.
    traits = {name: value for name, value in step.trait_values(config=True).items()
              if name not in ("graders_root", "verdict_store")}
    return jobs.GradingJob(assignment=assignment, student=student, notebooks=notebooks, files=files,
                           step=traits, limits=dict(settings.limits), gpu=settings.gpu, notes=notes)


class NotGradedRecords:
    """Submissions that could not be graded, kept until they are: ``.nndl/not-graded/<assignment>/``."""

    def __init__(self, root, assignment):
        self.folder = pathlib.Path(root) / ".nndl" / "not-graded" / str(assignment)

    def put(self, student, reason):
        verdicts.write_json_atomically(self.folder / f"{student}.json",
                                       {"student": student, "reason": reason, "at": time.time()})

    def clear(self, student):
        (self.folder / f"{student}.json").unlink(missing_ok=True)

    def all(self):
        """``{student: reason}`` of every submission still not graded."""
        found = {}
        for path in sorted(self.folder.glob("*.json")):
            try:
                entry = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            found[entry["student"]] = entry["reason"]
        return found


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


def _reason(outcome):
    """The line of nbgrader's log that says why a submission failed."""
    text = (outcome.get("log") or "") + "\n" + (outcome.get("error") or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for marker in ("GraderSetupError", "Error", "error"):
        for line in reversed(lines):
            if marker in line:
                return line[:500]
    return lines[-1][:500] if lines else "unknown error"
