"""Step 2 of DESIGN.md: run a student's notebook in a fresh, sandboxed kernel.

`NotebookRun` executes every code cell with a wall clock per cell and per
submission and a memory cap, keeps the kernel alive afterwards so that graders
can ask it for values and function calls (through `nndl.bridge`), and
ends the whole process tree when it closes. A cell that kills the kernel, runs
out of memory or cannot be interrupted is skipped: the kernel is restarted,
the cells before it are run again, and the notebook carries on, so one broken
cell costs only what depends on it.
"""

import json
import os
import shutil
import signal
import stat
import subprocess
import time
import uuid

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

import nndl_datasets
from nndl.bridge import codec as bridge
from nndl.contracts import CellProblem
from nndl.kernel import sandbox
from nndl.settings import MAX_FILE_BYTES

#: The course's student-side package, the only part of the kit a sandbox sees.
STUDENT_PACKAGE = os.path.dirname(nndl_datasets.__file__)
#: The probe sent after an interrupt to see whether the kernel came back.
_PROBE_TIMEOUT = 10

#: Run in the kernel when it starts (in a namespace of its own, so the notebook sees
#: nothing of it): during each execution, ipykernel's sys.stdout and sys.stderr pass
#: on at most LIMIT characters, one more to tell us there was more, and drop the rest
#: at once. Without it a printing loop costs gigabytes in the kernel (IPython 9 keeps
#: all a cell prints, and ipykernel buffers all that was written between two sends,
#: so single messages of hundreds of MB that take seconds to send and to read). The
#: wrapper goes on top of whatever IPython put there for the execution, so that what
#: IPython keeps is capped too. `CappedOutputClient` still caps what we keep, against
#: a kernel that removes this.
_KERNEL_OUTPUT_CAP = """
import sys
from IPython import get_ipython
from ipykernel.iostream import OutStream
def capped(write, limit):
    def capped_write(text):
        before = capped_write.used
        if before > limit:
            return len(text)
        capped_write.used = before + len(text)
        write(text if capped_write.used <= limit else text[:limit + 1 - before])
        return len(text)
    capped_write.used = 0
    return capped_write
def cap_streams():
    for stream in (sys.stdout, sys.stderr):
        if not isinstance(stream, OutStream):
            continue  # the notebook's own stream (redirect_stdout, a file): not ours to cap
        if hasattr(stream.write, "used"):
            stream.write.used = 0
        else:
            stream.write = capped(stream.write, LIMIT)
get_ipython().events.register("pre_execute", cap_streams)
"""

#: Run at the kernel's start, before any of the notebook's code, when the kernel shares its
#: GPU with others (`[resources] gpu_slots`): caps this process's share of the GPU's memory in
#: the backend Keras runs on, so that k kernels fit. JAX's cap is its environment
#: (XLA_PYTHON_CLIENT_MEM_FRACTION, set by `nndl.grade.gpu_share_environment`).
_GPU_SHARE = """
import os
megabytes = int(os.environ.get("NNDL_GPU_MEMORY_MB", "0") or 0)
fraction = float(os.environ.get("NNDL_GPU_MEMORY_FRACTION", "0") or 0)
backend = os.environ.get("KERAS_BACKEND", "tensorflow")
if backend == "tensorflow" and megabytes:
    import tensorflow as tf
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.set_logical_device_configuration(gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=megabytes)])
elif backend == "torch" and fraction:
    import torch
    if torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(fraction)
"""


def _kernel_output_cap(limit, gpu_share=False):
    """The kernel argument run at its start: `_KERNEL_OUTPUT_CAP` with `limit` characters,
    then `_GPU_SHARE` when the kernel shares a GPU."""
    source = _KERNEL_OUTPUT_CAP.replace("LIMIT", str(int(limit)))
    run = f"exec(bytes.fromhex('{source.encode().hex()}').decode(), {{}})"
    if gpu_share:
        run += f"; exec(bytes.fromhex('{_GPU_SHARE.encode().hex()}').decode(), {{}})"
    return f"--IPKernelApp.code_to_run={run}"


