"""Batch grading on worker pools: lost and hung workers, Ray, GPU scheduling, progress and report.

Faults are real: a grader of the test course carries out the fault a
submission asks for from the grader's side (the grader process is a child of
the worker), so a worker really dies with SIGKILL or really stops, as one
does when the OOM killer or a broken node takes it.
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pathlib

import pytest

from nndl.batch import coordinator as grade, report
from kit import feedback
from toy import BATCH_EXPECTED, FULL, WRONG_ADD, submit_batch, toy_notebook, toy_scores

pytestmark = pytest.mark.slow

FAULT_GRADER = '''
"""Test-only grader: carries out the worker fault a submission asks for (WORKER_FAULT)."""
import os
import pathlib
import signal

import pytest


@pytest.mark.grade_cell("add")
def test_worker_fault(student):
    try:
        action, marker = student.value("WORKER_FAULT")
    except Exception:
        return  # no fault asked for
    marker = pathlib.Path(marker)
    count = int(marker.read_text()) if marker.exists() else 0
    marker.write_text(str(count + 1))
    if action == "kill-always" or (action == "kill-once" and count == 0):
        os.kill(_worker_pid(), signal.SIGKILL)
    elif action == "hang-always":
        os.kill(_worker_pid(), signal.SIGSTOP)


def _worker_pid():
    """The worker running this job: the grader process's parent, or its grader template's parent."""
    import psutil

    parent = psutil.Process(os.getppid())
    if "nndl.score.template" in parent.cmdline():
        parent = parent.parent()
    return parent.pid
'''


@pytest.fixture
def fault_course(toy_course, submit, tmp_path):
    """The toy course with the fault grader, an honest submission and one per fault."""
    (toy_course / "autograder" / "toy" / "test_worker_fault.py").write_text(FAULT_GRADER)

    def fault(action, student):
        marker = tmp_path / f"{student}.count"
        submit(toy_course, "toy", student, "toy.ipynb",
               toy_notebook(toy_course, f"WORKER_FAULT = ({action!r}, {str(marker)!r})"))
        return marker

    submit(toy_course, "toy", "a-honest", "toy.ipynb", toy_notebook(toy_course))
    return toy_course, fault




# ---------------------------------------------------------------- Ray


@pytest.fixture
def mixed_batch(toy_course, submit):
    """The toy mixed batch, and two hostile submissions: one patches numpy, one exits its kernel."""
    submit_batch(toy_course, submit)
    submit(toy_course, "toy", "g-patches-numpy", "toy.ipynb", toy_notebook(
        toy_course, "import numpy, numpy.testing\nnumpy.allclose = lambda *a, **k: True\n"
        "numpy.testing.assert_allclose = lambda *a, **k: None", add_answer=WRONG_ADD))
    submit(toy_course, "toy", "h-exits", "toy.ipynb", toy_notebook(toy_course, "import os\nos._exit(0)"))
    return toy_course


MIXED_EXPECTED = {
    **BATCH_EXPECTED,
    "g-patches-numpy": {"add": 0.0, "scale": 3.0},  # its patches live in its own kernel only
    "h-exits": FULL,  # the dying last cell is skipped; the answers before it stand
}


def test_ray_and_local_pool_grade_alike(mixed_batch, ray_cluster, tmp_path):
    """Does a Ray cluster record exactly the grades that local workers record, for every kind of submission?"""
    on_ray = tmp_path / "on-ray"
    shutil.copytree(mixed_batch, on_ray)
    local = grade.autograde(mixed_batch, "toy", workers=2)
    remote = grade.autograde(on_ray, "toy", ray_address=ray_cluster)
    assert toy_scores(mixed_batch) == toy_scores(on_ray) == MIXED_EXPECTED
    assert [(r.student, r.graded) for r in local] == [(r.student, r.graded) for r in remote]
    ran = [r for r in remote if r.attempts]
    assert ran and all(r.worker.get("ray_node") for r in ran)
    assert all(r.worker["gpus"] == [] for r in ran), "a CPU-only assignment's task held a GPU"
    for student in MIXED_EXPECTED:
        path = pathlib.Path("autograded", student, "toy", "toy.ipynb")
        assert feedback(mixed_batch / path) == feedback(on_ray / path), student


@pytest.mark.parametrize("slots", [1, 2])
def test_gpu_assignment_tasks_share_the_gpu_by_slots(toy_course, submit, ray_cluster, slots):
    """A GPU assignment on Ray: tasks ask num_gpus = 1/gpu_slots, so `slots` run at once on the one GPU?"""
    toml = toy_course / "autograder" / "toy" / "assignment.toml"
    toml.write_text(toml.read_text() + f"\n[resources]\ngpu = true\ngpu_slots = {slots}\n")
    for student in ("a", "b"):
        submit(toy_course, "toy", student, "toy.ipynb", toy_notebook(toy_course))
    report = toy_course / "report.json"
    results = grade.autograde(toy_course, "toy", ray_address=ray_cluster, report_path=report)
    assert all(r.graded for r in results)
    assert [r.worker["gpus"] for r in results] == [["0"], ["0"]]
    assert toy_scores(toy_course) == {"a": FULL, "b": FULL}
    pool = json.loads(report.read_text())["pool"]
    assert (pool["size"], pool["gpu_slots"]) == (slots, slots)  # the cluster: 2 CPUs, 1 declared GPU


def test_ray_cluster_without_the_resources_says_so(toy_course, submit, ray_cluster):
    """An assignment asking more GPUs than the cluster has: a clear error, not a batch that never ends."""
    from nndl import course

    (toy_course / "autograder" / "toy" / "assignment.toml").write_text("[resources]\ncpus = 64\n")
    submit(toy_course, "toy", "a", "toy.ipynb", toy_notebook(toy_course))
    with pytest.raises(course.CourseError, match="has 2 CPU in all, and one grading task of this assignment needs 64"):
        grade.autograde(toy_course, "toy", ray_address=ray_cluster)


def test_lost_ray_worker_costs_a_retry(fault_course, ray_cluster):
    """A Ray worker process killed under its task: is the task retried once and the submission graded?"""
    course, fault = fault_course
    marker = fault("kill-once", "b-dies-once")
    results = {r.student: r for r in grade.autograde(course, "toy", ray_address=ray_cluster)}
    assert marker.read_text() == "2"
    lost = results["b-dies-once"]
    assert lost.graded and lost.attempts == 2
    assert any("Attempt 1 failed" in m and "Ray" in m for m in lost.messages), lost.messages
    assert toy_scores(course) == {"a-honest": FULL, "b-dies-once": FULL}


@pytest.mark.parametrize("pool", ["--workers=2", "--ray"])
def test_kill_minus_nine_then_resume(mixed_batch, pool, request):
    """The coordinator killed with SIGKILL mid-batch, then the same command: the same gradebook as unbroken?"""
    args = [pool] if pool != "--ray" else ["--ray", request.getfixturevalue("ray_cluster")]
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    nndl = [os.path.join(os.path.dirname(sys.executable), "nndl"), "autograde", "toy", *args]
    proc = subprocess.Popen(nndl, cwd=mixed_batch, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    store = mixed_batch / ".nndl" / "verdicts" / "toy"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(store.rglob("*.json"))) < 2 and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "the batch finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = len(list(store.rglob("*.json")))
    assert stored < len(MIXED_EXPECTED) - 1, "killed too late to show anything"
    done = subprocess.run(nndl, cwd=mixed_batch, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert toy_scores(mixed_batch) == MIXED_EXPECTED
    assert f"{stored} replayed from verdicts stored by an earlier run" in done.stdout or stored == 0
    assert_no_litter()


def assert_no_litter():
    """No temporary folder of a process that has ended: no copy of the graders, no student's scratch."""
    import tempfile

    from nndl import scratch

    # Ray ends its workers after the driver has gone, so their roots are left for the next kit
    # process to sweep (what every kit process does when it first makes a root); then none is left.
    scratch.sweep()
    stale = [p.name for p in scratch.base().iterdir() if not scratch.is_live_root(p.name)]
    assert stale == [], f"roots of ended processes left in {scratch.base()}"
    loose = [p.name for p in pathlib.Path(tempfile.gettempdir()).glob("nndl-*")
             if p.name.startswith(("nndl-run-", "nndl-job-", "nndl-graders-"))]
    assert loose == [], "temporary folders outside the kit's scratch roots"


