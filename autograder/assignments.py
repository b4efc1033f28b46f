"""Where each assignment's hidden graders live, and its grading settings.

An assignment's graders are ``autograder/<assignment>/test_*.py``. Beside them,
an optional ``assignment.toml`` sets what differs from the course defaults::

    [limits]            # autograder.run.Limits fields
    cell_timeout = 120
    submission_timeout = 900
    memory_mb = 4096
    call_timeout = 60

    [resources]         # what one submission's grading job needs of a worker
    gpu = false         # one GPU, passed into the sandbox (a Ray task asks num_gpus=1)
    cpus = 1            # CPUs a Ray task asks for
    memory_mb = 0       # memory a Ray task asks for (0: none asked)
"""

import dataclasses
import pathlib
import tomllib

GRADERS_ROOT = pathlib.Path(__file__).resolve().parent


class UnknownAssignment(LookupError):
    """No hidden graders exist for the assignment named."""


@dataclasses.dataclass
class AssignmentSettings:
    """What the engine needs to know about one assignment."""

    name: str
    grader_dir: pathlib.Path
    limits: dict
    gpu: bool
    cpus: float = 1
    memory_mb: int = 0


def known_assignments(root=GRADERS_ROOT):
    """Names of the assignments that have hidden graders."""
    return sorted(p.name for p in pathlib.Path(root).iterdir()
                  if p.is_dir() and any(p.glob("test_*.py")))


def settings_for(name, root=GRADERS_ROOT):
    """The grader folder and settings of assignment `name`.

    Raises:
        UnknownAssignment: when there is no such grader folder.
    """
    grader_dir = pathlib.Path(root) / str(name)
    if not name or "/" in name or name.startswith(".") or not any(grader_dir.glob("test_*.py")):
        known = ", ".join(known_assignments(root)) or "none"
        raise UnknownAssignment(
            f"No hidden graders for assignment {name!r} in {root}. "
            f"Known assignments: {known}. Check the name, or add {root}/{name}/test_*.py.")
    config = {}
    toml = grader_dir / "assignment.toml"
    if toml.exists():
        config = tomllib.loads(toml.read_text())
    wanted = config.get("resources", {})
    return AssignmentSettings(
        name=name,
        grader_dir=grader_dir,
        limits=dict(config.get("limits", {})),
        gpu=bool(wanted.get("gpu", False)),
        cpus=float(wanted.get("cpus", 1)),
        memory_mb=int(wanted.get("memory_mb", 0)),
    )
