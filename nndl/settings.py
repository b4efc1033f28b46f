"""How one assignment is graded: limits and resources, built once per batch.

`GradingSettings` is frozen and made by `load` from the course's
``nbgrader_config.py`` (``c.GradeInSandbox.<limit> = ...``) and the
assignment's ``autograder/<assignment>/assignment.toml``. The defaults live
here and nowhere else: in the fields of `Limits` and `Resources`. A key that
is not one of them, or a value of the wrong type, is an error naming the key,
the file and the keys allowed, before anything runs::

    [limits]                  # `Limits`: what one submission's run may use
    cell_timeout = 120
    submission_timeout = 900
    sandbox_memory_mb = 4096

    [resources]               # `Resources`: what one grading job asks of a worker
    gpu = false               # one GPU passed into the sandbox (a Ray task asks num_gpus=1)
    cpus = 1                  # CPUs a Ray task asks for
    worker_memory_mb = 0      # memory a Ray task asks for (0: none asked)
"""

import dataclasses
import difflib
import pathlib
import tomllib


#: Largest single file copied into or out of a sandbox, in bytes.
MAX_FILE_BYTES = 256 * 2**20


class SettingsError(ValueError):
    """A grading setting is unknown or of the wrong type; the message names key, file and fix."""


class UnknownAssignment(LookupError):
    """No hidden graders exist for the assignment named."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Limits on one submission's grading. Times are wall-clock seconds."""

    #: Seconds one cell may run.
    cell_timeout: float = 120
    #: Seconds the whole notebook may run.
    submission_timeout: float = 900
    #: Memory (MiB) the sandboxed kernel and its children may hold.
    sandbox_memory_mb: int = 4096
    #: Seconds one grader request to the kernel may take.
    call_timeout: float = 60
    #: Seconds all hidden graders of one notebook may take.
    grader_timeout: float = 600
    #: Memory (MiB) the hidden-grader process and its children may hold; one
    #: student model's weights may take a sixth of it.
    grader_memory_mb: int = 4096
    #: Output (MiB) the hidden-grader process may print, and the largest file it may write.
    grader_output_mb: int = 64
    #: Times the kernel is restarted after it died or hung, per notebook.
    max_restarts: int = 2
    #: Processes (and threads) the sandbox's user may run at once.
    max_processes: int = 512
    #: Largest file the kernel may write, in MiB.
    max_file_mb: int = 512
    #: Output kept per cell and per notebook, in MiB; the rest is dropped.
    cell_output_mb: float = 2
    notebook_output_mb: float = 20
    #: What the kernel's folder may hold, in MiB.
    scratch_mb: int = 2048


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one grading job asks of the worker that runs it."""

    #: One GPU is passed into the sandbox; a Ray task asks for one.
    gpu: bool = False
    #: CPUs a Ray task asks for.
    cpus: float = 1
    #: Memory (MiB) a Ray task asks for; 0 asks for none.
    worker_memory_mb: int = 0


@dataclasses.dataclass(frozen=True)
class GradingSettings:
    """Everything that decides how one assignment's submissions are graded."""

    assignment: str
    grader_dir: str
    limits: Limits = Limits()
    resources: Resources = Resources()
    #: Grade even where the bubblewrap sandbox cannot start (trusted notebooks only).
    allow_unsandboxed: bool = False
    #: Folder of training-split-only datasets mounted into the sandbox; "" for none.
    sandbox_data_dir: str = ""

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        data = dict(data)
        return cls(**{**data, "limits": Limits(**data["limits"]), "resources": Resources(**data["resources"])})

    def job_timeout(self, notebooks=1):
        """Seconds a worker may take on a job of `notebooks` notebooks before it counts as hung.

        Every notebook may run for its whole submission timeout and its
        graders for theirs; two minutes more cover starting kernels and the
        grader process.
        """
        return (self.limits.submission_timeout + self.limits.grader_timeout) * max(1, notebooks) + 120


