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

import nndl_datasets


#: Grading scales. A notebook reads its sizes from the profile (`nndl_datasets.profile()`):
#: ``full`` is the exercise as written (GPU workers, and a student in JupyterLab);
#: ``smoke`` trains briefly on a subset, so a whole batch fits a CPU machine.
PROFILES = nndl_datasets.PROFILES

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
    #: Keras 3's backend in the sandboxed kernel and the grader process (one of `KERAS_BACKENDS`).
    #: The notebooks are written for Keras 3 (``import keras``, ``keras.ops``), so they run on each;
    #: ``jax`` grades on a GPU machine that has no CUDA build of TensorFlow.
    keras_backend: str = "tensorflow"
    #: Submissions sharing one GPU (a GPU assignment's). Ray tasks ask ``num_gpus = 1/gpu_slots``;
    #: the local pool runs this many workers per visible GPU; each kernel's GPU memory is capped
    #: at its share. Measured on one H200 with the CIFAR-10 exercise model: 4 jobs sharing give
    #: 2.6x the throughput of one, 8 give 5.4x, 16 give 5.8x (then the host's cores, one per
    #: job, are the limit). 4 is the default: it fits the course's models in a 16 GiB GPU with
    #: room to spare; raise it to the host's cores per GPU on large GPUs.
    gpu_slots: int = 4


@dataclasses.dataclass(frozen=True)
class Grading:
    """How an assignment's models are graded (``[grading]``)."""

    #: ``retrain``: the notebook runs in the sandbox under the profile and the models it
    #: trains are graded. ``submitted``: the ``.keras`` files handed in beside the notebook
    #: are checked and loaded (`student.submitted_model`), and accuracy comes from their
    #: architecture retrained with fresh weights in a sandbox (`student.retrained_model`).
    mode: str = "retrain"
    #: Submitted mode only: also grade the handed-in weights' accuracy as such. They may have
    #: been trained on the public test images; graders flag a test accuracy above the
    #: validation accuracy by more than the calibrated spread.
    grade_submitted_weights: bool = False


#: The Keras backends an assignment may choose.
KERAS_BACKENDS = ("tensorflow", "jax", "torch")


@dataclasses.dataclass(frozen=True)
class GradingSettings:
    """Everything that decides how one assignment's submissions are graded."""

    assignment: str
    grader_dir: str
    limits: Limits = Limits()
    resources: Resources = Resources()
    grading: Grading = Grading()
    #: Grade even where the bubblewrap sandbox cannot start (trusted notebooks only).
    allow_unsandboxed: bool = False
    #: Folder of training-split-only datasets mounted into the sandbox; "" for none.
    sandbox_data_dir: str = ""
    #: The grading profile (one of `PROFILES`), seen by the notebook and the graders.
    profile: str = "full"
    #: No hidden graders: a plain nbgrader assignment, scored by its grade cells' own tests,
    #: run in the sandbox (`nndl.record.plain`).
    plain: bool = False

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        data = dict(data)
        return cls(**{**data, "limits": Limits(**data["limits"]), "resources": Resources(**data["resources"]),
                      "grading": Grading(**data.get("grading", {}))})

    def job_timeout(self, notebooks=1):
        """Seconds a worker may take on a job of `notebooks` notebooks before it counts as hung.

        Every notebook may run for its whole submission timeout and its
        graders for theirs; two minutes more cover starting kernels and the
        grader process.
        """
        return (self.limits.submission_timeout + self.limits.grader_timeout) * max(1, notebooks) + 120


#: The values a text setting may take.
CHOICES = {"keras_backend": KERAS_BACKENDS, "mode": ("retrain", "submitted")}

#: Settings that changed name: the old name, in each table, and the new one.
RENAMED = {"Limits": {"memory_mb": "sandbox_memory_mb"}, "Resources": {"memory_mb": "worker_memory_mb"}}


