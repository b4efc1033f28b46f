"""Compare two graded course folders: the gradebook, the last JSON report, and what each student reads.

Used to check that a change to the engine grades exactly as before: grade the
same submissions with the old and the new kit (e.g. `nndl demo --workspace
DIR` at two commits), then

    .venv/bin/python bench/compare_graded.py OLD_FOLDER NEW_FOLDER ASSIGNMENT

Gradebook rows are compared cell by cell (auto score, manual score, needs
manual grading, maximum); the report per submission (graded, error, score,
maximum, attempts, replayed, messages); the feedback as the student reads it
(`tests/kit.py::feedback`: each cell's source, its printed text joined, its
other outputs). Exits 1 and names what differs.
"""

import json
import pathlib
import sys

from nbgrader.api import Gradebook

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from kit import feedback  # noqa: E402


def gradebook_rows(folder, assignment):
    with Gradebook(f"sqlite:///{folder}/gradebook.db") as gb:
        return {s.student_id: {g.name: (g.auto_score, g.manual_score, g.needs_manual_grade, g.max_score)
                               for nb in s.notebooks for g in nb.grades}
                for s in gb.assignment_submissions(assignment)}


def report_facts(folder, assignment):
    path = sorted((folder / ".nndl" / "reports" / assignment).glob("*.json"))[-1]
    document = json.loads(path.read_text())
    return {s["student"]: [s[k] for k in ("graded", "error", "score", "max_score", "attempts", "replayed", "messages")]
            for s in document["submissions"]}


def main():
    old, new, assignment = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
    same = True
    for name, facts in (("gradebook", gradebook_rows), ("report", report_facts)):
        a, b = facts(old, assignment), facts(new, assignment)
        print(f"{name}: {'identical' if a == b else 'DIFFERENT'}")
        for student in sorted(set(a) | set(b)):
            if a.get(student) != b.get(student):
                print(f"  {student}: {a.get(student)!r}\n  {' ' * len(student)}  {b.get(student)!r}")
        same &= a == b
    notebooks = sorted((old / "autograded").rglob("*.ipynb"))
    differ = [p.relative_to(old) for p in notebooks if feedback(p) != feedback(new / p.relative_to(old))]
    print(f"feedback: {'identical' if not differ else 'DIFFERENT'} in {len(notebooks)} notebooks")
    for path in differ:
        print(f"  {path}")
    return 0 if same and not differ else 1


if __name__ == "__main__":
    sys.exit(main())
