"""Calibrated thresholds: the rule's stated false-failure rate, `nndl calibrate`, and grading with them.

The end-to-end tests use a one-notebook course made here: its "solution"
draws a score from the run's seed (`nndl_datasets.seed()`) and the profile
(`nndl_datasets.profile()`), and its grader checks that score against the
calibrated threshold, as a02's and a06's accuracy graders do with accuracies.
"""

import json
import os
import pathlib
import subprocess
import sys

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nndl import build, calibration, course
from nndl.batch import coordinator
from nndl.record import gradebook


def test_threshold_rule_fails_a_reference_like_run_at_the_stated_rate():
    """Over many calibrations of 5 runs, does a 6th run fall below the threshold at most at FALSE_FAILURE?"""
    rng = np.random.default_rng(7)
    trials, failures = 20000, 0
    for _ in range(trials):
        runs = 0.85 + 0.02 * rng.standard_normal(6)  # spread well above MIN_MARGIN: the t bound decides
        _, _, threshold = calibration.threshold_of(runs[:5])
        failures += runs[5] < threshold
    # Binomial(20000, 0.001): mean 20, sd 4.5; the rule is exact for normal runs.
    assert 5 <= failures <= 40, failures


def test_threshold_is_never_closer_than_the_minimum_margin():
    """Identical runs (no spread) still leave MIN_MARGIN below the mean?"""
    mean, std, threshold = calibration.threshold_of([0.9, 0.9, 0.9])
    assert std == 0 and threshold == pytest.approx(0.9 - calibration.MIN_MARGIN)
    with pytest.raises(ValueError):
        calibration.threshold_of([0.9])


def test_check_records_then_asserts_with_a_message_for_the_student(tmp_path):
    """Does check() send the measurement, pass at the threshold, and fail below it saying both figures?"""
    told = []
    document = calibration.summarise("x", "smoke", [{"acc": {"value": v, "data": None}} for v in (0.8, 0.82, 0.81)],
                                     seeds=range(3), command="nndl calibrate x --profile smoke --seeds 3")
    (tmp_path / "calibration").mkdir()
    (tmp_path / "calibration" / "smoke.json").write_text(json.dumps(document))
    thresholds = calibration.Thresholds(tmp_path, "smoke", tell=told.append)
    limit = document["measurements"]["acc"]["threshold"]
    thresholds.check("acc", limit, "accuracy")
    with pytest.raises(AssertionError, match=f"expected at least {limit:.4f}, received 0.5000"):
        thresholds.check("acc", 0.5, "accuracy")
    with pytest.raises(AssertionError):
        thresholds.check("acc", float("nan"), "accuracy")
    assert [t["value"] for t in told[:2]] == [limit, 0.5]
    with pytest.raises(calibration.CalibrationMissing, match="nndl calibrate"):
        calibration.Thresholds(tmp_path, "full").check("acc", 0.9, "accuracy")
    calibration.Thresholds(tmp_path, "full", calibrating=True).check("acc", 0.1, "accuracy")  # records only


SOLUTION = ("### BEGIN SOLUTION\n"
            "score = 0.80 + 0.01 * rng.standard_normal() + (0.1 if PROFILE == 'full' else 0.0)\n"
            "### END SOLUTION")
GRADER = '''
import pytest


@pytest.mark.grade_cell("check_score", weight=1)
def test_score(student, calibration):
    calibration.check("score", student.value("score"), "the score", data="mnist")


@pytest.mark.grade_cell("check_score", weight=1)
def test_profile_and_seed(student):
    assert student.value("PROFILE") == calibration_profile()


def calibration_profile():
    import os
    return os.environ["NNDL_PROFILE"]
'''


