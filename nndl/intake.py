"""Step 1 of DESIGN.md: look at a submitted notebook without running anything.

Intake reads the file a student handed in, checks it (a size cap, valid JSON,
a cap on cells, cell ids, the kernel, nbgrader's marks, and at the end
nbformat's own validator) and repairs what can be repaired without touching
an answer: cell ids nbformat does not accept, fields and metadata a notebook
cannot have, saved outputs (the notebook is run again anyway). A notebook
that cannot be read, or still does not validate after the repairs, is
replaced by the assignment's released notebook, so the submission is graded
as unanswered rather than failing later, when nbgrader writes it; the file
received is kept beside it. Every finding
becomes a sentence for the student, stored in the notebook's metadata
(``metadata.nndl.intake``) where the grading step picks it up.

nbgrader's own sanitising (restoring locked and grade cells from the master
by grade id, re-adding deleted grade cells, resetting the kernelspec) runs
after this, inside ``nbgrader autograde``.
"""

import dataclasses
import functools
import hashlib
import json
import os
import pathlib
import re
import reprlib
import shutil
import uuid

import nbformat
import nbformat.v4

#: Largest notebook accepted, in bytes.
MAX_NOTEBOOK_BYTES = 20 * 2**20
#: Most cells accepted in one notebook.
MAX_CELLS = 2000
#: Where the file as received is kept when intake had to change it.
RECEIVED_DIR = ".nndl-received"
#: The notebook format intake checks against and writes: 4.5, the first with cell ids.
FORMAT_MINOR = 5
#: How many cells a message names before it says "and N more".
NAMED_CELLS = 5


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
    if not path.exists() and not path.is_symlink():
        return _stand_in(path, release_path, record)
    messages = []
    nb, problem = _read(path)
    if nb is not None:
        messages, problem = _repair(nb, _released_marks(release_path), master_grade_ids)
    replaced = problem is not None
    if replaced:
        messages = [f"{path.name} could not be graded as handed in: {problem}. It was graded as "
                    "if no answer had been given. Download it again from the release, redo the "
                    "answers, check that it opens in JupyterLab, and hand it in again."]
        nb = nbformat.read(str(release_path), as_version=4)
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


def _stand_in(path, release_path, record):
    """Put the unanswered release where a notebook was not handed in, so it is recorded as 0 points."""
    messages = [f"{path.name} was not handed in; it was graded as if no answer had been given."]
    nb = nbformat.read(str(release_path), as_version=4)
    nb.metadata["nndl"] = {"intake": messages}
    record.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".ipynb.intake")
    nbformat.write(nb, str(tmp))
    os.replace(tmp, path)
    record.write_text(json.dumps({"written": _sha256(path), "messages": messages, "replaced": True}))
    return IntakeResult(path, messages, True, True)


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
    except RecursionError:
        return None, "it is JSON nested too deeply to be a notebook"
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return None, "it is JSON but not a Jupyter notebook"
    if len(data["cells"]) > MAX_CELLS:
        return None, f"it has {len(data['cells'])} cells, more than the {MAX_CELLS} allowed"
    if data.get("nbformat") != 4:
        return None, f"it is in notebook format {data.get('nbformat')!r}; version 4 is expected"
    try:
        nb = nbformat.from_dict(data)
        _validate(nb)
    except RecursionError:
        return None, "it is JSON nested too deeply to be a notebook"
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


def _repair(nb, released_marks, master_grade_ids):
    """Repair a readable notebook until nbformat and nbgrader accept it.

    Returns:
        The sentences saying what was changed, and None; or, when the
        notebook still does not validate, a phrase saying why (it is then
        graded as unanswered).
    """
    messages = _repair_version(nb)
    messages += _repair_ids(nb)
    messages += _repair_cells(nb)
    messages += _repair_metadata(nb)
    messages += _check_kernel(nb)
    messages += _repair_marks(nb, released_marks)
    messages += _check_grade_cells(nb, master_grade_ids)
    messages += _repair_text(nb)
    try:
        nbformat.validate(nb)
    except Exception as error:  # a ValidationError, or a RecursionError on absurd nesting
        first = (str(error).splitlines() or [type(error).__name__])[0]
        return messages, f"it is not a valid notebook ({first[:300]})"
    return messages, None


