"""A warm template for the hidden-grader processes: imports paid once, a fresh process per run.

A grader process started from scratch spends seconds importing pytest,
numpy and Keras before it checks anything (Keras alone is about 2.7 s of
CPU). A template process, ``python -I -m nndl.score.template``, pays those
imports once per worker and then forks one grader process per submission:

- the template never runs a grader and never sees a submission's data: it
  receives the grader command's arguments, its folder and environment, and
  the file descriptors of the run's pipes, and forks;
- the child becomes what `nndl.score.runner` would otherwise have started
  with ``python -I -m pytest``: a session of its own, its output on the
  run's pipe, its file-size limit, the run's environment and working folder,
  every other descriptor closed, numpy's global random state drawn afresh;
  then it runs ``pytest.main`` and exits;
- each child is used for one run and ends with it: no process that has seen
  one submission's data serves another;
- the template reports each child's exit but reaps it only when the
  coordinator releases it, so that the child's pid stays reserved while the
  coordinator's watchdog may still signal it (as with `subprocess.Popen`).

Keras is imported in the template with the environment's ``KERAS_BACKEND``:
a template serves only runs whose environment equals the one it started with
(`template_key`), save for the per-run variables in `PER_RUN`. Importing
Keras (TensorFlow) leaves one helper thread and numpy's BLAS one; TensorFlow
makes its thread pools at its first operation, which the template never
runs, so the fork copies no pool and no lock held by a running op.

The coordinator's side is `GraderTemplate`, one per process (`shared`),
started on first use and kept warm across a batch. The protocol is one JSON
object per SOCK_SEQPACKET message; the run's descriptors travel with the
spawn request (SCM_RIGHTS).
"""

import atexit
import ctypes
import gc
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import psutil

#: Environment variables that differ from run to run and do not matter to what the template imports
#: (pytest's own, where the kit runs under a test suite, changes with every test).
PER_RUN = ("NNDL_GRADER_SEED", "NNDL_GRADER_BRIDGE_FDS", "PYTEST_CURRENT_TEST")
#: Set to 0 to start every grader process from scratch (the kit's behaviour before the template).
TEMPLATE_ENV = "NNDL_GRADER_TEMPLATE"
#: prctl(2)'s option that signals a process when its parent ends.
PR_SET_PDEATHSIG = 1
#: The most bytes one protocol message may have.
MESSAGE_BYTES = 1 << 20
#: Seconds the coordinator waits, once it needs the process, for a template to fork it. The spawn
#: request went out before the notebook ran, so this is past the notebook's run.
START_TIMEOUT = 60


class TemplateUnavailable(RuntimeError):
    """The template could not start a grader process: start one from scratch instead."""


def template_key(env):
    """What a template must share with a run to serve it: the environment, less the per-run variables."""
    return tuple(sorted((k, v) for k, v in env.items() if k not in PER_RUN))


def enabled(env=None):
    return (env if env is not None else os.environ).get(TEMPLATE_ENV, "1") != "0"


# --- the template process -------------------------------------------------------------------

def _resident_bytes():
    """This process's resident memory (anonymous and file-backed), as the watchdog counts it."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("RssAnon", "RssFile"):
                fields[name] = int(value.split()[0]) * 1024
    return sum(fields.values())


def _send(sock, message, fds=()):
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def _exit_code(pid):
    """The exit code of child `pid` if it has ended (as Popen's returncode), without reaping it; else None."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    if info is None or info.si_pid == 0:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def _child(request, fds, keep_closed, template_pid):
    """In the forked child: become the run's grader process, run pytest, exit. Never returns."""
    code = 70
    try:
        for fd in keep_closed:
            os.close(fd)
        signal.set_wakeup_fd(-1)
        for number in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_DFL)
        # Ends with the template: a grader process nobody watches any more must not go on.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != template_pid:
            os._exit(code)
        os.setsid()
        limit = int(request["fsize"])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        output, to_grader, to_coordinator = fds
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        kept = sorted({0, 1, 2, to_grader, to_coordinator})
        for low, high in zip(kept, kept[1:] + [os.sysconf("SC_OPEN_MAX")]):
            os.closerange(low + 1, high)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ[request["bridge_env"]] = f"{to_grader},{to_coordinator}"
        import numpy

        numpy.random.seed()  # a fresh process draws its own; the template's is shared by every child
        import pytest

        sys.argv = ["pytest", *request["args"]]
        code = int(pytest.main(list(request["args"])))
    except BaseException:  # noqa: B036 - whatever happens, the child must end here, never return
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # the output pipe may be gone; the exit code says enough
                pass
        os._exit(code)


