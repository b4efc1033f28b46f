"""`nndl demo`: the kit's main job on the embedded default, end to end.

Builds the course (``release/`` and ``solutions/`` from ``source/``), makes a
batch of sample submissions (`nndl.cli.samples`) in a demo course folder,
grades them with `nndl autograde` (nbgrader's pipeline with the kit's step, a
SQLite gradebook), and prints the gradebook beside what each sample should
have earned.
"""

import pathlib
import shutil

from nndl import build, course
from nndl.batch import coordinator as grade
from nndl.cli import samples
from nndl.record import gradebook


def run_demo(*, workspace=None, assignments=None, out=print, root=course.KIT_ROOT):
    """Build, make samples, grade them, print the gradebook.

    Returns:
        ``{assignment: [(Sample, row or None)]}`` for callers that check.
    """
    root = pathlib.Path(root)
    if not (root / "source").is_dir() or not (root / "autograder").is_dir():
        raise course.CourseError(
            f"nndl demo grades the kit's own sample submissions, from its checkout; {root} is not one "
            "(an installed kit ships the engine only). Run it in a clone of the kit's repository.")
    # The demo grades the kit's own samples, so it may run without the sandbox: loudly.
    warning = grade.sandbox_warning(allow_unsandboxed=True)
    if warning:
        out(warning)
    workspace = pathlib.Path(workspace or root / ".nndl" / "demo").resolve()
    shutil.rmtree(workspace, ignore_errors=True)
    workspace.mkdir(parents=True)
    names = assignments or build.source_assignments(root)
    out(f"Building {', '.join(names)} from source/ into release/ and solutions/ ...")
    out("Grading under the smoke profile: brief training on subsets (nndl autograde --profile full grades "
        "the exercises as written).")
    build.build(root)
    # The smoke profile: brief training on subsets, so the whole demo fits a CPU machine.
    course.write_course_config(workspace, source=root / "source", release=root / "release",
                               solutions=root / "solutions", graders=root / "autograder", profile="smoke")
    db_url = f"sqlite:///{workspace / 'gradebook.db'}"
    outcome = {}
    for name in names:
        notebook, batch = samples.assignment_samples(root, name)
        samples.write_submissions(workspace, name, batch, notebook)
        out(f"\nGrading {len(batch)} sample submissions of {name} (workspace: {workspace}) ...")

        def progress(result):
            state = f"{result.seconds:5.1f} s" if result.graded else f"FAILED: {result.error}"
            out(f"  {result.student:<34} {state}")

        results = grade.autograde(workspace, name, progress=progress, allow_unsandboxed=True)
        grade_ids, rows = gradebook.cell_scores(db_url, name)
        by_student = {row["student"]: row for row in rows}
        notes = {}
        for sample in batch:
            row = by_student.get(sample.student)
            if row is None:
                notes[sample.student] = "not graded"
                continue
            wrong = [g for g, points in sample.expected.items()
                     if row["scores"].get(g) is None or abs(row["scores"][g] - points) > 1e-6]
            notes[sample.student] = "as expected" if not wrong else "UNEXPECTED: " + ", ".join(wrong)
        out(f"\nGradebook for {name} ({db_url}):\n")
        out(gradebook.format_table(grade_ids, rows, gradebook.max_points(db_url, name), notes))
        failed = [r for r in results if not r.graded]
        out(f"\n{len(results) - len(failed)} graded, {len(failed)} failed; "
            "'manual' marks answers left for formgrader.")
        outcome[name] = [(s, by_student.get(s.student)) for s in batch]
    if warning:
        out(warning)
    out(f"\nThis is an nbgrader course folder: cd {workspace} && nbgrader generate_feedback "
        f"{names[0]} (or nbgrader formgrader) works there as in any course.")
    return outcome
