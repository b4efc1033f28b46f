"""The course directory and nbgrader's API over it.

Every `nndl` command works on a course directory: the folder holding
``nbgrader_config.py`` (the kit's own checkout by default), with nbgrader's
usual layout under it (``source/``, ``release/``, ``solutions/``,
``submitted/``, ``autograded/``, ``feedback/``, ``gradebook.db``).
"""

import contextlib
import logging
import os
import pathlib
import sys

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

KIT_ROOT = pathlib.Path(__file__).resolve().parent.parent
#: A submission's files beside its notebooks, all together, travel up to this size.
MAX_SUBMISSION_FILES_BYTES = 512 * 2**20


class CourseError(RuntimeError):
    """A problem with the course directory a user can fix; the message says how."""


def load_config(root, overrides=None):
    """nbgrader's configuration for the course at `root`, plus `overrides`."""
    root = pathlib.Path(root).resolve()
    config_file = root / "nbgrader_config.py"
    if not config_file.exists():
        raise CourseError(f"No nbgrader_config.py in {root}. Run nndl from the course directory "
                          "or pass --course DIR.")
    config = PyFileConfigLoader(config_file.name, path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    if overrides:
        config.merge(Config(overrides))
    return config


@contextlib.contextmanager
def working_directory(path):
    """nbgrader resolves some paths against the current directory; pin it."""
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def nbgrader_api(config):
    """An `NbGraderAPI` for a loaded config, logging quietly."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    # nbgrader runs its own scripts (alembic) by name: the environment's bin
    # folder must be on PATH even when `nndl` was started by its full path.
    bindir = os.path.dirname(sys.executable)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")

    coursedir = CourseDirectory(config=config)
    api = NbGraderAPI(coursedir=coursedir, config=config)
    api.log.setLevel(logging.WARNING)
    return api


def master_notebooks(root, assignment, config=None):
    """Paths of the master notebooks of an assignment, sorted."""
    source = pathlib.Path(root) / "source"
    if config is not None and "source_directory" in config.CourseDirectory:
        source = pathlib.Path(root) / config.CourseDirectory.source_directory
    folder = source / assignment
    if not folder.is_dir():
        known = sorted(p.name for p in source.iterdir() if p.is_dir()) if source.is_dir() else []
        raise CourseError(f"No assignment {assignment!r} in {source}. "
                          f"Known assignments: {', '.join(known) or 'none'}.")
    return sorted(folder.glob("*.ipynb"))


def grader_files(grader_dir):
    """An assignment's hidden-grader folder as data: relative path -> bytes (no links, no caches)."""
    grader_dir = pathlib.Path(grader_dir)
    files = {}
    for path in sorted(grader_dir.rglob("*")):
        if path.is_file() and not path.is_symlink() and "__pycache__" not in path.parts:
            files[str(path.relative_to(grader_dir))] = path.read_bytes()
    return files


def submission_files(*folders):
    """The regular files (not notebooks, not links) of `folders`, later folders winning.

    This is what nbgrader's autograde puts beside the notebook: the
    submission's files, then the master's over them.

    Returns:
        ``(files, notes)``: relative path -> bytes, and a sentence for each file left out.
    """
    from nndl.settings import MAX_FILE_BYTES

    files, notes, total = {}, [], 0
    for folder in folders:
        folder = pathlib.Path(folder)
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or not path.is_file() or path.suffix == ".ipynb":
                continue
            if any(part.startswith(".nndl") for part in path.relative_to(folder).parts):
                continue
            size = path.stat().st_size
            relative = str(path.relative_to(folder))
            if size > MAX_FILE_BYTES or total + size > MAX_SUBMISSION_FILES_BYTES:
                notes.append(f"{relative} ({size / 2**20:.0f} MiB) was left out: a file may be at most "
                             f"{MAX_FILE_BYTES // 2**20} MiB and a submission's files "
                             f"{MAX_SUBMISSION_FILES_BYTES // 2**20} MiB in all.")
                continue
            total += size - len(files.get(relative, b""))
            files[relative] = path.read_bytes()
    return files, notes


def write_course_config(folder, *, source=None, release=None, solutions=None, graders=None, profile=None):
    """Make `folder` a course directory that uses the kit's configuration.

    Its ``nbgrader_config.py`` applies the kit's settings from the installed
    package (`nndl.nbgrader_settings`), then points the source, release and
    solution folders wherever given (by default nbgrader's usual
    folders inside `folder`), so nbgrader's own commands work there as in
    any course; `graders` points at the hidden graders' folder (by default
    ``autograder/`` inside `folder`); `profile` sets the grading profile
    (``c.GradeInSandbox.profile``; nbgrader's default is ``full``).
    """
    lines = ["# A course folder graded by the nndl kit.",
             "from nndl.nbgrader_settings import apply_kit_settings",
             "",
             "c = get_config()  # noqa: F821",
             "apply_kit_settings(c)",
             "c.CourseDirectory.course_id = 'nndl'"]
    for trait, value in (("source_directory", source), ("release_directory", release),
                         ("solution_directory", solutions)):
        if value is not None:
            lines.append(f"c.CourseDirectory.{trait} = {str(value)!r}")
    if graders is not None:
        lines.append(f"c.GradeInSandbox.graders_root = {str(graders)!r}")
    if profile is not None:
        lines.append(f"c.GradeInSandbox.profile = {profile!r}")
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nbgrader_config.py").write_text("\n".join(lines) + "\n")
    return folder
