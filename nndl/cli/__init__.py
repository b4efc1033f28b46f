"""`nndl`: the kit's command line, a thin layer over keyword-only functions.

    nndl init [DIR] [--with ASSIGNMENT]      make DIR a course graded by the kit, or add the kit to an nbgrader course
    nndl build [ASSIGNMENT]                  regenerate release/ and solutions/ from source/
    nndl autograde ASSIGNMENT [--student ID] [--workers N | --ray ADDRESS]
                                             grade collected submissions into the gradebook
    nndl gradebook ASSIGNMENT                print the gradebook of an assignment
    nndl demo                                build, grade a batch of sample submissions, show the gradebook
"""

import argparse
import json
import os
import pathlib
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# nbgrader's gradebook triggers these SQLAlchemy warnings on every autograde; they are not ours to fix.
warnings.filterwarnings("ignore", message=".*not in session.*")


def _parser():
    parser = argparse.ArgumentParser(prog="nndl", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    parser.add_argument("--course", default=None,
                        help="course directory holding nbgrader_config.py (default: the current "
                             "directory if it has one, else the kit's own)")
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("build", help="regenerate release/ and solutions/ from source/")
    p.add_argument("assignment", nargs="?", help="one assignment (default: all)")
    p = verbs.add_parser("autograde", help="grade collected submissions into nbgrader's gradebook")
    p.add_argument("assignment")
    p.add_argument("--student", help="grade one student's submission only")
    p.add_argument("--workers", type=int, default=None,
                   help="submissions graded at once on this machine, each in its own worker process "
                        "(default: one per 2 CPU cores, as many as free memory holds, at least 1)")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run the jobs as tasks on a Ray cluster ('auto': the cluster this machine "
                        "belongs to) instead of local worker processes")
    p.add_argument("--retries", type=int, default=1,
                   help="further attempts for a submission whose worker died, hung or was lost (default 1)")
    p.add_argument("--job-timeout", type=float, default=None, metavar="SECONDS",
                   help="seconds a worker may spend on one submission before it counts as hung "
                        "(default: from the assignment's limits)")
    p.add_argument("--report", metavar="PATH", default=None,
                   help="write the run's JSON report here (default: .nndl/reports/ASSIGNMENT/ in the course)")
    p.add_argument("--regrade", action="store_true",
                   help="run every submission again instead of replaying the verdicts already stored")
    p.add_argument("--profile", choices=("full", "smoke"), default=None,
                   help="grading profile: 'full' runs the exercises as written (GPU workers), 'smoke' "
                        "trains briefly on subsets (default: c.GradeInSandbox.profile, else full)")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="grade even if the bubblewrap sandbox cannot start: student code can then read "
                        "hidden graders and other students' work (trusted notebooks only)")
    p = verbs.add_parser("calibrate", help="grade the solution N times under a profile; write its thresholds")
    p.add_argument("assignment")
    p.add_argument("--profile", choices=("full", "smoke"), required=True)
    p.add_argument("--seeds", type=int, default=5, help="runs of the solution, seeds 0 to N-1 (default 5)")
    p.add_argument("--output", metavar="PATH", default=None,
                   help="write here instead of autograder/ASSIGNMENT/calibration/PROFILE.json")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run the solution even if the bubblewrap sandbox cannot start")
    p = verbs.add_parser("gradebook", help="print an assignment's gradebook")
    p.add_argument("assignment")
    p = verbs.add_parser("demo", help="build, grade sample submissions, print the gradebook")
    p.add_argument("--workspace", help="demo course folder (default: .nndl/demo in the kit)")
    p = verbs.add_parser("init", help="make DIR a course graded by the kit, or add the kit to an nbgrader course")
    p.add_argument("dir", nargs="?", help="the course directory (default: --course, else the current directory)")
    p.add_argument("--with", dest="with_", action="append", default=[], metavar="ASSIGNMENT",
                   help="copy in one of the kit's assignments: its source and hidden graders (repeatable)")
    p.add_argument("--course-id", default=None, help="course id of a new config (default: the folder's name)")
    p.add_argument("--kit", default=None, metavar="DIR",
                   help="the kit's checkout to copy --with assignments from (default: this kit's)")
    return parser


def _course_root(arg):
    """--course, else the current directory if it is a course, else the kit's checkout if it is one."""
    from nndl.course import KIT_ROOT

    if arg:
        return pathlib.Path(arg).resolve()
    if pathlib.Path("nbgrader_config.py").exists() or not (KIT_ROOT / "nbgrader_config.py").exists():
        return pathlib.Path.cwd()
    return KIT_ROOT