# ---------------------------------------------------------------- progress and report


def test_report_and_progress(toy_course, submit, tmp_path):
    """Plain progress lines, the summary, and a JSON report that says what happened to each submission."""
    submit(toy_course, "toy", "a-right", "toy.ipynb", toy_notebook(toy_course))
    submit(toy_course, "toy", "b-wrong-add", "toy.ipynb", toy_notebook(toy_course, add_answer=WRONG_ADD))
    submit(toy_course, "toy", "c-not-json", "toy.ipynb", "{ nope")
    shown = io.StringIO()
    progress = report.Progress(3, stream=shown, bar=False)
    path = tmp_path / "report.json"
    results = grade.autograde(toy_course, "toy", workers=2, progress=progress, report_path=path)
    lines = shown.getvalue().splitlines()
    assert sum(1 for line in lines if line.startswith("[")) == 3
    assert any(line.startswith("[3/3] graded ") for line in lines)
    assert any("note:" in line and "not valid JSON" in line for line in lines)
    document = json.loads(path.read_text())
    assert document["assignment"] == "toy" and document["pool"]["kind"] == "local"
    assert document["counts"] == {"submissions": 3, "graded": 3, "not_graded": 0, "replayed": 0}
    by_student = {s["student"]: s for s in document["submissions"]}
    assert by_student["a-right"]["score"] == 5.0 and by_student["a-right"]["max_score"] == 6.0
    assert by_student["b-wrong-add"]["score"] == 3.0
    assert by_student["a-right"]["attempts"] == 1 and by_student["a-right"]["worker"]["peak_rss_mb"] > 0
    ran = [r.seconds for r in results if r.attempts]
    assert document["seconds_per_submission"]["worst"] == pytest.approx(max(ran), abs=1e-3)
    summary = report.summary(results, 12.0)
    assert summary[0] == "3 graded, 0 could not be graded, in 12 s."
    assert summary[-1].startswith("Time per submission: median ")


