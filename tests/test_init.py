"""`nndl init` on nbgrader's own quickstart course, and plain nbgrader assignments graded in the sandbox.

The course is made by ``nbgrader quickstart`` at test time (nothing of
nbgrader's is copied into the repository). Its ``ps1`` has no hidden graders:
its grade cells' own tests decide, as in stock nbgrader, but the notebook runs
in the kit's sandbox. The scores are compared with what stock nbgrader gives
in an untouched copy of the same course.
"""

import contextlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import nbformat
import psutil
import pytest

from kit import A01, KIT
from nndl import cli
from nndl.course import load_config
from nndl.init import GRADERS_README, datasets_needed
from nndl.nbgrader_settings import check_kit_pipeline

BIN = pathlib.Path(sys.executable).parent
#: A command line no other process has: the background process the "fork" submission starts.
SLEEPER = ["sleep", "987.6543"]


def nbgrader(*args, cwd):
    """Run nbgrader's own command line in `cwd`; fail the test with its log if it fails."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run([str(BIN / "nbgrader"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="session")
def quickstart(tmp_path_factory):
    """nbgrader's quickstart course, as `nbgrader quickstart course101` makes it (never modified)."""
    where = tmp_path_factory.mktemp("quickstart")
    nbgrader("quickstart", "course101", cwd=where)
    return where / "course101"


@pytest.fixture
def course(quickstart, tmp_path):
    """A fresh copy of the quickstart course."""
    return pathlib.Path(shutil.copytree(quickstart, tmp_path / "course101"))


def snapshot(folder):
    """Every file under `folder`: relative path -> bytes."""
    folder = pathlib.Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- nndl init: the configuration ---------------------------------------------------


def test_init_extends_an_nbgrader_course_keeping_its_settings(course, capsys):
    """Does `nndl init` add the kit's step to nbgrader's quickstart config and keep all the instructor set?"""
    config_file = course / "nbgrader_config.py"
    gradebook = course / "elsewhere.db"
    config_file.write_text(config_file.read_text() + (
        f"\nc.CourseDirectory.db_url = 'sqlite:///{gradebook}'\n"
        "c.Exchange.root = '/srv/exchange-course101'\n"
        "c.LimitOutput.max_lines = 321\n"
        "c.ClearSolutions.begin_solution_delimeter = 'BEGIN MY SOLUTION'\n"))
    before = load_config(course)
    assert cli.main(["init", str(course)]) == 0
    printed = capsys.readouterr().out
    assert "extended" in printed and "autograde" in printed
    after = load_config(course)
    check_kit_pipeline(after, config_file)  # raises if the kit's step is missing or Execute is still there
    for section, key in [("CourseDirectory", "course_id"), ("CourseDirectory", "db_url"), ("Exchange", "root"),
                         ("LimitOutput", "max_lines"), ("ClearSolutions", "begin_solution_delimeter"),
                         ("IncludeHeaderFooter", "header")]:
        assert after[section][key] == before[section][key], (section, key)
    assert after.CourseDirectory.course_id == "course101"
    # nbgrader's default folder for solutions, which this course had, is kept (the kit's own is solutions/).
    assert after.CourseDirectory.solution_directory == "solution"
    # The instructor's file is all still there, after the kit's lines.
    assert config_file.read_text().endswith("c.ClearSolutions.begin_solution_delimeter = 'BEGIN MY SOLUTION'\n")
    assert (course / "autograder" / "README.md").read_text() == GRADERS_README


def test_init_twice_changes_nothing(course):
    """Run twice (with a kit assignment copied in), does `nndl init` leave every file byte-identical?"""
    assert cli.main(["init", str(course), "--with", A01]) == 0
    first = snapshot(course)
    assert cli.main(["init", str(course), "--with", A01]) == 0
    assert snapshot(course) == first
    # What --with copied: the source and the hidden graders, as in the kit.
    for folder in ("source", "autograder"):
        kit_files = {k: v for k, v in snapshot(KIT / folder / A01).items() if "__pycache__" not in k}
        assert snapshot(course / folder / A01) == kit_files


