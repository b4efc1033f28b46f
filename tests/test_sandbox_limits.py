"""The sandbox's limits count everything: memory held in any form, bytes written anywhere writable.

The slow tests run a real kernel in the real bubblewrap sandbox, under small
limits so that a fill trips in seconds. Memory is held for real in every form
a sandbox can hold it; each form must be stopped and reported by the memory
limit, with the peak counted, and the notebook must go on. Both ways of
counting are tested: the machine's memory cgroup (where it gives us one) and
the watchdog's own sums (everywhere). The fast ones check that the memory
cgroup is found on every layout of cgroup file systems, cgroup v2 included,
which this machine may not have.
"""

import os
import pathlib

import nbformat
import psutil
import pytest

from nndl.kernel import sandbox
from nndl.kernel.run import NotebookRun
from nndl.settings import Limits

in_the_sandbox = [pytest.mark.slow,
                  pytest.mark.skipif(sandbox.bubblewrap_problem() is not None,
                                     reason=f"the sandbox cannot start here: {sandbox.bubblewrap_problem()}")]


def sandboxed(test):
    """Mark a test that runs real kernels in the real sandbox."""
    for mark in in_the_sandbox:
        test = mark(test)
    return test


MEMORY_MB = 384
SCRATCH_MB = 96
#: Every fill gives up (and sleeps until its cell's time is out) after this much, so a
#: limit that does not hold fails the test instead of taking the machine's memory.
GIVE_UP = 8 * MEMORY_MB * 2**20
CHUNK = 16 * 2**20

#: Memory held in every form a sandbox can hold it, each in 16 MiB steps.
MEMORY_FILLS = {
    "process memory": "hold = []\nwhile held() < GIVE_UP:\n    hold.append(bytearray(b'x' * CHUNK))\n    add(CHUNK)",
    "memfd, written, never mapped": (
        "import os\nhold = []\nwhile held() < GIVE_UP:\n    fd = os.memfd_create('fill')\n    hold.append(fd)\n"
        "    for _ in range(4):\n        os.write(fd, b'x' * CHUNK)\n        add(CHUNK)"),
    "memfd, mapped, descriptor closed": (
        "import os, mmap\nhold = []\nwhile held() < GIVE_UP:\n    fd = os.memfd_create('fill')\n"
        "    os.ftruncate(fd, 4 * CHUNK)\n    m = mmap.mmap(fd, 4 * CHUNK)\n    os.close(fd)\n    hold.append(m)\n"
        "    for i in range(4):\n        m[i * CHUNK:(i + 1) * CHUNK] = b'x' * CHUNK\n        add(CHUNK)"),
    "shared anonymous mapping": (
        "import mmap\nhold = []\nwhile held() < GIVE_UP:\n    m = mmap.mmap(-1, CHUNK, flags=mmap.MAP_SHARED)\n"
        "    m[:] = b'x' * CHUNK\n    hold.append(m)\n    add(CHUNK)"),
    "files in /dev/shm": (
        "i = 0\nwhile held() < GIVE_UP:\n    with open(f'/dev/shm/fill{i}', 'wb') as f:\n        f.write(b'x' * CHUNK)\n"
        "    i += 1\n    add(CHUNK)"),
    "files in /tmp": (
        "i = 0\nwhile held() < GIVE_UP:\n    with open(f'/tmp/fill{i}', 'wb') as f:\n        f.write(b'x' * CHUNK)\n"
        "    i += 1\n    add(CHUNK)"),
    "POSIX shared memory": (
        "from multiprocessing import shared_memory\nhold = []\nwhile held() < GIVE_UP:\n"
        "    s = shared_memory.SharedMemory(create=True, size=CHUNK)\n    s.buf[:] = b'x' * CHUNK\n"
        "    hold.append(s)\n    add(CHUNK)"),
    "SysV shared memory, detached": (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.shmat.restype = ctypes.c_void_p\n"
        "while held() < GIVE_UP:\n    segment = libc.shmget(0, CHUNK, 0o1600)\n    assert segment >= 0, ctypes.get_errno()\n"
        "    address = libc.shmat(segment, None, 0)\n    ctypes.memset(address, 1, CHUNK)\n"
        "    libc.shmdt(ctypes.c_void_p(address))\n    add(CHUNK)"),
    "a tmpfs it mounts itself": (
        "import subprocess\nfill = ('mount -t tmpfs none /tmp || exit 3; i=0; while [ $i -lt %d ]; do '\n"
        "        'head -c %d /dev/zero > /tmp/f$i || exit 4; i=$((i+1)); done; sleep 60' % (GIVE_UP // CHUNK, CHUNK))\n"
        "done = subprocess.run(['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c', fill])\n"
        "if done.returncode == 3 or done.returncode == 1:\n    raise RuntimeError('no user namespaces in the sandbox')"),
}
#: Run before each fill: a counter, so that a limit that does not hold ends the fill.
FILL_PRELUDE = (f"CHUNK, GIVE_UP = {CHUNK}, {GIVE_UP}\n_filled = [0]\n"
                "def add(n):\n    _filled[0] += n\ndef held():\n    return _filled[0]\n")


def notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


@pytest.fixture(params=["cgroup", "watchdog"])
def accounting(request, monkeypatch):
    """Each way of counting memory: the machine's memory cgroup, and the watchdog alone."""
    if request.param == "cgroup":
        problem = sandbox.memory_cgroup_problem()
        if problem is not None:
            pytest.skip(f"this machine gives no memory cgroup ({problem}); the watchdog's test covers it")
    else:
        monkeypatch.setattr(sandbox, "memory_cgroup_problem", lambda: "the watchdog alone is under test")
    return request.param


def _read(path):
    with open(path) as handle:
        return handle.read()


def _errors(cell):
    return [(o["ename"], o["evalue"]) for o in cell.outputs if o.get("output_type") == "error"]


@pytest.mark.parametrize("form", list(MEMORY_FILLS))
@sandboxed
def test_memory_held_in_any_form_is_stopped_and_reported(accounting, form):
    """Is memory held in any form (process, memfd, tmpfs, shared memory) stopped at the cap, counted, and the cell skipped?"""
    nb = notebook("ok = 1", FILL_PRELUDE + MEMORY_FILLS[form], "after = ok")
    with NotebookRun(nb, Limits(sandbox_memory_mb=MEMORY_MB, cell_timeout=30)) as run:
        problems = run.execute()
        if form == "a tmpfs it mounts itself" and any("no user namespaces" in e[1] for e in _errors(nb.cells[1])):
            pytest.skip("the sandbox's user cannot make user namespaces here, so it cannot mount a tmpfs")
        assert run.memory_accounting.startswith(accounting)
        assert [p.message for p in problems if p.index == 1] == [(
            f"Cell 2 used more than the {MEMORY_MB} MiB of memory a submission may use (files in /tmp and "
            "shared memory count too); it was stopped and skipped.")], (problems, _errors(nb.cells[1]))
        assert run.request("value", "after") == {"ok": True, "value": 1}
        assert run.restarts == 1
    # What the limit counted, up to the moment it stopped the cell, is the peak reported.
    assert MEMORY_MB * 2**20 * 0.9 <= run.peak_memory_bytes < GIVE_UP, run.peak_memory_bytes


#: Bytes written to every place of the host's disk the kernel could write to.
WRITE_FILLS = {
    "files in its folder": (
        "i = 0\nwhile held() < GIVE_UP:\n    with open(f'fill{i}', 'wb') as f:\n        f.write(b'x' * CHUNK)\n"
        "    i += 1\n    add(CHUNK)"),
    "files deleted but held open": (
        "import os\nhold = []\ni = 0\nwhile held() < GIVE_UP:\n    f = open(f'fill{i}', 'wb')\n    f.write(b'x' * CHUNK)\n"
        "    f.flush()\n    os.unlink(f'fill{i}')\n    hold.append(f)\n    i += 1\n    add(CHUNK)"),
    "files deleted but mapped": (
        "import os, mmap\nhold = []\ni = 0\nwhile held() < GIVE_UP:\n    with open(f'fill{i}', 'w+b') as f:\n"
        "        f.write(b'x' * CHUNK)\n        f.flush()\n        hold.append(mmap.mmap(f.fileno(), CHUNK))\n"
        "    os.unlink(f'fill{i}')\n    i += 1\n    add(CHUNK)"),
    "the kernel's socket folder": (
        "import os, ipykernel.connect\nfolder = os.path.dirname(ipykernel.connect.get_connection_file())\n"
        "i = 0\nwhile held() < GIVE_UP:\n    with open(os.path.join(folder, f'fill{i}'), 'wb') as f:\n"
        "        f.write(b'x' * CHUNK)\n    i += 1\n    add(CHUNK)"),
}


