"""`nndl init [DIR]`: make DIR a course graded by the kit, or bring the kit into an nbgrader course.

- ``nbgrader_config.py``: a new one that applies the kit's settings
  (`nndl.nbgrader_settings.apply_kit_settings`), or the course's own,
  extended: the kit's settings go right after its ``c = get_config()`` line,
  so that everything the instructor set (course id, ``db_url``, exchange,
  preprocessors, headers) still follows and still holds. nbgrader's default
  solution folder (``solution/``) is kept for a course that had it.
- ``autograder/`` (the hidden graders' folder) with a short README on writing graders.
- ``--with NAME``: one of the kit's own assignments, copied from the kit's
  checkout: its source and its hidden graders; what data it needs is said.

Run again, it changes nothing. A config it cannot extend safely (one that
sets nbgrader's autograde pipeline or its ``Execute`` step, which the kit
replaces, or whose settings the kit's would change) stops it before it writes
anything, with what to change by hand. `init_course` is the function;
``nndl init`` (`nndl.cli`) prints what it did and what to run next.
"""

import filecmp
import json
import pathlib
import re
import shutil

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from nndl.course import KIT_ROOT, CourseError

CONFIG = "nbgrader_config.py"
#: Files never copied from the kit's checkout.
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
#: Where a config's ``c = get_config()`` line is: the kit's settings go right after the first.
GET_CONFIG = re.compile(r"^c\s*=\s*get_config\(\s*\)[^\n]*\n?", re.MULTILINE)
#: Settings of nbgrader's in-kernel Execute that one of the kit's limits replaces (the others have none).
EXECUTE_SETTINGS = {"timeout": "cell_timeout"}
#: A call of apply_kit_settings that is not commented out.
_APPLIED = re.compile(r"^[^#\n]*\bapply_kit_settings\(", re.MULTILINE)

SETUP_LINES = ("from nndl.nbgrader_settings import apply_kit_settings", "apply_kit_settings(c)")

NEW_CONFIG = '''"""The course's configuration: nbgrader's commands and the nndl kit's read it (made by `nndl init`)."""

from nndl.nbgrader_settings import apply_kit_settings

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file
apply_kit_settings(c)

c.CourseDirectory.course_id = {course_id!r}

# Limits for every assignment (defaults in the kit's nndl/settings.py, Limits), e.g.
# c.GradeInSandbox.cell_timeout = 120
# and per assignment in autograder/<assignment>/assignment.toml.
'''

EXTENSION = '''
# Added by `nndl init`: the nndl kit's settings. Its sandboxed grading step replaces nbgrader's
# in-kernel Execute in the autograde pipeline; what this file sets below still overrides the kit.
from nndl.nbgrader_settings import apply_kit_settings  # noqa: E402
apply_kit_settings(c)
'''
#: Added to an extended config that left nbgrader's default solution folder as it was.
KEEP_SOLUTIONS = 'c.CourseDirectory.solution_directory = "solution"  # nbgrader\'s default, as this course had\n'

GRADERS_README = '''# Hidden graders

One folder per assignment, named as its folder in `source/`:

    autograder/<assignment>/
        test_<assignment>.py   the hidden tests (pytest); one or more test_*.py
        reference.py           your reference implementation, if the tests want one (`import reference`)
        assignment.toml        this assignment's limits, if not the course's (optional)

An assignment without `test_*.py` here is graded as nbgrader grades it: the
tests in its grade cells run inside the student's kernel (in the kit's
sandbox), where the student's own code can defeat them. Hidden tests run in a
process of their own and reach the notebook only through the `student`
fixture, with data going both ways; they never import student code.

Each test scores part of one autograded cell of the notebook (a grade cell
with "Autograder tests"), named by its grade id:

```python
import pytest

import reference


@pytest.mark.grade_cell("correct_squares", weight=1)
def test_squares(student, rng):
    for n in rng.integers(1, 50, size=5).tolist():
        got = student.call("squares", n)       # squares(n), run in the student's kernel
        want = reference.squares(n)
        assert got == want, f"squares({n}): expected {want}, received {got!r}"
```

- `student.call(name, *args, **kwargs)`: calls the notebook's function on data
  (numbers, strings, lists, dicts, numpy arrays); the result comes back as data.
  `student.value(name)`: a global's value; `student.model(name)`: a Keras model,
  checked and loaded safely.
- `rng`: a numpy Generator seeded afresh for every grading: draw the inputs from
  it, so that answers hard-coded from what one run printed earn nothing.
- A cell earns its points times the share of its tests' weight that passed.
  Every autograded cell needs a test: once an assignment has hidden graders, a
  cell that no test scores earns 0, and what its own code printed is replaced
  by the hidden tests' verdict. Keep visible checks there for the students.
- Write assert messages for the student: what was checked, what was expected,
  what was received.

Limits, in `assignment.toml` (for the whole course: `c.GradeInSandbox.<limit>`
in `nbgrader_config.py`):

```toml
[limits]
cell_timeout = 120         # seconds per cell
sandbox_memory_mb = 4096
```

Grade with `nndl autograde <assignment>` (or `nbgrader autograde <assignment>`).
'''

