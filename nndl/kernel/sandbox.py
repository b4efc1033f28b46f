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
import pathlib
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


def gpu_devices():
    """The GPUs this machine lets us hand out: CUDA_VISIBLE_DEVICES if set, else the NVIDIA devices."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip()]
    return sorted(p.name[len("nvidia"):] for p in pathlib.Path("/dev").glob("nvidia[0-9]*"))


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
    elif "CUDA_VISIBLE_DEVICES" in os.environ:
        # The device a worker was given (by Ray, or by the local pool) is the kernel's only one.
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    env.update(extra or {})
    return env


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel starts inside the sandbox.

    The kernel talks to us over Unix sockets (``transport="ipc"``) in a folder
    shared with the sandbox, so it needs no network at all. Set `scratch`,
    `ipc_dir`, `mode` ("bubblewrap" or "namespace") and `limits` before
    starting it.
    """

    scratch = None
    ipc_dir = None
    mode = "bubblewrap"
    limits = None
    read_only = ()
    gpu = False

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        if self.mode == "bubblewrap":
            # Written by us just now (0600): the kernel's user must be able to read it.
            hand_to_sandbox_user(self.connection_file)
            return bubblewrap_command(cmd, scratch=self.scratch, ipc_dir=self.ipc_dir,
                                      read_only=self.read_only, limits=self.limits, gpu=self.gpu)
        if network_isolation_available():
            return [shutil.which("unshare"), "--net", "--"] + cmd
        return cmd


def make_kernel_manager(run_dir, *, scratch, mode, limits=None, read_only=(), gpu=False,
                        kernel_name="python3"):
    """A kernel manager for one submission, its sockets under `run_dir`/ipc."""
    ipc_dir = os.path.join(str(run_dir), "ipc")
    os.makedirs(ipc_dir, exist_ok=True)
    if mode == "bubblewrap":
        hand_to_sandbox_user(ipc_dir)
    km = SandboxedKernelManager(kernel_name=kernel_name)
    km.transport = "ipc"
    km.ip = os.path.join(ipc_dir, "kernel")
    km.connection_file = os.path.join(ipc_dir, "kernel.json")
    km.scratch, km.ipc_dir, km.mode = str(scratch), ipc_dir, mode
    km.limits, km.read_only, km.gpu = limits, tuple(read_only), gpu
    return km


def sandbox_mode(allow_unsandboxed=False):
    """"bubblewrap" when the full sandbox can start, else "namespace" if allowed.

    Raises:
        SandboxUnavailable: the full sandbox cannot start and the instructor
            did not accept grading without it.
    """
    problem = bubblewrap_problem()
    if problem is None:
        return "bubblewrap"
    if allow_unsandboxed:
        return "namespace"
    raise SandboxUnavailable(
        f"The sandbox cannot start on this machine: {problem}. Student code would run with this "
        "machine's files in reach (hidden graders, the gradebook, other students' work). Fix the "
        "sandbox, or, for trusted notebooks only, set GradeInSandbox.allow_unsandboxed = True "
        "(nndl autograde --unsafe-no-sandbox).")


class SandboxUnavailable(RuntimeError):
    """The full sandbox cannot start, and grading without it was not allowed."""


def process_tree(pid):
    """The process and all its descendants that still exist."""
    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def kill_tree(pid, timeout=5.0):
    """SIGKILL a process and every descendant; wait until they are gone (or zombies)."""
    procs = process_tree(pid)
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    deadline = time.monotonic() + timeout
    while procs and time.monotonic() < deadline:
        procs = [p for p in procs if _still_running(p)]
        if procs:
            time.sleep(0.01)