def test_init_makes_a_new_course(tmp_path):
    """In a folder with no course yet, does `nndl init` write a config nbgrader and the kit both accept?"""
    folder = tmp_path / "deep_learning"
    assert cli.main(["init", str(folder), "--course-id", "dl2026"]) == 0
    config = load_config(folder)
    check_kit_pipeline(config, folder / "nbgrader_config.py")
    assert config.CourseDirectory.course_id == "dl2026"
    assert (folder / "autograder" / "README.md").exists()
    first = snapshot(folder)
    assert cli.main(["init", str(folder)]) == 0
    assert snapshot(folder) == first


@pytest.mark.parametrize("before, after, says", [
    ("", "c.Execute.timeout = 60", ["c.Execute.timeout = 60", "c.GradeInSandbox.cell_timeout = 60"]),
    ("", "from nbgrader.preprocessors import Execute, SaveAutoGrades\n"
         "c.Autograde.autograde_preprocessors = [Execute, SaveAutoGrades]",
     ["c.Autograde.autograde_preprocessors", "GradeInSandbox"]),
    # Set before `c = get_config()`, where the kit's settings would go after it and change it.
    ("c.ClearSolutions.code_stub = {'python': 'pass  # your answer'}\n", "", ["ClearSolutions.code_stub"]),
])
def test_init_refuses_what_it_cannot_merge(course, capsys, before, after, says):
    """On a setting it cannot merge, does `nndl init` exit non-zero, say what to add by hand, and write nothing?"""
    config_file = course / "nbgrader_config.py"
    config_file.write_text(before + config_file.read_text() + "\n" + after + "\n")
    files = snapshot(course)
    assert cli.main(["init", str(course), "--with", A01]) != 0
    message = capsys.readouterr().err
    assert "Nothing was written" in message and "apply_kit_settings(c)" in message
    for text in says:
        assert text in message
    assert snapshot(course) == files


def test_init_refuses_an_unknown_kit_assignment(course, capsys):
    """Does asking for an assignment the kit does not have name the ones it has, and write nothing?"""
    before = snapshot(course)
    assert cli.main(["init", str(course), "--with", "a99_nothing"]) != 0
    assert A01 in capsys.readouterr().err
    assert snapshot(course) == before


def test_init_says_which_datasets_an_assignment_needs(tmp_path):
    """Are the datasets a notebook or its graders load, or its thresholds were calibrated on, found?"""
    source, graders = tmp_path / "source", tmp_path / "graders"
    (graders / "calibration").mkdir(parents=True)
    source.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('x = load_data("mnist")')])
    nbformat.write(nb, str(source / "hw.ipynb"))
    (graders / "test_hw.py").write_text("data = nndl_datasets.load_data('fashion_mnist')\nload_data('nope')\n")
    (graders / "calibration" / "smoke.json").write_text(json.dumps({"data": {"cifar10": "f00"}}))
    assert datasets_needed(source, graders) == ["cifar10", "fashion_mnist", "mnist"]
    assert datasets_needed(source) == ["mnist"]


def grade_cell(source, grade_id, points=1):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata.nbgrader = {"grade": True, "solution": False, "locked": True, "grade_id": grade_id,
                              "points": points, "schema_version": 3}
    return cell


def test_cells_a_limit_stopped_or_left_unrun_score_zero():
    """Does a grade cell stopped by a limit, or never run because of one, get an error (0 points, as in
    stock nbgrader a failing test), while cells the kernel skips by design are left as they are?"""
    from nbgrader.utils import determine_grade

    from nndl.contracts import CellProblem
    from nndl.record import plain

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1"), grade_cell("assert x == 1", "ran"), grade_cell("while True: pass", "hung"),
        grade_cell("assert x == 1", "never_ran"), nbformat.v4.new_code_cell("slow()"), grade_cell("", "empty")])
    nb.cells[4].metadata.tags = [plain.SKIP_TAG]
    stopped = [CellProblem(2, "Cell 3 ran out of its 5 s and could not be interrupted; it was skipped."),
               CellProblem(2, "The kernel was lost 3 times; the cells after cell 3 were not run.")]
    plain._mark_limits(nb, stopped)
    plain._mark_unrun(nb, completed={0, 1}, problems=stopped)
    points = {c.metadata.nbgrader["grade_id"]: determine_grade(c)[0] for c in nb.cells if "nbgrader" in c.metadata}
    assert points == {"ran": 1, "hung": 0, "never_ran": 0, "empty": 1}
    assert "were not run" in nb.cells[3].outputs[0].evalue
    assert nb.cells[4].outputs == []  # tagged skip-execution by the instructor: stock nbgrader skips it too