class CappedOutputClient(NotebookClient):
    """An nbclient that keeps at most so much output per cell and per notebook.

    A cell printing gigabytes would otherwise fill the grading process's
    memory with its outputs before any timeout stops it.
    """

    def __init__(self, nb, *, cell_cap, notebook_cap, on_drop, **kwargs):
        super().__init__(nb, **kwargs)
        self._caps = (cell_cap, notebook_cap)
        self._on_drop = on_drop
        self._cell_bytes = {}
        self._total_bytes = 0

    #: True while running a grader's request, whose output counts apart.
    transient = False

    def output(self, outs, msg, display_id, cell_index):
        if self.transient:
            cell_index = -1
        content = msg.get("content", {})
        size = len(content.get("text", "")) + sum(len(str(v)) for v in content.get("data", {}).values())
        size += sum(len(line) for line in content.get("traceback", []))
        used = self._cell_bytes.get(cell_index, 0)
        if used + size > self._caps[0] or self._total_bytes + size > self._caps[1]:
            self._on_drop(cell_index)
            return None
        self._cell_bytes[cell_index] = used + size
        self._total_bytes += size
        return super().output(outs, msg, display_id, cell_index)

    def reset_cell(self, cell_index):
        """Forget a cell's output (it is being run again)."""
        self._total_bytes -= self._cell_bytes.pop(cell_index, 0)


