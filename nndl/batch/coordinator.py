"""`nndl autograde`: grade collected submissions into nbgrader's gradebook.

This process is the batch's coordinator, and a `Batch` is one run of it. For
each submission it keeps a `SubmissionState` that moves through the steps:

    intake -> queued -> running -> verdict -> recorded
                    \\-> (verdicts stored already) ----/
    any step -> not graded (with the reason, the exception's class, and what to do)

Intake (`nndl.intake`); a job, unless its verdicts are stored already
(`nndl.batch.jobs`), run by a pool of workers (`nndl.batch.pool`: local
processes or a Ray cluster); then nbgrader's own autograde with the kit's step
in its pipeline (``nbgrader_config.py``), which replays the stored verdict and
records it. Only this process writes the gradebook. Whatever fails for one
submission, at any step, is that submission's not-graded record: the batch
goes on, grades already recorded stay, and the report is written.
"""

import contextlib
import dataclasses
import logging
import os
import pathlib
import shutil
import time

from nndl import build, calibration, course, intake, nbgrader_settings, scratch, settings, store
from nndl.batch import jobs, pool as pools, report
from nndl.batch.worker import describe
from nndl.contracts import graders_digest
from nndl.kernel import sandbox
from nndl.record import gradebook

log = logging.getLogger(__name__)

#: The stages of a `SubmissionState`.
INTAKE, QUEUED, RUNNING, VERDICT, RECORDED, NOT_GRADED = (
    "intake", "queued", "running", "verdict", "recorded", "not graded")


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


@dataclasses.dataclass
class SubmissionState:
    """Where one student's submission is in the batch."""

    student: str
    stage: str = INTAKE
    messages: list = dataclasses.field(default_factory=list)
    job: object = None  # its GradingJob while queued or running
    timeout: float = 0.0
    attempts: int = 0
    lost: list = dataclasses.field(default_factory=list)  # why each failed attempt brought nothing back
    worker: dict = dataclasses.field(default_factory=dict)
    run_seconds: float = 0.0
    prepare_seconds: float = 0.0
    result: SubmissionResult = None


class SubmissionFailed(Exception):
    """One submission cannot go on; the message says why, for the not-graded record."""


def submitted_students(api, assignment):
    """Students with a submission folder for this assignment, sorted.

    Args:
        api: an nbgrader API, or a course directory.
    """
    if not hasattr(api, "coursedir"):
        api = course.nbgrader_api(course.load_config(api))
    submitted = pathlib.Path(api.coursedir.format_path(api.coursedir.submitted_directory, "*", assignment))
    return sorted(p.parent.name for p in submitted.parent.parent.glob(f"*/{assignment}") if p.is_dir())


def ensure_registered(api, assignment, root):
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
            f"The grading sandbox cannot start here: {problem}. Student code would run with this "
            "machine's files in reach. Install bubblewrap, or, for trusted notebooks only, pass "
            "--unsafe-no-sandbox to grade anyway (only for notebooks you trust).")
    return (f"WARNING: grading WITHOUT the sandbox ({problem}). Student code runs with this machine's "
            "files in reach: hidden graders, the gradebook and other students' submissions.")


def default_workers(memory_mb):
    """Local workers by default: what the machine can hold.

    One per two CPU cores (a kernel and its grader process keep about two
    busy), and no more than the free memory holds at `memory_mb` (a
    submission's sandbox memory limit) plus 1 GiB (its worker, grader template and grader
    process: about 0.15, 0.7 and 0.2 GiB, the last two sharing most pages) each.
    """
    import psutil

    by_cores = len(os.sched_getaffinity(0)) // 2
    by_memory = psutil.virtual_memory().available // ((memory_mb + 1024) * 2**20)
    return max(1, min(by_cores, by_memory))


def autograde(root=course.KIT_ROOT, assignment=None, **options):
    """Grade one or all students' submissions of an assignment: ``Batch(root, assignment, ...).run()``."""
    return Batch(root, assignment, **options).run()