def serve(sock):
    """The template's loop: fork a grader process per spawn request, report exits, reap on release."""
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children = {}  # pid -> exit code once reported, else None
    parent = os.getpid()
    try:
        _send(sock, {"op": "ready", "pid": os.getpid()})
        while True:
            ready, _, _ = select.select([sock, wake_r], [], [])
            if wake_r in ready:
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
            for pid, code in list(children.items()):
                if code is None and (code := _exit_code(pid)) is not None:
                    children[pid] = code
                    _send(sock, {"op": "exited", "pid": pid, "code": code})
            if sock not in ready:
                continue
            data, fds, _, _ = socket.recv_fds(sock, MESSAGE_BYTES, 8)
            if not data:
                return  # the coordinator is gone
            request = json.loads(data)
            if request["op"] == "release":
                pid = int(request["pid"])
                if pid in children:
                    _kill_group(pid)
                    os.waitpid(pid, 0)
                    del children[pid]
                continue
            if request["op"] != "spawn" or len(fds) != 3:
                for fd in fds:
                    os.close(fd)
                _send(sock, {"op": "failed", "id": request.get("id"), "error": f"bad request {request['op']!r}"})
                continue
            baseline = _resident_bytes()
            pid = os.fork()
            if pid == 0:
                _child(request, fds, [sock.fileno(), wake_r, wake_w], parent)
            for fd in fds:
                os.close(fd)
            children[pid] = None
            _send(sock, {"op": "spawned", "id": request["id"], "pid": pid, "baseline": baseline})
    finally:
        for pid in children:
            _kill_group(pid)