_DATASET = re.compile(r"""load_data\(\s*\\?["'](\w+)\\?["']""")


class InitRefused(CourseError):
    """`nndl init` cannot do what it was asked without risk; nothing was written. The message says why."""


class _ConfigText(PyFileConfigLoader):
    """nbgrader's config loader, reading a config's text given here instead of its file (`load_subconfig` as usual)."""

    def __init__(self, filename, path=None, text=None, **kwargs):
        super().__init__(filename, path=path, **kwargs)
        self.text = text

    def _find_file(self):
        if self.text is None:
            return super()._find_file()
        self.full_filename = str(pathlib.Path(self.path) / self.filename)  # it need not exist yet

    def _read_file_as_dict(self):
        if self.text is None:
            return super()._read_file_as_dict()
        namespace = dict(c=self.config, load_subconfig=self.load_subconfig, get_config=lambda: self.config,
                         __file__=self.full_filename)
        exec(compile(self.text, self.full_filename, "exec"), namespace, namespace)  # noqa: S102 - as nbgrader does


def load_text(folder, text):
    """The config `text` gives when it is `folder`'s ``nbgrader_config.py``, loaded as nbgrader loads it."""
    try:
        return _ConfigText(CONFIG, path=str(folder), text=text).load_config()
    except Exception as error:  # the instructor's file: any error it raises is theirs to see
        raise InitRefused(f"{pathlib.Path(folder) / CONFIG} could not be loaded: "
                          f"{type(error).__name__}: {error}. Fix it, then run nndl init again.") from None


def _settings(config):
    """``{"Section.key": value}`` of everything a loaded config sets."""
    found = {}
    for section, values in config.items():
        if isinstance(values, Config):
            for key, value in values.items():
                found[f"{section}.{key}"] = value
        else:
            found[section] = values
    return found


def _by_hand(config_file, why, steps):
    lines = [f"nndl init cannot extend {config_file} safely: {why}", "Nothing was written. By hand:"]
    lines += [f"  - {step}" for step in steps]
    lines.append("Then run nndl init again (it leaves a config that applies the kit's settings as it is).")
    return "\n".join(lines)


def _kit_pipeline(config, config_file):
    from nndl.nbgrader_settings import check_kit_pipeline

    try:
        check_kit_pipeline(config, config_file)
    except ValueError:
        return False
    return True


