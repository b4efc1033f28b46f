"""Step 1 of DESIGN.md: look at a submitted notebook without running anything.

Intake reads the file a student handed in, checks it (a size cap, valid JSON,
valid nbformat, a cap on cells, unique cell ids, the kernel) and repairs what
can be repaired. What cannot be read at all is replaced by the assignment's
released notebook, so the submission is graded as unanswered rather than
crashing the batch; the file received is kept beside it. Every finding
becomes a sentence for the student, stored in the notebook's metadata
(``metadata.nndl.intake``) where the grading step picks it up.

nbgrader's own sanitising (restoring locked and grade cells from the master
by grade id, re-adding deleted grade cells, resetting the kernelspec) runs
after this, inside ``nbgrader autograde``.
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import uuid

import nbformat

#: Largest notebook accepted, in bytes.
MAX_NOTEBOOK_BYTES = 20 * 2**20
#: Most cells accepted in one notebook.
MAX_CELLS = 2000
#: Where the file as received is kept when intake had to change it.
RECEIVED_DIR = ".nndl-received"


@dataclasses.dataclass
class IntakeResult:
    """What intake found in one notebook."""

    path: pathlib.Path
    messages: list
    replaced: bool
    changed: bool


def inspect_notebook(path, release_path, master_grade_ids=()):
    """Check and repair one submitted notebook in place.

    Args:
        path: the submitted ``.ipynb``.
        release_path: the released (student) version of the same notebook,
            used in place of a submission that cannot be read.
        master_grade_ids: the grade ids of the master's grade cells, to tell
            the student which were deleted (nbgrader restores them).

    Returns:
        An `IntakeResult`. The file at `path` is rewritten only when something
        had to change; the original is kept under ``.nndl-received/``.
    """
    path = pathlib.Path(path)
    keep = path.parent / RECEIVED_DIR
    record = keep / f"{path.name}.intake.json"
    earlier = _earlier_intake(path, record)
    if earlier is not None:
        # The file is what intake itself wrote last time: taken in already.
        return IntakeResult(path, earlier["messages"], earlier["replaced"], False)
    messages = []
    nb, problem = _read(path)
    replaced = nb is None
    if replaced:
        messages.append(f"{path.name} could not be graded as handed in: {problem}. It was graded as "
                        "if no answer had been given. Download it again from the release, redo the "
                        "answers, check that it opens in JupyterLab, and hand it in again.")
        nb = nbformat.read(str(release_path), as_version=4)
    else:
        messages += _repair_ids(nb)
        messages += _check_kernel(nb)
        messages += _check_grade_cells(nb, master_grade_ids)
    # Whatever the student put under this key is replaced: only intake writes it.
    changed = replaced or bool(messages) or "nndl" in nb.metadata
    nb.metadata["nndl"] = {"intake": messages}
    if changed:
        keep.mkdir(exist_ok=True)
        kept = keep / path.name
        if kept.is_dir() and not kept.is_symlink():
            shutil.rmtree(kept)
        if path.is_symlink() or not path.is_file():
            # A link or a folder in the notebook's place: moved aside, never followed.
            os.replace(path, kept)
        else:
            shutil.copy2(path, kept, follow_symlinks=False)
        tmp = path.with_suffix(".ipynb.intake")
        nbformat.write(nb, str(tmp))
        os.replace(tmp, path)
        record.write_text(json.dumps({"written": _sha256(path), "messages": messages, "replaced": replaced}))
    return IntakeResult(path, messages, replaced, changed)


def _sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _earlier_intake(path, record):
    """What intake found last time, if `path` is still the file it wrote then."""
    if path.is_symlink() or not path.is_file() or not record.is_file() or record.is_symlink():
        return None
    try:
        earlier = json.loads(record.read_text())
        if earlier.get("written") == _sha256(path):
            return {"messages": list(earlier["messages"]), "replaced": bool(earlier["replaced"])}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _read(path):
    """The notebook, or None and a sentence saying why it cannot be read."""
    if path.is_symlink() or not path.is_file():
        return None, "it is not a regular file"
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        return None, (f"it is {size / 2**20:.0f} MiB, more than the {MAX_NOTEBOOK_BYTES // 2**20} MiB "
                      "a notebook may be (clear large outputs before handing in)")
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"it is not valid JSON ({error}); it was probably damaged or edited outside Jupyter"
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return None, "it is JSON but not a Jupyter notebook"
    if len(data["cells"]) > MAX_CELLS:
        return None, f"it has {len(data['cells'])} cells, more than the {MAX_CELLS} allowed"
    if data.get("nbformat") != 4:
        return None, f"it is in notebook format {data.get('nbformat')!r}; version 4 is expected"
    try:
        nb = nbformat.from_dict(data)
        _validate(nb)
    except Exception as error:  # nbformat raises several types for one cause
        return None, f"it is not a valid notebook ({str(error).splitlines()[0][:300]})"
    return nb, None


def _validate(nb):
    for cell in nb.cells:
        if cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise ValueError(f"unknown cell type {cell.get('cell_type')!r}")
        if not isinstance(cell.get("source", ""), (str, list)):
            raise ValueError("a cell's source is not text")
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(str(s) for s in cell["source"])
        if cell["cell_type"] == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
        cell.setdefault("metadata", {})


def _repair_ids(nb):
    messages = []
    seen = set()
    for index, cell in enumerate(nb.cells):
        cell_id = cell.get("id")
        if not isinstance(cell_id, str) or not cell_id or cell_id in seen:
            new_id = uuid.uuid4().hex[:12]
            if cell_id:
                messages.append(f"Cell {index + 1} had the same id as an earlier cell ({cell_id!r}); "
                                "it was given a new one. Copy cells with Jupyter's copy, not by editing the file.")
            cell["id"] = new_id
        seen.add(cell["id"])
    nb["nbformat_minor"] = max(nb.get("nbformat_minor", 0), 5)
    return messages


def _check_kernel(nb):
    spec = nb.metadata.get("kernelspec", {})
    language = spec.get("language") or nb.metadata.get("language_info", {}).get("name")
    if language and language != "python":
        return [f"The notebook's kernel was set to {language!r}; it was graded with the course's "
                "Python kernel."]
    return []


def _check_grade_cells(nb, master_grade_ids):
    present = {cell.metadata.get("nbgrader", {}).get("grade_id") for cell in nb.cells}
    missing = [grade_id for grade_id in master_grade_ids if grade_id not in present]
    if not missing:
        return []
    return [f"Cell {grade_id!r} was missing from the notebook; it was put back from the original. "
            "Do not delete the assignment's cells." for grade_id in missing]


def remove_links(folder):
    """Delete the symbolic links in a submission folder; a sentence for each.

    nbgrader copies a submission by following links, which would bring whatever
    they point at (graders, the gradebook, another student's work) into the
    graded folder and the sandbox.
    """
    messages = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            path = pathlib.Path(root) / name
            if path.is_symlink():
                path.unlink()
                messages.append(f"{path.relative_to(folder)} was a link to another place; links are not "
                                "accepted in a submission and it was removed. Hand in real files.")
    return messages


def master_grade_ids(master_path):
    """The grade ids of the graded and answer cells of a master notebook."""
    nb = nbformat.read(str(master_path), as_version=4)
    ids = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") or meta.get("solution") or meta.get("locked"):
            ids.append(meta.get("grade_id"))
    return [i for i in ids if i]
