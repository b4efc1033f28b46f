"""Where the student's kernel runs: its process, environment and limits.

This module knows how to start a Jupyter kernel that cannot reach the network
(a fresh network namespace, so not even loopback of the host), with a clean
environment and a scratch directory as its home, and how to watch and end its
whole process tree: the memory it holds in any form (by a memory cgroup where
the machine gives us one, else by its own sums) and the bytes it writes
anywhere it can. Filesystem isolation and an unprivileged user come with
the full sandbox; nothing in the grading design relies on the kernel being
honest in the meantime, because graders only ever receive data from it.
"""

import ctypes
import functools
import os
import pathlib
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid

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


def gpu_memory_mb(device):
    """Total memory of GPU `device` (its index) in MiB, from nvidia-smi; None where unknown."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits",
                               "-i", str(device)], capture_output=True, text=True, timeout=20)
        return int(done.stdout.split()[0]) if done.returncode == 0 else None
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def gpu_share_environment(slots, device=None):
    """The kernel's environment for one of `slots` kernels sharing a GPU: each capped at its share.

    9/10 of the device is shared out (the rest is the CUDA contexts' own); TensorFlow grows its
    memory as needed up to its share (the kernel's start code sets the cap from
    NNDL_GPU_MEMORY_MB), JAX preallocates its fraction, PyTorch's allocator is capped at it.
    """
    fraction = 0.9 / max(1, int(slots))
    env = {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    if slots > 1:
        env.update({"XLA_PYTHON_CLIENT_MEM_FRACTION": f"{fraction:.4f}",
                    "NNDL_GPU_MEMORY_FRACTION": f"{fraction:.4f}"})
        total = gpu_memory_mb(device) if device not in (None, "") else None
        env["NNDL_GPU_MEMORY_MB"] = str(int(total * fraction)) if total else "0"
    return env


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
    starting it; `cgroup` (a `MemoryCgroup`) holds the kernel from its first
    instruction when given; `memory_bytes` sizes the sandbox's /tmp and /dev/shm.
    """

    scratch = None
    ipc_dir = None
    mode = "bubblewrap"
    limits = None
    read_only = ()
    gpu = False
    cgroup = None
    memory_bytes = None

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        if self.mode == "bubblewrap":
            # Written by us just now (0600): the kernel's user must be able to read it.
            hand_to_sandbox_user(self.connection_file)
            cmd = bubblewrap_command(cmd, scratch=self.scratch, ipc_dir=self.ipc_dir, read_only=self.read_only,
                                     limits=self.limits, gpu=self.gpu, memory_bytes=self.memory_bytes)
        elif network_isolation_available():
            cmd = [shutil.which("unshare"), "--net", "--"] + cmd
        return launch_command(cmd, cgroup=self.cgroup)

    def seal_ipc_dir(self):
        """Take the socket folder back from the kernel once its sockets are bound.

        The kernel must create its sockets there, but after that it has no
        business writing there, and the folder is not in its scratch quota:
        when the kit runs as root, the folder and the connection file become
        root's again, so the kernel can neither add files nor grow one.
        """
        if self.mode != "bubblewrap" or os.geteuid() != 0:
            return
        for name in os.listdir(self.ipc_dir):
            path = os.path.join(self.ipc_dir, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.chown(path, 0, 0, follow_symlinks=False)
        os.chown(self.ipc_dir, 0, 0, follow_symlinks=False)
        os.chmod(self.ipc_dir, 0o755, follow_symlinks=False)


def make_kernel_manager(run_dir, *, scratch, mode, limits=None, read_only=(), gpu=False,
                        kernel_name="python3", cgroup=None, memory_bytes=None):
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
    km.cgroup, km.memory_bytes = cgroup, memory_bytes
    return km


#: Starts a sandbox: joins the memory cgroup whose cgroup.procs file is the first
#: argument ("" for none), so that everything the sandbox ever starts is in it, then
#: runs the command after it with SIGINT ignored. Jupyter interrupts a kernel by
#: sending SIGINT to its whole process group, which holds bubblewrap's own processes
#: too: left at its default, the outer bwrap died of it and took the sandbox with it,
#: so every "interrupt" was a kill. Ignored, bwrap lives on, and the kernel still gets
#: its KeyboardInterrupt, because ipykernel sets its own SIGINT handler around each cell.
_LAUNCHER = (
    "import os, signal, sys\n"
    "if sys.argv[1]:\n"
    "    with open(sys.argv[1], 'w') as procs:\n"
    "        procs.write(str(os.getpid()))\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n")


def launch_command(cmd, *, cgroup=None):
    """`cmd` started through `_LAUNCHER`: in `cgroup` (if any), SIGINT ignored by its wrappers."""
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, cgroup.procs_file if cgroup else ""] + list(cmd)


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


# -- memory: the kernel's own accounting where the machine delegates it --------

class CgroupUnavailable(RuntimeError):
    """This machine gives us no memory cgroup to put a sandbox in; the message says why."""


def _read(path):
    with open(path) as handle:
        return handle.read()


def _write(path, value):
    with open(path, "w") as handle:
        handle.write(str(value))


def _keyed(path):
    """A cgroup file of "key value" lines as a dict of ints."""
    values = {}
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            values[key] = int(value)
    return values


def _unescape(path):
    """A path as /proc/PID/mountinfo writes it (spaces and the like as octal escapes), as it is."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _mountinfo(pid="self"):
    """The mounts a process sees: dicts of dev ("major:minor"), root, point, fstype, options."""
    mounts = []
    with open(f"/proc/{pid}/mountinfo") as lines:
        for line in lines:
            fields = line.split()
            sep = fields.index("-")
            mounts.append({"dev": fields[2], "root": _unescape(fields[3]), "point": _unescape(fields[4]),
                           "fstype": fields[sep + 1], "options": fields[sep + 3].split(",")})
    return mounts


def _own_memory_cgroup(proc_cgroup=None, mounts=None):
    """(version, folder) of the memory cgroup this process is in.

    `proc_cgroup` (the text of /proc/self/cgroup) and `mounts` (`_mountinfo`)
    default to this process's own.

    Raises:
        CgroupUnavailable: no memory controller is mounted where we can reach it.
    """
    if proc_cgroup is None:
        proc_cgroup = _read("/proc/self/cgroup")
    lines = [line.split(":", 2) for line in proc_cgroup.splitlines() if line.count(":") >= 2]
    mounts = _mountinfo() if mounts is None else mounts
    candidates = [(1, path, [m for m in mounts if m["fstype"] == "cgroup" and "memory" in m["options"]])
                  for _, controllers, path in lines if "memory" in controllers.split(",")]
    candidates += [(2, path, [m for m in mounts if m["fstype"] == "cgroup2"])
                   for hierarchy, controllers, path in lines if hierarchy == "0" and controllers == ""]
    for version, path, found in candidates:
        for mount in found:
            inside = os.path.relpath(path, mount["root"])
            if inside == ".." or inside.startswith("../"):
                continue
            folder = os.path.normpath(os.path.join(mount["point"], inside))
            if version == 2:
                try:
                    with open(os.path.join(folder, "cgroup.controllers")) as handle:
                        if "memory" not in handle.read().split():
                            continue
                except OSError:
                    continue
            if os.path.isdir(folder):
                return version, folder
    raise CgroupUnavailable("no memory cgroup controller is mounted for this process")


class MemoryCgroup:
    """A memory cgroup of one sandbox: the machine's own memory accounting and limit.

    Every page the sandbox holds is charged to it, whatever form it takes:
    process memory, memfd and tmpfs files (/tmp, /dev/shm), SysV and POSIX
    shared memory, kernel memory. Page cache that can be dropped is
    reclaimed before the limit bites, so reading or writing big files does
    not count. It is made below the cgroup this process is in (never beside
    it, so that limits set on us still hold), on cgroup v2 or on the v1
    memory controller, whichever the machine has.
    """

    def __init__(self, path, version):
        self.path = path
        self.version = version

    def __repr__(self):
        return f"MemoryCgroup({self.path!r}, v{self.version})"

    @classmethod
    def create(cls, limit_bytes):
        """A new cgroup holding at most `limit_bytes` (swap included).

        Raises:
            CgroupUnavailable: none can be made or limited here (not root,
                not delegated, no memory controller), with the reason.
        """
        version, parent = _own_memory_cgroup()
        if version == 2:
            try:
                if "memory" not in _read(os.path.join(parent, "cgroup.subtree_control")).split():
                    _write(os.path.join(parent, "cgroup.subtree_control"), "+memory")
            except OSError as error:
                raise CgroupUnavailable(f"the memory controller is not delegated below {parent} "
                                        f"({error.strerror or error})") from None
        _remove_stale_cgroups(parent)
        path = os.path.join(parent, f"nndl-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.mkdir(path)
        except OSError as error:
            raise CgroupUnavailable(f"cannot make a cgroup in {parent} ({error.strerror or error})") from None
        cgroup = cls(path, version)
        try:
            limit = str(int(limit_bytes))
            if version == 1:
                _write(os.path.join(path, "memory.limit_in_bytes"), limit)
                if os.path.exists(os.path.join(path, "memory.memsw.limit_in_bytes")):
                    _write(os.path.join(path, "memory.memsw.limit_in_bytes"), limit)
                if int(_read(os.path.join(path, "memory.limit_in_bytes"))) > int(limit_bytes):
                    raise OSError("the limit did not hold")
                if "oom_kill" not in _keyed(os.path.join(path, "memory.oom_control")):
                    raise OSError("this kernel does not count OOM kills (memory.oom_control)")
            else:
                _write(os.path.join(path, "memory.max"), limit)
                for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                    if os.path.exists(os.path.join(path, name)):
                        _write(os.path.join(path, name), value)
                if _read(os.path.join(path, "memory.max")).strip() != limit:
                    raise OSError("the limit did not hold")
        except (OSError, ValueError) as error:
            cgroup.remove()
            raise CgroupUnavailable(f"cannot limit the memory of a cgroup in {parent} "
                                    f"({getattr(error, 'strerror', None) or error})") from None
        return cgroup

    @property
    def name(self):
        return os.path.basename(self.path)

    @property
    def procs_file(self):
        """Write a PID here to move that process in."""
        return os.path.join(self.path, "cgroup.procs")

    def oom_kills(self):
        """Processes the kernel killed in this cgroup for want of memory."""
        try:
            if self.version == 1:
                return _keyed(os.path.join(self.path, "memory.oom_control")).get("oom_kill", 0)
            return _keyed(os.path.join(self.path, "memory.events")).get("oom_kill", 0)
        except OSError:
            return 0

    def held_bytes(self):
        """Memory charged now, less page cache that could be dropped (files on disk)."""
        try:
            if self.version == 1:
                used = int(_read(os.path.join(self.path, "memory.usage_in_bytes")))
                stats = _keyed(os.path.join(self.path, "memory.stat"))
                return max(0, used - stats.get("total_cache", 0) + stats.get("total_shmem", 0))
            used = int(_read(os.path.join(self.path, "memory.current")))
            stats = _keyed(os.path.join(self.path, "memory.stat"))
            return max(0, used - stats.get("file", 0) + stats.get("shmem", 0))
        except (OSError, ValueError):
            return 0

    def peak_bytes(self):
        """The most memory ever charged (page cache included), or 0 where unknown."""
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return int(_read(os.path.join(self.path, name)))
        except (OSError, ValueError):
            return 0

    def pids(self):
        """The processes in the cgroup."""
        try:
            return [int(p) for p in _read(self.procs_file).split()]
        except (OSError, ValueError):
            return []

    def kill(self):
        """SIGKILL every process in the cgroup."""
        if self.version == 2 and os.path.exists(os.path.join(self.path, "cgroup.kill")):
            try:
                _write(os.path.join(self.path, "cgroup.kill"), "1")
            except OSError:
                pass
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def remove(self, timeout=5.0):
        """Kill what is left in the cgroup and delete it; False if it could not be deleted in time."""
        deadline = time.monotonic() + timeout
        while True:
            self.kill()
            try:
                os.rmdir(self.path)
                return True
            except FileNotFoundError:
                return True
            except OSError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02)


def _remove_stale_cgroups(parent):
    """Delete empty cgroups that grading processes now gone left in `parent`."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        match = re.fullmatch(r"nndl-(\d+)-[0-9a-f]{8}", name)
        if match and not psutil.pid_exists(int(match.group(1))):
            try:
                os.rmdir(os.path.join(parent, name))
            except OSError:
                pass


@functools.lru_cache(maxsize=None)
def memory_cgroup_problem():
    """None when every sandbox here can get a memory cgroup of its own, else a sentence saying why not.

    Tried for real: a cgroup is made and limited, and a process started the
    way kernels are started must find itself in it.
    """
    try:
        cgroup = MemoryCgroup.create(256 * 2**20)
    except CgroupUnavailable as error:
        return str(error)
    try:
        cat = shutil.which("cat") or "/bin/cat"
        done = subprocess.run(launch_command([cat, "/proc/self/cgroup"], cgroup=cgroup),
                              capture_output=True, text=True, timeout=20)
        if done.returncode != 0 or cgroup.name not in done.stdout:
            return f"a process could not be moved into a memory cgroup ({done.stderr.strip()[-200:]})"
        return None
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"a process could not be started in a memory cgroup ({error})"
    finally:
        cgroup.remove()


# -- memory: counted from outside where there is no cgroup ---------------------

#: setns(2)'s flag for an IPC namespace.
_CLONE_NEWIPC = 0x08000000
#: statfs(2) types of file systems whose files are memory: tmpfs (and shmem), hugetlbfs, ramfs.
_MEMORY_FS_TYPES = {0x01021994, 0x958458F6, 0x858458F6}


def _fs_type(path):
    """statfs(2)'s f_type of the file system holding `path` (Linux, 64-bit), or None."""
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(256)  # larger than struct statfs; f_type comes first
    if libc.statfs(os.fsencode(path), buffer) != 0:
        return None
    return ctypes.c_ulong.from_buffer(buffer).value & 0xFFFFFFFF


@functools.lru_cache(maxsize=None)
def _shm_device():
    """st_dev of the kernel's internal shared-memory file system (memfd, SysV, shared anonymous memory)."""
    fd = os.memfd_create("nndl-probe")
    try:
        return os.fstat(fd).st_dev
    finally:
        os.close(fd)


def _device(text, base=10):
    """A "major:minor" as an st_dev (decimal in mountinfo, hexadecimal in /proc/PID/maps)."""
    major, minor = text.split(":")
    return os.makedev(int(major, base), int(minor, base))


def _kib_fields(pid, names):
    values = dict.fromkeys(names, 0)
    with open(f"/proc/{pid}/status") as lines:
        for line in lines:
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0]) * 1024
    return values


