"""Where grading jobs run: worker processes on this machine, or tasks on a Ray cluster.

Both pools take `nndl.contracts.GradingJob` objects and hand back, one at a
time as they finish, either a `JobResult` or a `WorkerLost` saying why no
result came: the worker raised, died, was lost with its Ray node, or ran past
its deadline (then it is killed). They never retry on their own; the
coordinator decides (`nndl.batch.coordinator`), so both pools fail alike.

A job's deadline counts from when a worker takes it: the local pool hands a
job to an idle worker only, and its clock starts when the worker says it
started (a fresh worker first imports the grading machinery); the Ray pool
keeps no more tasks in flight than the cluster has room for.
"""

import collections
import dataclasses
import math
import multiprocessing
import multiprocessing.connection
import os
import time

from nndl import scratch
from nndl.batch import worker
from nndl.kernel import sandbox


@dataclasses.dataclass
class WorkerLost:
    """Why a job brought back no result."""

    reason: str


class _Pool:
    """What both pools share: a queue of jobs, and `next_result` handing out the next finished one.

    Subclasses keep their running jobs as ``{handle: (job_id, deadline, timeout)}``
    in ``self._running``, and define `_dispatch` (start queued jobs where
    there is room) and `_wait` (block until one job finishes or is overdue).
    """

    def __init__(self):
        self._pending = collections.deque()
        self._running = {}

    def submit(self, job_id, job, timeout):
        """Queue a job; it starts at once if there is room."""
        self._pending.append((job_id, job, timeout))
        self._dispatch()

    def next_result(self):
        """Wait for the next finished job: ``(job_id, JobResult or WorkerLost)``, or None when idle.

        The room it frees takes its next job before this returns, so a worker
        does not wait while the coordinator records the result.
        """
        self._dispatch()
        if not self._running:
            return None
        finished = self._wait()
        self._dispatch()
        return finished

    def _overdue(self):
        """The first running job past its deadline, as ``(handle, job_id, timeout)``, or None."""
        now = time.monotonic()
        for handle, (job_id, deadline, timeout) in self._running.items():
            if now >= deadline:
                return handle, job_id, timeout
        return None

    def _seconds_to_next_deadline(self):
        return max(0.0, min(deadline for _, deadline, _ in self._running.values()) - time.monotonic())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


#: Seconds a fresh local worker may take to import the grading machinery before its job's clock starts.
STARTUP_GRACE = 120


def ray_gpu_share(slots):
    """``num_gpus`` of a Ray task when `slots` tasks share a GPU: 1/slots, rounded down to
    Ray's precision (0.0001) so that `slots` of them always fit on one GPU."""
    return math.floor(10_000 / max(1, int(slots))) / 10_000


def gpu_worker_devices(devices, slots, workers=None):
    """The GPU each local worker sees, when `slots` submissions share each of `devices`.

    Returns:
        One device per worker: ``len(devices) * slots`` workers, or `workers` if fewer
        are asked for; never more than `slots` on one device.
    """
    devices = list(devices)
    if not devices:
        return []
    count = len(devices) * max(1, int(slots))
    if workers is not None:
        count = min(count, max(1, int(workers)))
    return [devices[i % len(devices)] for i in range(count)]