def _repair_version(nb):
    """Read the notebook as format 4.5 (cell ids); a sentence if it said something else than 4.0 to 4.5."""
    minor = nb.get("nbformat_minor")
    nb["nbformat_minor"] = FORMAT_MINOR
    if isinstance(minor, int) and not isinstance(minor, bool) and 0 <= minor <= FORMAT_MINOR:
        return []
    return [f"The notebook gave its format's minor version as {_show(minor)}; it was read as format "
            f"4.{FORMAT_MINOR}."]


@functools.lru_cache(maxsize=1)
def _schema():
    """nbformat's own JSON schema of the format intake writes (4.5)."""
    v4 = nbformat.v4
    return json.loads(pathlib.Path(v4.__file__).with_name(v4.nbformat_schema[(4, FORMAT_MINOR)]).read_text())


def valid_cell_id(cell_id):
    """Does nbformat accept `cell_id`? Its schema's rule (``definitions.cell_id``), read from nbformat itself.

    The pattern is matched against the whole id: JSON Schema's ``$`` ends
    the text, where Python's would also allow a final line break.
    """
    rule = _schema()["definitions"]["cell_id"]
    return (isinstance(cell_id, str) and rule["minLength"] <= len(cell_id) <= rule["maxLength"]
            and re.fullmatch(rule["pattern"], cell_id) is not None)


def _repair_ids(nb):
    """Give every cell an id nbformat accepts, unique in the notebook; sentences for those changed.

    An absent id (notebooks older than format 4.5 have none) is added
    silently; an id nbformat rejects (a look-alike letter from another
    alphabet, a space, too long, empty, not text) or one an earlier cell has
    is replaced, and said. nbgrader matches cells by their grade ids, never
    by these, so nothing is lost.
    """
    taken = {cell.get("id") for cell in nb.cells if valid_cell_id(cell.get("id"))}
    seen, invalid, repeated = set(), [], []
    for index, cell in enumerate(nb.cells):
        cell_id = cell.get("id")
        if valid_cell_id(cell_id) and cell_id not in seen:
            seen.add(cell_id)
            continue
        if "id" in cell:
            (repeated if valid_cell_id(cell_id) else invalid).append((index, cell_id))
        new_id = uuid.uuid4().hex[:12]
        while new_id in taken:
            new_id = uuid.uuid4().hex[:12]
        taken.add(new_id)
        seen.add(new_id)
        cell["id"] = new_id
    messages = []
    if invalid:
        rule = _schema()["definitions"]["cell_id"]
        messages.append(
            f"{_cells([i for i, _ in invalid])} had {_a('an id', 'ids', invalid)} that the notebook format "
            f"does not accept ({_examples(cell_id for _, cell_id in invalid)}); "
            f"{_a('it was given a new one', 'they were given new ones', invalid)}. A cell id is "
            f"{rule['minLength']} to {rule['maxLength']} characters, each an ASCII letter, a digit, '-' or '_'. "
            "Edit notebooks in Jupyter, not as text.")
    if repeated:
        messages.append(
            f"{_cells([i for i, _ in repeated])} had the same id as an earlier cell "
            f"({_examples(cell_id for _, cell_id in repeated)}); "
            f"{_a('it was given a new one', 'they were given new ones', repeated)}. Copy cells with Jupyter's "
            "copy, not by editing the file.")
    return messages