def test_recording_a_plain_verdict_gives_back_outputs_and_counts():
    """Does a stored plain verdict, replayed, give each cell its outputs and execution count, and intake's notes?"""
    from nndl.contracts import Verdict
    from nndl.record import plain

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"), grade_cell("assert x == 2", "check")])
    nb.metadata.nndl = {"intake": ["Your notebook was not valid JSON; the release was graded."]}
    error = nbformat.v4.new_output("error", ename="AssertionError", evalue="", traceback=[])
    verdict = Verdict(outcomes=[], problems=[], outputs={"0": [], "1": [error]},
                      stats={"execution_counts": {"0": 1, "1": 2}})
    plain.record_plain(nb, Verdict.from_json(verdict.to_json()))
    assert [c.execution_count for c in nb.cells] == [1, 2]
    assert nb.cells[1].outputs[0].ename == "AssertionError"
    assert "not valid JSON" in nb.cells[1].outputs[-1].text


# -- plain nbgrader assignments, graded in the sandbox --------------------------------

def solved(release, source, name):
    """The released notebook with each answer cell as the master's solution (markers removed)."""
    nb = nbformat.read(str(release / name), as_version=4)
    answers = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source
               for c in nbformat.read(str(source / name), as_version=4).cells}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n", "", answers[meta["grade_id"]], flags=re.M)
    return nb


def changed(nb, grade_id, edit):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = edit(cell.source)
    return nb


def ps1_submissions(release, source):
    """Student -> problem1.ipynb: the worked solution, the untouched release, a wrong answer, and two hostile ones."""
    uninterruptible = ("\nwhile True:\n    try:\n        while True:\n            pass\n"
                       "    except KeyboardInterrupt:\n        pass\n")
    return {
        "s1-solution": solved(release, source, "problem1.ipynb"),
        "s2-release": nbformat.read(str(release / "problem1.ipynb"), as_version=4),
        "s3-wrong": changed(solved(release, source, "problem1.ipynb"), "squares",
                            lambda s: s.replace("range(1, n + 1)", "range(n)")),  # squares(n) from 0, n items
        # sum_of_squares is defined, then its cell loops for ever, ignoring interrupts.
        "s4-loop": changed(solved(release, source, "problem1.ipynb"), "sum_of_squares",
                           lambda s: s + uninterruptible),
        # squares' cell starts a process of its own session that would outlive the kernel.
        "s5-fork": changed(solved(release, source, "problem1.ipynb"), "squares", lambda s: (
            f"import subprocess\n_background = subprocess.Popen({SLEEPER!r}, start_new_session=True)\n"
            "assert _background.poll() is None\n" + s)),
    }


def submit(course_root, assignment, student, notebooks):
    folder = pathlib.Path(course_root) / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        (folder / name).write_text(nb if isinstance(nb, str) else nbformat.writes(nb))


def scores(course_root, assignment):
    """(student, notebook, grade id) -> (auto score, needs manual grading), from the course's gradebook."""
    from nbgrader.api import Gradebook

    found = {}
    with Gradebook(load_config(course_root).CourseDirectory.get("db_url")
                   or f"sqlite:///{pathlib.Path(course_root) / 'gradebook.db'}") as gb:
        for submission in gb.assignment_submissions(assignment):
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    found[(submission.student.id, notebook.name, grade.name)] = (grade.auto_score,
                                                                                 grade.needs_manual_grade)
    return found


def sleepers():
    return [p.pid for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [])[-2:] == SLEEPER]


COMPARED = ("s1-solution", "s2-release", "s3-wrong")
#: ps1's autograded cells (problem1.ipynb), worth 1, 1, 0.5 and 0.5 points.
AUTOGRADED = ("correct_squares", "squares_invalid_input", "correct_sum_of_squares", "sum_of_squares_uses_squares")


