"""`nndl calibrate ASSIGNMENT --profile P --seeds N`: thresholds from runs of the solution.

Grades the assignment's worked solution (``solutions/<assignment>/``) N
times under profile P, exactly as a submission is graded (sandboxed kernel,
hidden graders in their own process), each run with its own seed (0 to
N - 1, which the notebook reads from `nndl_datasets.seed()`). The graders'
``calibration.check`` calls record their measurements instead of asserting
them; every other hidden test must pass, or the solution is not a reference
and nothing is written. The measurements become
``autograder/<assignment>/calibration/<P>.json`` (`nndl.calibration`).
"""

import os
import pathlib
import shlex
import time

import nbformat

from nndl import calibration, course, settings
from nndl.store import write_json_atomically


class CalibrationFailed(RuntimeError):
    """The solution did not grade cleanly, so no threshold can come from it."""


def solution_folder(root, config, assignment):
    folder = pathlib.Path(root) / config.CourseDirectory.get("solution_directory", "solutions") / assignment
    if not folder.is_dir() or not list(folder.glob("*.ipynb")):
        raise course.CourseError(f"No solution notebooks in {folder}: run nndl build {assignment} first.")
    return folder


def calibrate(root, assignment, *, profile, seeds, output=None, allow_unsandboxed=False, out=print):
    """Grade the solution `seeds` times under `profile` and write the calibration file.

    Returns:
        The path written.
    """
    from nndl.grade import grade_notebook
    from nndl.record.step import GradeInSandbox

    if seeds < 2:
        raise course.CourseError("nndl calibrate needs --seeds 2 or more: a spread needs at least two runs.")
    config = course.load_config(root, {"GradeInSandbox": {"profile": profile,
                                                          "allow_unsandboxed": bool(allow_unsandboxed)}})
    try:
        grading = GradeInSandbox(config=config).grading_settings(assignment)
    except (settings.UnknownAssignment, settings.SettingsError) as error:
        raise course.CourseError(str(error)) from None
    if getattr(grading, "plain", False):
        raise course.CourseError(f"{assignment} has no hidden graders, so nothing to calibrate: thresholds come "
                                 "from calibration.check calls in autograder/<assignment>/test_*.py.")
    folder = solution_folder(root, config, assignment)
    notebooks = {p.name: nbformat.read(str(p), as_version=4) for p in sorted(folder.glob("*.ipynb"))}
    files, _ = course.submission_files(folder)
    graders = course.grader_files(grading.grader_dir)
    target = pathlib.Path(output) if output else calibration.path(grading.grader_dir, profile)
    command = f"nndl calibrate {shlex.quote(assignment)} --profile {profile} --seeds {seeds}"
    runs = []
    before = os.environ.get(calibration.CALIBRATING_ENV)
    os.environ[calibration.CALIBRATING_ENV] = "1"  # the grader processes inherit it
    try:
        for seed in range(seeds):
            started = time.monotonic()
            measured = {}
            for name, nb in notebooks.items():
                verdict = grade_notebook(nbformat.from_dict(nb), grading, files, graders, seed=seed)
                wrong = [f"{o.test}: {o.message}" for o in verdict.outcomes if not o.passed]
                wrong += [f"cell {p.index}: {p.message}" for p in verdict.problems]
                if wrong:
                    raise CalibrationFailed(
                        f"The solution {name} did not grade cleanly under profile {profile!r} (seed {seed}); "
                        "nothing was written. Fix the solution or the graders:\n  " + "\n  ".join(wrong[:10]))
                measured.update(verdict.measurements)
            if not measured:
                raise CalibrationFailed(f"{assignment}'s graders measured nothing (no calibration.check call).")
            runs.append(measured)
            out(f"  seed {seed}: " + ", ".join(f"{k}={v['value']:.4f}" for k, v in sorted(measured.items()))
                + f"  ({time.monotonic() - started:.0f} s)")
    finally:
        if before is None:
            os.environ.pop(calibration.CALIBRATING_ENV, None)
        else:
            os.environ[calibration.CALIBRATING_ENV] = before
    document = calibration.summarise(assignment, profile, runs, seeds=range(seeds), command=command,
                                     backend=grading.resources.keras_backend)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomically(target, document, indent=1, sort_keys=True)
    for name, m in document["measurements"].items():
        out(f"{name}: mean {m['mean']:.4f}, std {m['std']:.4f}, threshold {m['threshold']:.4f}")
    out(f"Wrote {target}")
    return target
