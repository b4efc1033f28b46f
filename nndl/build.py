"""`nndl build`: regenerate ``release/`` and ``solutions/`` from ``source/``.

Both come out of nbgrader's own converters (generate_assignment and
generate_solution), so they are exactly what nbgrader would release. The
build is reproducible: outputs are cleared and nothing time-dependent is
written, so a test can rebuild into a temporary folder and compare.
"""

import pathlib
import shutil

from nndl import course


def source_assignments(root, config=None):
    """Names of the assignments under the course's source folder."""
    source = pathlib.Path(root) / "source"
    if config is not None and "source_directory" in config.CourseDirectory:
        source = pathlib.Path(root) / config.CourseDirectory.source_directory
    return sorted(p.name for p in source.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def build(root=course.KIT_ROOT, *, assignment=None, out=None, db_url=None):
    """Generate the student and solution versions of one or all assignments.

    Args:
        root: the course directory.
        assignment: one assignment's name; all of ``source/`` when None.
        out: write ``release/`` and ``solutions/`` under this folder instead
            of the course directory (for comparing with what is committed).
        db_url: the gradebook to register the assignment in; the course's by
            default.

    Returns:
        The list of assignments built.

    Raises:
        CourseError: an unknown assignment, or nbgrader refused the source.
    """
    from nbgrader.converters import GenerateSolution
    from nbgrader.utils import capture_log

    root = pathlib.Path(root).resolve()
    overrides = {}
    if out is not None:
        out = pathlib.Path(out).resolve()
        overrides["CourseDirectory"] = {
            "release_directory": str(out / "release"),
            "solution_directory": str(out / "solutions"),
        }
    if db_url is not None:
        overrides.setdefault("CourseDirectory", {})["db_url"] = db_url
    config = course.load_config(root, overrides)
    names = [assignment] if assignment else source_assignments(root, config)
    for name in names:
        course.master_notebooks(root, name, config)  # a clear error for an unknown name
    api = course.nbgrader_api(config)
    for name in names:
        release_dir = pathlib.Path(api.coursedir.format_path(api.coursedir.release_directory, ".", name))
        solution_dir = pathlib.Path(api.coursedir.format_path(api.coursedir.solution_directory, ".", name))
        for stale in (release_dir, solution_dir):
            shutil.rmtree(stale, ignore_errors=True)
        with course.working_directory(root):
            result = api.generate_assignment(name, force=True, create=True)
            if not result["success"]:
                raise course.CourseError(f"nbgrader could not generate the release of {name}:\n"
                                         f"{result.get('log') or ''}{result.get('error') or ''}")
            api.coursedir.assignment_id = name
            app = GenerateSolution(coursedir=api.coursedir, parent=api)
            app.force = True
            result = capture_log(app)
            api.coursedir.assignment_id = ""
            if not result["success"]:
                raise course.CourseError(f"nbgrader could not generate the solutions of {name}:\n"
                                         f"{result.get('log') or ''}{result.get('error') or ''}")
        for folder in (release_dir, solution_dir):
            _normalise(folder)
    return names


def _normalise(folder):
    """Drop what would make two builds of the same source differ."""
    for path in pathlib.Path(folder).rglob("*"):
        if path.name in (".ipynb_checkpoints", "__pycache__"):
            shutil.rmtree(path, ignore_errors=True)