def _repair_cells(nb):
    """Make every cell valid nbformat, changing only what grading does not use; sentences for what changed.

    Each cell is checked with nbformat's validator. In one that fails,
    fields a cell cannot have and metadata entries nbformat rejects are
    removed (one by one, checked the same way), and saved outputs and the
    execution count are cleared (the notebook is run again for grading).
    Its source and its nbgrader marks are kept.
    """
    found = {}
    for index, cell in enumerate(nb.cells):
        kind = f"{cell.cell_type}_cell"
        if _valid(cell, kind):
            continue
        for what, names in _repair_cell(cell, kind):
            cells, all_names = found.setdefault(what, ([], []))
            cells.append(index)
            all_names.extend(n for n in names if n not in all_names)
    return [f"{_cells(indices)} {what}" + (f" ({_examples(names, quote=False)})" if names else "") + "."
            + " Edit notebooks in Jupyter, not as text."
            for what, (indices, names) in found.items()]


def _repair_cell(cell, kind):
    """Repair one cell nbformat rejects; ``(what was done, [names])`` for each change."""
    definition = _schema()["definitions"][kind]
    done = []
    extra = [key for key in cell if key not in definition["properties"]]
    if extra:
        for key in extra:
            del cell[key]
        done.append(("had fields a notebook cell cannot have; they were removed", [_show(k) for k in extra]))
    blank = {"id": "blank", "cell_type": cell["cell_type"], "metadata": {}, "source": ""}
    if cell["cell_type"] == "code":
        blank.update(outputs=[], execution_count=None)
    if not isinstance(cell.get("metadata"), dict):
        cell["metadata"] = nbformat.NotebookNode()
        done.append(("had metadata that is not a mapping; it was cleared", []))
    rejected = [key for key, value in cell["metadata"].items()
                if not _valid({**blank, "metadata": {key: value}}, kind)]
    if rejected:
        for key in rejected:
            del cell["metadata"][key]
        done.append(("had metadata entries the notebook format does not accept; they were removed",
                     [_show(k) for k in rejected]))
    if cell["cell_type"] == "code":
        if not _valid({**blank, "outputs": cell.get("outputs")}, kind) or \
                not _valid({**blank, "execution_count": cell.get("execution_count")}, kind):
            cell["outputs"], cell["execution_count"] = [], None
            done.append(("had saved outputs that are not valid; they were cleared (the notebook is run "
                         "again for grading)", []))
    elif "attachments" in cell and not _valid({**blank, "attachments": cell["attachments"]}, kind):
        del cell["attachments"]
        done.append(("had attachments that are not valid; they were removed", []))
    return done


def _repair_metadata(nb):
    """Remove the notebook's fields and metadata entries nbformat rejects; sentences for them."""
    messages = []
    extra = [key for key in nb if key not in _schema()["properties"]]
    for key in extra:
        del nb[key]
    if extra:
        messages.append(f"The notebook had fields a notebook cannot have ({_examples(extra)}); they were removed.")
    if not isinstance(nb.get("metadata"), dict):
        nb["metadata"] = nbformat.NotebookNode()
        messages.append("The notebook's metadata was not a mapping; it was cleared.")
    blank = {"nbformat": 4, "nbformat_minor": FORMAT_MINOR, "cells": []}
    rejected = [key for key, value in nb.metadata.items() if not _valid({**blank, "metadata": {key: value}})]
    for key in rejected:
        del nb.metadata[key]
    if rejected:
        messages.append(f"The notebook's metadata {_a('entry', 'entries', rejected)} "
                        f"{_examples([_show(k) for k in rejected], quote=False)} "
                        f"{_a('was not valid; it was', 'were not valid; they were', rejected)} removed.")
    return messages


def _valid(instance, ref=None):
    """Does nbformat's validator (format 4.5) accept `instance`: a notebook, or the schema definition `ref`?"""
    try:
        if ref is None:
            nbformat.validate(instance)
        else:
            nbformat.validate(instance, ref=ref, version=4, version_minor=FORMAT_MINOR)
    except Exception:  # a ValidationError, or a RecursionError on absurd nesting
        return False
    return True


def _check_kernel(nb):
    spec = nb.metadata.get("kernelspec", {})
    language = spec.get("language") or nb.metadata.get("language_info", {}).get("name")
    if language and language != "python":
        return [f"The notebook's kernel was set to {_show(language)}; it was graded with the course's "
                "Python kernel."]
    return []