def started(command, cwd):
    """A command of ours (`nbgrader ...`, `nndl ...`) started in `cwd`, its output kept; see `finished`."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.Popen([str(BIN / command[0]), *command[1:]], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finished(process, *, ok=True):
    """The output of a `started` command, once it ended (successfully, when `ok`)."""
    output, _ = process.communicate(timeout=900)
    assert not ok or process.returncode == 0, f"{' '.join(process.args)} failed:\n{output[-4000:]}"
    return output


@pytest.fixture(scope="module")
def graded(quickstart, tmp_path_factory):
    """ps1 graded three ways: by stock nbgrader in an untouched copy of the course, and after `nndl init`
    by `nndl autograde` and by `nbgrader autograde`; a01, added with --with, by `nndl autograde`.

    What needs no other result runs at once (each waits on timeouts and starting processes more than
    it computes): stock nbgrader, `nbgrader autograde` and a01's `nndl autograde` in the background
    while `nndl autograde` grades ps1 here.
    """
    assert not sleepers()
    where = tmp_path_factory.mktemp("graded")
    stock, kit_course, by_nbgrader = where / "stock", where / "kit", where / "kit-nbgrader"
    shutil.copytree(quickstart, stock)
    shutil.copytree(quickstart, kit_course)
    stock_release = started(["nbgrader", "generate_assignment", "ps1"], stock)

    assert cli.main(["init", str(kit_course), "--with", A01]) == 0
    # ps1's own limits, in the folder its hidden graders would have: a short cell timeout.
    (kit_course / "autograder" / "ps1").mkdir()
    (kit_course / "autograder" / "ps1" / "assignment.toml").write_text("[limits]\ncell_timeout = 5\n")
    with contextlib.chdir(kit_course):  # the kit's commands, from inside the course
        assert cli.main(["build", "ps1"]) == 0
        assert cli.main(["build", A01]) == 0
    finished(stock_release)
    release, source = stock / "release" / "ps1", stock / "source" / "ps1"
    assert snapshot(release) == snapshot(kit_course / "release" / "ps1")  # the same notebooks go to both
    submissions = ps1_submissions(release, source)
    problem2 = (release / "problem2.ipynb").read_text()
    for student, nb in submissions.items():
        submit(kit_course, "ps1", student, {"problem1.ipynb": nb, "problem2.ipynb": problem2})
        if student in COMPARED:
            submit(stock, "ps1", student, {"problem1.ipynb": nb, "problem2.ipynb": problem2})
    submit(kit_course, A01, "s1-solution", {
        "perceptrons_xor.ipynb": (kit_course / "solution" / A01 / "perceptrons_xor.ipynb").read_text()})
    shutil.copytree(kit_course, by_nbgrader)
    shutil.rmtree(by_nbgrader / "submitted" / "s4-loop")  # its timeouts cost time; nndl autograde has it
    background = [started(["nbgrader", "autograde", "ps1"], stock),
                  started(["nbgrader", "autograde", "ps1"], by_nbgrader)]
    a01 = started(["nndl", "autograde", A01], kit_course)  # from inside the course

    report = where / "ps1-report.json"
    output = where / "ps1-output.txt"
    with open(output, "w") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = cli.main(["--course", str(kit_course), "autograde", "ps1", "--workers", "2",
                           "--report", str(report)])
    for process in background:
        finished(process)
    left_behind = sleepers()
    a01_output = finished(a01, ok=False)
    yield {"stock": stock, "kit": kit_course, "by_nbgrader": by_nbgrader, "status": status,
           "report": json.loads(report.read_text()), "output": output.read_text(), "left_behind": left_behind,
           "a01_status": a01.returncode, "a01_output": a01_output}
    for pid in sleepers():  # only if the sandbox failed to end it (a test then failed)
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


def only(found, students):
    return {key: value for key, value in found.items() if key[0] in students}


@pytest.mark.slow
def test_plain_scores_equal_stock_nbgrader(graded):
    """Do `nndl autograde` and `nbgrader autograde` after `nndl init` score ps1 exactly as stock nbgrader does?"""
    stock = scores(graded["stock"], "ps1")
    # The comparison means something: stock nbgrader gave the solution every autograded point,
    # the release none, and the wrong answer some but not all.
    auto = {s: sum(v[0] or 0 for k, v in stock.items() if k[0] == s) for s in COMPARED}
    assert auto["s1-solution"] == 3 and auto["s2-release"] == 0 and 0 < auto["s3-wrong"] < 3
    assert only(scores(graded["kit"], "ps1"), COMPARED) == stock
    assert only(scores(graded["by_nbgrader"], "ps1"), COMPARED) == stock
    # The feedback reads alike too: each code cell's execution count, results and errors.
    for student in COMPARED:
        expected = ran(graded["stock"], student)
        assert ran(graded["kit"], student) == expected
        assert ran(graded["by_nbgrader"], student) == expected


def ran(course_root, student):
    """Per code cell of a student's autograded problem1: its execution count, and its results' and errors' kinds."""
    nb = nbformat.read(str(course_root / "autograded" / student / "ps1" / "problem1.ipynb"), as_version=4)
    return [(c.execution_count, [(o.output_type, o.get("ename")) for o in c.outputs if o.output_type != "stream"])
            for c in nb.cells if c.cell_type == "code"]