@pytest.mark.parametrize("place", list(WRITE_FILLS))
@sandboxed
def test_bytes_written_anywhere_writable_count_in_one_quota(accounting, place):
    """Is every byte the kernel writes to disk in the one quota: stopped and reported, or refused outright?"""
    nb = notebook("ok = 1\nopen('kept.txt', 'w').write('mine')", FILL_PRELUDE + WRITE_FILLS[place],
                  "import os\nafter = ok\nleft = sorted(n for n in os.listdir('.') if not n.startswith('.'))")
    with NotebookRun(nb, Limits(sandbox_memory_mb=MEMORY_MB, scratch_mb=SCRATCH_MB, cell_timeout=30)) as run:
        problems = run.execute()
        errors = _errors(nb.cells[1])
        ipc_dir = os.path.join(run.run_dir, "ipc")
        if place == "the kernel's socket folder" and os.geteuid() == 0:
            # As root the kit takes the folder back once the sockets are bound: nothing can be written.
            assert errors and errors[0][0] == "PermissionError", (problems, errors)
            assert sandbox.folder_size(ipc_dir) < 2**20
            assert [p for p in problems if p.index == 1] == []
        else:
            assert [p.message for p in problems if p.index == 1] == [(
                f"Cell 2 filled the notebook's folder past its {SCRATCH_MB} MiB (every file it writes counts); "
                "it was stopped and skipped, and the folder was put back as handed in.")], (problems, errors)
            # Stopped within a few steps of the quota; what it wrote was counted.
            assert SCRATCH_MB * 2**20 < run.peak_written_bytes < SCRATCH_MB * 2**20 + 32 * CHUNK
            # The next kernel starts from the folder as handed in (the replay writes kept.txt again).
            assert run.request("value", "left") == {"ok": True, "value": ["kept.txt"]}
        assert run.request("value", "after") == {"ok": True, "value": 1}


@sandboxed
def test_every_place_the_kernel_can_write_is_counted():
    """Is every folder the kernel can write to its own folder, /tmp or /dev/shm (memory)? Nothing else."""
    survey = (
        "import os\nwritable = set()\n"
        "for line in open('/proc/self/mountinfo'):\n"
        "    fields = line.split()\n    point, fstype = fields[4], fields[fields.index('-') + 1]\n"
        "    if fstype in ('proc', 'sysfs', 'cgroup', 'cgroup2', 'devpts', 'mqueue'):\n        continue\n"
        "    for root, dirs, files in os.walk(point):\n"
        "        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(root, d))]\n"
        "        if os.access(root, os.W_OK):\n            writable.add(root)\n"
        "writable = sorted(writable)")
    nb = notebook(survey)
    with NotebookRun(nb, Limits()) as run:
        assert run.execute() == []
        writable = run.request("value", "writable")["value"]
        counted = [run.scratch, "/tmp", "/dev/shm"] + ([] if os.geteuid() == 0 else [os.path.join(run.run_dir, "ipc")])
        assert [w for w in writable if not any(w == c or w.startswith(c + "/") for c in counted)] == []
        assert {"/tmp", "/dev/shm", run.scratch} <= set(writable)


