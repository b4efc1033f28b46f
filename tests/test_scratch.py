"""Temporary folders: one root per process, and no root outlives its process for long."""

import os
import subprocess
import sys

from nndl import scratch

MAKE_AND_DIE = """
import os, signal
from nndl import scratch
folder = scratch.mkdtemp("nndl-graders-")
open(os.path.join(folder, "test_secret.py"), "w").write("hidden")
print(folder, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

MAKE_AND_EXIT = """
from nndl import scratch
print(scratch.mkdtemp("nndl-job-"), flush=True)
"""


def _run(code):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return done.stdout.strip()


def test_a_process_removes_its_root_when_it_ends():
    folder = _run(MAKE_AND_EXIT)
    assert folder.startswith(str(scratch.base())) and not os.path.exists(os.path.dirname(folder))


def test_the_root_of_a_killed_process_is_swept_by_the_next():
    folder = _run(MAKE_AND_DIE)
    root = os.path.dirname(folder)
    assert os.path.exists(os.path.join(folder, "test_secret.py")), "kill -9 should have left it"
    mine = scratch.mkdtemp("nndl-run-")  # a live process's root is never swept
    assert scratch.sweep() >= 0 and not os.path.exists(root)
    assert os.path.isdir(mine)
    assert all(scratch.is_live_root(p.name) for p in scratch.base().iterdir())


def test_roots_are_private_but_passable():
    root = scratch.process_root()
    assert oct(os.stat(scratch.base()).st_mode & 0o777) == "0o711"
    assert oct(os.stat(root).st_mode & 0o777) == "0o711"
    assert oct(os.stat(scratch.mkdtemp("nndl-job-")).st_mode & 0o777) == "0o700"