def _released_marks(release_path):
    """``{grade_id: nbgrader marks}`` of the released notebook's cells."""
    marks = {}
    for cell in nbformat.read(str(release_path), as_version=4).cells:
        found = cell.metadata.get("nbgrader")
        if isinstance(found, dict) and isinstance(found.get("grade_id"), str):
            marks.setdefault(found["grade_id"], found)
    return marks


def _repair_marks(nb, released_marks):
    """Keep only nbgrader marks as released; sentences for those put back or removed.

    nbgrader grades the cells its marks (``metadata.nbgrader``) name, and
    fails when recording a notebook whose marks it does not expect: marks
    that are not a mapping, a grade id the assignment does not have or has
    twice, points that are not a number, an answer cell marked as graded.
    So a cell keeps its marks only if they say what the released notebook's
    cell of that grade id says (its checksum and cell type may be missing:
    nbgrader computes them), and only the first cell of a grade id does.
    Marks changed otherwise are put back as released; marks of a grade id
    the release does not have, or of a copied cell, are removed.
    """
    seen, changed, removed = set(), [], []
    for index, cell in enumerate(nb.cells):
        marks = cell.metadata.get("nbgrader")
        if marks is None:
            continue
        grade_id = marks.get("grade_id") if isinstance(marks, dict) else None
        if isinstance(grade_id, str) and grade_id in released_marks and grade_id not in seen:
            seen.add(grade_id)
            if not _as_released(marks, released_marks[grade_id]):
                cell.metadata["nbgrader"] = nbformat.from_dict(json.loads(json.dumps(released_marks[grade_id])))
                changed.append(index)
            continue
        del cell.metadata["nbgrader"]
        removed.append(index)
    messages = []
    if changed:
        # Said without blame: a release regenerated after the student fetched it differs too.
        messages.append(f"{_cells(changed)} had nbgrader marks (metadata.nbgrader) that differ from the "
                        "assignment's; they were put back as released.")
    if removed:
        messages.append(f"{_cells(removed)} carried nbgrader marks (metadata.nbgrader) that are not the "
                        "assignment's, or that copy an earlier cell's; they were removed, so only the "
                        "assignment's own cells are graded. Copy code, not cells, and do not edit cell metadata.")
    return messages


def _as_released(marks, released):
    """Do a cell's nbgrader marks say what the released ones say? Checksum and cell type may be absent."""
    def core(found):
        return {key: value for key, value in found.items() if key not in ("checksum", "cell_type")}
    return core(marks) == core(released) and all(isinstance(marks.get(key, ""), str)
                                                  for key in ("checksum", "cell_type"))


def _check_grade_cells(nb, master_grade_ids):
    present = set()
    for cell in nb.cells:
        marks = cell.metadata.get("nbgrader", {})
        grade_id = marks.get("grade_id") if isinstance(marks, dict) else None
        if isinstance(grade_id, str):
            present.add(grade_id)
    missing = [grade_id for grade_id in master_grade_ids if grade_id not in present]
    if not missing:
        return []
    return [f"Cell {grade_id!r} was missing from the notebook; it was put back from the original. "
            "Do not delete the assignment's cells." for grade_id in missing]


def _repair_text(nb):
    """Escape lone surrogates (``"\\ud800"`` in the JSON), which no UTF-8 file can hold; a sentence if any.

    JSON lets a file spell them; nbformat then fails to write the notebook.
    """
    try:
        json.dumps(nb, ensure_ascii=False).encode("utf-8")
        return []
    except UnicodeEncodeError:
        pass
    changed, stack = 0, [nb]
    while stack:
        node = stack.pop()
        for key, value in list(node.items() if isinstance(node, dict) else enumerate(node)):
            if isinstance(key, str) and not _encodable(key):
                del node[key]
                key = _escaped(key)
                node[key] = value
                changed += 1
            if isinstance(value, str) and not _encodable(value):
                node[key] = _escaped(value)
                changed += 1
            elif isinstance(value, (dict, list)):
                stack.append(value)
    return [f"The notebook held characters no file can hold (lone UTF-16 surrogates, in {changed} "
            f"place{'s' if changed > 1 else ''}); they were written as \\u escapes."]


