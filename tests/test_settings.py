"""Grading settings: one frozen object, defaults in one place, typos refused before anything runs."""

import dataclasses
import json

import pytest

from nndl import cli, settings
from nndl.contracts import GradingJob, JobResult, NotebookJob, TestOutcome, CellProblem, Verdict
from kit import KIT
from toy import toy_notebook


def test_defaults_live_in_the_dataclasses():
    loaded = settings.load("a01_perceptrons_xor", KIT / "autograder")
    assert loaded.limits == settings.Limits() and loaded.resources == settings.Resources()
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.limits.cell_timeout = 1


def test_course_then_assignment_limits(tmp_path):
    folder = tmp_path / "graders" / "hw"
    folder.mkdir(parents=True)
    (folder / "test_hw.py").write_text("")
    (folder / "assignment.toml").write_text("[limits]\ncell_timeout = 30\n[resources]\ngpu = true\n"
                                            "worker_memory_mb = 2048\n")
    loaded = settings.load("hw", tmp_path / "graders", course_limits={"cell_timeout": 60, "scratch_mb": 100})
    assert loaded.limits.cell_timeout == 30.0 and loaded.limits.scratch_mb == 100
    assert loaded.resources == settings.Resources(gpu=True, cpus=1, worker_memory_mb=2048)
    assert settings.GradingSettings.from_dict(json.loads(json.dumps(loaded.to_dict()))) == loaded


@pytest.mark.parametrize("toml, phrase", [
    ("[limits]\nmemroy_mb = 100\n", "Unknown setting 'memroy_mb'"),
    ("[limits]\nmemory_mb = 100\n", "Did you mean 'sandbox_memory_mb'"),
    ("[resources]\nmemory_mb = 100\n", "Unknown setting 'memory_mb'"),
    ("[limits]\ncell_timeout = \"fast\"\n", "must be a non-negative float"),
    ("[limits]\nmax_processes = 1.5\n", "must be a non-negative int"),
    ("[resources]\ngpu = 1\n", "true or false"),
    ("[limit]\ncell_timeout = 1\n", "Unknown table [limit]"),
    ("[limits\n", "not valid TOML"),
])
def test_a_wrong_setting_names_the_key_and_the_file(tmp_path, toml, phrase):
    folder = tmp_path / "hw"
    folder.mkdir()
    (folder / "test_hw.py").write_text("")
    (folder / "assignment.toml").write_text(toml)
    with pytest.raises(settings.SettingsError) as error:
        settings.load("hw", tmp_path)
    assert phrase in str(error.value) and str(folder / "assignment.toml") in str(error.value)
    if "Unknown setting" in phrase:
        assert "Allowed:" in str(error.value)


def test_a_typo_stops_autograde_before_anything_runs(toy_course, submit, capsys):
    (toy_course / "autograder" / "toy" / "assignment.toml").write_text("[limits]\nmemroy_mb = 100\n")
    submit(toy_course, "toy", "alice", "toy.ipynb", toy_notebook(toy_course))
    assert cli.main(["--course", str(toy_course), "autograde", "toy"]) == 2
    err = capsys.readouterr().err
    assert "memroy_mb" in err and "assignment.toml" in err
    assert not (toy_course / "autograded").exists() and not (toy_course / ".nndl" / "verdicts").exists()


def test_a_typo_in_the_course_config_is_refused(toy_course, submit, capsys):
    with open(toy_course / "nbgrader_config.py", "a") as config:
        config.write("c.GradeInSandbox.cell_timout = 5\n")
    submit(toy_course, "toy", "alice", "toy.ipynb", toy_notebook(toy_course))
    assert cli.main(["--course", str(toy_course), "autograde", "toy"]) == 2
    err = capsys.readouterr().err
    assert "c.GradeInSandbox.cell_timout" in err and "nbgrader_config.py" in err


def test_job_and_verdict_cross_as_json():
    verdict = Verdict(outcomes=[TestOutcome("t.py::test_a", "a", 2.0, False, "expected 1, received 2")],
                      problems=[CellProblem(3, "Cell 4 ran out of its 120 s")],
                      outputs={"1": [{"output_type": "stream", "name": "stdout", "text": "hi\n"}]},
                      stats={"execution_seconds": 1.5, "restarts": 0, "peak_memory_mb": 80.0}, log="1 failed")
    assert Verdict.from_json(verdict.to_json()) == verdict
    job = GradingJob(assignment="hw", student="alice", notebooks=[NotebookJob("hw.ipynb", "ab" * 32, "{}")],
                     files={"data/x.bin": bytes(range(256))},
                     settings=settings.GradingSettings("hw", "/graders/hw", settings.Limits(cell_timeout=5)),
                     notes=["big.bin was left out"])
    assert GradingJob.from_json(job.to_json()) == job
    result = JobResult("alice", {"ab" * 32: verdict}, {"host": "h", "seconds": 2.0})
    assert JobResult.from_json(result.to_json()) == result
    assert verdict.cell_fraction("a") == 0.0 and verdict.cell_fraction("b") is None


def test_the_verdict_key_changes_with_what_decides_the_grade(toy_course):
    import nbformat

    from nndl.contracts import notebook_key

    nb = nbformat.reads(toy_notebook(toy_course), as_version=4)
    key = notebook_key(nb, "toy", "alice", "digest")
    assert key == notebook_key(nbformat.reads(nbformat.writes(nb), as_version=4), "toy", "alice", "digest")
    changed = nbformat.reads(toy_notebook(toy_course, "x = 1"), as_version=4)
    assert len({key, notebook_key(nb, "toy", "bob", "digest"), notebook_key(nb, "toy", "alice", "other"),
                notebook_key(changed, "toy", "alice", "digest")}) == 4


@pytest.mark.parametrize("pipeline", ["", "c.Autograde.autograde_preprocessors = []\n",
                                      "from nbgrader.preprocessors import Execute\n"
                                      "c.Autograde.autograde_preprocessors.insert(0, Execute)\n"])
def test_a_course_whose_pipeline_runs_student_code_in_kernel_is_refused(tmp_path, pipeline, capsys):
    """nbgrader's own Execute runs the notebook outside the sandbox: no kit command grades such a course."""
    config = "c = get_config()\n" + ("from nndl.nbgrader_settings import apply_kit_settings\n"
                                      "apply_kit_settings(c)\n" + pipeline if pipeline else "")
    (tmp_path / "nbgrader_config.py").write_text(config)
    assert cli.main(["--course", str(tmp_path), "autograde", "toy"]) == 2
    err = capsys.readouterr().err
    assert "outside the sandbox" in err and "apply_kit_settings(c)" in err
