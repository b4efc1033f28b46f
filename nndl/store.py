"""What a course keeps on disk between runs: verdicts, and submissions not graded.

- `VerdictStore`: each graded notebook's `Verdict` under its key
  (`nndl.contracts.notebook_key`), so that a batch stopped at any moment and
  started again replays what it has instead of running those notebooks
  again, and recording a replayed verdict gives the gradebook exactly what
  recording it the first time gave.
- `NotGradedRecords`: submissions that could not be graded, with the reason,
  kept until they are.

Both write JSON atomically (`write_json_atomically`): a reader never sees half a file.
"""

import json
import os
import pathlib
import time

from nndl.contracts import Verdict


def write_json_atomically(path, data, **dumps):
    """Write `data` as JSON to `path` (folders made as needed); a reader never sees half of it."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(data, **dumps))
    os.replace(partial, path)


class VerdictStore:
    """Verdicts in a folder, one JSON file each."""

    def __init__(self, folder):
        self.folder = pathlib.Path(folder)

    def _path(self, key):
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key):
        """The `Verdict` stored under `key`, or None."""
        try:
            return Verdict.from_json(self._path(key).read_text())
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def has(self, key):
        return self._path(key).is_file()

    def put(self, key, verdict):
        write_json_atomically(self._path(key), verdict.to_dict())


class NotGradedRecords:
    """Submissions that could not be graded, kept until they are: ``.nndl/not-graded/<assignment>/``."""

    def __init__(self, root, assignment):
        self.folder = pathlib.Path(root) / ".nndl" / "not-graded" / str(assignment)

    def put(self, student, reason):
        write_json_atomically(self.folder / f"{student}.json",
                              {"student": student, "reason": reason, "at": time.time()})

    def clear(self, student):
        (self.folder / f"{student}.json").unlink(missing_ok=True)

    def all(self):
        """``{student: reason}`` of every submission still not graded."""
        found = {}
        for path in sorted(self.folder.glob("*.json")):
            try:
                entry = json.loads(path.read_text())
                found[entry["student"]] = entry["reason"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return found