class LocalPool(_Pool):
    """`workers` processes on this machine, each grading one job at a time.

    A worker that dies or runs past its job's deadline is killed with
    everything it started (kernels, grader processes) and replaced by a fresh
    one for the next job.

    Args:
        workers: processes at once.
        graders: the assignment's grader folder as data (`nndl.course.grader_files`).
        gpu_devices: for a GPU assignment, the devices to share out; worker i
            sees only ``gpu_devices[i % len(gpu_devices)]``.
        runner: what a worker calls with ``(job, graders)``; a module-level
            function (workers are spawned). Tests pass a fake one.
    """

    kind = "local"

    def __init__(self, workers, graders, *, gpu_devices=(), runner=worker.run_job):
        super().__init__()
        self.size = max(1, int(workers))
        self.graders = graders
        self.runner = runner
        self.gpu_devices = list(gpu_devices)
        self._context = multiprocessing.get_context("spawn")
        self._slots = [None] * self.size  # (process, connection) per slot; _running is keyed by slot
        # Start every worker now: each imports the grading machinery while the coordinator prepares jobs.
        for slot in range(self.size):
            self._slots[slot] = self._start(slot)

    def _wait(self):
        while True:
            overdue = self._overdue()
            if overdue:
                slot, job_id, timeout = overdue
                self._retire(slot)
                return job_id, WorkerLost(f"the worker did not finish within its {timeout:.0f} s and was stopped")
            waits = {}
            for slot in self._running:
                process, connection = self._slots[slot]
                waits[connection] = slot
                waits[process.sentinel] = slot
            ready = multiprocessing.connection.wait(list(waits), timeout=min(self._seconds_to_next_deadline(), 5.0))
            for slot in dict.fromkeys(waits[handle] for handle in ready):
                job_id = self._running[slot][0]
                process, connection = self._slots[slot]
                message = None
                if connection.poll():
                    try:
                        message = connection.recv()
                    except (EOFError, OSError):
                        message = None
                if message is None:
                    process.join(timeout=1)
                    code = process.exitcode
                    self._retire(slot)
                    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                    return job_id, WorkerLost(f"the worker process died ({how})")
                status, payload = message
                if status == "started":  # the job's clock starts now, the worker's imports done
                    self._running[slot] = (job_id, time.monotonic() + self._running[slot][2], self._running[slot][2])
                    continue
                del self._running[slot]
                if status == "ok":
                    return job_id, payload
                return job_id, WorkerLost(f"the worker failed: {payload}")

    def _dispatch(self):
        for slot in range(self.size):
            if not self._pending:
                return
            if slot in self._running:
                continue
            job_id, job, timeout = self._pending.popleft()
            if self._slots[slot] is None or not self._slots[slot][0].is_alive():
                self._slots[slot] = self._start(slot)
            try:
                self._slots[slot][1].send(job)
            except (BrokenPipeError, OSError):
                self._retire(slot)
                self._slots[slot] = self._start(slot)
                self._slots[slot][1].send(job)
            # Until the worker says it started (a fresh one is still importing), it has a grace period.
            self._running[slot] = (job_id, time.monotonic() + timeout + STARTUP_GRACE, timeout)

    def _start(self, slot):
        ours, theirs = self._context.Pipe(duplex=True)
        env = {}
        if self.gpu_devices:
            env["CUDA_VISIBLE_DEVICES"] = str(self.gpu_devices[slot % len(self.gpu_devices)])
        process = self._context.Process(target=worker.worker_loop, args=(theirs, self.graders, env, self.runner),
                                        name=f"nndl-worker-{slot}", daemon=True)
        process.start()
        theirs.close()
        return process, ours

    def _retire(self, slot):
        """Kill a worker slot's process and all it started; the slot restarts on its next job."""
        self._running.pop(slot, None)
        if self._slots[slot] is None:
            return
        process, connection = self._slots[slot]
        root = scratch.root_name(process.pid) if process.pid is not None else None
        if process.pid is not None:
            sandbox.kill_tree(process.pid)
        process.join(timeout=5)
        connection.close()
        if root is not None:
            scratch.remove_root(root)  # what the worker had in hand: copies of graders, run folders
        self._slots[slot] = None

    def close(self):
        """Stop every worker, with all it started; an idle one has nothing left to lose."""
        for slot in range(self.size):
            self._retire(slot)