def _encodable(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escaped(text):
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 40


def _show(value):
    """A short, ASCII-only rendering of a value from the file, for a message: look-alike letters show as escapes."""
    if isinstance(value, str):
        return ascii(value[:40]) + ("…" if len(value) > 40 else "")
    return ascii(_short.repr(value))[1:-1] if isinstance(value, (dict, list)) else _short.repr(value)


def _examples(values, quote=True):
    """The first few `values` for a message, shown with `_show` (or as given, if not `quote`)."""
    values = list(values)
    shown = [_show(v) if quote else str(v) for v in values[:3]]
    return ", ".join(shown) + (f" and {len(values) - 3} more" if len(values) > 3 else "")


def _cells(indices):
    """``Cell 3``, ``Cells 3 and 5``, ``Cells 1, 2, 3, 4, 5 and 7 more`` (numbered from 1)."""
    numbers = [str(i + 1) for i in indices]
    if len(numbers) == 1:
        return f"Cell {numbers[0]}"
    if len(numbers) <= NAMED_CELLS:
        return f"Cells {', '.join(numbers[:-1])} and {numbers[-1]}"
    return f"Cells {', '.join(numbers[:NAMED_CELLS])} and {len(numbers) - NAMED_CELLS} more"


def _a(one, many, items):
    return one if len(items) == 1 else many


def clean_folder(folder, notebook_names):
    """Make a submission folder safe to copy and grade; a sentence for each thing changed.

    - Symbolic links are deleted: nbgrader copies a submission by following
      links, which would bring whatever they point at (graders, the gradebook,
      another student's work) into the graded folder and the sandbox.
    - Special files (named pipes, sockets, devices) are deleted: copying a
      named pipe blocks until something writes to it, and nbgrader's copy
      stops on one.
    - Notebooks that are not the assignment's (`notebook_names`, at the top
      of the folder) are set aside in ``.nndl-received/``: nbgrader refuses a
      submission holding a notebook its gradebook does not know. Where one
      notebook is missing and one other is there, that one was renamed
      (``hw (1).ipynb``): it takes the missing one's name.
    """
    folder = pathlib.Path(folder)
    messages = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = [d for d in dirs if d != RECEIVED_DIR or pathlib.Path(root) != folder]
        for name in dirs + files:
            path = pathlib.Path(root) / name
            relative = path.relative_to(folder)
            if path.is_symlink():
                path.unlink()
                messages.append(f"{relative} was a link to another place; links are not "
                                "accepted in a submission and it was removed. Hand in real files.")
            elif not path.is_dir() and not path.is_file():
                path.unlink()
                messages.append(f"{relative} was not a regular file (a pipe, socket or device) and was "
                                "removed. Hand in real files.")
    extra = [p for p in sorted(folder.glob("*.ipynb")) if p.name not in notebook_names and p.is_file()]
    missing = [name for name in notebook_names if not (folder / name).exists()]
    if len(extra) == 1 and len(missing) == 1:  # renamed, e.g. "hw (1).ipynb" from a second download
        os.replace(extra[0], folder / missing[0])
        messages.append(f"{extra[0].name} was graded as {missing[0]}, the assignment's notebook. "
                        "Hand it in under its own name.")
    for path in sorted(folder.glob("*.ipynb")):
        if path.name not in notebook_names and (path.is_file() or path.is_dir()):
            keep = folder / RECEIVED_DIR
            keep.mkdir(exist_ok=True)
            target = keep / path.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(path, target)
            messages.append(f"{path.name} is not one of the assignment's notebooks "
                            f"({', '.join(sorted(notebook_names))}); it was not graded.")
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