class TreeMeter:
    """What a process tree holds in memory and on disk, measured from outside.

    Used where there is no memory cgroup, and for the disk in every case.
    Memory is counted in every form the tree can hold it: each process's own
    pages (anonymous and file-backed, not double-counting shared memory),
    every shared-memory object it holds by a file descriptor or a mapping
    (memfd, shared anonymous memory, deleted tmpfs files; each object once,
    at its full size, mapped or not), every in-memory file system of the
    sandbox's own (its /tmp and /dev/shm, and any it mounts itself), and SysV
    shared memory in its IPC namespaces (read by entering them, which needs
    root; otherwise the segments it has attached). On disk: files deleted
    but still held open or mapped, on the file systems of `write_roots`; the
    files still linked there are `folder_size`'s.

    The sandbox's /tmp and /dev/shm are held open from their first sight
    until `close`, so that they can still be measured when the sandbox has
    died: filled to their size, they kill a writer with SIGBUS before any
    poll sees them full, and that death is the memory limit's.

    Not counted without a cgroup: kernel buffers (pipes, sockets), which the
    process and file limits bound.
    """

    def __init__(self, write_roots=()):
        self.write_devs = set()
        for root in write_roots:
            try:
                self.write_devs.add(os.stat(root).st_dev)
            except OSError:
                pass
        self.own_mnt = os.stat("/proc/self/ns/mnt").st_ino
        self.own_ipc = os.stat("/proc/self/ns/ipc").st_ino
        self.host_memory_fs = {_device(m["dev"]) for m in _mountinfo() if m["fstype"] in ("tmpfs", "hugetlbfs")}
        self._memory_fs = {_shm_device(): True}  # st_dev -> whether its files are memory
        self._sandbox_mnt = None  # the sandbox's own mount namespace, once seen
        self._held_open = {}  # st_dev -> O_PATH descriptor of a memory file system of the sandbox's

    def measure(self, procs, memory=True):
        """(memory held, bytes of deleted files held on the write roots' disks) by `procs`."""
        held, hidden = 0, 0
        objects = {}  # (dev, ino) -> (size, nlink, name, a path to it for statfs, or None)
        mnt_nses, ipc_nses = {}, {}
        for proc in procs:
            pid = proc.pid
            try:
                if memory:
                    rss = _kib_fields(pid, ("RssAnon", "RssFile"))
                    held += rss["RssAnon"] + rss["RssFile"]
                    mnt = os.stat(f"/proc/{pid}/ns/mnt").st_ino
                    mnt_nses.setdefault(mnt, pid)
                    if self._sandbox_mnt is None and mnt != self.own_mnt:
                        self._sandbox_mnt = mnt  # the first process inside: bubblewrap's own
                    ipc_nses.setdefault(os.stat(f"/proc/{pid}/ns/ipc").st_ino, pid)
                self._fd_objects(pid, objects)
                self._mapped_objects(pid, objects)
            except (OSError, ValueError):
                continue  # gone meanwhile
        counted_fs, sysv_read = set(), False
        if memory:
            for ns, pid in mnt_nses.items():
                if ns != self.own_mnt:
                    try:
                        held += self._memory_fs_bytes(pid, counted_fs, hold=ns == self._sandbox_mnt)
                    except (OSError, ValueError):
                        pass  # gone meanwhile
            for dev, fd in self._held_open.items():
                if dev not in counted_fs:  # its sandbox is gone, its content is not
                    counted_fs.add(dev)
                    held += _used_bytes(fd)
            try:
                sysv = _sysv_shm_bytes([pid for ns, pid in ipc_nses.items() if ns != self.own_ipc])
            except (OSError, ValueError):
                sysv = None
            if sysv is not None:
                held += sysv
                sysv_read = True
        for (dev, _), (size, nlink, name, path) in objects.items():
            if dev in self.write_devs:
                if nlink == 0:
                    hidden += size
            elif (memory and dev not in counted_fs and self._in_memory(dev, path)
                  and not (sysv_read and name.startswith("/SYSV"))):
                held += size
        return held, hidden

    def _in_memory(self, dev, path):
        """Whether files on the file system `dev` are memory (shmem, a tmpfs that is not the host's)."""
        if dev not in self._memory_fs:
            if dev in self.host_memory_fs or os.major(dev) != 0 or path is None:
                return False  # a disk, the host's own tmpfs read through a binding, or cannot tell
            self._memory_fs[dev] = _fs_type(path) in _MEMORY_FS_TYPES
        return self._memory_fs[dev]

    @staticmethod
    def _fd_objects(pid, objects):
        folder = f"/proc/{pid}/fd"
        for fd in os.listdir(folder):
            try:
                info = os.stat(os.path.join(folder, fd))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                objects.setdefault((info.st_dev, info.st_ino),
                                   (info.st_blocks * 512, info.st_nlink, "", os.path.join(folder, fd)))

    @staticmethod
    def _mapped_objects(pid, objects):
        with open(f"/proc/{pid}/maps") as lines:
            for line in lines:
                fields = line.split(None, 5)
                if len(fields) < 6 or fields[4] == "0":
                    continue
                name = fields[5].rstrip("\n")
                if fields[1][3] != "s" and not name.endswith("(deleted)"):
                    continue  # a private mapping of a file that exists: the process's own pages
                key = (_device(fields[3], 16), int(fields[4]))
                if key in objects:
                    continue
                path = f"/proc/{pid}/map_files/{fields[0]}"
                try:
                    info = os.stat(path)
                    objects[key] = (info.st_blocks * 512, info.st_nlink, name, path)
                except OSError:  # map_files needs root: the mapping's length will do
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    objects[key] = (end - start, 0 if name.endswith("(deleted)") else 1, name, None)

    def _memory_fs_bytes(self, pid, counted, hold=False):
        """Bytes in the in-memory file systems mounted in `pid`'s mount namespace, not the host's.

        With `hold`, each stays open (`_held_open`) until `close`.
        """
        total = 0
        for mount in _mountinfo(pid):
            if mount["fstype"] not in ("tmpfs", "hugetlbfs"):
                continue
            dev = _device(mount["dev"])
            if dev in counted or dev in self.host_memory_fs:
                continue
            fd = self._held_open.get(dev)
            if fd is None:
                try:
                    fd = os.open(f"/proc/{pid}/root{mount['point']}", os.O_PATH | os.O_DIRECTORY)
                except OSError:
                    continue
                # The folder opened must be that mount's, whatever links the sandbox made meanwhile.
                if os.fstat(fd).st_dev != dev:
                    os.close(fd)
                    continue
                if hold:
                    self._held_open[dev] = fd
            try:
                counted.add(dev)
                total += _used_bytes(fd)
            finally:
                if not hold:
                    os.close(fd)
        return total

    def close(self):
        """Let go of the sandbox's memory file systems (their memory is freed once the sandbox is gone)."""
        for fd in self._held_open.values():
            os.close(fd)
        self._held_open.clear()