def plan_config(folder, course_id=None):
    """What ``nbgrader_config.py`` in `folder` should hold: ``(text, what)``, text None when it is right as it is.

    Raises:
        InitRefused: the config sets what the kit replaces, or cannot be extended without changing a setting.
    """
    folder = pathlib.Path(folder)
    config_file = folder / CONFIG
    if not config_file.exists():
        return NEW_CONFIG.format(course_id=course_id or folder.name), f"wrote {config_file}"
    text = config_file.read_text()
    original = load_text(folder, text)
    if _kit_pipeline(original, config_file):
        return None, f"{config_file} already applies the kit's settings; left as it is"
    add_by_hand = [f"add after `c = get_config()`: {SETUP_LINES[0]}; {SETUP_LINES[1]}"]
    if _APPLIED.search(text):
        raise InitRefused(_by_hand(
            config_file, "it calls apply_kit_settings(c), but a setting after that call puts nbgrader's "
            "autograde pipeline back (Autograde.autograde_preprocessors), so student code would run "
            "outside the sandbox.", ["remove or change that setting so the pipeline keeps "
                                     "nndl.record.step.GradeInSandbox in place of nbgrader's Execute"]))
    settings = _settings(original)
    steps = []
    if "Autograde.autograde_preprocessors" in settings:
        steps.append("c.Autograde.autograde_preprocessors is set: remove it (the kit sets nbgrader's pipeline "
                     "with its own step in place of Execute), or write your list with "
                     "nndl.record.step.GradeInSandbox in place of Execute")
    for name, value in sorted(settings.items()):
        section, _, key = name.partition(".")
        if section not in ("Execute", "ExecutePreprocessor"):
            continue
        limit = EXECUTE_SETTINGS.get(key)
        steps.append(f"c.{name} = {value!r} no longer applies (the kit runs notebooks in its sandbox, not in "
                     "nbgrader's Execute): remove it" + (f", and set c.GradeInSandbox.{limit} = {value!r} instead"
                                                         if limit else ""))
    if steps:
        raise InitRefused(_by_hand(config_file, "it sets parts of nbgrader's autograde step, which the kit "
                                                "replaces.", add_by_hand + steps))
    found = list(GET_CONFIG.finditer(text))
    if not found:
        raise InitRefused(_by_hand(config_file, "it has no line `c = get_config()` to put the kit's settings "
                                                "after.", ["add at its top: c = get_config()"] + add_by_hand))
    extension = EXTENSION
    if "CourseDirectory.solution_directory" not in settings:
        extension += KEEP_SOLUTIONS
    at = found[0].end()
    before = text[:at] if text[:at].endswith("\n") else text[:at] + "\n"
    rest = text[at:]
    new_text = before + extension + ("\n" if rest.strip() and not rest.startswith("\n") else "") + rest
    extended = load_text(folder, new_text)
    now = _settings(extended)
    changed = [name for name, value in settings.items() if not _same(now.get(name), value)]
    if changed or not _kit_pipeline(extended, config_file):
        why = (f"the kit's settings would change what it sets ({', '.join(sorted(changed))}): that is set "
               "before its first `c = get_config()` line, or changed in place after it." if changed else
               "with the kit's settings added, nbgrader's autograde pipeline still lacks the kit's step.")
        raise InitRefused(_by_hand(config_file, why, add_by_hand + [
            "check that the settings you had still hold after that line"]))
    return new_text, f"extended {config_file} with the kit's settings (yours still follow them)"


def _same(a, b):
    try:
        return bool(a == b)
    except Exception:  # values that cannot be compared are taken as changed
        return False


def kit_assignments(kit):
    """The kit's assignments in its checkout `kit`: those with a source folder and hidden graders."""
    kit = pathlib.Path(kit)
    source = kit / "source"
    if not source.is_dir():
        return []
    return sorted(p.name for p in source.iterdir()
                  if p.is_dir() and any(p.glob("*.ipynb")) and any((kit / "autograder" / p.name).glob("test_*.py")))


def _same_tree(a, b):
    """Whether folders `a` and `b` hold the same files with the same bytes (caches left aside)."""
    def files(root):
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.suffix != ".pyc"
                and not {"__pycache__", ".ipynb_checkpoints"} & set(p.relative_to(root).parts)}
    left, right = files(a), files(b)
    return left == right and all(filecmp.cmp(a / f, b / f, shallow=False) for f in left)


def datasets_needed(*folders):
    """Names of the kit's datasets (`nndl_datasets.DATASETS`) that files in `folders` load."""
    import nndl_datasets

    found = set()
    for folder in folders:
        for path in pathlib.Path(folder).rglob("*"):
            if not path.is_file():
                continue
            if path.suffix in (".py", ".ipynb"):
                found.update(_DATASET.findall(path.read_text(errors="replace")))
            elif path.suffix == ".json" and path.parent.name == "calibration":  # thresholds measured on data
                try:
                    found.update(json.loads(path.read_text()).get("data") or {})
                except (ValueError, AttributeError, TypeError):
                    pass
    return sorted(found & set(nndl_datasets.DATASETS))