@pytest.fixture
def measured_course(tmp_path, data_dir):
    """A course of one notebook whose score depends on the run's seed and profile."""
    root = tmp_path / "course"
    nb = new_notebook(metadata={"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}})

    def meta(**marks):
        return {"nbgrader": {"schema_version": 3, "locked": not marks.get("solution", False),
                             "solution": False, "grade": False, **marks}}
    nb.cells = [
        new_code_cell("import numpy as np\nimport nndl_datasets\nPROFILE = nndl_datasets.profile()\n"
                      "rng = np.random.default_rng(nndl_datasets.seed())", metadata=meta(grade_id="imports")),
        new_code_cell(SOLUTION, metadata=meta(grade_id="score_answer", solution=True)),
        new_code_cell("assert isinstance(score, float)", metadata=meta(grade_id="check_score", grade=True, points=2)),
    ]
    (root / "source" / "m1").mkdir(parents=True)
    nbformat.write(nb, str(root / "source" / "m1" / "m1.ipynb"))
    (root / "autograder" / "m1").mkdir(parents=True)
    (root / "autograder" / "m1" / "test_m1.py").write_text(GRADER)
    course.write_course_config(root, profile="smoke")
    build.build(root)
    return root


def _nndl(root, *args):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "nndl"), *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)


def _submit(root, student, source):
    nb = nbformat.read(str(root / "solutions" / "m1" / "m1.ipynb"), as_version=4)
    nb.cells[1].source = source
    (root / "submitted" / student / "m1").mkdir(parents=True)
    nbformat.write(nb, str(root / "submitted" / student / "m1" / "m1.ipynb"))


@pytest.mark.slow
def test_calibrate_then_grade_against_the_thresholds(measured_course):
    """Calibration runs the solution per seed and profile; grading passes the solution and fails a low score."""
    root = measured_course
    done = _nndl(root, "calibrate", "m1", "--profile", "smoke", "--seeds", "3")
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads((root / "autograder" / "m1" / "calibration" / "smoke.json").read_text())
    values = document["measurements"]["score"]["values"]
    assert document["seeds"] == [0, 1, 2] and len(set(values)) == 3  # each run had its own seed
    assert all(0.7 < v < 0.9 for v in values)  # the smoke profile reached the notebook
    assert document["command"] == "nndl calibrate m1 --profile smoke --seeds 3"
    assert document["versions"]["keras"] and document["data"]["mnist"]
    assert document["rule"] == calibration.THRESHOLD_RULE

    _submit(root, "good", SOLUTION)
    _submit(root, "low", "score = 0.5")
    results = coordinator.autograde(root, "m1", workers=1, report_path=root / "report.json")
    assert all(r.graded for r in results)
    _, rows = gradebook.cell_scores(f"sqlite:///{root}/gradebook.db", "m1")
    assert {r["student"]: r["scores"]["check_score"] for r in rows} == {"good": 2.0, "low": 1.0}
    said = (root / "autograded" / "low" / "m1" / "m1.ipynb").read_text()
    assert "expected at least" in said and "received 0.5000" in said
    assert json.loads((root / "report.json").read_text())["notices"] == []

    # Another profile has no thresholds: stopped before anything runs, saying what to do.
    with pytest.raises(course.CourseError, match="nndl calibrate m1 --profile full"):
        coordinator.autograde(root, "m1", config_overrides={"GradeInSandbox": {"profile": "full"}})

    # Thresholds made with other versions or on other data: graded, with a loud notice in the report.
    document["versions"]["keras"] = "0.0.1"
    document["data"]["mnist"] = "0" * 64
    (root / "autograder" / "m1" / "calibration" / "smoke.json").write_text(json.dumps(document))
    heard = []
    coordinator.autograde(root, "m1", workers=1, report_path=root / "again.json", notify=heard.append)
    notices = json.loads((root / "again.json").read_text())["notices"]
    assert notices == heard and len(notices) == 2
    assert "other library versions" in notices[0] and "other mnist data" in notices[1]


@pytest.mark.slow
def test_calibrate_refuses_a_solution_that_fails_its_graders(measured_course):
    """A solution failing a hidden test is no reference: nothing is written, and the test is named."""
    root = measured_course
    path = root / "solutions" / "m1" / "m1.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[0].source += "\nPROFILE = 'wrong'"
    nbformat.write(nb, str(path))
    done = _nndl(root, "calibrate", "m1", "--profile", "smoke", "--seeds", "2")
    assert done.returncode == 1 and "test_profile_and_seed" in done.stderr
    assert not (root / "autograder" / "m1" / "calibration").exists()