@sandboxed
def test_an_honest_notebook_is_unaffected(accounting):
    """Do big files read and written, multiprocessing, /tmp and /dev/shm work under the limits, counted as they should?"""
    nb = notebook(
        "import numpy as np\nx = np.ones(100 * 2**20 // 8)\ntotal = float(x.sum())",
        # A file larger than the memory cap: its page cache is not memory the notebook holds.
        "chunk = b'\\1' * 2**24\nwith open('big.bin', 'wb') as f:\n    for _ in range(25):\n        f.write(chunk)",
        "n = 0\nwith open('big.bin', 'rb') as f:\n    while (b := f.read(2**24)):\n        n += len(b)",
        "import multiprocessing as mp\nwith mp.Pool(2) as pool:\n    squares = pool.map(abs, [-1, -2, -3])",
        "import tempfile\nwith open('/tmp/note.txt', 'w') as f:\n    f.write('hi')\n"
        "with tempfile.NamedTemporaryFile() as t:\n    t.write(b'x' * 2**20)\n"
        "with open('/dev/shm/s', 'wb') as f:\n    f.write(b'y' * 2**22)\nnote = open('/tmp/note.txt').read()")
    with NotebookRun(nb, Limits(sandbox_memory_mb=256, scratch_mb=512)) as run:
        assert run.execute() == []
        assert run.request("value", "n") == {"ok": True, "value": 25 * 2**24}
        assert run.request("value", "squares") == {"ok": True, "value": [1, 2, 3]}
        assert run.request("value", "note") == {"ok": True, "value": "hi"}
        assert run.restarts == 0
    # The numpy array counted, the 400 MiB of page cache not.
    assert 100 * 2**20 < run.peak_memory_bytes < 256 * 2**20
    assert 400 * 2**20 <= run.peak_written_bytes < 512 * 2**20


@sandboxed
def test_the_kernel_cannot_leave_or_widen_its_cgroup():
    """Where there is a cgroup: is the kernel in it from the start, under the cap, unable to change either?"""
    problem = sandbox.memory_cgroup_problem()
    if problem is not None:
        pytest.skip(f"this machine gives no memory cgroup ({problem})")
    attempt = (
        "import glob\nchanged = []\n"
        "for path in glob.glob('/sys/fs/cgroup/**/memory.limit_in_bytes', recursive=True) + "
        "glob.glob('/sys/fs/cgroup/**/memory.max', recursive=True) + "
        "glob.glob('/sys/fs/cgroup/**/cgroup.procs', recursive=True):\n"
        "    try:\n        with open(path, 'w') as f:\n            f.write('max' if path.endswith('max') else "
        "'0' if path.endswith('procs') else str(2**40))\n        changed.append(path)\n"
        "    except OSError:\n        pass")
    nb = notebook(attempt)
    with NotebookRun(nb, Limits(sandbox_memory_mb=MEMORY_MB)) as run:
        assert run.execute() == []
        assert run.request("value", "changed") == {"ok": True, "value": []}
        cgroup = run.cgroup
        kernel = [p for p in sandbox.process_tree(run.kernel_pid) if "ipykernel" in " ".join(p.cmdline())]
        assert kernel and all(f"{cgroup.name}\n" in _read(f"/proc/{p.pid}/cgroup") for p in kernel)
        limit_file = "memory.limit_in_bytes" if cgroup.version == 1 else "memory.max"
        assert int(_read(os.path.join(cgroup.path, limit_file))) == MEMORY_MB * 2**20


@sandboxed
def test_nothing_is_left_behind(accounting):
    """After a run whose kernel was killed at its limit and restarted: are its cgroups, folders and processes gone?"""
    nb = notebook("ok = 1", FILL_PRELUDE + MEMORY_FILLS["files in /dev/shm"], "after = ok")
    cgroups, pids = [], []
    with NotebookRun(nb, Limits(sandbox_memory_mb=MEMORY_MB, cell_timeout=30)) as run:
        start = run._start_kernel

        def start_and_note():
            start()
            cgroups.append(run.cgroup)
            pids.extend(p.pid for p in sandbox.process_tree(run.kernel_pid))
        run._start_kernel = start_and_note
        run.execute()
        assert run.restarts == 1
        run_dir = run.run_dir
    assert not os.path.exists(run_dir)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    if accounting == "cgroup":
        assert len(cgroups) == 2 and all(c is not None and not os.path.exists(c.path) for c in cgroups)
    else:
        assert cgroups == [None, None]