def test_progress_bar_on_a_terminal(monkeypatch):
    """On a terminal: one redrawn bar with counts, rate and ETA, and each submission's line above it."""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("CI", "true")
    assert not report.Progress(4, stream=screen).bar, "CI logs get plain lines"
    assert not report.Progress(4, stream=io.StringIO()).bar
    monkeypatch.delenv("CI")
    progress = report.Progress(4, stream=screen)
    assert progress.bar
    progress.started -= 60  # one minute in
    progress(grade.SubmissionResult("alice", True, 12.5, [], attempts=1))
    progress(grade.SubmissionResult("bob", False, 3.0, [], "could not be graded after 2 attempts: x", attempts=2))
    text = screen.getvalue()
    assert "[1/4] graded alice in 12.5 s" in text
    assert "[2/4] could not grade bob: could not be graded after 2 attempts: x" in text
    bar = text.rsplit("\r\033[K", 1)[-1].rsplit("\n", 1)[-1]
    assert bar.startswith("[###############...............] 2/4, 1 not graded · 2.0/min · ETA 1 min 00 s"), bar


@pytest.mark.parametrize("pool", ["local", "ray"])
def test_worker_that_raises_is_reported_not_recorded(toy_course, submit, pool, request):
    """Graders that cannot run (an instructor's error): tried again, then 'could not be graded' with the reason."""
    (toy_course / "autograder" / "toy" / "test_broken.py").write_text("def test_broken(:\n")
    submit(toy_course, "toy", "a", "toy.ipynb", toy_notebook(toy_course))
    where = {"workers": 1} if pool == "local" else {"ray_address": request.getfixturevalue("ray_cluster")}
    [result] = grade.autograde(toy_course, "toy", **where)
    assert not result.graded and result.attempts == 2
    assert "the worker failed: GraderSetupError" in result.error
    assert toy_scores(toy_course) == {}
