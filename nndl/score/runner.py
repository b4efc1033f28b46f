"""Run an assignment's hidden graders in their own process, for one submission.

The graders run as ``python -I -m pytest`` over ``autograder/<assignment>/``:
isolated mode (no PYTHONPATH, no user site, no current directory on the path),
no plugins but the kit's, no cache, no conftest above the grader folder, plain
asserts (pytest's assertion rewriting would print hidden expected values).
While they run, this process serves their requests to the student's kernel;
at the end the plugin sends back each test's outcome over the same pipe.
"""

import json
import os
import select
import subprocess
import sys
import tempfile
import time

from nndl.bridge import codec as bridge
from nndl.contracts import GraderReport, TestOutcome
from nndl.score.plugin import BRIDGE_ENV


class GraderSetupError(RuntimeError):
    """The hidden graders themselves could not run: an instructor's problem."""


def grader_command(grader_dir):
    """The command line that runs one assignment's graders, isolated."""
    return [
        sys.executable, "-I", "-m", "pytest", str(grader_dir),
        "-p", "nndl.score.plugin",
        "-p", "no:cacheprovider", "-p", "no:stepwise",
        "--assert=plain", "-q", "--no-header", "-rN", "--tb=short",
        "--rootdir", str(grader_dir), "--confcutdir", str(grader_dir),
        "-o", "python_files=test_*.py", "-o", "addopts=", "-o", "testpaths=",
        "-W", "ignore::DeprecationWarning",
    ]


def start_graders(grader_dir, *, env=None):
    """Start an assignment's grader process now; it serves a notebook run later.

    Started while the notebook runs, the process imports and collects the
    graders (numpy, Keras) in parallel with the student's code: its first
    request waits until `GraderProcess.serve` is called.

    Args:
        grader_dir: the assignment's grader folder.
        env: the trusted environment for the grader process.
    """
    return GraderProcess(grader_dir, env)


class GraderProcess:
    """One run of an assignment's hidden graders, in its own isolated process."""

    def __init__(self, grader_dir, env=None):
        self.grader_dir = grader_dir
        to_coordinator_r, to_coordinator_w = os.pipe()
        to_grader_r, to_grader_w = os.pipe()
        child_env = dict(env if env is not None else os.environ)
        child_env[BRIDGE_ENV] = f"{to_grader_r},{to_coordinator_w}"
        child_env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.workdir = tempfile.mkdtemp(prefix="nndl-graders-")
        self.log_path = os.path.join(self.workdir, "pytest.log")
        with open(self.log_path, "w") as log_file:
            self.proc = subprocess.Popen(
                grader_command(grader_dir), cwd=self.workdir, env=child_env,
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                pass_fds=(to_grader_r, to_coordinator_w), start_new_session=True)
        os.close(to_grader_r)
        os.close(to_coordinator_w)
        self._requests = os.fdopen(to_coordinator_r, "rb")
        self._answers = os.fdopen(to_grader_w, "wb")

    def serve(self, notebook_run, *, timeout=600):
        """Answer the graders' requests from `notebook_run` until they finish.

        Args:
            notebook_run: an executed `nndl.kernel.run.NotebookRun`.
            timeout: seconds for all graders together, from now.

        Returns:
            A `GraderReport`.

        Raises:
            GraderSetupError: pytest could not collect or run the graders.
        """
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
                answer = _serve(notebook_run, message)
                try:
                    answers.write(json.dumps(answer).encode() + b"\n")
                    answers.flush()
                except BrokenPipeError:
                    break
        if timed_out:
            proc.kill()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with open(self.log_path, errors="replace") as handle:
            log = handle.read()[-20000:]
        self.close()
        if results is None:
            raise GraderSetupError(f"the hidden graders in {self.grader_dir} did not run "
                                   f"(pytest exit code {proc.returncode}):\n{log}")
        if proc.returncode not in (0, 1):
            raise GraderSetupError(f"the hidden graders in {self.grader_dir} failed to run "
                                   f"(pytest exit code {proc.returncode}):\n{log}")
        return _report(results, log, timed_out, timeout)

    def close(self):
        """End the process if it still runs, and remove its folder."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self._requests, self._answers):
            try:
                stream.close()
            except OSError:  # the grader already closed its end: nothing to flush
                pass
        _remove_tree(self.workdir)


def _serve(notebook_run, message):
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


def _report(results, log, timed_out, timeout):
    finished = {r["test"]: r for r in results["results"]}
    outcomes = []
    for test in results["collected"]:
        result = finished.get(test["test"])
        if result is None:
            message = (f"the hidden graders ran out of their {timeout:g} s before checking this"
                       if timed_out else "the hidden grader did not finish this check")
            outcomes.append(TestOutcome(test["test"], test["grade_cell"], test["weight"], False, message))
        else:
            outcomes.append(TestOutcome(result["test"], result["grade_cell"], result["weight"],
                                        result["passed"], result["message"]))
    return GraderReport(outcomes, log)


def _remove_tree(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)