def _checked(cls, values, where):
    """`cls(**values)` after checking every key and type; errors name `where`."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in fields:
            close = [RENAMED[cls.__name__][key]] if key in RENAMED.get(cls.__name__, {}) else \
                difflib.get_close_matches(key, fields, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise SettingsError(f"Unknown setting {key!r} in {where}.{hint} "
                                f"Allowed: {', '.join(sorted(fields))}.")
        kind = fields[key].type
        if kind is str:
            choices = CHOICES.get(key, ())
            if not isinstance(value, str) or (choices and value not in choices):
                raise SettingsError(f"Setting {key!r} in {where} is {value!r}; it must be one of "
                                    f"{', '.join(map(repr, choices))}.")
            continue
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


TABLES = ("limits", "resources", "grading")


def read_assignment_toml(path):
    """``(limits, resources, grading)`` mappings of an ``assignment.toml``; empty when there is none.

    Raises:
        SettingsError: not TOML, or a table other than [limits], [resources] and [grading].
    """
    path = pathlib.Path(path)
    if not path.exists():
        return {}, {}, {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SettingsError(f"{path} is not valid TOML: {error}") from None
    unknown = sorted(set(data) - set(TABLES))
    if unknown:
        raise SettingsError(f"Unknown table [{unknown[0]}] in {path}. Allowed: "
                            f"{', '.join(f'[{t}]' for t in TABLES)}.")
    for table in TABLES:
        if not isinstance(data.get(table, {}), dict):
            raise SettingsError(f"{table} in {path} must be a table: [{table}]")
    return tuple(data.get(table, {}) for table in TABLES)


def load(assignment, graders_root, *, course_limits=None, course_file="nbgrader_config.py",
         allow_unsandboxed=False, sandbox_data_dir="", profile="full", allow_plain=False):
    """The grading settings of one assignment.

    Args:
        assignment: its name.
        graders_root: the folder holding one hidden-grader folder per assignment.
        course_limits: limits set for the whole course (``c.GradeInSandbox.<limit>``).
        course_file: where `course_limits` came from, for messages.
        profile: the grading profile, one of `PROFILES`.
        allow_plain: an assignment with no hidden graders is a plain one (``plain`` set;
            its ``assignment.toml`` still read) where the `graders_root` folder exists.

    Raises:
        UnknownAssignment: no graders for `assignment` (and not allowed as a plain one).
        SettingsError: an unknown key or a wrong value, naming it and its file.
    """
    if profile not in PROFILES:
        raise SettingsError(f"Unknown grading profile {profile!r} (c.GradeInSandbox.profile or --profile). "
                            f"Allowed: {', '.join(PROFILES)}.")
    try:
        folder, plain = grader_dir(graders_root, assignment), False
    except UnknownAssignment:
        name = str(assignment or "")
        if not allow_plain or not name or "/" in name or name.startswith("."):
            raise
        if not pathlib.Path(graders_root).is_dir():
            raise UnknownAssignment(
                f"No hidden graders for assignment {name!r}, and no graders folder {graders_root}. "
                "Run `nndl init` in the course to make it: assignments without hidden graders are then "
                f"graded by their own grade cells' tests, in the sandbox; or add {graders_root}/{name}/test_*.py."
            ) from None
        folder, plain = pathlib.Path(graders_root) / name, True
    toml = folder / "assignment.toml"
    limits, resources, grading = read_assignment_toml(toml)
    course = _checked(Limits, dict(course_limits or {}), f"{course_file} (c.GradeInSandbox)")
    own = _checked(Limits, limits, f"{toml} [limits]")
    if resources.get("gpu_slots", 1) == 0:
        raise SettingsError(f"Setting 'gpu_slots' in {toml} [resources] is 0; it must be 1 or more.")
    return GradingSettings(
        assignment=str(assignment), grader_dir=str(folder),
        limits=dataclasses.replace(course, **{key: getattr(own, key) for key in limits}),
        resources=_checked(Resources, resources, f"{toml} [resources]"),
        grading=_checked(Grading, grading, f"{toml} [grading]"),
        allow_unsandboxed=bool(allow_unsandboxed), sandbox_data_dir=str(sandbox_data_dir or ""),
        profile=profile, plain=plain)
