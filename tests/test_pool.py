"""The batch's pools and coordinator against faults, without kernels: in seconds.

The workers here run `fake_runners.fake_grading` instead of grading: every
hidden test passes unless the submission asks for a fault (see that module).
So retries, deadlines, not-graded records and per-step isolation are checked
on the real pool, the real coordinator and nbgrader's real gradebook, with
nothing slow in between. The real thing, kernels and all, is checked in
tests/test_batch.py and tests/test_a01_grading.py.
"""

import json
import time

import nbformat
import pytest
from nbgrader.apps import NbGraderAPI

import fake_runners
from nndl import cli, intake, store
from nndl.batch import coordinator, jobs, pool as pools
from toy import FULL, toy_notebook, toy_scores


@pytest.fixture
def course(toy_course, submit):
    """The toy course with two honest submissions."""
    for student in ("a-honest", "z-honest"):
        submit(toy_course, "toy", student, "toy.ipynb", toy_notebook(toy_course))
    return toy_course


@pytest.fixture
def fault(course, submit, tmp_path):
    """``fault(student, action)``: adds a submission asking for a fault; returns its attempts counter."""

    def add(student, action):
        submit(course, "toy", student, "toy.ipynb", toy_notebook(course))
        marker = tmp_path / f"{student}.attempts"
        submit(course, "toy", student, "FAULT", f"{action} {marker}")
        return marker

    return add


def grade(course, **options):
    options.setdefault("workers", 2)
    results = coordinator.autograde(course, "toy", runner=fake_runners.fake_grading, **options)
    return {r.student: r for r in results}


def test_fake_batch_records_what_its_verdicts_say(course):
    results = grade(course)
    assert all(r.graded and r.attempts == 1 for r in results.values())
    assert toy_scores(course) == {"a-honest": FULL, "z-honest": FULL}


def test_killed_worker_costs_a_retry(course, fault):
    """A worker killed mid-job: is the submission tried again, graded, and told why?"""
    marker = fault("b-killed-once", "kill-once")
    results = grade(course)
    assert marker.read_text() == "2"
    assert results["b-killed-once"].graded and results["b-killed-once"].attempts == 2
    assert any("worker process died (killed by signal 9)" in m for m in results["b-killed-once"].messages)
    assert results["a-honest"].attempts == 1
    assert toy_scores(course) == {"a-honest": FULL, "b-killed-once": FULL, "z-honest": FULL}


@pytest.mark.parametrize("action, reason", [("kill-always", "killed by signal 9"),
                                            ("raise-always", "the worker failed: RuntimeError")])
def test_failing_on_every_attempt_is_not_graded(course, fault, action, reason, capsys):
    """Failing on every attempt: 'not graded' with the reason; the batch and earlier grades stay."""
    grade(course)
    before = toy_scores(course)
    marker = fault("c-fails", action)
    results = grade(course, retries=2)
    failed = results["c-fails"]
    assert not failed.graded and failed.attempts == 3 and marker.read_text() == "3"
    assert "could not be graded after 3 attempts" in failed.error and reason in failed.error
    assert "nndl autograde toy --student c-fails" in failed.error
    assert toy_scores(course) == before
    assert "c-fails" in store.NotGradedRecords(course, "toy").all()
    assert cli.main(["--course", str(course), "gradebook", "toy"]) == 0
    assert "Not graded: c-fails: could not be graded after 3 attempts" in capsys.readouterr().out


def test_hung_worker_is_stopped_at_its_deadline(course, fault):
    """A worker that never answers: killed at the job's deadline, the batch finished."""
    fault("d-hangs", "hang-always")
    started = time.monotonic()
    results = grade(course, retries=0, job_timeout=3)
    assert time.monotonic() - started < 60
    assert not results["d-hangs"].graded and "did not finish within its 3 s" in results["d-hangs"].error
    assert toy_scores(course) == {"a-honest": FULL, "z-honest": FULL}


# ------------------------------------------------------------ one submission, any step


def _raise_for(student, real):
    def hooked(*args, **kwargs):
        if any(student in str(a) for a in list(args) + list(kwargs.values())):
            raise RuntimeError(f"fault injected for {student}")
        return real(*args, **kwargs)
    return hooked