def _kill_group(pid):
    """SIGKILL the session a child leads (it called setsid), the child first."""
    for target in (lambda: os.kill(pid, signal.SIGKILL), lambda: os.killpg(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(argv[0]))
    # What every grader run imports, paid here once. Keras with the backend of this environment.
    import numpy  # noqa: F401
    import pytest  # noqa: F401

    import nndl.bridge.models  # noqa: F401
    import nndl.score.plugin  # noqa: F401

    try:
        import keras  # noqa: F401
    except ImportError:  # graders without Keras still run; theirs is the import error, not ours
        pass
    # Out of the collector's sight: each child's collections (pytest runs several as it ends) then
    # scan only its own objects, and leave the pages it shares with the template unwritten.
    gc.freeze()
    serve(sock)


# --- the coordinator's side -----------------------------------------------------------------

class ForkedGrader:
    """A grader process forked by the template, with the part of `subprocess.Popen` the runner uses.

    Its pid is known once the template answered (`pid` waits for it).
    `release` lets the template reap it; until then its pid cannot be reused.
    """

    def __init__(self, template, request_id):
        self._template = template
        self._id = request_id
        self._spawned = threading.Event()
        self._exited = threading.Event()
        self._pid = None
        self._error = None
        self._released = False
        self.baseline_bytes = 0
        self.returncode = None

    @property
    def pid(self):
        if not self._spawned.wait(START_TIMEOUT):
            why = f"the grader template did not fork within {START_TIMEOUT} s"
            self._template.abandon(why)
            raise TemplateUnavailable(why)
        if self._error:
            raise TemplateUnavailable(self._error)
        return self._pid

    def _resolve(self, pid=None, baseline=0, error=None):
        """The template's answer; True when the process was released before it came (to release now)."""
        self._pid, self.baseline_bytes, self._error = pid, baseline, error
        self._spawned_at = time.time()
        self._spawned.set()
        return self._released and pid is not None

    def _ended(self, code):
        self.returncode = code
        self._exited.set()

    def _orphaned(self):
        """The template is gone: this process dies with it (PR_SET_PDEATHSIG); ended once it has."""
        try:
            process = psutil.Process(self._pid)
            if process.create_time() < self._spawned_at + 1:  # still ours, not a pid reused since
                _, alive = psutil.wait_procs([process], timeout=5)
                for left in alive:
                    left.kill()
                psutil.wait_procs(alive, timeout=5)
        except psutil.Error:
            pass
        self._ended(-signal.SIGKILL)

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired("grader process", timeout)
        return self.returncode

    def kill_if_forked(self):
        """`kill`, without waiting for a fork the template has not made yet."""
        if self._spawned.is_set() and self._pid is not None:
            self.kill()

    def kill(self):
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def release(self):
        """Let the template end and reap this process; once, and whether or not it has forked yet."""
        if self._released:
            return
        self._released = True
        if self._pid is not None:
            try:
                self._template._send({"op": "release", "pid": self._pid})
            except TemplateUnavailable:
                pass  # the template is gone, and its children with it


class GraderTemplate:
    """The coordinator's handle on one template process."""

    def __init__(self, env):
        self.key = template_key(env)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        self._lock = threading.Lock()
        self._next_id = 0
        self._pending = {}   # request id -> ForkedGrader, until spawned
        self._running = {}   # pid -> ForkedGrader, until exited
        self.broken = None   # why the template stopped serving, once it has
        template_env = {k: v for k, v in env.items() if k not in PER_RUN}
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-m", "nndl.score.template", str(theirs.fileno())],
                env=template_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, pass_fds=(theirs.fileno(),), start_new_session=True, cwd="/")
        finally:
            theirs.close()
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"grader-template-{self.proc.pid}")
        self._reader.start()

    def _send(self, message, fds=()):
        with self._lock:
            if self.broken:
                raise TemplateUnavailable(self.broken)
            try:
                _send(self._sock, message, fds)
            except OSError as error:
                self.broken = f"the grader template is gone ({error})"
                raise TemplateUnavailable(self.broken) from None

    def spawn(self, args, *, cwd, env, fds, fsize, bridge_env):
        """Ask the template to fork a grader process running pytest with `args`; returns a `ForkedGrader`.

        `fds` (output, to-grader, to-coordinator) are sent with the request;
        the caller keeps and closes its own copies.
        """
        if template_key(env) != self.key:
            raise TemplateUnavailable("the run's environment is not the template's")
        with self._lock:
            self._next_id += 1
            grader = ForkedGrader(self, self._next_id)
            self._pending[self._next_id] = grader
        try:
            self._send({"op": "spawn", "id": grader._id, "args": list(args), "cwd": str(cwd), "env": dict(env),
                        "fsize": int(fsize), "bridge_env": bridge_env}, fds)
        except TemplateUnavailable:
            with self._lock:
                self._pending.pop(grader._id, None)
            raise
        return grader

    def _read(self):
        try:
            while True:
                data = self._sock.recv(MESSAGE_BYTES)
                if not data:
                    break
                message = json.loads(data)
                released_early = None
                with self._lock:
                    if message["op"] == "spawned":
                        grader = self._pending.pop(message["id"], None)
                        if grader is not None:
                            self._running[message["pid"]] = grader
                            if grader._resolve(message["pid"], message["baseline"]):
                                released_early = message["pid"]
                    elif message["op"] == "failed":
                        grader = self._pending.pop(message["id"], None)
                        if grader is not None:
                            grader._resolve(error=message["error"])
                    elif message["op"] == "exited":
                        grader = self._running.pop(message["pid"], None)
                        if grader is not None:
                            grader._ended(message["code"])
                if released_early is not None:
                    self._send({"op": "release", "pid": released_early})
        except (TemplateUnavailable, OSError, ValueError) as error:
            why = f"the grader template's messages stopped ({error})"
        else:
            why = "the grader template ended"
        with self._lock:
            self.broken = self.broken or why
            pending, running = list(self._pending.values()), list(self._running.values())
            self._pending.clear()
            self._running.clear()
        for grader in pending:
            grader._resolve(error=why)
        for grader in running:
            grader._orphaned()

    def abandon(self, why):
        """Stop using a template that no longer answers (stopped, stuck): kill it; runs start afresh."""
        with self._lock:
            self.broken = self.broken or why
        self.proc.kill()

    def close(self):
        """End the template (and any grader process it still holds)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)


_shared = None
_shared_lock = threading.Lock()
atexit.register(lambda: close_shared())


def _forget_after_fork():
    """In a process forked from one that holds a template: that template answers its owner only."""
    global _shared, _shared_lock
    _shared, _shared_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def shared(env):
    """This process's warm template for `env`: the one running, or a new one (the old one closed)."""
    global _shared
    with _shared_lock:
        if _shared is not None and (_shared.broken or _shared.key != template_key(env)):
            _shared.close()
            _shared = None
        if _shared is None:
            _shared = GraderTemplate(env)
        return _shared


def close_shared():
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.close()
            _shared = None


if __name__ == "__main__":
    main()