def _used_bytes(fd):
    """Bytes in use in the file system of the open `fd`."""
    usage = os.fstatvfs(fd)
    return (usage.f_blocks - usage.f_bfree) * usage.f_frsize


def _sysv_shm_bytes(pids):
    """Resident bytes of the SysV shared memory in the IPC namespaces of `pids`; None if unreadable.

    /proc/sysvipc/shm lists the segments of the reader's own IPC namespace,
    so this thread enters each namespace in turn (setns; needs root), and
    returns to its own.
    """
    if not pids:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/ipc", os.O_RDONLY)
    total = 0
    try:
        for pid in pids:
            try:
                fd = os.open(f"/proc/{pid}/ns/ipc", os.O_RDONLY)
            except OSError:
                continue
            try:
                if libc.setns(fd, _CLONE_NEWIPC) != 0:
                    return None
                with open("/proc/sysvipc/shm") as handle:
                    header, *rows = handle.read().splitlines()
            finally:
                os.close(fd)
                libc.setns(own, _CLONE_NEWIPC)
            column = header.split().index("rss") if "rss" in header.split() else header.split().index("size")
            total += sum(int(row.split()[column]) for row in rows if row.strip())
    finally:
        os.close(own)
    return total


class ResourceWatchdog(threading.Thread):
    """Stops a sandbox that holds more memory, or has written more bytes, than it may.

    Memory: with a `cgroup` (`MemoryCgroup`), the machine enforces the limit
    and counts every form of memory itself; this thread notices its OOM
    kills, ends the rest of the tree and records the peak. Without one, it
    adds up what the tree holds in every form it can see (`TreeMeter`) and
    kills the tree past `limit_bytes`. Address-space limits are no use
    either way: TensorFlow reserves far more virtual memory than it uses.
    Without a cgroup, `baseline_bytes` are not counted: what a process forked
    from a template (`nndl.score.template`) shares with it from the start.

    Disk: the bytes under `write_roots` (every folder of the host's disks
    the sandbox can write) plus deleted files its processes still hold
    there, against `write_bytes`; measured every poll, less often when a
    walk of the folders takes long.
    """

    def __init__(self, pid, limit_bytes, *, cgroup=None, write_roots=(), write_bytes=None, interval=0.2,
                 baseline_bytes=0):
        super().__init__(daemon=True, name=f"resource-watchdog-{pid}")
        self.pid = pid
        self.limit_bytes = limit_bytes
        self.baseline_bytes = baseline_bytes
        self.cgroup = cgroup
        self.write_roots = [str(r) for r in write_roots]
        self.write_bytes = write_bytes
        self.interval = interval
        self.tripped = None  # "memory" or "scratch" once it fired
        self.peak_bytes = 0
        self.peak_written_bytes = 0
        self.meter = TreeMeter(self.write_roots)
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self._polled = threading.Condition()
        self._polls_started = self._polls_done = 0
        self._next_disk_check = 0.0

    def run(self):
        try:
            while not self._stop_event.is_set():
                with self._polled:
                    self._polls_started += 1
                try:
                    self._poll()
                except Exception:  # a bad reading must not end the watch: the next poll tries again
                    pass
                with self._polled:
                    self._polls_done = self._polls_started
                    self._polled.notify_all()
                if self.tripped:
                    kill_tree(self.pid)
                    if self.cgroup is not None:
                        self.cgroup.kill()
                    return
                self._wake.wait(self.interval)
                self._wake.clear()
        finally:
            self.meter.close()
            with self._polled:
                self._polls_done = self._polls_started = self._polls_started + 1
                self._polled.notify_all()

    def _poll(self):
        procs = process_tree(self.pid)
        disk_due = bool(self.write_roots and self.write_bytes) and time.monotonic() >= self._next_disk_check
        if self.cgroup is not None:
            held = self.cgroup.held_bytes()
            if self.cgroup.oom_kills():
                self.tripped = "memory"
                held = max(held, self.cgroup.peak_bytes())
            hidden = self.meter.measure(procs, memory=False)[1] if disk_due else 0
        else:
            held, hidden = self.meter.measure(procs)
            held = max(0, held - self.baseline_bytes)
            # At the limit is past it: /tmp and /dev/shm are as large as the limit, so a full
            # one holds all of it, and stops its writer there.
            if held >= self.limit_bytes:
                self.tripped = "memory"
        self.peak_bytes = max(self.peak_bytes, held)
        if disk_due:
            started = time.monotonic()
            written = hidden + sum(folder_size(root) for root in self.write_roots)
            # A walk costs about its own length again in CPU: keep it under a tenth of the time.
            self._next_disk_check = time.monotonic() + 10 * (time.monotonic() - started)
            if written != float("inf"):
                self.peak_written_bytes = max(self.peak_written_bytes, written)
            if written > self.write_bytes and not self.tripped:
                self.tripped = "scratch"

    def check(self, timeout=5.0):
        """Measure once more now, from any thread; what tripped, if anything."""
        if not self.is_alive():
            return self.tripped
        with self._polled:
            target = self._polls_started + 1  # a poll that starts after this call
            self._wake.set()
            self._polled.wait_for(lambda: self._polls_done >= target or not self.is_alive(), timeout)
        return self.tripped

    def stop(self):
        self._stop_event.set()
        self._wake.set()


