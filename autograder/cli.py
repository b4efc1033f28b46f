"""`nndl`: the kit's command line, a thin layer over keyword-only functions.

    nndl build [ASSIGNMENT]                  regenerate release/ and solutions/ from source/
    nndl autograde ASSIGNMENT [--student ID] grade collected submissions into the gradebook
    nndl gradebook ASSIGNMENT                print the gradebook of an assignment
    nndl demo                                build, grade a batch of sample submissions, show the gradebook
"""

import argparse
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
    p.add_argument("--workers", type=int, default=1,
                   help="submissions graded at once, each in its own worker process (default 1)")
    p.add_argument("--regrade", action="store_true",
                   help="run every submission again instead of replaying the verdicts already stored")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="grade even if the bubblewrap sandbox cannot start: student code can then read "
                        "hidden graders and other students' work (trusted notebooks only)")
    p = verbs.add_parser("gradebook", help="print an assignment's gradebook")
    p.add_argument("assignment")
    p = verbs.add_parser("demo", help="build, grade sample submissions, print the gradebook")
    p.add_argument("--workspace", help="demo course folder (default: .nndl/demo in the kit)")
    return parser


def _course_root(arg):
    from autograder.course import KIT_ROOT

    if arg:
        return pathlib.Path(arg).resolve()
    if pathlib.Path("nbgrader_config.py").exists():
        return pathlib.Path.cwd()
    return KIT_ROOT


def main(argv=None):
    """Entry point of the `nndl` command; returns the exit status."""
    args = _parser().parse_args(argv)
    from autograder import assignments, course

    root = _course_root(args.course)
    try:
        if args.verb == "build":
            from autograder.build import build

            names = build(root, assignment=args.assignment)
            print(f"Built {', '.join(names)}: release/ and solutions/ are up to date.")
        elif args.verb == "autograde":
            return _autograde(root, args.assignment, args.student, args.unsafe_no_sandbox,
                              workers=args.workers, regrade=args.regrade)
        elif args.verb == "gradebook":
            _print_gradebook(root, args.assignment)
        elif args.verb == "demo":
            from autograder.demo import run_demo

            outcome = run_demo(workspace=args.workspace)
            unexpected = [s.student for batch in outcome.values() for s, row in batch if row is None]
            return 1 if unexpected else 0
    except (course.CourseError, assignments.UnknownAssignment) as error:
        print(f"nndl {args.verb}: {error}", file=sys.stderr)
        return 2
    return 0


def _autograde(root, assignment, student, unsafe_no_sandbox, *, workers=1, regrade=False):
    from autograder.grade import autograde, sandbox_warning

    warning = sandbox_warning(unsafe_no_sandbox)
    if warning:
        print(warning, file=sys.stderr)

    def progress(result):
        if result.graded:
            print(f"  graded {result.student} in {result.seconds:.1f} s")
        else:
            print(f"  could not grade {result.student}: {result.error}")
        for message in result.messages:
            if message != warning:
                print(f"    note: {message}")

    results = autograde(root, assignment, student=student, progress=progress,
                        allow_unsandboxed=unsafe_no_sandbox, workers=workers, regrade=regrade)
    failed = [r for r in results if not r.graded]
    print(f"{len(results) - len(failed)} graded, {len(failed)} could not be graded.")
    if warning:
        print(warning, file=sys.stderr)
    _print_gradebook(root, assignment)
    return 1 if failed else 0


def _print_gradebook(root, assignment):
    from autograder import course, gradebook

    config = course.load_config(root)
    api = course.nbgrader_api(config)
    grade_ids, rows = gradebook.cell_scores(api.coursedir.db_url, assignment)
    if not rows:
        print(f"No grades recorded for {assignment!r} in {api.coursedir.db_url}.")
        return
    print(gradebook.format_table(grade_ids, rows, gradebook.max_points(api.coursedir.db_url, assignment)))


if __name__ == "__main__":
    sys.exit(main())