class RayPool(_Pool):
    """Jobs as tasks on a Ray cluster (`ray.remote`), one task per submission.

    The graders go into the cluster's object store once; each task gets the
    job as its argument and returns the `JobResult`. A GPU assignment's tasks
    ask for ``num_gpus`` so that Ray gives each its own device; the others ask
    for none and never hold one.

    Args:
        address: a Ray cluster's address, or ``"auto"`` for the one this
            machine belongs to; ignored when this process is already connected.
        graders: the assignment's grader folder as data.
        cpus, gpus, memory_mb: what one task asks of the cluster.
    """

    kind = "ray"

    def __init__(self, address, graders, *, cpus=1, gpus=0, memory_mb=0):
        try:
            import ray
        except ImportError:
            raise RayUnavailable("Ray is not installed here: pip install 'nndl-course-kit[ray]' "
                                 "(scripts/setup installs it).") from None
        super().__init__()
        self._ray = ray
        self._owns_connection = False
        if not ray.is_initialized():
            try:
                ray.init(address=address, logging_level="WARNING", log_to_driver=False,
                         configure_logging=True, include_dashboard=False)
            except (ConnectionError, RuntimeError, ValueError) as error:
                hint = ""
                if address != "auto" and not os.environ.get("RAY_AUTH_MODE"):
                    hint = (" Ray clusters started with token authentication (the default of recent Ray) "
                            "accept a driver that joins by address only with RAY_AUTH_MODE=token set "
                            "and the cluster's token in ~/.ray/auth_token; --ray auto needs neither on "
                            "the head node.")
                raise RayUnavailable(f"Could not connect to the Ray cluster at {address!r}: {error}. "
                                     f"Start one (ray start --head) or pass its address.{hint}") from None
            self._owns_connection = True
        self.address = address
        self.options = {"num_cpus": cpus, "num_gpus": gpus, "max_retries": 0}
        if memory_mb:
            self.options["memory"] = int(memory_mb) * 2**20
        self.size = self._capacity()
        self._task = ray.remote(_ray_task)
        self._graders = ray.put(graders)  # _running is keyed by the task's ObjectRef

    def _capacity(self):
        """How many tasks the cluster can run at once with these options."""
        total = self._ray.cluster_resources()
        room = []
        for name, asked in (("CPU", self.options["num_cpus"]), ("GPU", self.options["num_gpus"]),
                            ("memory", self.options.get("memory", 0))):
            if asked:
                have = total.get(name, 0)
                if have < asked:
                    raise RayUnavailable(
                        f"The Ray cluster has {have:g} {name} in all, and one grading task of this "
                        f"assignment needs {asked:g}. Add workers with {name} to the cluster, or change "
                        "[resources] in the assignment's assignment.toml.")
                room.append(int(have / asked + 1e-9))
        return max(1, min(room) if room else 1)

    def _dispatch(self):
        while self._pending and len(self._running) < self.size:
            job_id, job, timeout = self._pending.popleft()
            ref = self._task.options(**self.options).remote(job, self._graders)
            self._running[ref] = (job_id, time.monotonic() + timeout, timeout)

    def _wait(self):
        ray = self._ray
        while True:
            overdue = self._overdue()
            if overdue:
                ref, job_id, timeout = overdue
                del self._running[ref]
                ray.cancel(ref, force=True)
                return job_id, WorkerLost(f"the Ray task did not finish within its {timeout:.0f} s and was cancelled")
            ready, _ = ray.wait(list(self._running), num_returns=1,
                                timeout=max(0.1, min(self._seconds_to_next_deadline(), 5.0)))
            if not ready:
                continue
            job_id = self._running.pop(ready[0])[0]
            try:
                return job_id, ray.get(ready[0])
            except ray.exceptions.RayTaskError as error:
                return job_id, WorkerLost(f"the worker failed: {worker.describe(getattr(error, 'cause', None) or error)}")
            except ray.exceptions.RayError as error:
                first_line = (str(error).strip().splitlines() or [""])[0]
                return job_id, WorkerLost(f"the Ray worker was lost ({type(error).__name__}: {first_line})"[:500])

    def close(self):
        """Cancel what is still running; disconnect if this pool connected."""
        for ref in list(self._running):
            self._ray.cancel(ref, force=True)
        self._running.clear()
        if self._owns_connection:
            self._ray.shutdown()


class RayUnavailable(RuntimeError):
    """Ray is missing, or its cluster cannot be reached or cannot run the jobs."""


def _ray_task(job, graders):
    """A Ray task: grade one job on whichever node Ray chose."""
    import ray

    result = worker.run_job(job, graders)
    result.worker["ray_node"] = ray.get_runtime_context().get_node_id()
    result.worker["gpus"] = [str(g) for g in ray.get_gpu_ids()]
    return result