@pytest.fixture
def faulty_steps(course, fault, submit, monkeypatch):
    """A batch where one submission fails at each step of the coordinator (hooks set by the test)."""
    for student in ("b-intake", "c-prepare", "d-dispatch", "e-store", "f-record", "g-record-refused"):
        submit(course, "toy", student, "toy.ipynb", toy_notebook(course))
    fault("h-run", "raise-always")
    # A real submission that would break nbgrader's own restoring of the master's cells: intake repairs it.
    nb = nbformat.reads(toy_notebook(course), as_version=4)
    del next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "add").metadata.nbgrader["grade_id"]
    submit(course, "toy", "i-grade-cell-without-id", "toy.ipynb", nbformat.writes(nb))
    monkeypatch.setattr(intake, "inspect_notebook", _raise_for("b-intake", intake.inspect_notebook))
    monkeypatch.setattr(jobs, "make_job", _raise_for("c-prepare", jobs.make_job))
    monkeypatch.setattr(pools.LocalPool, "submit", _raise_for("d-dispatch", pools.LocalPool.submit))
    real_store = coordinator.Batch._store
    monkeypatch.setattr(coordinator.Batch, "_store", lambda self, state, result: (
        _raise_for("e-store", lambda *a: None)(state.student), real_store(self, state, result)))
    real_autograde = NbGraderAPI.autograde

    def autograde(api, assignment, student, **kwargs):
        if student == "g-record-refused":
            return {"success": False, "log": "[AutogradeApp | ERROR] SomethingError: nbgrader refused"}
        return _raise_for("f-record", real_autograde)(api, assignment, student, **kwargs)
    monkeypatch.setattr(NbGraderAPI, "autograde", autograde)
    return course


def test_a_failure_at_any_step_costs_only_that_submission(faulty_steps, tmp_path):
    report = tmp_path / "report.json"
    results = grade(faulty_steps, retries=0, report_path=report)
    failed = {s: r.error for s, r in results.items() if not r.graded}
    assert set(failed) == {"b-intake", "c-prepare", "d-dispatch", "e-store", "f-record", "g-record-refused",
                           "h-run"}
    assert "intake failed: RuntimeError" in failed["b-intake"]
    assert "preparing the job" in failed["c-prepare"] and "RuntimeError" in failed["c-prepare"]
    assert "handing the job to a worker failed: RuntimeError" in failed["d-dispatch"]
    assert "storing its verdicts failed: RuntimeError" in failed["e-store"]
    assert "recording failed: RuntimeError" in failed["f-record"]
    assert "recording in the gradebook failed" in failed["g-record-refused"]
    assert "SomethingError" in failed["g-record-refused"]
    assert "the worker failed: RuntimeError" in failed["h-run"]
    # Everyone else is graded exactly as in a clean batch; the report and the records say who was not.
    assert toy_scores(faulty_steps) == {"a-honest": FULL, "i-grade-cell-without-id": FULL, "z-honest": FULL}
    assert any("add" in m for m in results["i-grade-cell-without-id"].messages)
    assert set(store.NotGradedRecords(faulty_steps, "toy").all()) == set(failed)
    document = json.loads(report.read_text())
    assert document["counts"]["graded"] == 3 and document["counts"]["not_graded"] == len(failed)
    assert {s["student"] for s in document["submissions"] if not s["graded"]} == set(failed)


def test_the_next_run_grades_what_was_fixed(faulty_steps, monkeypatch):
    grade(faulty_steps, retries=0)
    monkeypatch.undo()
    results = grade(faulty_steps, retries=0)
    assert {s for s, r in results.items() if not r.graded} == {"h-run"}
    assert results["a-honest"].attempts == 0, "a graded submission was run again"
    assert set(store.NotGradedRecords(faulty_steps, "toy").all()) == {"h-run"}


def test_a_verdict_that_does_not_match_is_never_run_again_in_the_coordinator(course, monkeypatch):
    """A stored verdict whose key does not match the notebook being recorded: an error, not a silent rerun."""
    real_put = store.VerdictStore.put
    monkeypatch.setattr(store.VerdictStore, "put", lambda self, key, verdict: real_put(self, "0" * 64, verdict))
    results = grade(course)
    assert not any(r.graded for r in results.values())
    assert all("No stored verdict" in r.error for r in results.values()), [r.error for r in results.values()]
    assert toy_scores(course) == {}