def _still_running(proc):
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def folder_size(path, max_entries=200_000):
    """Bytes used by the files under `path` (links not followed); inf past `max_entries` entries."""
    total, seen, stack = 0, 0, [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > max_entries:
                return float("inf")
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                pass
    return total


class ResourceWatchdog(threading.Thread):
    """Kills a process tree whose resident memory, or whose scratch folder, passes a cap.

    Address-space limits do not work for TensorFlow, which reserves far more
    virtual memory than it uses, so the tree's RSS is polled instead; the
    scratch folder is measured every `scratch_every` polls.
    """

    def __init__(self, pid, limit_bytes, *, scratch=None, scratch_bytes=None, interval=0.2, scratch_every=10):
        super().__init__(daemon=True, name=f"resource-watchdog-{pid}")
        self.pid = pid
        self.limit_bytes = limit_bytes
        self.scratch = scratch
        self.scratch_bytes = scratch_bytes
        self.interval = interval
        self.scratch_every = scratch_every
        self.tripped = None  # "memory" or "scratch" once it fired
        self.peak_bytes = 0
        self._stop_event = threading.Event()

    def run(self):
        polls = 0
        while not self._stop_event.wait(self.interval):
            polls += 1
            rss = 0
            for proc in process_tree(self.pid):
                try:
                    rss += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_bytes = max(self.peak_bytes, rss)
            if rss > self.limit_bytes:
                self.tripped = "memory"
            elif (self.scratch and self.scratch_bytes and polls % self.scratch_every == 0
                  and folder_size(self.scratch) > self.scratch_bytes):
                self.tripped = "scratch"
            if self.tripped:
                kill_tree(self.pid)
                return

    def stop(self):
        self._stop_event.set()


def new_run_directory(root=None):
    """A directory for one submission's run (sockets, scratch, exports).

    Others may pass through it (the sandbox's user must reach its scratch
    and socket folders) but not list it.
    """
    path = tempfile.mkdtemp(prefix="nndl-run-", dir=root)
    os.chmod(path, 0o711)
    return path


#: The unprivileged user the student's kernel runs as when the kit runs as root.
SANDBOX_UID = 65534
#: System folders the kernel may read (never write).
SYSTEM_PATHS = ("/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc/alternatives", "/etc/ld.so.cache",
                "/etc/ssl", "/etc/ca-certificates", "/etc/localtime", "/etc/passwd", "/etc/group",
                "/etc/nsswitch.conf", "/etc/fonts", "/etc/matplotlibrc")


@functools.lru_cache(maxsize=None)
def bubblewrap_problem():
    """None when bubblewrap can build the sandbox here, else a sentence saying why not."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed (Debian: apt-get install bubblewrap)"
    probe = [bwrap, "--unshare-net", "--unshare-pid", "--die-with-parent", "--ro-bind", "/", "/",
             "--proc", "/proc", "--dev", "/dev", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap could not start ({error})"
    if done.returncode != 0:
        return f"bubblewrap cannot create namespaces here ({done.stderr.strip()[:200]})"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is missing, so the kernel cannot drop root"
    return None


def _parents_with_perms(path, made):
    """bwrap arguments creating the parents of `path`, traversable by anyone."""
    args = []
    parts = pathlib.PurePosixPath(path).parents
    for parent in reversed(list(parts)[:-1]):  # skip "/"
        parent = str(parent)
        if parent not in made:
            made.add(parent)
            args += ["--perms", "0755", "--dir", parent]
    return args


#: Runs the command after it with SIGINT ignored. Jupyter interrupts a kernel by sending
#: SIGINT to its whole process group, which holds bubblewrap's own processes too: left
#: at its default, the outer bwrap dies of it and takes the sandbox with it, so every
#: "interrupt" was a kill. Ignored, bwrap lives on, and the kernel still gets its
#: KeyboardInterrupt, because ipykernel sets its own SIGINT handler around each cell.
IGNORE_SIGINT = (sys.executable, "-I", "-S", "-c",
                 "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                 "os.execv(sys.argv[1], sys.argv[1:])")


def bubblewrap_command(cmd, *, scratch, ipc_dir, read_only=(), limits=None, gpu=False):
    """Wrap a kernel command in a bubblewrap sandbox.

    Inside: new PID, network (loopback only), IPC, UTS and cgroup namespaces;
    the system folders, the Python environment and `read_only` paths mounted
    read-only at their own paths; `scratch` (the kernel's home and working
    folder) and `ipc_dir` (its Jupyter sockets) writable; a private /tmp;
    nothing else of the host's files, so no hidden grader, gradebook or other
    student's folder exists there. When the kit runs as root, the kernel drops
    to an unprivileged user with no capabilities, under process and file-size
    limits (`limits`: ``{"nproc": int, "fsize": bytes}``).
    """
    bwrap = shutil.which("bwrap")
    args = [*IGNORE_SIGINT, bwrap, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--hostname", "sandbox",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm", "--tmpfs", "/tmp"]
    made = {"/tmp", "/proc", "/dev", "/dev/shm"}
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.exists(path):
            args += _parents_with_perms(path, made) + ["--ro-bind", path, path]
    # CPU topology only (not the rest of /sys): without it TensorFlow and OpenBLAS
    # size their thread pools blind and run markedly slower.
    for path in ("/sys/devices/system/cpu", "/sys/fs/cgroup"):
        if os.path.isdir(path):
            args += _parents_with_perms(path, made) + ["--ro-bind", path, path]
    python_roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for path in sorted(python_roots | {str(p) for p in read_only}):
        if path and os.path.exists(path) and not any(path.startswith(s + "/") or path == s for s in SYSTEM_PATHS):
            args += _parents_with_perms(path, made) + ["--ro-bind", path, path]
    for path in (scratch, ipc_dir):
        args += _parents_with_perms(path, made) + ["--bind", str(path), str(path)]
    if gpu:
        # Only assignments that ask for a GPU see the NVIDIA device files.
        for device in sorted(pathlib.Path("/dev").glob("nvidia*")):
            args += ["--dev-bind", str(device), str(device)]
    # Inside the PID namespace the kernel's parent is PID 1, which ipykernel would take for
    # an orphaning; --die-with-parent ends the kernel with us instead.
    args += ["--unsetenv", "JPY_PARENT_PID", "--chdir", str(scratch), "--"]
    if os.geteuid() == 0:
        limits = limits or {}
        args += [shutil.which("setpriv"), f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}",
                 "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        prlimit = shutil.which("prlimit")
        if prlimit and limits:
            args += [prlimit] + [f"--{name}={value}" for name, value in limits.items()] + ["--"]
    return args + list(cmd)


def hand_to_sandbox_user(*paths):
    """Give the sandbox's user the folders it must write (when the kit runs as root)."""
    if os.geteuid() != 0:
        return
    for path in paths:
        os.chown(path, SANDBOX_UID, SANDBOX_UID)


def open_beneath(folder, name, flags, mode=0o644):
    """Open `name` in `folder` following no link, neither the folder nor the file.

    The sandbox's user owns the folder and may swap anything in it for a link
    to a file of the host's; the trusted side, often root, must never follow one.
    """
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        return os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def read_regular_file(path, max_bytes):
    """Read at most `max_bytes` of a regular file that is not a link.

    Raises:
        OSError: a link, not a regular file, or not there (FileNotFoundError).
    """
    import stat

    fd = open_beneath(os.path.dirname(path), os.path.basename(path), os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{os.path.basename(path)} is not a regular file")
        chunks, left = [], max_bytes
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_new_file(path, data):
    """Create `path` (which must not exist, nor be a link) and write `data` to it."""
    fd = open_beneath(os.path.dirname(path), os.path.basename(path),
                       os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def remove_file(path):
    """Remove `path` from its folder without following a link to the folder."""
    dir_fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.unlink(os.path.basename(path), dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    finally:
        os.close(dir_fd)