#: Settings that changed name: the old name, in each table, and the new one.
RENAMED = {"Limits": {"memory_mb": "sandbox_memory_mb"}, "Resources": {"memory_mb": "worker_memory_mb"}}


def _checked(cls, values, where):
    """`cls(**values)` after checking every key and type; errors name `where`."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in fields:
            close = [RENAMED[cls.__name__][key]] if key in RENAMED[cls.__name__] else \
                difflib.get_close_matches(key, fields, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise SettingsError(f"Unknown setting {key!r} in {where}.{hint} "
                                f"Allowed: {', '.join(sorted(fields))}.")
        kind = fields[key].type
        ok = isinstance(value, bool) if kind is bool else (
            isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or
                                                                                 float(value).is_integer()))
        if not ok or (kind is not bool and value < 0):
            raise SettingsError(f"Setting {key!r} in {where} is {value!r}; it must be a "
                                f"{'true or false' if kind is bool else 'non-negative ' + kind.__name__}.")
    return cls(**{k: fields[k].type(v) for k, v in values.items()})


def known_assignments(graders_root):
    """Names of the assignments that have hidden graders under `graders_root`."""
    root = pathlib.Path(graders_root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("test_*.py")))


def grader_dir(graders_root, assignment):
    """The folder of `assignment`'s hidden graders.

    Raises:
        UnknownAssignment: no such folder holding ``test_*.py``.
    """
    folder = pathlib.Path(graders_root) / str(assignment)
    if not assignment or "/" in assignment or assignment.startswith(".") or not any(folder.glob("test_*.py")):
        known = ", ".join(known_assignments(graders_root)) or "none"
        raise UnknownAssignment(
            f"No hidden graders for assignment {assignment!r} in {graders_root}. "
            f"Known assignments: {known}. Check the name, or add {graders_root}/{assignment}/test_*.py.")
    return folder


def read_assignment_toml(path):
    """``(limits, resources)`` mappings of an ``assignment.toml``; empty when there is none.

    Raises:
        SettingsError: not TOML, or a table other than [limits] and [resources].
    """
    path = pathlib.Path(path)
    if not path.exists():
        return {}, {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SettingsError(f"{path} is not valid TOML: {error}") from None
    unknown = sorted(set(data) - {"limits", "resources"})
    if unknown:
        raise SettingsError(f"Unknown table [{unknown[0]}] in {path}. Allowed: [limits], [resources].")
    for table in ("limits", "resources"):
        if not isinstance(data.get(table, {}), dict):
            raise SettingsError(f"{table} in {path} must be a table: [{table}]")
    return data.get("limits", {}), data.get("resources", {})


def load(assignment, graders_root, *, course_limits=None, course_file="nbgrader_config.py",
         allow_unsandboxed=False, sandbox_data_dir=""):
    """The grading settings of one assignment.

    Args:
        assignment: its name.
        graders_root: the folder holding one hidden-grader folder per assignment.
        course_limits: limits set for the whole course (``c.GradeInSandbox.<limit>``).
        course_file: where `course_limits` came from, for messages.

    Raises:
        UnknownAssignment: no graders for `assignment`.
        SettingsError: an unknown key or a wrong value, naming it and its file.
    """
    folder = grader_dir(graders_root, assignment)
    toml = folder / "assignment.toml"
    limits, resources = read_assignment_toml(toml)
    course = _checked(Limits, dict(course_limits or {}), f"{course_file} (c.GradeInSandbox)")
    own = _checked(Limits, limits, f"{toml} [limits]")
    return GradingSettings(
        assignment=str(assignment), grader_dir=str(folder),
        limits=dataclasses.replace(course, **{key: getattr(own, key) for key in limits}),
        resources=_checked(Resources, resources, f"{toml} [resources]"),
        allow_unsandboxed=bool(allow_unsandboxed), sandbox_data_dir=str(sandbox_data_dir or ""))
