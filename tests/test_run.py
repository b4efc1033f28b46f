"""Running a notebook in its own kernel, with limits (nndl.kernel.run)."""

import os

import nbformat
import pytest

from nndl.kernel import sandbox
from nndl.kernel.run import NotebookRun
from nndl.settings import Limits

pytestmark = pytest.mark.slow


def notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def test_values_and_calls_come_back_as_data():
    """Do a global, a call with keyword arguments and an ndarray result cross as data?"""
    import numpy as np

    nb = notebook("import numpy as np\nw = np.eye(2)", "def f(a, b=1):\n    return {'sum': a + b, 'pair': (a, b)}")
    with NotebookRun(nb, Limits()) as run:
        assert run.execute() == []
        w = run.request("value", "w")
        assert w["ok"] and isinstance(w["value"], np.ndarray) and w["value"].shape == (2, 2)
        assert run.request("call", "f", (2,), {"b": 3}) == {"ok": True, "value": {"sum": 5, "pair": [2, 3]}}


def test_student_errors_are_reported_with_the_line():
    """Does an exception in the student's function come back with its type and line?"""
    nb = notebook("def f(x):\n    return x + 'a'")
    with NotebookRun(nb, Limits()) as run:
        run.execute()
        answer = run.request("call", "f", (1,))
        assert not answer["ok"] and answer["error"].startswith("TypeError") and "line 2" in answer["error"]
        missing = run.request("value", "nothing_here")
        assert not missing["ok"] and "is not defined" in missing["error"]


def test_cell_timeout_interrupts_and_the_notebook_goes_on():
    """Is a cell past its time interrupted, noted, and the next cells still run?"""
    nb = notebook("import time\ntime.sleep(60)", "after = 1")
    with NotebookRun(nb, Limits(cell_timeout=3)) as run:
        problems = run.execute()
        assert [(p.index, p.message) for p in problems] == [(0, "Cell 1 ran out of its 3 s and was interrupted.")]
        assert run.restarts == 0  # interrupted: the kernel lived on, nothing was replayed
        assert run.request("value", "after") == {"ok": True, "value": 1}


def test_uninterruptible_loop_is_skipped():
    """Is a loop that ignores interrupts skipped after a kernel restart, keeping earlier state?"""
    nb = notebook("before = 1", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass",
                  "after = before + 1")
    with NotebookRun(nb, Limits(cell_timeout=3)) as run:
        problems = run.execute()
        assert any(p.index == 1 and "could not be interrupted" in p.message for p in problems)
        assert run.request("value", "after") == {"ok": True, "value": 2}


def test_kernel_death_skips_the_cell_and_replays():
    """Does a cell that kills the kernel cost only that cell?"""
    nb = notebook("x = 41", "import os\nos._exit(3)", "y = x + 1")
    with NotebookRun(nb, Limits()) as run:
        problems = run.execute()
        assert [p.index for p in problems] == [1] and "made the kernel die" in problems[0].message
        assert run.request("value", "y") == {"ok": True, "value": 42}
        assert run.restarts == 1


def test_submission_deadline_stops_the_run():
    """Does the per-submission clock stop a notebook whose cells are each under the cell limit?"""
    nb = notebook("import time\ntime.sleep(3)", "time.sleep(3)", "time.sleep(3)", "late = 1")
    with NotebookRun(nb, Limits(cell_timeout=30, submission_timeout=5)) as run:
        problems = run.execute()
        assert any("in all" in p.message for p in problems)
        assert not run.request("value", "late")["ok"]


def test_memory_cap_stops_the_cell():
    """Is a cell that allocates past the memory cap killed, reported and skipped?"""
    nb = notebook("ok = 1", "import numpy as np\nhog = np.ones(400 * 2**20 // 8)", "after = ok")
    with NotebookRun(nb, Limits(sandbox_memory_mb=300)) as run:
        problems = run.execute()
        assert any(p.index == 1 and "300 MiB" in p.message for p in problems)
        assert run.request("value", "after") == {"ok": True, "value": 1}


@pytest.mark.skipif(not sandbox.network_isolation_available(), reason="no network namespaces on this machine")
def test_no_network_from_the_kernel():
    """Can the student's kernel open a connection? It must not (not even to loopback of the host)."""
    nb = notebook(
        "import socket\nresults = []\n"
        "for host in [('127.0.0.1', 22), ('1.1.1.1', 53)]:\n"
        "    s = socket.socket(); s.settimeout(2)\n"
        "    try:\n        s.connect(host); results.append('connected')\n"
        "    except OSError as e:\n        results.append(type(e).__name__)\n"
        "try:\n    socket.getaddrinfo('example.com', 80); results.append('resolved')\n"
        "except OSError as e:\n    results.append(type(e).__name__)")
    with NotebookRun(nb, Limits()) as run:
        run.execute()
        answer = run.request("value", "results")
        assert answer["ok"] and "connected" not in answer["value"] and "resolved" not in answer["value"]


def test_environment_is_clean(monkeypatch):
    """Does a secret in the grader's environment stay out of the student's kernel?"""
    monkeypatch.setenv("NNDL_GRADER_SECRET", "s3cret")
    nb = notebook("import os\nenv = dict(os.environ)")
    with NotebookRun(nb, Limits()) as run:
        run.execute()
        env = run.request("value", "env")["value"]
        assert "NNDL_GRADER_SECRET" not in env and env["HOME"] == run.scratch


def test_everything_started_is_gone_after_close():
    """After the run, is the kernel and every process it started gone, and the run folder deleted?"""
    nb = notebook("import subprocess\nchild = subprocess.Popen(['sleep', '300'])\n"
                  "import os\nif os.fork() == 0:\n    os.setsid()\n    import time\n    time.sleep(300)")
    with NotebookRun(nb, Limits()) as run:
        run.execute()
        tree = sandbox.process_tree(run.kernel_pid)
        sleepers = [p for p in tree if p.name() == "sleep"]
        assert sleepers, [p.name() for p in tree]
        run_dir = run.run_dir
    for proc in tree:
        assert _wait_until_gone(proc.pid), proc
    assert not os.path.exists(run_dir)


def test_bridge_calls_leave_the_notebook_alone():
    """Do grader requests add nothing to the notebook's cells or their outputs?"""
    nb = notebook("x = 1", "print('last cell')")
    with NotebookRun(nb, Limits()) as run:
        run.execute()
        before = nbformat.writes(nb)
        for _ in range(3):
            run.request("value", "x")
        assert nbformat.writes(nb) == before


def test_flood_of_output_is_capped():
    """Does a cell printing without end keep only the capped output, get interrupted, and the notebook go on?"""
    nb = notebook("import sys\nwhile True:\n    sys.stdout.write('x' * 100000 + '\\n')", "after = 1")
    with NotebookRun(nb, Limits(cell_timeout=4, cell_output_mb=1, notebook_output_mb=5)) as run:
        problems = run.execute()
        kept = sum(len(o.get("text", "")) for o in nb.cells[0].outputs)
        assert kept <= 2**20
        messages = [p.message for p in problems]
        assert any("printed more than" in m for m in messages), problems
        assert "Cell 1 ran out of its 4 s and was interrupted." in messages and run.restarts == 0, problems
        assert run.request("value", "after") == {"ok": True, "value": 1}, problems
    # The kernel dropped what it could not send, rather than holding gigabytes of it.
    assert run.peak_memory_bytes < 512 * 2**20, run.peak_memory_bytes


def _wait_until_gone(pid, timeout=5.0):
    """Wait for a process to disappear; True if it did."""
    import time

    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid):
            return True
        time.sleep(0.05)
    return not psutil.pid_exists(pid)
