"""Run an assignment's hidden graders in their own process, for one submission.

The graders run as ``python -I -m pytest`` over ``autograder/<assignment>/``:
isolated mode (no PYTHONPATH, no user site, no current directory on the path),
no plugins but the kit's, no cache, no conftest above the grader folder, plain
asserts (pytest's assertion rewriting would print hidden expected values).
While they run, this process serves their requests to the student's kernel;
the plugin sends back each test's outcome over the same pipe as it finishes.

Student-controlled bytes (models, answers, messages) reach that process, so it
runs under limits of its own (`nndl.settings.Limits`): its memory (the RSS of
its process tree, polled), its wall time, and its output (what it prints is
read through a pipe, only the tail kept, and stopped past a cap; no file it
writes may pass the same cap). When a limit stops it, or it crashes on a
signal after collecting its tests, the tests it had finished keep their
outcomes and the others fail with a message saying what stopped it: only the
questions not yet checked are lost, not the submission.
"""

import json
import logging
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time

from nndl import scratch
from nndl.bridge import codec as bridge
from nndl.bridge.models import MEMORY_LIMIT_ENV
from nndl.contracts import GraderReport, TestOutcome
from nndl.kernel.sandbox import ResourceWatchdog, kill_tree
from nndl.score import template
from nndl.score.plugin import BRIDGE_ENV
from nndl.settings import Limits

log = logging.getLogger(__name__)

#: Characters of the graders' output kept for the report.
LOG_CHARS = 20000


class GraderSetupError(RuntimeError):
    """The hidden graders themselves could not run: an instructor's problem."""


def grader_arguments(grader_dir):
    """pytest's arguments for one assignment's graders: the kit's plugin only, plain asserts, no cache."""
    return [
        str(grader_dir),
        "-p", "nndl.score.plugin",
        "-p", "no:cacheprovider", "-p", "no:stepwise",
        "--assert=plain", "-q", "--no-header", "-rN", "--tb=short",
        "--rootdir", str(grader_dir), "--confcutdir", str(grader_dir),
        "-o", "python_files=test_*.py", "-o", "addopts=", "-o", "testpaths=",
        "-W", "ignore::DeprecationWarning",
    ]


def grader_command(grader_dir):
    """The command line that runs one assignment's graders, isolated, in a process of their own."""
    return [sys.executable, "-I", "-m", "pytest", *grader_arguments(grader_dir)]


def start_graders(grader_dir, *, env=None, limits=None):
    """Start an assignment's grader process now; it serves a notebook run later.

    Started while the notebook runs, the process imports and collects the
    graders (numpy, Keras) in parallel with the student's code: its first
    request waits until `GraderProcess.serve` is called.

    Args:
        grader_dir: the assignment's grader folder.
        env: the trusted environment for the grader process.
        limits: the `nndl.settings.Limits` whose ``grader_*`` fields bound the process.
    """
    return GraderProcess(grader_dir, env, limits=limits)