def main(argv=None):
    """Entry point of the `nndl` command; returns the exit status."""
    args = _parser().parse_args(argv)
    from nndl import course, settings

    root = _course_root(args.course)
    try:
        if args.verb == "build":
            from nndl.build import build

            names = build(root, assignment=args.assignment)
            print(f"Built {', '.join(names)}: release/ and solutions/ are up to date.")
        elif args.verb == "autograde":
            return _autograde(root, args)
        elif args.verb == "init":
            from nndl.init import command

            return command(args.dir or args.course or ".", assignments=args.with_, course_id=args.course_id,
                           kit=args.kit)
        elif args.verb == "calibrate":
            from nndl.cli.calibrate import CalibrationFailed, calibrate

            print(f"Calibrating {args.assignment} under the {args.profile} profile: the solution, "
                  f"{args.seeds} times.", flush=True)
            try:
                calibrate(root, args.assignment, profile=args.profile, seeds=args.seeds, output=args.output,
                          allow_unsandboxed=args.unsafe_no_sandbox, out=lambda line: print(line, flush=True))
            except CalibrationFailed as error:
                print(f"nndl calibrate: {error}", file=sys.stderr)
                return 1
        elif args.verb == "gradebook":
            _print_gradebook(root, args.assignment)
        elif args.verb == "demo":
            from nndl.cli.demo import run_demo

            outcome = run_demo(workspace=args.workspace)
            unexpected = [s.student for batch in outcome.values() for s, row in batch if row is None]
            return 1 if unexpected else 0
    except (course.CourseError, settings.UnknownAssignment, settings.SettingsError) as error:
        print(f"nndl {args.verb}: {error}", file=sys.stderr)
        return 2
    return 0


def _autograde(root, args):
    import time

    from nndl.batch import report
    from nndl.batch.coordinator import autograde, sandbox_warning, submitted_students

    warning = sandbox_warning(args.unsafe_no_sandbox)
    if warning:
        print(warning, file=sys.stderr)
    report_path = pathlib.Path(args.report).resolve() if args.report else report.default_path(root, args.assignment)
    where = f"the Ray cluster at {args.ray}" if args.ray else "local worker processes"
    print(f"Grading {args.assignment} on {where}.", flush=True)
    total = 1 if args.student else len(submitted_students(root, args.assignment))
    progress = report.Progress(total, stream=sys.stdout, hide=[warning] if warning else ())
    started = time.monotonic()
    try:
        results = autograde(root, args.assignment, student=args.student, progress=progress,
                            allow_unsandboxed=args.unsafe_no_sandbox, workers=args.workers, ray_address=args.ray,
                            regrade=args.regrade, retries=args.retries, job_timeout=args.job_timeout,
                            report_path=report_path, notify=lambda notice: print(notice, file=sys.stderr),
                            config_overrides={"GradeInSandbox": {"profile": args.profile}} if args.profile else None)
    finally:
        progress.close()
    for line in report.summary(results, time.monotonic() - started):
        print(line)
    pool = json.loads(report_path.read_text())["pool"]
    if pool["kind"] != "none":
        what = "Ray task slot" if pool["kind"] == "ray" else "local worker"
        shared = f", {pool['gpu_slots']} per GPU" if pool.get("gpu_slots") else ""
        print(f"Ran on {pool['size']} {what}{'' if pool['size'] == 1 else 's'}{shared}.")
    print(f"Report: {report_path}")
    if warning:
        print(warning, file=sys.stderr)
    _print_gradebook(root, args.assignment)
    return 1 if any(not r.graded for r in results) else 0


def _print_gradebook(root, assignment):
    from nndl import course
    from nndl.record import gradebook
    from nndl.store import NotGradedRecords

    config = course.load_config(root)
    api = course.nbgrader_api(config)

    grade_ids, rows = gradebook.cell_scores(api.coursedir.db_url, assignment)
    not_graded = NotGradedRecords(root, assignment).all()
    if not rows:
        from nndl.batch.report import redact

        print(f"No grades recorded for {assignment!r} in {redact(api.coursedir.db_url)}.")
    else:
        notes = {sid: "NOT GRADED (see below)" for sid in not_graded}
        print(gradebook.format_table(grade_ids, rows, gradebook.max_points(api.coursedir.db_url, assignment),
                                     notes=notes))
    for sid, reason in not_graded.items():
        print(f"Not graded: {sid}: {reason}")


if __name__ == "__main__":
    sys.exit(main())
