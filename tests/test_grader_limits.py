"""Limits on the trusted hidden-grader process (nndl.score.runner): memory, output, wall time.

Each test writes a toy grader folder, runs it in the kit's grader process with
small limits, and reads the report: the tests finished before a limit stopped
the graders keep their outcomes, the one running and those after it fail
with a message naming the limit.
"""

import textwrap

import pytest

from nndl.score.runner import LOG_CHARS, start_graders
from nndl.settings import Limits

FIRST = """
    import pytest

    @pytest.mark.grade_cell("first")
    def test_first_passes():
        assert True

    @pytest.mark.grade_cell("second")
    def test_second_fails():
        assert False, "wrong answer"
"""

LAST = """
    import pytest

    @pytest.mark.grade_cell("last")
    def test_last_would_pass():
        assert True
"""

# Up to 1.5 GiB in 32 MiB steps, every byte written so that it is resident.
HOG = """
    import time

    def hog():
        blocks = []
        for _ in range(48):
            blocks.append(b"\\x01" * (32 * 2**20))
            time.sleep(0.05)
        return blocks
"""

#: Where the graders' memory runs out: a test, a fixture, a child process of a test.
MEMORY_HOGS = {
    "test_body": HOG + """
    @pytest.mark.grade_cell("hog")
    def test_hog():
        hog()
    """,
    "fixture": HOG + """
    @pytest.fixture
    def data():
        return hog()

    @pytest.mark.grade_cell("hog")
    def test_hog(data):
        pass
    """,
    "child_process": HOG + """
    import inspect, subprocess, sys

    @pytest.mark.grade_cell("hog")
    def test_hog():
        subprocess.run([sys.executable, "-c", "import time" + chr(10) + inspect.getsource(hog) + "hog()"], check=True)
    """,
}


def _run(tmp_path, hog, *, timeout=120, notebook_run=None, **limits):
    """Run FIRST, `hog` and LAST as three grader files; the process and its report."""
    folder = tmp_path / "graders"
    folder.mkdir()
    for name, source in (("test_a_first.py", FIRST), ("test_b_hog.py", "import pytest\n" + textwrap.dedent(hog)),
                         ("test_c_last.py", LAST)):
        (folder / name).write_text(textwrap.dedent(source))
    process = start_graders(folder, limits=Limits(**limits))
    try:
        return process, process.serve(notebook_run, timeout=timeout)
    finally:
        process.close()


def _outcomes(report):
    return {o.grade_cell: (o.passed, o.message) for o in report.outcomes}


def _assert_stopped(report, limit_message):
    outcomes = _outcomes(report)
    assert outcomes["first"] == (True, "")
    assert outcomes["second"] == (False, "wrong answer")
    assert outcomes["hog"] == (False, f"{limit_message} while checking this")
    assert outcomes["last"] == (False, f"{limit_message} before checking this")


@pytest.mark.parametrize("where", sorted(MEMORY_HOGS))
def test_graders_past_their_memory_are_stopped_and_only_unfinished_tests_fail(where, tmp_path):
    """Is a grader process (tree) that outgrows its memory stopped, keeping the outcomes it had?"""
    process, report = _run(tmp_path, MEMORY_HOGS[where], grader_memory_mb=400)
    _assert_stopped(report, "the hidden graders ran out of their 400 MiB of memory")
    assert process._watchdog.peak_bytes < 1024 * 2**20


ENDLESS_PRINT = """
    import sys

    @pytest.mark.grade_cell("hog")
    def test_hog(capsys):
        with capsys.disabled():
            while True:
                sys.stdout.write("x" * 65536)
"""


def test_graders_printing_past_their_output_cap_are_stopped(tmp_path):
    """Is a grader printing endlessly stopped at its output cap, the log kept short?"""
    _, report = _run(tmp_path, ENDLESS_PRINT, grader_output_mb=1)
    _assert_stopped(report, "the hidden graders printed more than their 1 MiB of output")
    assert len(report.log) < LOG_CHARS + 100
    assert "bytes of earlier grader output left out" in report.log
    assert not list(tmp_path.rglob("*.log"))


def test_a_file_the_graders_write_is_capped_failing_only_that_test(tmp_path):
    """Does endless captured output (pytest keeps it in a file) fail only the test printing it?"""
    hog = """
    @pytest.mark.grade_cell("hog")
    def test_hog():
        while True:
            print("x" * 65536)
    """
    _, report = _run(tmp_path, hog, timeout=60, grader_output_mb=4)
    outcomes = _outcomes(report)
    assert outcomes["first"] == (True, "") and outcomes["second"] == (False, "wrong answer")
    assert not outcomes["hog"][0] and "File too large" in outcomes["hog"][1]
    assert outcomes["last"] == (True, "")


def test_graders_past_their_time_are_stopped_and_only_unfinished_tests_fail(tmp_path):
    """Does the graders' wall-clock limit fail the test running and those after it, keeping the rest?"""
    hog = """
    import time

    @pytest.mark.grade_cell("hog")
    def test_hog():
        time.sleep(600)
    """
    _, report = _run(tmp_path, hog, timeout=15)
    _assert_stopped(report, "the hidden graders ran out of their 15 s")


@pytest.mark.parametrize("signal_name", ["SIGSEGV", "SIGABRT"])
def test_graders_crashing_lose_only_the_unfinished_tests(signal_name, tmp_path):
    """Does a crash in the grader process (a native library on student bytes) cost only the unfinished tests?"""
    hog = f"""
    import os, signal

    @pytest.mark.grade_cell("hog")
    def test_hog():
        os.kill(os.getpid(), signal.{signal_name})
    """
    _, report = _run(tmp_path, hog)
    _assert_stopped(report, f"the hidden graders crashed ({signal_name})")


class _ModelsOnly:
    """A notebook run that only hands over model files, as the sandbox's export would."""

    def __init__(self, paths):
        self.paths = paths

    def request(self, op, name, args, kwargs, timeout=None):
        assert op == "model"
        return {"ok": True, "path": str(self.paths[name])}


def test_a_model_asking_for_huge_weights_fails_only_its_question_in_the_grader_process(tmp_path):
    """Is the 2 KB model declaring gigabytes refused in the grader process, which stays small?"""
    keras = pytest.importorskip("keras")
    import json
    import zipfile

    honest = tmp_path / "honest.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(honest)
    attack = tmp_path / "attack.keras"
    with zipfile.ZipFile(honest) as zin, zipfile.ZipFile(attack, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                config["config"]["layers"][1]["config"]["units"] = 400_000_000  # a 6 GB kernel
                data = json.dumps(config).encode()
            zout.writestr(item.filename, data)
    assert attack.stat().st_size < 4096
    hog = """
    @pytest.mark.grade_cell("honest")
    def test_honest(student):
        assert student.model("honest").count_params() == 10

    @pytest.mark.grade_cell("hog")
    def test_hog(student):
        student.model("attack")
    """
    process, report = _run(tmp_path, hog, notebook_run=_ModelsOnly({"honest": honest, "attack": attack}),
                           grader_memory_mb=3072)
    outcomes = _outcomes(report)
    assert outcomes["honest"] == (True, "") and outcomes["last"] == (True, "")
    passed, message = outcomes["hog"]
    assert not passed and message.startswith("'attack': the model's ") and "graders load at most" in message
    assert process._watchdog.tripped is None
    assert process._watchdog.peak_bytes < 2048 * 2**20