class GraderProcess:
    """One run of an assignment's hidden graders, in its own isolated process.

    The process is forked from this process's warm grader template
    (`nndl.score.template`), or started from scratch as `grader_command`
    when the template is off (``NNDL_GRADER_TEMPLATE=0``) or failed. From
    its start (for a fork: from `serve`, before any request is answered), a
    watchdog stops its process tree past ``limits.grader_memory_mb`` of
    resident memory beyond what the template shares with it, and a reader thread
    drains what it prints, keeping the tail and stopping it past
    ``limits.grader_output_mb``; no file it writes may grow past that size
    either. Its wall time is `serve`'s timeout.
    """

    def __init__(self, grader_dir, env=None, *, limits=None):
        limits = limits or Limits()
        self.grader_dir = grader_dir
        self.memory_mb = limits.grader_memory_mb
        self.output_mb = limits.grader_output_mb
        self._output_bytes = int(self.output_mb * 2**20)
        to_coordinator_r, to_coordinator_w = os.pipe()
        to_grader_r, to_grader_w = os.pipe()
        output_r, output_w = os.pipe()
        #: The ends the grader process holds; ours are closed once it has them.
        self._child_fds = (output_w, to_grader_r, to_coordinator_w)
        child_env = dict(env if env is not None else os.environ)
        child_env[BRIDGE_ENV] = f"{to_grader_r},{to_coordinator_w}"
        child_env[MEMORY_LIMIT_ENV] = str(int(self.memory_mb * 2**20))
        child_env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self._env = child_env
        self.workdir = scratch.mkdtemp("nndl-graders-")
        self._started_at = time.time()
        #: Seconds from this object's creation until the graders were collected and ready to ask.
        self.start_seconds = None
        self.proc = None
        self._watchdog = None
        self._start_lock = threading.Lock()
        if template.enabled(child_env):
            # Forked from this process's warm template: the imports are paid already. The fork
            # happens as soon as the template is ready; `_started` waits for it.
            try:
                self.proc = template.shared(child_env).spawn(
                    grader_arguments(grader_dir), cwd=self.workdir, env=child_env, fds=self._child_fds,
                    fsize=self._output_bytes, bridge_env=BRIDGE_ENV)
            except template.TemplateUnavailable as error:
                log.warning("Starting the hidden graders without the template: %s", error)
        if self.proc is None:
            self._start_fresh()
        self._output = _OutputTail(output_r, self._kill_tree, self._output_bytes)
        self._output.start()
        if not isinstance(self.proc, template.ForkedGrader):
            self._started()
        self._requests = os.fdopen(to_coordinator_r, "rb")
        self._answers = os.fdopen(to_grader_w, "wb")
        # What the plugin reported so far: kept when a limit stops the process.
        self._collected = None
        self._finished = []
        self._measured = {}

    def _start_fresh(self):
        """Start the grader process from scratch: ``python -I -m pytest``."""
        output_w, to_grader_r, to_coordinator_w = self._child_fds
        self.proc = subprocess.Popen(
            grader_command(self.grader_dir), cwd=self.workdir, env=self._env,
            stdin=subprocess.DEVNULL, stdout=output_w, stderr=subprocess.STDOUT,
            pass_fds=(to_grader_r, to_coordinator_w), start_new_session=True)
        # Set as the interpreter starts, before it has imported anything: Python ignores
        # SIGXFSZ, so a write past the cap fails with an error in the grader that made it.
        try:
            resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE, (self._output_bytes, self._output_bytes))
        except ProcessLookupError:  # it already ended; serve reports how
            pass

    def _started(self):
        """The grader process, running under its watchdog; a template's fork waited for.

        When the template failed to fork, the process is started from scratch
        instead: the run loses nothing but the time.
        """
        with self._start_lock:  # the output reader may get here first, to stop the process
            if self._watchdog is None:
                self._start_watched()

    def _start_watched(self):
        baseline = 0
        if isinstance(self.proc, template.ForkedGrader):
            try:
                self.proc.pid
                # What the template had imported is not the graders' memory: counted from there.
                baseline = self.proc.baseline_bytes
            except template.TemplateUnavailable as error:
                log.warning("Starting the hidden graders without the template: %s", error)
                self._start_fresh()
        for fd in self._child_fds:
            os.close(fd)
        self._child_fds = ()
        self._watchdog = ResourceWatchdog(self.proc.pid, int(self.memory_mb * 2**20), baseline_bytes=baseline)
        self._watchdog.start()

    def _kill_tree(self):
        self._started()
        kill_tree(self.proc.pid)

    def serve(self, notebook_run, *, timeout=600, services=None):
        """Answer the graders' requests from `notebook_run` until they finish.

        Args:
            notebook_run: an executed `nndl.kernel.run.NotebookRun`.
            services: answers the requests that are not for the kernel (the files
                handed in, retraining: `nndl.grade.SubmissionServices`); None: refused.
            timeout: seconds for all graders together, from now.

        Returns:
            A `GraderReport`. When a limit (memory, output, `timeout`) stopped
            the graders, the tests they had not finished fail with a message
            naming it.

        Raises:
            GraderSetupError: pytest could not collect or run the graders.
        """
        self._started()
        proc = self.proc
        results = None
        timed_out = False
        deadline = time.monotonic() + timeout
        requests, answers = self._requests, self._answers
        buffer = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([requests], [], [], min(remaining, 1.0))
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(requests.fileno(), 1 << 20)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                message = json.loads(line)
                if message["op"] == "results":
                    results = message
                    continue
                if message["op"] == "collected":
                    self._collected = message["collected"]
                    continue
                if message["op"] == "ready":  # collected, Keras imported if needed: for the run's stats
                    self.start_seconds = max(0.0, float(message["at"]) - self._started_at)
                    continue
                if message["op"] == "result":
                    self._finished.append(message["result"])
                    continue
                if message["op"] == "measured":
                    self._measured[str(message["name"])] = {"value": float(message["value"]),
                                                            "data": message.get("data")}
                    continue
                answer = _serve(notebook_run, message, services)
                try:
                    answers.write(json.dumps(answer).encode() + b"\n")
                    answers.flush()
                except BrokenPipeError:
                    break
        if timed_out:
            kill_tree(proc.pid)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.wait()
        self._watchdog.stop()
        self._output.join(timeout=5)
        log = self._output.text(LOG_CHARS)
        stopped = self._stopped_by(timed_out, timeout)
        self.close()
        if results is None and stopped and self._collected is not None:
            results = {"collected": self._collected, "results": self._finished}
        if results is None:
            why = f"; {stopped}" if stopped else ""
            raise GraderSetupError(f"the hidden graders in {self.grader_dir} did not run "
                                   f"(pytest exit code {proc.returncode}{why}):\n{log}")
        if proc.returncode not in (0, 1) and not stopped:
            raise GraderSetupError(f"the hidden graders in {self.grader_dir} failed to run "
                                   f"(pytest exit code {proc.returncode}):\n{log}")
        return _report(results, log, stopped, self._measured)

    def _stopped_by(self, timed_out, timeout):
        """What stopped the graders, for the tests they had not finished; None if nothing did."""
        if self._watchdog.tripped == "memory":
            return f"the hidden graders ran out of their {self.memory_mb:g} MiB of memory"
        if self._output.tripped:
            return f"the hidden graders printed more than their {self.output_mb:g} MiB of output"
        if timed_out:
            return f"the hidden graders ran out of their {timeout:g} s"
        if self.proc.returncode is not None and self.proc.returncode < 0:
            # Killed by a signal not of our sending: a crash in a native library on
            # student bytes (a damaged weights file, say), or the system's OOM killer.
            return f"the hidden graders crashed ({_signal_name(-self.proc.returncode)})"
        return None

    def close(self):
        """End the process if it still runs, and remove its folder."""
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._watchdog is not None and self.proc.poll() is None:
            kill_tree(self.proc.pid)
            self.proc.kill()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a template that no longer answers: released below
                log.warning("The hidden graders' process %s did not report its end", self.proc.pid)
        elif self._watchdog is None and isinstance(self.proc, template.ForkedGrader):
            self.proc.kill_if_forked()  # never served: the fork, if the template made one, ends here
        if isinstance(self.proc, template.ForkedGrader):
            self.proc.release()  # once: a second call does nothing
        for fd in self._child_fds:
            os.close(fd)
        self._child_fds = ()
        self._output.join(timeout=5)
        for stream in (self._requests, self._answers):
            try:
                stream.close()
            except OSError:  # the grader already closed its end: nothing to flush
                pass
        _remove_tree(self.workdir)


