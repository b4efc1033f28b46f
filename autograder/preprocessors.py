"""The kit's step in nbgrader's autograde pipeline.

`GradeInSandbox` takes the place of nbgrader's `Execute` in
``Autograde.autograde_preprocessors`` (see ``nbgrader_config.py``): it runs the
notebook in a sandboxed kernel (`autograder.run`), runs the assignment's
hidden graders in a separate process against that live kernel
(`autograder.score.runner`), and writes their verdicts into the grade cells
(`autograder.record`) for nbgrader's `SaveAutoGrades` to record. So
``nbgrader autograde`` and ``nndl autograde`` grade alike.
"""

import os

from traitlets import Bool, Float, Integer, Unicode

from nbgrader.preprocessors import NbGraderPreprocessor

from autograder import assignments, jobs, record, sandbox, sandbox_data, verdicts
from autograder.run import Limits, NotebookRun
from autograder.score.runner import start_graders


class GradeInSandbox(NbGraderPreprocessor):
    """Run the submission sandboxed and score it with the hidden graders."""

    cell_timeout = Float(120, help="Seconds a single cell may run.").tag(config=True)
    submission_timeout = Float(900, help="Seconds the whole notebook may run.").tag(config=True)
    memory_mb = Integer(4096, help="Resident memory (MiB) the kernel and its children may use.").tag(config=True)
    call_timeout = Float(60, help="Seconds one grader request to the kernel may take.").tag(config=True)
    grader_timeout = Float(600, help="Seconds all hidden graders of one notebook may take.").tag(config=True)
    graders_root = Unicode(str(assignments.GRADERS_ROOT),
                           help="Folder holding one hidden-grader folder per assignment.").tag(config=True)
    allow_unsandboxed = Bool(False, help=(
        "Grade even where the bubblewrap sandbox cannot start. Student code then runs with this "
        "machine's files in reach: only for notebooks you trust.")).tag(config=True)
    verdict_store = Unicode("", help=(
        "Folder keeping each graded notebook's verdict, so that grading again (a resumed batch, "
        "or recording what a worker computed) replays it instead of running the notebook again. "
        "Empty: always run.")).tag(config=True)
    sandbox_data_dir = Unicode("", help=(
        "Folder of training-split-only dataset files mounted read-only into the sandbox "
        "(default: made from NNDL_DATA_DIR).")).tag(config=True)

    def preprocess(self, nb, resources):
        assignment = resources["nbgrader"]["assignment"]
        settings = assignments.settings_for(assignment, self.graders_root)
        store = verdicts.VerdictStore(self.verdict_store) if self.verdict_store else None
        key = verdicts.notebook_key(
            nb, assignment, resources["nbgrader"]["student"],
            verdicts.graders_digest(jobs.grader_files(settings.grader_dir))) if store else None
        verdict = store.get(key) if store else None
        if verdict is None:
            verdict = self.compute_verdict(nb, resources, settings)
            if store:
                store.put(key, verdict)
        else:
            self.log.info("Replaying the stored verdict of %s/%s", assignment, resources["nbgrader"]["notebook"])
        verdicts.apply_outputs(nb, verdict)
        report, problems = verdicts.report_of(verdict)
        resources.setdefault("nndl", {}).update(verdict["stats"])
        record.annotate_problems(nb, problems)
        notices = list(nb.metadata.get("nndl", {}).get("intake", [])) + [p.message for p in problems]
        fractions = record.write_verdicts(nb, report, notices)
        self.log.info("Hidden graders for %s/%s: %s", assignment, resources["nbgrader"]["notebook"],
                      ", ".join(f"{k}={v:.2f}" for k, v in fractions.items()))
        return nb, resources

    def compute_verdict(self, nb, resources, settings, linked=None):
        """Run the sanitised notebook in the sandbox and its hidden graders against it.

        Args:
            linked: paths beside the notebook to keep out of the sandbox; by
                default, whatever is a link in the student's submitted folder.

        Returns:
            The verdict (`autograder.verdicts.make_verdict`); `nb` holds the run's outputs.
        """
        limits = Limits(cell_timeout=self.cell_timeout, submission_timeout=self.submission_timeout,
                        memory_mb=self.memory_mb, call_timeout=self.call_timeout)
        limits = Limits.from_mapping({**vars(limits), **settings.limits})
        workdir = resources.get("metadata", {}).get("path") or None
        if linked is None:
            linked = self._linked_paths(resources["nbgrader"]["student"], settings.name)
        mode = sandbox.sandbox_mode(self.allow_unsandboxed)
        if mode != "bubblewrap":
            self.log.warning("GRADING WITHOUT THE SANDBOX: %s", sandbox.bubblewrap_problem())
        data_dir = self.sandbox_data_dir or sandbox_data.training_only_dir()
        # The grader process starts now and imports its graders while the notebook runs.
        graders = start_graders(settings.grader_dir)
        try:
            with NotebookRun(nb, limits, scratch_files=workdir, scratch_exclude=linked, log=self.log,
                             gpu=settings.gpu, sandbox_mode=mode, data_dir=data_dir) as run:
                problems = run.execute()
                report = graders.serve(run, timeout=self.grader_timeout)
                stats = {"execution_seconds": run.execution_seconds, "restarts": run.restarts,
                         "peak_memory_mb": run.peak_memory_bytes / 2**20}
        finally:
            graders.close()
        return verdicts.make_verdict(nb, report, problems, stats)

    def _linked_paths(self, student, assignment):
        """Paths that are links in the student's submitted folder.

        nbgrader copies a submission into autograded/ following links, so what
        a link pointed at (graders, the gradebook) may sit there as real files;
        none of it goes into the sandbox. (`nndl autograde` removes links at
        intake already; this covers plain `nbgrader autograde`.)
        """
        from nbgrader.coursedir import CourseDirectory

        try:
            coursedir = CourseDirectory(config=self.config)
            folder = coursedir.format_path(coursedir.submitted_directory, student, assignment)
        except Exception:  # no course directory configured: nothing to compare with
            return set()
        linked = set()
        for root, dirs, files in os.walk(folder, followlinks=False):
            for name in dirs + files:
                path = os.path.join(root, name)
                if os.path.islink(path):
                    linked.add(os.path.relpath(path, folder))
        return linked

    def preprocess_cell(self, cell, resources, index):  # pragma: no cover - whole-notebook step
        return cell, resources