def new_run_directory(root=None):
    """A directory for one submission's run (sockets, scratch, exports).

    Others may pass through it (the sandbox's user must reach its scratch
    and socket folders) but not list it. By default it is made under this
    process's scratch root (`nndl.scratch`), swept once the process is gone.
    """
    from nndl import scratch

    path = tempfile.mkdtemp(prefix="nndl-run-", dir=root or scratch.process_root())
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


@functools.lru_cache(maxsize=None)
def bubblewrap_supports(option):
    """Whether this machine's bubblewrap knows `option` (``--size`` came with 0.8, ``--perms`` with 0.5)."""
    try:
        done = subprocess.run([shutil.which("bwrap") or "bwrap", "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return re.search(rf"^\s*{re.escape(option)}\b", done.stdout + done.stderr, re.MULTILINE) is not None


def bubblewrap_command(cmd, *, scratch, ipc_dir, read_only=(), limits=None, gpu=False, memory_bytes=None):
    """Wrap a kernel command in a bubblewrap sandbox.

    Inside: new PID, network (loopback only), IPC, UTS and cgroup namespaces;
    the system folders, the Python environment and `read_only` paths mounted
    read-only at their own paths; `scratch` (the kernel's home and working
    folder) and `ipc_dir` (its Jupyter sockets) writable; a private /tmp;
    nothing else of the host's files, so no hidden grader, gradebook or other
    student's folder exists there. When the kit runs as root, the kernel drops
    to an unprivileged user with no capabilities, under process and file-size
    limits (`limits`: ``{"nproc": int, "fsize": bytes}``). /tmp and /dev/shm
    are writable by all, as on any Linux (multiprocessing needs /dev/shm);
    they live in memory, so what they hold counts as the sandbox's memory
    (see `ResourceWatchdog`), and each is capped at `memory_bytes` where
    bubblewrap can size them.
    """
    bwrap = shutil.which("bwrap")
    tmpfs = ["--perms", "1777"] if bubblewrap_supports("--perms") else []
    if memory_bytes and bubblewrap_supports("--size"):
        tmpfs += ["--size", str(int(memory_bytes))]
    args = [bwrap, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--hostname", "sandbox",
            "--proc", "/proc", "--dev", "/dev", *tmpfs, "--tmpfs", "/dev/shm", *tmpfs, "--tmpfs", "/tmp"]
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