#: Requests about the submission's files rather than its kernel.
SERVICE_OPS = ("submitted_model", "retrain")


def _serve(notebook_run, message, services=None):
    if message["op"] in SERVICE_OPS:
        if services is None:
            return {"ok": False, "error": f"'{message['op']}' is not available here"}
        answer = services.answer(message["op"], message["name"], bridge.decode(message["kwargs"]))
        return answer if not answer["ok"] else {"ok": True, "path": answer["path"]}
    answer = notebook_run.request(message["op"], message["name"], bridge.decode(message["args"]),
                                  bridge.decode(message["kwargs"]), timeout=message.get("timeout"))
    if not answer["ok"]:
        return answer
    if message["op"] == "model":
        return {"ok": True, "path": answer["path"]}
    # The value passed `bridge.decode`'s limits, so this cannot fail; were it to,
    # it costs this one answer, not the submission.
    try:
        return {"ok": True, "value": bridge.encode(answer["value"])}
    except (TypeError, ValueError, RecursionError) as error:
        return {"ok": False, "error": f"the answer for '{message['name']}' could not be passed "
                                      f"to the graders: {error}"}


def _report(results, log, stopped=None, measured=None):
    """The outcome of every collected test; those without a result fail, saying why.

    Tests run in the order collected, so when `stopped` (what stopped the
    graders) is given, the first test without a result is the one that was
    running.
    """
    finished = {r["test"]: r for r in results["results"]}
    outcomes = []
    running = True
    for test in results["collected"]:
        result = finished.get(test["test"])
        if result is None:
            if stopped:
                message = f"{stopped} {'while' if running else 'before'} checking this"
                running = False
            else:
                message = "the hidden grader did not finish this check"
            outcomes.append(TestOutcome(test["test"], test["grade_cell"], test["weight"], False, message))
        else:
            outcomes.append(TestOutcome(result["test"], result["grade_cell"], result["weight"],
                                        result["passed"], result["message"]))
    return GraderReport(outcomes, log, dict(measured or {}))


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _remove_tree(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class _OutputTail(threading.Thread):
    """Drains what the grader process prints, keeping only its last `keep` bytes.

    Past `limit_bytes` in all it stops the process tree (`kill`), so output is capped
    while the graders run, never written anywhere whole.
    """

    def __init__(self, fd, kill, limit_bytes, keep=4 * LOG_CHARS):
        super().__init__(daemon=True, name=f"grader-output-{fd}")
        self.fd = fd
        self.kill = kill
        self.limit_bytes = limit_bytes
        self.keep = keep
        self.total = 0
        self.tripped = False
        self._tail = bytearray()

    def run(self):
        with os.fdopen(self.fd, "rb", buffering=0) as stream:
            while chunk := stream.read(1 << 16):
                self.total += len(chunk)
                self._tail += chunk
                del self._tail[:-self.keep]
                if self.total > self.limit_bytes and not self.tripped:
                    self.tripped = True
                    self.kill()

    def text(self, chars):
        """The last `chars` characters printed, noting how much came before them."""
        tail = bytes(self._tail).decode(errors="replace")[-chars:]
        dropped = self.total - len(tail.encode(errors="replace"))
        note = f"[{dropped} bytes of earlier grader output left out]\n" if dropped > 0 else ""
        return note + tail