def test_a_submission_folder_of_any_shape_is_graded(course, submit):
    """Extra or broken notebooks, pipes, a renamed notebook, nothing at all: each graded, each told what was done."""
    import os

    def folder(student):
        path = course / "submitted" / student / "toy"
        path.mkdir(parents=True)
        return path

    good = toy_notebook(course)
    submit(course, "toy", "b-extra-notebook", "toy.ipynb", good)
    submit(course, "toy", "b-extra-notebook", "extra.ipynb", good)
    submit(course, "toy", "c-broken-extra", "toy.ipynb", good)
    submit(course, "toy", "c-broken-extra", "bad.ipynb", "{nope")
    submit(course, "toy", "d-pipe-beside", "toy.ipynb", good)
    os.mkfifo(course / "submitted" / "d-pipe-beside" / "toy" / "data.bin")
    os.mkfifo(folder("e-pipe-notebook") / "toy.ipynb")
    submit(course, "toy", "f-renamed", "toy (1).ipynb", good)
    folder("g-nothing")
    results = grade(course, job_timeout=60)
    assert all(r.graded for r in results.values()), {s: r.error for s, r in results.items() if not r.graded}
    said = {s: " ".join(r.messages) for s, r in results.items()}
    assert "extra.ipynb is not one of the assignment's notebooks" in said["b-extra-notebook"]
    assert "bad.ipynb is not one of the assignment's notebooks" in said["c-broken-extra"]
    assert "data.bin was not a regular file" in said["d-pipe-beside"]
    assert "toy.ipynb was not handed in" in said["e-pipe-notebook"]
    assert "toy (1).ipynb was graded as toy.ipynb" in said["f-renamed"]
    assert "toy.ipynb was not handed in" in said["g-nothing"]


# -- GPU slots: several submissions sharing one GPU -----------------------------------

@pytest.mark.parametrize("slots", [1, 2, 3, 6, 7, 8, 16])
def test_ray_gpu_share_fits_exactly_slots_tasks_on_one_gpu(slots):
    """num_gpus = 1/slots at Ray's precision: `slots` tasks fit on a GPU, one more does not?"""
    share = pools.ray_gpu_share(slots)
    assert share * slots <= 1 < share * (slots + 1)
    assert share == round(share, 4)


def test_local_workers_get_slots_per_gpu_and_never_more():
    """k workers per visible GPU, round robin; fewer workers when asked; no device over its k?"""
    assert pools.gpu_worker_devices(["0", "1"], 3) == ["0", "1", "0", "1", "0", "1"]
    assert pools.gpu_worker_devices(["0", "1"], 3, workers=3) == ["0", "1", "0"]
    assert pools.gpu_worker_devices(["0", "1"], 3, workers=50) == ["0", "1"] * 3
    assert pools.gpu_worker_devices([], 4) == []


def test_local_pool_runs_slots_workers_per_gpu_each_seeing_its_device(course, submit, monkeypatch, tmp_path):
    """A GPU assignment with gpu_slots = 2 on two (declared) GPUs: 4 workers, 2 on each device?"""
    toml = course / "autograder" / "toy" / "assignment.toml"
    toml.write_text(toml.read_text() + "\n[resources]\ngpu = true\ngpu_slots = 2\n")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    for student in ("b", "c", "d", "e", "f", "g"):
        submit(course, "toy", student, "toy.ipynb", toy_notebook(course))
    results = coordinator.autograde(course, "toy", runner=fake_runners.fake_grading,
                                    report_path=tmp_path / "report.json")
    assert all(r.graded for r in results)
    pool = json.loads((tmp_path / "report.json").read_text())["pool"]
    assert (pool["size"], pool["gpu_slots"]) == (4, 2)
    assert {r.worker["gpus"] for r in results} <= {"0", "1"}


def test_a_shared_gpu_caps_each_kernel_at_its_share():
    """The kernel's environment for 1 of 4 on a GPU: growth on, JAX and PyTorch capped at 0.9/4?"""
    from nndl.kernel import sandbox

    env = sandbox.gpu_share_environment(4, device=None)
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert float(env["XLA_PYTHON_CLIENT_MEM_FRACTION"]) == float(env["NNDL_GPU_MEMORY_FRACTION"]) == 0.225
    assert env["NNDL_GPU_MEMORY_MB"] == "0"  # no nvidia-smi here: TensorFlow only grows as needed
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in sandbox.gpu_share_environment(1)
