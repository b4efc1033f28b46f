"""Where the engine keeps temporary folders: one root per process, swept when its process is gone.

Every temporary folder of the engine (a kernel's run folder, a worker's copy
of a job, the grader process's copy of the hidden graders) is made under
``$TMPDIR/nndl-scratch/<pid>-<start time>/``, the root of the process that
made it. A process removes its own root when it exits normally; a process
killed with ``kill -9`` cannot, so the next engine process on the machine to
make a root sweeps every root whose process no longer runs. The coordinator
also sweeps the roots of the local workers it stops. So no copy of the hidden
graders, and no student's scratch, outlives its batch for longer than it
takes the next batch (or worker) to start.
"""

import atexit
import os
import pathlib
import shutil
import tempfile
import threading

import psutil

_lock = threading.Lock()
_root = None


def base():
    """The folder holding every process's root; made by and only trusted if owned by this user."""
    folder = pathlib.Path(tempfile.gettempdir()) / f"nndl-scratch-{os.geteuid()}"
    try:
        folder.mkdir(mode=0o711)
    except FileExistsError:
        pass
    info = folder.lstat()
    if folder.is_symlink() or info.st_uid != os.geteuid():
        raise RuntimeError(f"{folder} is not a folder of this user's; remove it and grade again")
    os.chmod(folder, 0o711)  # the sandbox's user must pass through to its run folder
    return folder


def root_name(pid):
    try:
        started = int(psutil.Process(pid).create_time() * 100)
    except psutil.Error:
        return None
    return f"{pid}-{started}"


def is_live_root(name):
    """Whether the process that made root `name` still runs."""
    pid, _, _ = name.partition("-")
    return pid.isdigit() and root_name(int(pid)) == name


def sweep():
    """Remove the roots of processes that no longer run; returns how many were removed."""
    removed = 0
    folder = base()
    for entry in folder.iterdir():
        if not is_live_root(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def remove_root(name):
    """Remove a root by its `root_name`: a local worker's, once the worker was stopped."""
    if name and "/" not in name:
        shutil.rmtree(base() / name, ignore_errors=True)


def process_root():
    """This process's root, made (and stale roots swept) on first use."""
    global _root
    with _lock:
        if _root is None or _root[0] != os.getpid():
            sweep()
            path = base() / root_name(os.getpid())
            path.mkdir(mode=0o711, exist_ok=True)
            os.chmod(path, 0o711)
            _root = (os.getpid(), path)
            atexit.register(_remove_own_root, os.getpid(), path)
        return _root[1]


def _remove_own_root(pid, path):
    if os.getpid() == pid:
        shutil.rmtree(path, ignore_errors=True)


def mkdtemp(prefix, mode=0o700):
    """A new temporary folder under this process's root."""
    path = tempfile.mkdtemp(prefix=prefix, dir=process_root())
    os.chmod(path, mode)
    return path


class TemporaryDirectory(tempfile.TemporaryDirectory):
    """`tempfile.TemporaryDirectory` under this process's root."""

    def __init__(self, prefix):
        super().__init__(prefix=prefix, dir=process_root())