#: Layouts of /proc/self/cgroup and the cgroup mounts, and where the memory cgroup must be found.
CGROUP_LAYOUTS = {
    "cgroup v2 only": (
        "0::/user.slice/session.scope\n", [("cgroup2", "/", "", ["rw"])], "cpu memory pids",
        (2, "user.slice/session.scope")),
    "memory on v1, v2 beside it (this machine's kind)": (
        "4:memory:/process_api/abc\n0::/\n",
        [("cgroup", "/", "memory", ["rw", "memory"]), ("cgroup2", "/", "unified", ["rw"])], "hugetlb",
        (1, "memory/process_api/abc")),
    "v1, controllers mounted together": (
        "3:cpu,memory:/job\n", [("cgroup", "/", "cpu,memory", ["rw", "cpu", "memory"])], None, (1, "cpu,memory/job")),
    "a container's own cgroup mounted as the root": (
        "4:memory:/docker/abc\n", [("cgroup", "/docker/abc", "memory", ["rw", "memory"])], None, (1, "memory")),
    "v2 without the memory controller": ("0::/x\n", [("cgroup2", "/", "", ["rw"])], "cpu pids", None),
    "a cgroup outside the part mounted": (
        "4:memory:/elsewhere\n", [("cgroup", "/docker/abc", "memory", ["rw", "memory"])], None, None),
    "no cgroups at all": ("", [], None, None),
}


@pytest.mark.parametrize("layout", list(CGROUP_LAYOUTS))
def test_the_memory_cgroup_is_found_on_every_layout(layout, tmp_path):
    """Is this process's memory cgroup found (cgroup v1 or v2, in a container or not), or its absence said?"""
    proc_cgroup, mounts, v2_controllers, expected = CGROUP_LAYOUTS[layout]
    mounts = [{"dev": "0:1", "root": root, "point": str(tmp_path / point), "fstype": fstype, "options": options}
              for fstype, root, point, options in mounts]
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for mount in mounts:
            if mount["fstype"] == ("cgroup2" if controllers == "" else "cgroup"):
                folder = pathlib.Path(mount["point"]) / os.path.relpath(path, "/")
                folder.mkdir(parents=True, exist_ok=True)
                if v2_controllers is not None and mount["fstype"] == "cgroup2":
                    (folder / "cgroup.controllers").write_text(v2_controllers + "\n")
    if expected is None:
        with pytest.raises(sandbox.CgroupUnavailable):
            sandbox._own_memory_cgroup(proc_cgroup, mounts)
    else:
        assert sandbox._own_memory_cgroup(proc_cgroup, mounts) == (expected[0], str(tmp_path / expected[1]))


def test_a_v2_cgroup_is_limited_and_read(tmp_path, monkeypatch):
    """On cgroup v2 (its files faked here): is the limit set, and are OOM kills and memory held read right?"""
    (tmp_path / "cgroup.subtree_control").write_text("memory pids\n")
    dead = tmp_path / "nndl-999999999-0123abcd"  # left by a grading process that is gone
    ours = tmp_path / f"nndl-{os.getpid()}-0123abcd"
    dead.mkdir()
    ours.mkdir()
    monkeypatch.setattr(sandbox, "_own_memory_cgroup", lambda: (2, str(tmp_path)))
    cgroup = sandbox.MemoryCgroup.create(300 * 2**20)
    path = pathlib.Path(cgroup.path)
    assert cgroup.version == 2 and path.parent == tmp_path and not dead.exists() and ours.exists()
    assert (path / "memory.max").read_text() == str(300 * 2**20)
    assert cgroup.procs_file == str(path / "cgroup.procs")
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n")
    (path / "memory.current").write_text(f"{250 * 2**20}\n")
    (path / "memory.stat").write_text(f"anon {40 * 2**20}\nfile {200 * 2**20}\nkernel {10 * 2**20}\n"
                                      f"shmem {190 * 2**20}\nfile_mapped 0\n")
    (path / "memory.peak").write_text(f"{300 * 2**20}\n")
    assert cgroup.oom_kills() == 1
    # Memory held: all but the 10 MiB of page cache that could be dropped (the shmem is held).
    assert cgroup.held_bytes() == 240 * 2**20
    assert cgroup.peak_bytes() == 300 * 2**20
