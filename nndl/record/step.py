"""The kit's step in nbgrader's autograde pipeline: a thin adapter over `nndl.grade`.

`GradeInSandbox` takes the place of nbgrader's `Execute` in
``Autograde.autograde_preprocessors`` (see ``nbgrader_config.py``). For each
notebook nbgrader hands it, it finds the verdict (replayed from the verdict
store, or computed by `nndl.grade.grade_notebook`) and writes it into the
grade cells (`nndl.record.cells`) for nbgrader's `SaveAutoGrades` to record.
So ``nbgrader autograde`` and ``nndl autograde`` grade alike. An assignment
with no hidden graders is a plain nbgrader one (`nndl.record.plain`): its
notebook runs in the sandbox and keeps its outputs, and nbgrader scores its
grade cells' own tests from them, as stock nbgrader's ``Execute`` would.

Its configurable limits are the fields of `nndl.settings.Limits`, with the
defaults written there: ``c.GradeInSandbox.cell_timeout = 120`` and so on.
"""

import dataclasses
import pathlib

from traitlets import Bool, Float, Integer, Unicode

from nbgrader.preprocessors import NbGraderPreprocessor

from nndl import course, settings, store
from nndl.contracts import graders_digest, notebook_key
from nndl.grade import apply_outputs, grade_notebook
from nndl.kernel import training_data
from nndl.record import cells, plain

LIMIT_NAMES = tuple(f.name for f in dataclasses.fields(settings.Limits))


class VerdictMissing(RuntimeError):
    """A verdict to replay is not in the store: the notebook differs from the one graded."""


def _limit_trait(field):
    kind = Float if field.type is float else Integer
    doc = f"Limit {field.name} of nndl.settings.Limits (default {field.default})."
    return kind(field.default, help=doc).tag(config=True)


class GradeInSandbox(NbGraderPreprocessor):
    """Run the submission sandboxed and score it with the hidden graders."""

    # One trait per limit, its default taken from nndl.settings.Limits.
    for _field in dataclasses.fields(settings.Limits):
        locals()[_field.name] = _limit_trait(_field)
    del _field

    graders_root = Unicode("", help=(
        "Folder holding one hidden-grader folder per assignment "
        "(default: autograder/ in the course directory).")).tag(config=True)
    allow_unsandboxed = Bool(False, help=(
        "Grade even where the bubblewrap sandbox cannot start. Student code then runs with this "
        "machine's files in reach: only for notebooks you trust.")).tag(config=True)
    verdict_store = Unicode("", help=(
        "Folder keeping each graded notebook's verdict, so that grading again (a resumed batch, "
        "or recording what a worker computed) replays it instead of running the notebook again. "
        "Empty: always run.")).tag(config=True)
    replay_only = Bool(False, help=(
        "Only replay stored verdicts (nndl autograde records what its workers computed): a "
        "notebook whose verdict is not stored is an error, never run here.")).tag(config=True)
    profile = Unicode("full", help=(
        "The grading profile: 'full' (the exercises as written; GPU workers) or 'smoke' (brief "
        "training on subsets, for CPU machines and CI). Notebooks read their sizes from it, and "
        "graders their calibrated thresholds.")).tag(config=True)
    sandbox_data_dir = Unicode("", help=(
        "Folder of training-split-only dataset files mounted read-only into the sandbox "
        "(default: made from NNDL_DATA_DIR).")).tag(config=True)

    def grading_settings(self, assignment):
        """The assignment's `GradingSettings`, from this step's config and its assignment.toml.

        Raises:
            nndl.settings.SettingsError, nndl.settings.UnknownAssignment
        """
        section = self.config.get(type(self).__name__, {})
        known = set(self.trait_names(config=True))
        unknown = sorted(set(section) - known)
        if unknown:
            raise settings.SettingsError(
                f"Unknown setting c.GradeInSandbox.{unknown[0]} in nbgrader_config.py. "
                f"Allowed: {', '.join(sorted(known))}.")
        course_limits = {name: section[name] for name in LIMIT_NAMES if name in section}
        return settings.load(assignment, self.graders_root_path(), course_limits=course_limits,
                             allow_unsandboxed=self.allow_unsandboxed, profile=self.profile, allow_plain=True,
                             sandbox_data_dir=self.sandbox_data_dir or training_data.training_only_dir() or "")

    def graders_root_path(self):
        if self.graders_root:
            return pathlib.Path(self.graders_root)
        root = self.config.get("CourseDirectory", {}).get("root") or "."
        return pathlib.Path(root).resolve() / "autograder"

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        assignment, student = info["assignment"], info["student"]
        grading = self.grading_settings(assignment)
        graders = course.grader_files(grading.grader_dir)
        key = notebook_key(nb, assignment, student, graders_digest(graders), grading.profile)
        verdicts = store.VerdictStore(self.verdict_store) if self.verdict_store else None
        verdict = verdicts.get(key) if verdicts else None
        if verdict is None:
            if self.replay_only:
                raise VerdictMissing(
                    f"No stored verdict for {student}/{assignment}/{info['notebook']} (key {key[:12]}): "
                    "the notebook nbgrader is recording is not the one that was graded. Grade it again "
                    f"with nndl autograde {assignment} --student {student} --regrade.")
            grade = plain.grade_plain if grading.plain else grade_notebook
            verdict = grade(nb, grading, self._submission_files(student, assignment), graders, logger=self.log)
            if verdicts:
                verdicts.put(key, verdict)
        else:
            self.log.info("Replaying the stored verdict of %s/%s", assignment, info["notebook"])
            apply_outputs(nb, verdict)
        resources.setdefault("nndl", {}).update(verdict.stats)
        if grading.plain:  # nbgrader's SaveAutoGrades scores the grade cells from the outputs
            plain.notice_once(self.log, assignment, self.graders_root_path())
            plain.record_plain(nb, verdict)
            return nb, resources
        fractions = cells.record_verdict(nb, verdict)
        self.log.info("Hidden graders for %s/%s: %s", assignment, info["notebook"],
                      ", ".join(f"{k}={v:.2f}" for k, v in fractions.items()))
        return nb, resources

    def _submission_files(self, student, assignment):
        """The files beside the notebook: the student's submitted ones (never links), then the master's.

        They are read from ``submitted/``, not from the folder nbgrader copied
        them into, since nbgrader's copy follows links.
        """
        from nbgrader.coursedir import CourseDirectory

        try:
            coursedir = CourseDirectory(config=self.config)
            submitted = coursedir.format_path(coursedir.submitted_directory, student, assignment)
            source = coursedir.format_path(coursedir.source_directory, ".", assignment)
        except Exception:  # no course directory configured: nothing beside the notebook
            return {}
        files, _ = course.submission_files(submitted, source)
        return files

    def preprocess_cell(self, cell, resources, index):  # pragma: no cover - whole-notebook step
        return cell, resources