class Batch:
    """One run of `nndl autograde` over an assignment's submissions.

    Each submission needing a run becomes a job for a pool of workers: local
    processes, or tasks on a Ray cluster. Workers return verdicts; this
    process alone stores them (in ``.nndl/verdicts/<assignment>/`` of the
    course) and records them in the gradebook through nbgrader's autograde,
    whose kit step replays them. So a batch stopped at any moment and started
    again runs only what it had not finished. A job whose worker fails, dies,
    hangs or is lost is tried `retries` more times; then, as for a failure
    at any other step, its submission is recorded as not graded, with the
    reason, and the rest of the batch goes on.

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
        notify: called once with each notice for the instructor (calibration
            made on other data or versions, ...); they go to the report too.
        retries: further attempts for a job whose worker brought nothing back.
        job_timeout: seconds a worker may spend on one submission before it
            counts as hung; default: from the assignment's limits.
        report_path: where to write the run's JSON report; default
            ``.nndl/reports/<assignment>/<UTC time>.json`` in the course.
        runner: what a local worker calls with ``(job, graders)`` (tests pass a fake).

    Raises:
        CourseError: unknown assignment or student, no submissions, a setting
            that is unknown or wrong, or a Ray cluster that cannot be reached
            or cannot run the jobs. Nothing has run then.
    """

    def __init__(self, root, assignment, *, student=None, config_overrides=None, progress=None,
                 allow_unsandboxed=False, workers=None, ray_address=None, regrade=False, retries=1,
                 job_timeout=None, report_path=None, runner=None, notify=None):
        self.started = time.time()
        self.root = pathlib.Path(root).resolve()
        self.assignment = assignment
        self.progress = progress
        self.ray_address = ray_address
        self.retries = retries
        self.job_timeout = job_timeout
        self.runner = runner
        self.warning = sandbox_warning(allow_unsandboxed)
        store_dir = self.root / ".nndl" / "verdicts" / str(assignment)
        if regrade:
            shutil.rmtree(store_dir, ignore_errors=True)
        overrides = dict(config_overrides or {})
        overrides["GradeInSandbox"] = {**overrides.get("GradeInSandbox", {}),
                                       "verdict_store": str(store_dir), "replay_only": True}
        if self.warning:
            overrides["GradeInSandbox"]["allow_unsandboxed"] = True
        self.config = course.load_config(self.root, overrides)
        try:
            nbgrader_settings.check_kit_pipeline(self.config, self.root / "nbgrader_config.py")
        except ValueError as error:
            raise course.CourseError(str(error)) from None
        self.masters = course.master_notebooks(self.root, assignment, self.config)
        from nndl.record.step import GradeInSandbox

        try:
            self.settings = GradeInSandbox(config=self.config).grading_settings(assignment)
        except (settings.UnknownAssignment, settings.SettingsError) as error:
            raise course.CourseError(str(error)) from None
        #: What the instructor must hear once per batch: printed, and kept in the JSON report.
        self.notices = []
        if self.settings.plain:  # no hidden graders: its grade cells' own tests decide
            from nndl.record import plain

            self.notices.append("NOTE: " + plain.notice(assignment, pathlib.Path(self.settings.grader_dir).parent))
        try:
            self.notices += calibration.grading_notices(self.settings.grader_dir, assignment, self.settings.profile,
                                                        backend=self.settings.resources.keras_backend)
        except calibration.CalibrationMissing as error:
            raise course.CourseError(str(error)) from None
        for notice in self.notices:
            (notify or log.warning)(notice)
        self.workers_asked = workers
        self.workers = workers or default_workers(self.settings.limits.sandbox_memory_mb)
        self.api = course.nbgrader_api(self.config)
        with course.working_directory(self.root):
            ensure_registered(self.api, assignment, self.root)
        self.students = self._students(student)
        # Read once: keys every job, and goes to the workers as data.
        self.graders = course.grader_files(self.settings.grader_dir)
        self.digest = graders_digest(self.graders)
        self.verdicts = store.VerdictStore(store_dir)
        self.not_graded = store.NotGradedRecords(self.root, assignment)
        self.report_path = report_path or report.default_path(self.root, assignment)
        self.states = {sid: SubmissionState(sid, messages=[self.warning] if self.warning else [])
                       for sid in self.students}
        self.pool = None
        self.pool_facts = {"kind": "none"}
        self.in_hand = 0  # jobs submitted to the pool and not finished

    def _students(self, student):
        students = submitted_students(self.api, self.assignment)
        if student is not None:
            if student not in students:
                raise course.CourseError(
                    f"No submission of {self.assignment!r} by student {student!r} under "
                    f"{self.api.coursedir.submitted_directory}/. Students who submitted: "
                    f"{', '.join(students) or 'none'}. Collect first (nbgrader collect), or check the id.")
            return [student]
        if not students:
            raise course.CourseError(
                f"No submissions of {self.assignment!r} under {self.root / self.api.coursedir.submitted_directory}. "
                f"Collect them first: nbgrader collect {self.assignment}.")
        return students

    # -- the batch ------------------------------------------------------------

    def run(self):
        """Grade the batch; returns one `SubmissionResult` per student, in student order."""
        try:
            for state in self.states.values():
                self._step(state, "intake", self._take_in)
            waiting = [s for s in self.states.values() if s.stage == QUEUED]
            with contextlib.ExitStack() as cleanup:
                self._feed(waiting, cleanup)
                while self.pool is not None and (finished := self.pool.next_result()) is not None:
                    sid, outcome = finished
                    self.in_hand -= 1
                    state = self.states[sid]
                    if isinstance(outcome, pools.WorkerLost):
                        self._lost(state, outcome.reason)
                    else:
                        self._step(state, "storing its verdicts", self._store, outcome)
                        self._step(state, "recording", self._record)
                    self._feed(waiting, cleanup)
        finally:
            scratch.sweep()  # roots of workers that ended with the batch (killed, or Ray's)
            results = [s.result for s in self.states.values() if s.result is not None]
            report.write_report(self.report_path, assignment=self.assignment, results=results,
                                started=self.started, pool=self.pool_facts, db_url=self.api.coursedir.db_url,
                                profile=self.settings.profile, notices=self.notices)
        return [self.states[sid].result for sid in self.students]

    def _step(self, state, what, action, *args):
        """Run one step for one submission; any failure becomes its not-graded record."""
        if state.stage in (RECORDED, NOT_GRADED):
            return
        try:
            action(state, *args)
        except SubmissionFailed as error:
            self._not_graded(state, str(error))
        except Exception as error:  # whatever one submission does, the batch goes on
            self._not_graded(state, f"{what} failed: {describe(error)}")

    def _feed(self, waiting, cleanup):
        """Prepare jobs until the pool has two per worker in hand; record what needs no run."""
        while waiting and (self.pool is None or self.in_hand < 2 * self.pool.size):
            state = waiting.pop(0)
            self._step(state, "preparing the job (nbgrader's restoring of the master's cells)", self._prepare)
            if state.stage == VERDICT:  # every verdict was stored already
                self._step(state, "recording", self._record)
            elif state.stage == QUEUED:
                if self.pool is None:  # started at the first job, so workers warm up while more are prepared
                    self.pool = cleanup.enter_context(self._make_pool())
                    self.pool_facts = {"kind": self.pool.kind, "size": self.pool.size, "address": self.ray_address}
                    if self.settings.resources.gpu:
                        self.pool_facts["gpu_slots"] = self.settings.resources.gpu_slots
                self._step(state, "handing the job to a worker", self._submit)

    def _make_pool(self):
        """The pool that runs this batch's jobs: a Ray cluster's, or local processes."""
        resources = self.settings.resources
        if self.ray_address:
            try:
                return pools.RayPool(self.ray_address, self.graders, cpus=resources.cpus,
                                     gpus=pools.ray_gpu_share(resources.gpu_slots) if resources.gpu else 0,
                                     memory_mb=resources.worker_memory_mb)
            except pools.RayUnavailable as error:
                raise course.CourseError(str(error)) from None
        options = {"runner": self.runner} if self.runner else {}
        devices = pools.gpu_worker_devices(sandbox.gpu_devices(), resources.gpu_slots, self.workers_asked) \
            if resources.gpu else []
        return pools.LocalPool(len(devices) or self.workers, self.graders, gpu_devices=devices, **options)

    # -- the steps --------------------------------------------------------------

    def _take_in(self, state):
        began = time.monotonic()
        api, sid = self.api, state.student
        folder = pathlib.Path(api.coursedir.format_path(api.coursedir.submitted_directory, sid, self.assignment))
        release_dir = pathlib.Path(api.coursedir.format_path(api.coursedir.release_directory, ".", self.assignment))
        if folder.is_dir():
            state.messages += intake.clean_folder(folder, {master.name for master in self.masters})
        for master in self.masters:
            found = intake.inspect_notebook(folder / master.name, release_dir / master.name,
                                            intake.master_grade_ids(master))
            state.messages += found.messages
        state.prepare_seconds += time.monotonic() - began
        state.stage = QUEUED

    def _prepare(self, state):
        began = time.monotonic()
        job = jobs.make_job(self.api, self.config, self.settings, self.digest, state.student)
        state.prepare_seconds += time.monotonic() - began
        state.messages.extend(job.notes)
        job.notebooks = [n for n in job.notebooks if not self.verdicts.has(n.key)]
        if not job.notebooks:
            state.stage = VERDICT
            return
        state.job = job
        state.timeout = self.job_timeout or self.settings.job_timeout(len(job.notebooks))

    def _submit(self, state):
        state.attempts += 1
        state.stage = RUNNING
        self.pool.submit(state.student, state.job, state.timeout)
        self.in_hand += 1

    def _lost(self, state, reason):
        state.lost.append(reason)
        if state.attempts <= self.retries:
            self._step(state, "handing the job to a worker again", self._submit)
            return
        attempts = state.attempts
        self._not_graded(state, f"could not be graded after {attempts} attempt{'s' if attempts > 1 else ''}: "
                                f"{reason}", lost_attempts=True)

    def _store(self, state, result):
        for key, verdict in result.verdicts.items():
            self.verdicts.put(key, verdict)
        state.worker = result.worker
        state.run_seconds = result.worker.get("seconds", 0.0)
        state.job = None  # its notebooks and files are no longer needed
        state.stage = VERDICT

    def _record(self, state):
        began = time.monotonic()
        with course.working_directory(self.root):
            outcome = self.api.autograde(self.assignment, state.student, force=True, create=True)
        if not outcome["success"]:
            raise SubmissionFailed(f"recording in the gradebook failed: {_reason(outcome)}")
        state.stage = RECORDED
        messages = state.messages + [f"Attempt {n} failed: {reason}; it was tried again."
                                     for n, reason in enumerate(state.lost, 1)]
        self.not_graded.clear(state.student)
        self._finish(state, SubmissionResult(
            state.student, True, state.run_seconds + time.monotonic() - began, messages,
            attempts=state.attempts, worker=state.worker, prepare_seconds=state.prepare_seconds))

    def _not_graded(self, state, reason, lost_attempts=False):
        state.stage = NOT_GRADED
        state.job = None
        error = (f"{reason}. Grades recorded before stay. Run again to retry: "
                 f"nndl autograde {self.assignment} --student {state.student}")
        history = [f"Attempt {n}: {why}" for n, why in enumerate(state.lost, 1)] if lost_attempts else []
        try:
            self.not_graded.put(state.student, error)
        except OSError as problem:
            error += f" (the not-graded record could not be written: {problem})"
        try:  # no row of empty scores that looks graded; an earlier grade stays
            gradebook.drop_ungraded_submission(self.api.coursedir.db_url, self.assignment, state.student)
        except Exception as problem:  # the gradebook itself failing is said, and the batch goes on
            error += f" (the gradebook could not be cleaned: {type(problem).__name__}: {problem})"
        self._finish(state, SubmissionResult(
            state.student, False, state.run_seconds, state.messages + history, error,
            attempts=state.attempts, worker=state.worker, prepare_seconds=state.prepare_seconds))

    def _finish(self, state, result):
        state.result = result
        if self.progress is not None:
            self.progress(result)


def _reason(outcome):
    """The line of nbgrader's log that says why a submission failed."""
    text = (outcome.get("log") or "") + "\n" + (outcome.get("error") or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for marker in ("VerdictMissing", "GraderSetupError", "Error", "error"):
        for line in reversed(lines):
            if marker in line:
                return line[:500]
    return lines[-1][:500] if lines else "unknown error"
