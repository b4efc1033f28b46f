"""Where the student's kernel runs: its process, environment and limits.

This module knows how to start a Jupyter kernel that cannot reach the network
(a fresh network namespace, so not even loopback of the host), with a clean
environment and a scratch directory as its home, and how to watch and end its
whole process tree. Filesystem isolation and an unprivileged user come with
the full sandbox; nothing in the grading design relies on the kernel being
honest in the meantime, because graders only ever receive data from it.
"""

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import psutil
from jupyter_client.manager import AsyncKernelManager


@functools.lru_cache(maxsize=None)
def network_isolation_available():
    """Whether this machine lets us start a process in a new network namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        return subprocess.run([unshare, "--net", "true"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def student_environment(home, *, gpu=False, extra=None):
    """The environment the student kernel starts with: nothing from ours.

    Grading variables, tokens and paths of the trusted side never leak in.
    """
    env = {
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home),
        "TMPDIR": str(home),
        "LANG": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
        "PYTHONHASHSEED": "0",
        "MPLBACKEND": "Agg",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "KERAS_HOME": os.path.join(str(home), ".keras"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
    }
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        # Set on some processors because older OpenBLAS builds crash without.
        if name in os.environ:
            env[name] = os.environ[name]
    if not gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    env.update(extra or {})
    return env


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel runs in its own network namespace.

    The kernel talks to us over Unix sockets (``transport="ipc"``), which
    work across network namespaces, so the kernel needs no network at all.
    """

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        if network_isolation_available():
            cmd = [shutil.which("unshare"), "--net", "--"] + cmd
        return cmd


def make_kernel_manager(run_dir, kernel_name="python3"):
    """A kernel manager for one submission, its sockets under `run_dir`."""
    km = SandboxedKernelManager(kernel_name=kernel_name)
    km.transport = "ipc"
    km.ip = os.path.join(str(run_dir), "kernel")
    km.connection_file = os.path.join(str(run_dir), "kernel.json")
    return km


def process_tree(pid):
    """The process and all its descendants that still exist."""
    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def kill_tree(pid):
    """SIGKILL a process and every descendant; wait until they are gone."""
    procs = process_tree(pid)
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=5)


class MemoryWatchdog(threading.Thread):
    """Kills a process tree whose resident memory passes a cap.

    Address-space limits do not work for TensorFlow, which reserves far more
    virtual memory than it uses, so the tree's RSS is polled instead.
    """

    def __init__(self, pid, limit_bytes, interval=0.2):
        super().__init__(daemon=True, name=f"memory-watchdog-{pid}")
        self.pid = pid
        self.limit_bytes = limit_bytes
        self.interval = interval
        self.tripped = False
        self.peak_bytes = 0
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.wait(self.interval):
            rss = 0
            for proc in process_tree(self.pid):
                try:
                    rss += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_bytes = max(self.peak_bytes, rss)
            if rss > self.limit_bytes:
                self.tripped = True
                kill_tree(self.pid)
                return

    def stop(self):
        self._stop_event.set()


def new_run_directory(root=None):
    """A private directory for one submission's run (sockets, scratch)."""
    path = tempfile.mkdtemp(prefix="nndl-run-", dir=root)
    os.chmod(path, 0o700)
    return path


def wait_until_gone(pid, timeout=5.0):
    """Wait for a process to disappear; True if it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid):
            return True
        time.sleep(0.05)
    return not psutil.pid_exists(pid)