def _data_lines(name, datasets):
    import nndl_datasets

    lines = []
    for dataset in datasets:
        path = nndl_datasets.dataset_path(dataset)
        if path is not None and path.is_file():
            lines.append(f"{name} needs the {dataset} dataset: found at {path}.")
        else:
            where = f"NNDL_DATA_DIR ({nndl_datasets.data_dir()}) has no {dataset}.npz" if path is not None \
                else "NNDL_DATA_DIR is not set"
            lines.append(f"{name} needs the {dataset} dataset, and {where}: grading machines need NNDL_DATA_DIR "
                         f"set to a folder holding {dataset}.npz (arrays {', '.join(nndl_datasets.ARRAYS)}); "
                         "sandboxes have no network.")
    return lines


def init_course(folder, *, assignments=(), course_id=None, kit=KIT_ROOT):
    """Make `folder` a course graded by the kit; returns the lines saying what was done.

    Args:
        folder: the course directory (made if missing); an existing nbgrader course is extended.
        assignments: names of the kit's own assignments to copy in (source and hidden graders).
        course_id: the course id of a new config (default: the folder's name).
        kit: the kit's checkout, holding ``source/`` and ``autograder/`` (the installed
            package has neither).

    Raises:
        InitRefused: nothing was written; the message says why and what to do by hand.
    """
    folder = pathlib.Path(folder).resolve()
    if folder.exists() and not folder.is_dir():
        raise InitRefused(f"{folder} is not a folder. Nothing was written.")
    text, said = plan_config(folder, course_id)
    config = load_text(folder, text if text is not None else (folder / CONFIG).read_text())
    graders_root, source_root = _course_folders(folder, config)

    copies = []
    known = kit_assignments(kit) if assignments else []
    for name in assignments:
        if name not in known:
            where = (f"the kit's checkout {kit} has: {', '.join(known)}" if known else
                     f"{kit} is not a checkout of the kit (no source/ and autograder/ there; the installed "
                     "package holds no assignments): pass --kit with the path of one")
            raise InitRefused(f"No kit assignment {name!r}: {where}. Nothing was written.")
        for what, src, dst in (("source", pathlib.Path(kit) / "source" / name, source_root / name),
                               ("hidden graders", pathlib.Path(kit) / "autograder" / name, graders_root / name)):
            copies.append((name, what, src, dst))

    lines = []
    folder.mkdir(parents=True, exist_ok=True)
    if text is not None:
        (folder / CONFIG).write_text(text)
    lines.append(said)
    readme = graders_root / "README.md"
    if readme.exists():
        lines.append(f"{graders_root} is there already; left as it is")
    else:
        graders_root.mkdir(parents=True, exist_ok=True)
        readme.write_text(GRADERS_README)
        lines.append(f"wrote {readme}: how to write hidden graders")
    for name, what, src, dst in copies:
        if dst.exists():
            lines.append(f"{name}: {what} already in {dst}" + ("" if _same_tree(src, dst) else
                         " (it differs from the kit's; left as it is: remove it to copy the kit's again)"))
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst, ignore=IGNORED)
        lines.append(f"{name}: copied its {what} to {dst}")
    for name in assignments:
        lines += _data_lines(name, datasets_needed(pathlib.Path(kit) / "source" / name,
                                                   pathlib.Path(kit) / "autograder" / name))
    return lines


def _course_folders(folder, config):
    """The course's hidden-graders folder and source folder, as its config sets them."""
    from nndl.record.step import GradeInSandbox

    config = Config(config) if config is not None else Config()
    config.CourseDirectory.root = str(folder)
    graders = GradeInSandbox(config=config).graders_root_path()
    source = config.CourseDirectory.get("source_directory", "source")
    return pathlib.Path(graders), folder / source


def command(folder, *, assignments=(), course_id=None, kit=None, out=print):
    """``nndl init``: `init_course`, then what it did and the commands that follow; returns the exit status.

    Raises:
        InitRefused: nothing was written (the CLI prints the message and exits non-zero).
    """
    folder = pathlib.Path(folder).resolve()
    for line in init_course(folder, assignments=assignments, course_id=course_id, kit=kit or KIT_ROOT):
        out(line)
    here = "" if folder == pathlib.Path.cwd() else f" --course {folder}"
    out("Next (nbgrader's own commands work as before, with the kit's step grading in its sandbox):")
    for name in assignments:
        out(f"  nndl{here} build {name}            # release/ and the solutions, registered in the gradebook")
    out(f"  nbgrader collect ASSIGNMENT   # or put submissions in {folder}/submitted/<student>/ASSIGNMENT/")
    out(f"  nndl{here} autograde ASSIGNMENT")
    return 0