class NotebookRun:
    """One submission's notebook, running in its own kernel.

    Use as a context manager: the kernel and everything it started are gone
    when the block ends.

    Args:
        nb: the notebook (nbformat node); its cells get their outputs.
        limits: a `nndl.settings.Limits`.
        scratch_files: directory whose regular files are copied into the
            kernel's scratch directory (the submission's own files).
        log: a logger.
        gpu: whether the kernel may see a GPU.
    """

    def __init__(self, nb, limits, *, scratch_files=None, scratch_exclude=(), log=None, gpu=False,
                 extra_env=None, run_root=None, sandbox_mode="bubblewrap", data_dir=None):
        self.nb = nb
        self.limits = limits
        self.log = log
        self.gpu = gpu
        self.sandbox_mode = sandbox_mode
        self.data_dir = str(data_dir) if data_dir else None
        self.extra_env = dict(extra_env or {})
        if self.data_dir:
            self.extra_env["NNDL_DATA_DIR"] = self.data_dir
        self.run_dir = sandbox.new_run_directory(run_root)
        self.scratch = os.path.join(self.run_dir, "scratch")
        self.bridge_dir = os.path.join(self.scratch, ".nndl-bridge")
        self.exports = os.path.join(self.run_dir, "exports")
        self._handed_in = (scratch_files, tuple(scratch_exclude))
        os.makedirs(self.exports)
        self._fill_scratch()
        self.problems = []
        self._dropped_output = set()
        self.skipped = set()
        self.restarts = 0
        self.peak_memory_bytes = 0
        self.peak_written_bytes = 0
        self.memory_accounting = None
        self.cgroup = None
        self.deadline = None
        self.client = None
        self.watchdog = None
        self.kernel_pid = None
        self.execution_seconds = 0.0
        self.kernel_start_seconds = 0.0  # of execution_seconds: starting the kernel (and restarting it)

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Stop the kernel, kill what it started, delete the run directory."""
        self._stop_kernel()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def _fill_scratch(self):
        """Put the submission's own files (and the bridge's folder) into the kernel's folder."""
        os.makedirs(self.bridge_dir)
        scratch_files, exclude = self._handed_in
        if scratch_files:
            _copy_regular_files(scratch_files, self.scratch, exclude=exclude)

    def _empty_scratch(self):
        """Delete everything in the kernel's folder (its kernel is gone); links are removed, never followed."""
        for entry in os.scandir(self.scratch):
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass

    def _start_kernel(self):
        if self.sandbox_mode == "bubblewrap":
            for root, dirs, files in os.walk(self.scratch):
                for name in [root] + [os.path.join(root, f) for f in files]:
                    sandbox.hand_to_sandbox_user(name)
        memory_bytes = self.limits.sandbox_memory_mb * 2**20
        self.cgroup = self._new_cgroup(memory_bytes)
        km = sandbox.make_kernel_manager(
            self.run_dir, scratch=self.scratch, mode=self.sandbox_mode,
            read_only=[STUDENT_PACKAGE] + ([self.data_dir] if self.data_dir else []),
            limits={"nproc": self.limits.max_processes, "fsize": self.limits.max_file_mb * 2**20},
            gpu=self.gpu, cgroup=self.cgroup, memory_bytes=memory_bytes)
        self.client = CappedOutputClient(
            self.nb,
            cell_cap=self.limits.cell_output_mb * 2**20,
            notebook_cap=self.limits.notebook_output_mb * 2**20,
            on_drop=self._output_dropped,
            km=km,
            timeout=int(self.limits.cell_timeout),
            allow_errors=True,
            interrupt_on_timeout=True,
            error_on_timeout={
                "ename": "CellTimeoutError",
                "evalue": f"this cell ran out of its {self.limits.cell_timeout:g} s",
                "traceback": [f"CellTimeoutError: this cell ran out of its {self.limits.cell_timeout:g} s"],
            },
            startup_timeout=120,
            kernel_name="python3",
            record_timing=False,
            iopub_timeout=4,
            raise_on_iopub_timeout=False,
            extra_arguments=["--HistoryManager.enabled=False",
                             _kernel_output_cap(self.limits.cell_output_mb * 2**20,
                                                gpu_share="NNDL_GPU_MEMORY_MB" in self.extra_env)],
        )
        env = sandbox.student_environment(self.scratch, gpu=self.gpu, extra=self.extra_env)
        # The kernel's own stdout and stderr (C-level prints, os.write(1, ...))
        # never reach the grading terminal.
        try:
            self.client.start_new_kernel(cwd=self.scratch, env=env,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.kernel_pid = km.provisioner.process.pid
            self.client.start_new_kernel_client()
            km.seal_ipc_dir()
        except BaseException:
            self._stop_kernel()
            raise
        # One quota over every folder of the host's disk the kernel could write.
        self.watchdog = sandbox.ResourceWatchdog(self.kernel_pid, memory_bytes, cgroup=self.cgroup,
                                                 write_roots=[self.scratch, km.ipc_dir],
                                                 write_bytes=self.limits.scratch_mb * 2**20)
        self.watchdog.start()

    def _new_cgroup(self, memory_bytes):
        """A memory cgroup for the next kernel, or None where the machine gives none (the watchdog counts then)."""
        if sandbox.memory_cgroup_problem() is None:
            try:
                cgroup = sandbox.MemoryCgroup.create(memory_bytes)
                self.memory_accounting = f"cgroup v{cgroup.version}"
                return cgroup
            except sandbox.CgroupUnavailable as error:
                problem = str(error)
        else:
            problem = sandbox.memory_cgroup_problem()
        self.memory_accounting = "watchdog"
        if self.log is not None:
            self.log.debug("No memory cgroup for the kernel (%s); the watchdog counts its memory.", problem)
        return None

    def _output_dropped(self, index):
        if index >= 0 and index not in self._dropped_output:
            self._dropped_output.add(index)
            self.problems.append(CellProblem(index, (
                f"Cell {index + 1} printed more than the {self.limits.cell_output_mb:g} MiB of output a cell "
                f"may keep (or the notebook its {self.limits.notebook_output_mb:g} MiB); the rest was dropped.")))

    def _stop_kernel(self):
        if self.watchdog is not None:
            self.watchdog.stop()
            self.peak_memory_bytes = max(self.peak_memory_bytes, self.watchdog.peak_bytes)
            self.peak_written_bytes = max(self.peak_written_bytes, self.watchdog.peak_written_bytes)
        if self.kernel_pid is not None:
            sandbox.kill_tree(self.kernel_pid)
        if self.client is not None and self.client.km is not None:
            try:
                self.client._cleanup_kernel()
            except Exception:  # the kernel is already dead; nothing to save
                pass
        if self.cgroup is not None and not self.cgroup.remove() and self.log is not None:
            self.log.warning("The kernel's memory cgroup %s could not be removed.", self.cgroup.path)
        self.client = None
        self.kernel_pid = None
        self.watchdog = None
        self.cgroup = None

    def _remaining(self):
        return self.deadline - time.monotonic()

    def _alive(self):
        return self.kernel_pid is not None and bool(sandbox.process_tree(self.kernel_pid)) \
            and not (self.watchdog and self.watchdog.tripped)

    # -- executing the notebook ---------------------------------------------

    def execute(self):
        """Run every code cell; record problems; keep the kernel alive.

        Returns:
            The list of `CellProblem` found while running.
        """
        started = time.monotonic()
        self.deadline = started + self.limits.submission_timeout
        self._start_kernel()
        self.kernel_start_seconds = time.monotonic() - started
        index = 0
        cells = self.nb.cells
        while index < len(cells):
            cell = cells[index]
            if cell.cell_type != "code" or index in self.skipped:
                index += 1
                continue
            remaining = self._remaining()
            if remaining <= 1:
                self.problems.append(CellProblem(index, (
                    f"The notebook ran out of its {self.limits.submission_timeout:g} s in all; "
                    f"cell {index + 1} and the cells after it were not run.")))
                break
            outcome = self._execute_cell(index, min(self.limits.cell_timeout, remaining))
            if outcome == "ok":
                index += 1
                continue
            # The kernel is gone or stuck: skip this cell and replay the others.
            self.skipped.add(index)
            self.problems.append(CellProblem(index, outcome))
            if not self._restart_and_replay(up_to=index):
                break
            index += 1
        self.execution_seconds = time.monotonic() - started
        return self.problems

    def _execute_cell(self, index, timeout):
        """Run one cell; 'ok', or a sentence saying why the kernel was lost."""
        cell = self.nb.cells[index]
        self.client.reset_cell(index)
        self.client.timeout = max(1, int(timeout))
        cell_was_cut = timeout < self.limits.cell_timeout
        started = time.monotonic()
        try:
            self.client.execute_cell(cell, index)
        except DeadKernelError:
            return self._death_message(index)
        except CellTimeoutError:
            pass
        # What the cell left behind (files in /tmp, say) counts against it, not against the next one.
        if self.watchdog is not None:
            self.watchdog.check()
        if not self._alive():
            return self._death_message(index)
        if time.monotonic() - started >= self.client.timeout:
            limit = f"the notebook's {self.limits.submission_timeout:g} s in all" if cell_was_cut \
                else f"its {self.limits.cell_timeout:g} s"
            if not self._responds():
                return f"Cell {index + 1} ran out of {limit} and could not be interrupted; it was skipped."
            self.problems.append(CellProblem(index, f"Cell {index + 1} ran out of {limit} and was interrupted."))
        return "ok"

    def _death_message(self, index):
        # The kernel may have died of a limit before the watchdog's next look: look now.
        tripped = self.watchdog.check() if self.watchdog is not None else None
        if tripped is None and self._died_of_a_full_memory_fs():
            tripped = "memory"
            # A full /tmp or /dev/shm holds the whole limit, whenever the watchdog last looked.
            self.peak_memory_bytes = max(self.peak_memory_bytes, self.limits.sandbox_memory_mb * 2**20)
        if tripped == "memory":
            return (f"Cell {index + 1} used more than the {self.limits.sandbox_memory_mb} MiB of memory "
                    "a submission may use (files in /tmp and shared memory count too); "
                    "it was stopped and skipped.")
        if tripped == "scratch":
            return (f"Cell {index + 1} filled the notebook's folder past its {self.limits.scratch_mb} MiB "
                    "(every file it writes counts); it was stopped and skipped, and the folder was put "
                    "back as handed in.")
        return f"Cell {index + 1} made the kernel die (a crash or an exit); it was skipped."

    def _died_of_a_full_memory_fs(self):
        """Whether the kernel died of SIGBUS in a sandbox whose /tmp and /dev/shm are as large as its memory limit.

        Writing through a mapping into a full tmpfs (shared memory, say) kills
        the writer with SIGBUS, often before the watchdog has seen it full, and
        what the dead kernel held may be cleaned up before anyone looks: the
        death is the memory limit's all the same.
        """
        if self.sandbox_mode != "bubblewrap" or not sandbox.bubblewrap_supports("--size"):
            return False
        process = getattr(getattr(getattr(self.client, "km", None), "provisioner", None), "process", None)
        if process is None:
            return False
        try:
            status = process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return False
        # bubblewrap exits with 128 + the signal that ended the kernel.
        return status in (128 + signal.SIGBUS, -signal.SIGBUS)

    def _execute_transient(self, cell):
        """Execute a cell that is not part of the notebook.

        nbclient stores every executed cell back into its notebook at the index
        given, so the cell runs against a one-cell notebook of its own.
        """
        notebook = self.client.nb
        self.client.nb = nbformat.v4.new_notebook(cells=[cell])
        self.client.transient = True
        self.client.reset_cell(-1)
        try:
            self.client.execute_cell(cell, 0, store_history=False)
        finally:
            self.client.nb = notebook
            self.client.transient = False

    def _responds(self):
        probe = nbformat.v4.new_code_cell("1")
        self.client.timeout = _PROBE_TIMEOUT
        started = time.monotonic()
        try:
            self._execute_transient(probe)
        except (DeadKernelError, CellTimeoutError):
            return False
        return self._alive() and time.monotonic() - started < _PROBE_TIMEOUT

    def _restart_and_replay(self, up_to):
        """Restart the kernel and run the cells before `up_to` again."""
        over_quota = self.watchdog is not None and self.watchdog.tripped == "scratch"
        self._stop_kernel()
        if over_quota:
            # The folder is still full, and the next kernel would trip at once.
            self._empty_scratch()
            self._fill_scratch()
        if self.restarts >= self.limits.max_restarts:
            self.problems.append(CellProblem(up_to, (
                f"The kernel was lost {self.restarts + 1} times; the cells after "
                f"cell {up_to + 1} were not run.")))
            return False
        self.restarts += 1
        self._start_kernel()
        for index in range(up_to):
            cell = self.nb.cells[index]
            if cell.cell_type != "code" or index in self.skipped:
                continue
            remaining = self._remaining()
            if remaining <= 1:
                return False
            if self._execute_cell(index, min(self.limits.cell_timeout, remaining)) != "ok":
                self.skipped.add(index)
                self.problems.append(CellProblem(index, f"Cell {index + 1} failed again when the notebook was re-run."))
                return self._restart_and_replay(up_to)
        return True

    # -- serving graders ------------------------------------------------------

    def request(self, op, name, args=(), kwargs=None, timeout=None):
        """Ask the kernel for a value, a call's result or a saved model.

        Args:
            op: "value", "call" or "model".
            name: a global name in the notebook (checked to be an identifier).
            args, kwargs: call arguments, plain data only.
            timeout: seconds; defaults to the call timeout of the limits.

        Returns:
            ``{"ok": True, "value": ...}`` (for "model", ``"path"`` of the
            exported file) or ``{"ok": False, "error": "..."}``.
        """
        if not isinstance(name, str) or not name.isidentifier():
            return {"ok": False, "error": f"invalid name {name!r}"}
        if self.client is None or not self._alive():
            return {"ok": False, "error": "the notebook's kernel is not running (it died or ran out of time earlier)"}
        token = uuid.uuid4().hex
        request_path = os.path.join(self.bridge_dir, f"request-{token}.json")
        answer_path = os.path.join(self.bridge_dir, f"answer-{token}.json")
        model_path = os.path.join(self.bridge_dir, f"model-{token}.keras")
        enc_args, enc_kwargs = bridge.encode_arguments(args, kwargs or {})
        try:
            sandbox.write_new_file(request_path, json.dumps(
                {"op": op, "name": name, "args": enc_args, "kwargs": enc_kwargs, "path": model_path}).encode())
        except OSError as error:
            return {"ok": False, "error": f"the notebook's folder was tampered with ({error.strerror or error})"}
        timeout = timeout or self.limits.call_timeout
        cell = nbformat.v4.new_code_cell(bridge.kernel_code(request_path, answer_path))
        self.client.timeout = max(1, int(timeout))
        started = time.monotonic()
        try:
            self._execute_transient(cell)
        except DeadKernelError:
            self._stop_kernel()
            return {"ok": False, "error": f"calling '{name}' made the kernel die"}
        except CellTimeoutError:
            pass
        if not self._alive():
            self._stop_kernel()
            return {"ok": False, "error": f"calling '{name}' made the kernel die"}
        if time.monotonic() - started >= self.client.timeout:
            if not self._responds():
                self._stop_kernel()
            return {"ok": False, "error": f"'{name}' did not finish within {timeout:g} s"}
        try:
            answer = bridge.read_answer(answer_path)
        except bridge.BridgeDecodeError as error:
            return {"ok": False, "error": f"the answer for '{name}' could not be read: {error}"}
        finally:
            for path in (request_path, answer_path):
                try:
                    sandbox.remove_file(path)
                except OSError:
                    pass
        if answer["ok"] and op == "model":
            exported = os.path.join(self.exports, f"{name}-{token}.keras")
            try:
                _copy_regular_file(model_path, exported)
            except OSError as error:
                return {"ok": False, "error": f"the model '{name}' was not saved: {error}"}
            finally:
                try:
                    sandbox.remove_file(model_path)
                except OSError:
                    pass
            answer["path"] = exported
        return answer


def _copy_regular_file(src, dst, max_bytes=MAX_FILE_BYTES):
    """Copy a regular file (never a link) of bounded size."""
    fd = sandbox.open_beneath(os.path.dirname(src), os.path.basename(src), os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{os.path.basename(src)} is not a regular file")
        if info.st_size > max_bytes:
            raise OSError(f"{os.path.basename(src)} is larger than {max_bytes // 2**20} MiB")
        with os.fdopen(fd, "rb", closefd=False) as source, open(dst, "wb") as target:
            shutil.copyfileobj(source, target)
    finally:
        os.close(fd)


def _copy_regular_files(src_dir, dst_dir, exclude=()):
    """Copy the regular files of a submission folder; links, `exclude` and oversize files are left out."""
    exclude = {os.path.normpath(p) for p in exclude}
    for root, dirs, files in os.walk(src_dir, followlinks=False):
        rel = os.path.relpath(root, src_dir)
        dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(rel, d)) not in exclude]
        os.makedirs(os.path.join(dst_dir, rel), exist_ok=True)
        for name in files:
            if name.endswith(".ipynb") or os.path.normpath(os.path.join(rel, name)) in exclude:
                continue
            try:
                _copy_regular_file(os.path.join(root, name), os.path.join(dst_dir, rel, name))
            except OSError:
                pass
