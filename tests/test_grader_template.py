"""The grader template (`nndl.score.template`): imports paid once, a fresh grader process per run.

Each test runs toy grader folders through the kit's runner (`start_graders`,
`serve`), as a submission's graders run, and reads what the grader processes
report about themselves.
"""

import json
import os
import re
import signal
import subprocess
import textwrap
import time

import psutil
import pytest

from nndl.score import template
from nndl.score.runner import start_graders
from nndl.settings import Limits

# Written past pytest's capture to the output pipe (fd 1), which the runner keeps as the log.
FACTS = """
    import json, os, resource, sys
    import numpy, pytest
    import nndl.score as score

    PRELOADED = "keras" in sys.modules  # before this file imported anything of Keras

    @pytest.mark.grade_cell("fresh")
    def test_fresh():
        assert not hasattr(score, "LEFT_BEHIND"), "a module attribute set by an earlier run is still there"
        score.LEFT_BEHIND = True

    @pytest.mark.grade_cell("facts")
    def test_facts(capfd):
        fds = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in map(int, os.listdir("/proc/self/fd"))
               if os.path.exists(f"/proc/self/fd/{fd}")}
        facts = {"pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0), "preloaded": PRELOADED,
                 "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0], "random": numpy.random.random(),
                 "sockets": sorted(t for t in fds.values() if t.startswith("socket:")),
                 "seed": os.environ.get("NNDL_GRADER_SEED"), "cwd": os.getcwd()}
        with capfd.disabled():
            os.write(1, ("\\nFACTS " + json.dumps(facts) + "\\n").encode())
"""


class NoKernel:
    """The graders here ask the kernel nothing."""

    def request(self, *args, **kwargs):
        raise AssertionError("no kernel request expected")


def _graders(tmp_path, source, name="graders"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "test_graders.py").write_text(textwrap.dedent(source))
    return folder


def _grade(folder, env=None, **limits):
    """One run of the graders in `folder`: (outcomes by grade cell, the facts they printed, the process)."""
    process = start_graders(folder, env=env, limits=Limits(**limits))
    try:
        report = process.serve(NoKernel(), timeout=120)
    finally:
        process.close()
    facts = [json.loads(found) for found in re.findall(r"FACTS (\{.*\})", report.log)]
    outcomes = {o.grade_cell: (o.passed, o.message) for o in report.outcomes}
    return outcomes, (facts[0] if facts else None), process


def _env(**extra):
    return {**os.environ, template.TEMPLATE_ENV: "1", **extra}


def test_each_run_is_a_fresh_process_forked_from_one_warm_template(tmp_path):
    """Two runs: two processes, children of one template; nothing of the first run in the second?"""
    folder = _graders(tmp_path, FACTS)
    first_outcomes, first, first_process = _grade(folder, _env(NNDL_GRADER_SEED="1"), grader_output_mb=3)
    second_outcomes, second, second_process = _grade(folder, _env(NNDL_GRADER_SEED="2"), grader_output_mb=3)
    assert first_outcomes == second_outcomes == {"fresh": (True, ""), "facts": (True, "")}
    assert isinstance(first_process.proc, template.ForkedGrader)
    held = first_process.proc._template
    assert first["ppid"] == second["ppid"] == held.proc.pid  # the same template, kept warm
    assert first["pid"] != second["pid"]
    assert first["sid"] == first["pid"] and second["sid"] == second["pid"]  # a session of its own
    assert first["preloaded"] and second["preloaded"]  # Keras came with the template
    assert first["fsize"] == second["fsize"] == 3 * 2**20  # the output cap holds for files too
    assert first["random"] != second["random"]  # numpy's global random state drawn afresh per run
    assert first["sockets"] == second["sockets"] == []  # the template's socket is not the graders'
    assert (first["seed"], second["seed"]) == ("1", "2")  # each run's own environment
    assert first["cwd"] != second["cwd"]
    for process in (first_process, second_process):  # ended, and reaped by the template once released
        assert process.proc.returncode == 0
        assert _reaped(process.proc.pid, held.proc.pid)