@pytest.mark.slow
def test_hostile_notebooks_are_stopped_and_the_batch_graded(graded):
    """Are a loop that ignores interrupts and a background process stopped, and every submission graded?

    (By `nndl autograde`; the background process by `nbgrader autograde` too.)"""
    assert graded["status"] == 0, graded["output"][-3000:]
    assert [s["graded"] for s in graded["report"]["submissions"]] == [True] * 5
    assert graded["left_behind"] == [], "the background process outlived the grading"
    kit = scores(graded["kit"], "ps1")
    points = {name: kit[("s4-loop", "problem1", name)][0] for name in AUTOGRADED}
    # squares is right (its cells earn all); sum_of_squares' cell was stopped and skipped, so the function is
    # missing: its test fails, and the test that deletes squares expects exactly the NameError it then gets.
    assert points == {"correct_squares": 1, "squares_invalid_input": 1, "correct_sum_of_squares": 0,
                      "sum_of_squares_uses_squares": 0.5}
    nb = nbformat.read(str(graded["kit"] / "autograded" / "s4-loop" / "ps1" / "problem1.ipynb"), as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "sum_of_squares")
    assert any(o.get("output_type") == "error" and "ran out of its 5 s" in o.get("evalue", "") for o in cell.outputs)
    # The background process ran (its cell asserts so) and changed nothing else: the solution's marks.
    for found in (kit, scores(graded["by_nbgrader"], "ps1")):
        solution = {k[1:]: v for k, v in found.items() if k[0] == "s1-solution"}
        assert {k[1:]: v for k, v in found.items() if k[0] == "s5-fork"} == solution


@pytest.mark.slow
def test_batch_says_once_where_the_tests_run(graded):
    """Does the batch say once, in its output and its JSON report, that ps1's tests run in the student's kernel?"""
    notices = [n for n in graded["report"]["notices"] if "no hidden graders" in n]
    assert len(notices) == 1
    assert "inside the student's kernel" in notices[0] and "README.md" in notices[0]
    assert graded["output"].count("no hidden graders") == 1


@pytest.mark.slow
def test_kit_assignment_added_with_init_uses_its_hidden_graders(graded):
    """Is a01, copied in by `nndl init --with`, graded by its hidden graders in the same course?"""
    assert graded["a01_status"] == 0, graded["a01_output"][-3000:]
    nb = nbformat.read(str(graded["kit"] / "autograded" / "s1-solution" / A01 / "perceptrons_xor.ipynb"),
                       as_version=4)
    graded_cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
                    and not c.metadata["nbgrader"].get("solution")]
    assert graded_cells and all("Hidden tests:" in "".join(o.get("text", "") for o in c.outputs)
                                for c in graded_cells)
    found = scores(graded["kit"], A01)
    for cell in graded_cells:
        grade_id = cell.metadata.nbgrader["grade_id"]
        assert found[("s1-solution", "perceptrons_xor", grade_id)][0] == cell.metadata.nbgrader["points"], grade_id
