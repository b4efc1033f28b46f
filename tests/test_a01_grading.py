"""a01 (perceptrons and XOR) graded end to end: the solution, the release, flawed, broken and hostile files.

Each sample's expected score per grade cell is worked out from the graders in
``autograder/a01_perceptrons_xor/samples.py`` (and `nndl.cli.samples` for the
broken files), not copied from a run. The batch is graded twice, by local
worker processes and by tasks on a real local Ray cluster, and every check
below runs on both; the two gradebooks and feedback notebooks must be identical.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import copy
import dataclasses
import itertools
import json

import nbformat
import pytest

from nndl import build, course
from nndl.batch import coordinator as grade
from nndl.cli import samples
from nndl.record import gradebook

pytestmark = pytest.mark.slow

from kit import A01, KIT, feedback


def make_course(folder):
    """A course folder with a01's source, built there (so the kit's own folders stay untouched)."""
    shutil.copytree(KIT / "source" / A01, folder / "source" / A01)
    course.write_course_config(folder, graders=KIT / "autograder")
    build.build(folder, assignment=A01)
    return folder


HOSTILE_CELLS = {
    # Disarm the checks, as in-kernel autograders are disarmed: the graders run elsewhere.
    "patches-checks": ("import builtins, numpy, numpy.testing\n"
                       "numpy.testing.assert_allclose = lambda *a, **k: None\n"
                       "numpy.testing.assert_array_equal = lambda *a, **k: None\n"
                       "numpy.allclose = lambda *a, **k: True\n"
                       "builtins.AssertionError = type('Never', (Exception,), {})"),
    # Reach for the graders and the gradebook, then take the kernel's parent down.
    "reaches-out": ("import glob, os\n"
                    "found = glob.glob('/*/*/autograder/*/test_*.py') + glob.glob('/*/autograder/*/test_*.py')\n"
                    "for target in ('../../../gradebook.db', '/tmp/nndl-owned', os.path.expanduser('~/../x')):\n"
                    "    try:\n"
                    "        open(target, 'w').write('owned')\n"
                    "    except OSError:\n"
                    "        pass\n"
                    "os.kill(os.getppid(), 9)"),
}


def hostile_samples(batch):
    """A flawed and a right submission, each with a hostile cell at the end: they earn what their answers earn."""
    by_name = {s.student: s for s in batch}
    flawed = next(s for s in batch if s.student.endswith("or-as-and"))
    made = []
    for (kind, source), base in zip(HOSTILE_CELLS.items(), (flawed, by_name["s01-solution"])):
        nb = json.loads(base.content)
        nb["cells"].append(nbformat.v4.new_code_cell(source))
        made.append(samples.Sample(f"h-{kind}", f"{base.description}, with a hostile last cell ({kind})",
                                   json.dumps(nb), copy.deepcopy(base.expected)))
    return made


def broken_at_each_step(batch):
    """Four submissions, each broken where a step of the batch would once have stopped on it.

    Returns ``(samples, prepare)``: `prepare(root)` makes what cannot be written as
    text (a named pipe). Intake repairs what it can: those are graded on their answers.
    """
    by_name = {s.student: s for s in batch}
    solution, release = by_name["s01-solution"], by_name["s02-untouched-release"]
    no_grade_id = json.loads(solution.content)
    cell = next(c for c in no_grade_id["cells"] if c["metadata"].get("nbgrader", {}).get("grade"))
    del cell["metadata"]["nbgrader"]["grade_id"]
    dying = json.loads(solution.content)
    for cell in dying["cells"]:
        if cell["cell_type"] == "code":
            cell["source"] = "import os\nos._exit(1)\n" + "".join(cell["source"])
    made = [
        # Intake: a named pipe where the notebook should be.
        samples.Sample("x-intake-pipe-for-notebook", "a named pipe in the notebook's place", None,
                       copy.deepcopy(release.expected), "was not handed in"),
        # Restoring the master's cells: a grade cell without its grade id (nbgrader raised KeyError).
        samples.Sample("x-restore-grade-cell-without-id", "a grade cell's grade id deleted",
                       json.dumps(no_grade_id), copy.deepcopy(solution.expected), "nbgrader marks"),
        # Run: every cell kills the kernel.
        samples.Sample("x-run-kernel-dies-in-every-cell", "every code cell exits the kernel",
                       json.dumps(dying), copy.deepcopy(release.expected), "The kernel was lost"),
        # Recording: a named pipe and a stray notebook beside the answers (nbgrader's copy stopped on them).
        samples.Sample("x-record-pipe-beside", "a named pipe and a stray notebook handed in beside",
                       solution.content, copy.deepcopy(solution.expected), "not a regular file"),
    ]

    def prepare(root):
        folder = root / "submitted"
        os.mkfifo(folder / "x-record-pipe-beside" / A01 / "data.bin")
        (folder / "x-record-pipe-beside" / A01 / "scratch.ipynb").write_text("{")
        (folder / "x-intake-pipe-for-notebook" / A01).mkdir(parents=True)
        os.mkfifo(folder / "x-intake-pipe-for-notebook" / A01 / "perceptrons_xor.ipynb")

    return made, prepare


def class_of_forty(batch):
    """36 submissions that grade cleanly (the samples, then copies of them) and 4 broken at each step."""
    broken, prepare = broken_at_each_step(batch)
    copies = [dataclasses.replace(s, student=f"c{n:02d}-{s.student}") for n, s in
              zip(range(40 - len(batch) - len(broken)), itertools.cycle(batch))]
    return batch + copies + broken, prepare


def _graded(tmp_path_factory, forty=False, **pool):
    root = make_course(tmp_path_factory.mktemp("a01") / "course")
    notebook, batch = samples.assignment_samples(KIT, A01)
    batch = batch + hostile_samples(batch)
    prepare = None
    if forty:
        batch, prepare = class_of_forty(batch)
    else:  # the solution, the release, the broken files and the hostile ones: what differs between pools
        batch = batch[:2] + [s for s in batch[2:] if s.message or s.student.startswith("h-")]
    samples.write_submissions(root, A01, [s for s in batch if s.content is not None], notebook)
    if prepare:
        prepare(root)
    results = grade.autograde(root, A01, **pool)
    _, rows = gradebook.cell_scores(f"sqlite:///{root}/gradebook.db", A01)
    return root, batch, {r.student: r for r in results}, {row["student"]: row for row in rows}


@pytest.fixture(scope="module")
def graded_locally(tmp_path_factory):
    """A class of 40 graded in one batch by two local worker processes: every a01 sample, copies, 4 broken."""
    return _graded(tmp_path_factory, forty=True, workers=2)


@pytest.fixture(scope="module")
def graded_on_ray(tmp_path_factory, ray_cluster):
    """The samples that could differ between pools (solution, release, broken, hostile), as Ray tasks."""
    return _graded(tmp_path_factory, ray_address=ray_cluster)


@pytest.fixture(scope="module", params=["graded_locally", "graded_on_ray"])
def graded_batch(request):
    """The graded batch, from each pool in turn."""
    return request.getfixturevalue(request.param)


def test_local_workers_and_ray_record_identical_grades(graded_locally, graded_on_ray):
    """Same batch, two pools: the same gradebook rows and the same feedback in every notebook?"""
    local_root, _, local_results, local_rows = graded_locally
    ray_root, batch, ray_results, ray_rows = graded_on_ray
    assert {s: local_rows[s] for s in ray_rows} == ray_rows
    assert {s: local_results[s].graded for s in ray_results} == {s: r.graded for s, r in ray_results.items()}
    for sample in batch:
        path = pathlib.Path("autograded", sample.student, A01, "perceptrons_xor.ipynb")
        assert feedback(local_root / path) == feedback(ray_root / path), sample.student


def test_hostile_cells_changed_nothing_outside(graded_batch):
    """After the hostile cells ran: no file written outside the sandbox, the gradebook still readable?"""
    root, _, results, rows = graded_batch
    assert not pathlib.Path("/tmp/nndl-owned").exists()
    assert (root / "gradebook.db").read_bytes()[:16] == b"SQLite format 3\x00"
    assert results["h-reaches-out"].graded


def test_samples_cover_what_the_issue_asks():
    """Solution, release, at least four flawed files and the four broken kinds are all there?"""
    _, batch = samples.assignment_samples(KIT, A01)
    names = [s.student for s in batch]
    assert names[:2] == ["s01-solution", "s02-untouched-release"]
    full = batch[0].expected
    flawed = [s for s in batch[2:] if 0 < sum(s.expected.values()) < sum(full.values())]
    assert len({tuple(sorted(s.expected.items())) for s in flawed}) >= 4
    for kind in ("not-json", "deleted-grade-cell", "duplicated-cell-id", "kernel-dies"):
        assert any(n.endswith(kind) for n in names), kind
    assert all(set(s.expected) == set(full) for s in batch)


def test_every_submission_was_graded(graded_batch):
    """Did the batch go on past every broken file, grading all of them?"""
    _, batch, results, rows = graded_batch
    assert sorted(results) == sorted(s.student for s in batch)
    assert [s for s, r in results.items() if not r.graded] == []
    assert sorted(rows) == sorted(results)


@pytest.mark.parametrize("index", range(len(samples.assignment_samples(KIT, A01)[1]) + len(HOSTILE_CELLS)))
def test_sample_earns_exactly_its_expected_score(graded_locally, index):
    """Does this sample earn exactly the points worked out for each grade cell?"""
    _, batch, _, rows = graded_locally
    sample = batch[index]
    got = {g: rows[sample.student]["scores"][g] for g in sample.expected}
    assert got == pytest.approx(sample.expected), sample.description


def test_a_class_of_forty_with_four_broken_at_each_step(graded_locally):
    """36 graded exactly as worked out, the 4 broken ones graded on what they hold with a reason, nothing stopped."""
    root, batch, results, rows = graded_locally
    assert len(batch) == 40 and all(r.graded for r in results.values())
    for sample in batch:
        got = {g: rows[sample.student]["scores"][g] for g in sample.expected}
        assert got == pytest.approx(sample.expected), (sample.student, sample.description)
    for sample in batch[-4:]:
        graded = root / "autograded" / sample.student / A01 / "perceptrons_xor.ipynb"
        said = graded.read_text() + "\n".join(results[sample.student].messages)
        assert sample.message in said, sample.student


@pytest.mark.parametrize("index", [i for i, s in enumerate(samples.assignment_samples(KIT, A01)[1]) if s.message])
def test_broken_sample_gets_a_clear_message(graded_locally, index):
    """Does the student learn what went wrong with their file, in their feedback notebook?"""
    root, batch, results, _ = graded_locally
    sample = batch[index]
    graded = root / "autograded" / sample.student / A01 / "perceptrons_xor.ipynb"
    text = graded.read_text() + "\n".join(results[sample.student].messages)
    assert sample.message in text


def test_manual_question_is_left_for_formgrader(graded_batch):
    """Is the written question of an answered notebook left for manual grading?"""
    _, _, _, rows = graded_batch
    assert rows["s01-solution"]["scores"]["sigmoid_question"] is None
    assert rows["s01-solution"]["needs_manual"]
    assert rows["s02-untouched-release"]["scores"]["sigmoid_question"] == 0


def test_nbgrader_autograde_agrees(graded_locally, tmp_path):
    """Does plain `nbgrader autograde` record the same grades for readable submissions?"""
    root, batch, _, rows = graded_locally
    other = make_course(tmp_path / "course")
    chosen = [s for s in batch if s.student in ("s01-solution", "s03-or-as-and", "s08-xor-mlp-computes-or")]
    notebook = "perceptrons_xor.ipynb"
    samples.write_submissions(other, A01, chosen, notebook)
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "nbgrader"), "autograde", A01],
                          cwd=other, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    _, theirs = gradebook.cell_scores(f"sqlite:///{other}/gradebook.db", A01)
    assert {r["student"]: r["scores"] for r in theirs} == {s.student: rows[s.student]["scores"] for s in chosen}


def test_a_second_run_of_the_same_batch_changes_nothing(graded_locally, tmp_path):
    """The same command again: everything replayed, nothing run, the gradebook and feedback as they were."""
    root, batch, _, rows = graded_locally
    before = {s.student: feedback(root / "autograded" / s.student / A01 / "perceptrons_xor.ipynb") for s in batch}
    results = {r.student: r for r in grade.autograde(root, A01, workers=2, report_path=tmp_path / "again.json")}
    assert all(r.graded and r.attempts == 0 for r in results.values())
    _, again = gradebook.cell_scores(f"sqlite:///{root}/gradebook.db", A01)
    assert {row["student"]: row for row in again} == rows
    assert before == {s.student: feedback(root / "autograded" / s.student / A01 / "perceptrons_xor.ipynb")
                      for s in batch}
    assert json.loads((tmp_path / "again.json").read_text())["counts"]["replayed"] == 40