def _reaped(pid, parent, seconds=10):
    """Whether `pid` stops being a child of `parent` (a zombie it has not reaped) within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).ppid() != parent:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_an_environment_the_template_did_not_start_with_gets_its_own_template(tmp_path):
    """A run whose environment differs (beyond the per-run seed) is not forked from the old template?"""
    folder = _graders(tmp_path, FACTS)
    _, first, _ = _grade(folder, _env())
    _, second, _ = _grade(folder, _env(NNDL_SOMETHING_IMPORTED="changed"))
    assert first["ppid"] != second["ppid"]


def test_a_template_that_died_is_replaced_and_the_next_run_graded_in_full(tmp_path):
    """The warm template killed between two runs: the second run still gets every outcome?"""
    folder = _graders(tmp_path, FACTS)
    _, first, _ = _grade(folder, _env())
    os.kill(first["ppid"], signal.SIGKILL)
    outcomes, second, _ = _grade(folder, _env())
    assert outcomes == {"fresh": (True, ""), "facts": (True, "")}
    assert second["ppid"] != first["ppid"]


KILLS_ITS_TEMPLATE = """
    import os, signal, time, pytest

    @pytest.mark.grade_cell("first")
    def test_first():
        assert True

    @pytest.mark.grade_cell("killer")
    def test_killer():
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(60)

    @pytest.mark.grade_cell("last")
    def test_last():
        assert True
"""


def test_a_grader_that_kills_its_template_loses_only_its_unfinished_tests(tmp_path):
    """The grader process ends with its template, its run keeps what it had, the next run is whole?"""
    folder = _graders(tmp_path, KILLS_ITS_TEMPLATE, "killer")
    outcomes, _, process = _grade(folder, _env())
    assert outcomes["first"] == (True, "")
    assert outcomes["killer"] == (False, "the hidden graders crashed (SIGKILL) while checking this")
    assert outcomes["last"] == (False, "the hidden graders crashed (SIGKILL) before checking this")
    assert not psutil.pid_exists(process.proc.pid) or \
        psutil.Process(process.proc.pid).status() == psutil.STATUS_ZOMBIE  # not left running alone
    outcomes, _, _ = _grade(_graders(tmp_path, FACTS), _env())
    assert outcomes == {"fresh": (True, ""), "facts": (True, "")}


def test_with_the_template_off_each_grader_process_starts_from_scratch(tmp_path):
    """NNDL_GRADER_TEMPLATE=0: a plain `python -I -m pytest` per run, graded the same?"""
    folder = _graders(tmp_path, FACTS)
    outcomes, facts, process = _grade(folder, _env(**{template.TEMPLATE_ENV: "0"}))
    assert outcomes == {"fresh": (True, ""), "facts": (True, "")}
    assert isinstance(process.proc, subprocess.Popen)
    assert facts["ppid"] == os.getpid() and not facts["preloaded"]


def test_a_template_that_stopped_answering_is_abandoned_and_the_run_graded_in_full(tmp_path, monkeypatch):
    """A stopped template: the run waits START_TIMEOUT, starts its graders afresh; the next gets a new template?"""
    monkeypatch.setattr(template, "START_TIMEOUT", 5)
    folder = _graders(tmp_path, FACTS)
    _, first, _ = _grade(folder, _env())
    os.kill(first["ppid"], signal.SIGSTOP)
    outcomes, second, process = _grade(folder, _env())
    assert outcomes == {"fresh": (True, ""), "facts": (True, "")}
    assert isinstance(process.proc, subprocess.Popen) and second["ppid"] == os.getpid()
    assert not psutil.pid_exists(first["ppid"]) or \
        psutil.Process(first["ppid"]).status() == psutil.STATUS_ZOMBIE  # killed, not left stopped
    monkeypatch.setattr(template, "START_TIMEOUT", 120)  # the new template's imports, on a busy machine
    outcomes, third, _ = _grade(folder, _env())
    assert outcomes == {"fresh": (True, ""), "facts": (True, "")}
    assert third["ppid"] not in (first["ppid"], os.getpid())
