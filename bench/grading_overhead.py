"""How much does the kit's grading cost over stock nbgrader, per submission?

Grades the same batch of a01_perceptrons_xor submissions four ways, one
after the other on this machine, and reports the wall time of each:

1. bare: every notebook executed top to bottom in a fresh kernel (nbclient),
   no grading at all; the floor both graders stand on.
2. stock: nbgrader as shipped. A variant of a01 whose autograded grade cells
   carry ``### BEGIN HIDDEN TESTS`` blocks of plain asserts (`HIDDEN_TESTS`,
   equivalent to the kit's hidden graders), in a course folder with a plain
   ``nbgrader_config.py``, graded by one ``nbgrader autograde`` command.
3. kit, template off: a course folder using the kit's configuration, graded
   by one ``nndl autograde`` command (sandboxed kernel, hidden pytest graders
   in a separate process, intake), each grader process started from scratch
   (``NNDL_GRADER_TEMPLATE=0``);
4. kit: the same in a second, identical course folder, as the kit runs by
   default: each grader process forked from the worker's warm template
   (`nndl.score.template`).

The submissions are the kit's own samples (`nndl.cli.samples`): the
solution, the untouched release and the flawed variants, cycled to the
batch size; the generic broken files (not JSON, a deleted cell, a
duplicated id, a dying kernel) are left out. For the stock course each
sample's answers are moved into the stock release, so both graders see the
same answers. The points each way recorded are compared per student: stock
asserts score a cell all or nothing where the kit gives partial credit, so
differences are expected and are listed, never hidden.

Then one kit submission (the solution) is graded again in this process,
phase by phase (`kit_breakdown`: intake, job preparation, kernel start,
execution, grader start, grader run and its kernel round trips, kernel
stop, recording), and fresh processes time what a grader process started
from scratch pays (start, `import keras`, model loads). The CPU that other processes use during each phase is reported too:
the timings mean something only on an otherwise idle machine.

Usage::

    .venv/bin/python bench/grading_overhead.py [--submissions 20] [--out bench/out]

Writes ``<out>/grading_overhead.json`` and the three autograde logs beside it.
"""

import argparse
import contextlib
import copy
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import pathlib
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import nbformat  # noqa: E402 - after the TensorFlow log level, which kernels inherit
import psutil  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import DeadKernelError  # noqa: E402
from nbgrader import utils  # noqa: E402

from nndl import build, course  # noqa: E402
from nndl.cli import samples  # noqa: E402
from nndl.score import template  # noqa: E402
from nndl.record import gradebook  # noqa: E402

ASSIGNMENT = "a01_perceptrons_xor"
BIN = pathlib.Path(sys.executable).parent
#: The kit's generic broken samples, by name after the number: not graded here.
BROKEN_SAMPLES = {"not-json", "deleted-grade-cell", "duplicated-cell-id", "kernel-dies"}
#: Seconds any one notebook may run in the bare baseline (nbgrader's Execute.timeout here too).
CELL_TIMEOUT = 300
#: Cold-start measurements are repeated this many times; the median is reported.
REPEATS = 3

_XOR_INPUTS = "np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)"
#: Checks of train_perceptron's result `_ht_r` on `_ht_X`; sets `_ht_predicted` from its w and b.
_TRAINING_RESULT_CHECKS = '''
assert isinstance(_ht_r, dict) and {"w", "b", "converged", "epochs", "errors"} <= set(_ht_r), _ht_r
assert np.shape(_ht_r["w"]) == (_ht_X.shape[1],), np.shape(_ht_r["w"])
assert isinstance(_ht_r["b"], (int, float, np.number)) and not isinstance(_ht_r["b"], bool), _ht_r["b"]
assert isinstance(_ht_r["converged"], (bool, np.bool_)), _ht_r["converged"]
assert isinstance(_ht_r["epochs"], (int, np.integer)) and not isinstance(_ht_r["epochs"], bool), _ht_r["epochs"]
assert all(isinstance(_ht_e, (int, np.integer)) for _ht_e in _ht_r["errors"]), _ht_r["errors"]
assert len(_ht_r["errors"]) == _ht_r["epochs"], (_ht_r["epochs"], _ht_r["errors"])
_ht_predicted = (_ht_X @ np.asarray(_ht_r["w"], dtype=float) + float(_ht_r["b"]) >= 0).astype(int)
'''.strip()

HIDDEN_TESTS = {
    "mp_neurons": '''
_ht_pairs = [(0, 0), (0, 1), (1, 0), (1, 1)]
_ht_tables = [("mp_identity", mp_identity, [(0,), (1,)], [0, 1]),
              ("mp_and", mp_and, _ht_pairs, [0, 0, 0, 1]),
              ("mp_or", mp_or, _ht_pairs, [0, 1, 1, 1]),
              ("mp_and_not", mp_and_not, _ht_pairs, [0, 0, 1, 0])]
for _ht_name, _ht_gate, _ht_inputs, _ht_expected in _ht_tables:
    _ht_outputs = [_ht_gate(*_ht_args) for _ht_args in _ht_inputs]
    assert all(isinstance(_ht_o, (int, np.integer)) for _ht_o in _ht_outputs), (_ht_name, _ht_outputs)
    assert _ht_outputs == _ht_expected, f"{_ht_name}: expected {_ht_expected}, got {_ht_outputs}"
''',
    "mp_xor": '''
_ht_outputs = [mp_xor(_ht_a, _ht_b) for _ht_a, _ht_b in [(0, 0), (0, 1), (1, 0), (1, 1)]]
assert all(isinstance(_ht_o, (int, np.integer)) for _ht_o in _ht_outputs), _ht_outputs
assert _ht_outputs == [0, 1, 1, 0], f"mp_xor: expected [0, 1, 1, 0], got {_ht_outputs}"
''',
    "step_functions": '''
_ht_z = np.array([[-3.0, -0.5, -1e-9, 0.0], [1e-9, 0.25, 2.0, 7.5]])
for _ht_step, _ht_expected in [(heaviside, [[0, 0, 0, 1], [1, 1, 1, 1]]),
                               (sign_step, [[-1, -1, -1, 0], [1, 1, 1, 1]])]:
    _ht_out = _ht_step(_ht_z)
    assert isinstance(_ht_out, np.ndarray) and np.issubdtype(_ht_out.dtype, np.integer), _ht_out
    assert _ht_out.tolist() == _ht_expected, f"expected {_ht_expected}, got {_ht_out.tolist()}"
for _ht_z, _ht_h, _ht_s in [(-2.5, 0, -1), (0.0, 1, 0), (4.0, 1, 1)]:
    for _ht_step, _ht_expected in [(heaviside, _ht_h), (sign_step, _ht_s)]:
        _ht_out = np.asarray(_ht_step(_ht_z))
        assert _ht_out.size == 1 and np.issubdtype(_ht_out.dtype, np.integer), _ht_out
        assert int(_ht_out.reshape(())) == _ht_expected, (_ht_z, _ht_out)
''',
    "perceptron_update": '''
_ht_rng = np.random.default_rng(1001)
_ht_cases = []
for _ht_n, _ht_k in [(2, 1), (3, 1), (5, 1), (2, 3), (4, 2), (3, 5)]:
    _ht_w = _ht_rng.normal(size=(_ht_n, _ht_k))
    _ht_x = _ht_rng.normal(size=_ht_n)
    _ht_y = _ht_rng.integers(0, 2, size=_ht_k)
    _ht_y_hat = _ht_rng.integers(0, 2, size=_ht_k)
    _ht_y_hat[0] = 1 - _ht_y[0]
    _ht_cases.append((_ht_w, _ht_x, _ht_y, _ht_y_hat, float(_ht_rng.uniform(0.05, 1.0))))
_ht_cases.append((np.array([[1, -2], [0, 3], [-1, 1]]), np.array([1, 3, -1]),
                  np.array([1, 0]), np.array([0, 1]), 0.5))
for _ht_w, _ht_x, _ht_y, _ht_y_hat, _ht_eta in _ht_cases:
    _ht_expected = _ht_w + _ht_eta * np.outer(_ht_x, _ht_y - _ht_y_hat)
    _ht_out = perceptron_update(_ht_w, _ht_x, _ht_y, _ht_y_hat, _ht_eta)
    assert isinstance(_ht_out, np.ndarray) and _ht_out.shape == _ht_expected.shape, _ht_out
    assert np.allclose(_ht_out, _ht_expected), f"expected {_ht_expected.tolist()}, got {_ht_out.tolist()}"
''',
    "perceptron_converges": f'''
_ht_iris = load_iris()
_ht_order = np.random.default_rng(1003).permutation(len(_ht_iris.target))
_ht_datasets = [({_XOR_INPUTS}, np.array([0, 0, 0, 1])),
                (_ht_iris.data[:, 2:4].astype(float)[_ht_order], (_ht_iris.target == 0).astype(int)[_ht_order])]
for _ht_X, _ht_y in _ht_datasets:
    _ht_r = train_perceptron(_ht_X, _ht_y, eta=1.0, max_epochs=100)
{textwrap.indent(_TRAINING_RESULT_CHECKS, "    ")}
    assert _ht_r["converged"] and 1 <= _ht_r["epochs"] <= 100 and list(_ht_r["errors"])[-1] == 0, _ht_r
    assert np.array_equal(_ht_predicted, _ht_y), _ht_predicted
''',
    "perceptron_xor": f'''
_ht_X, _ht_y = {_XOR_INPUTS}, np.array([0, 1, 1, 0])
_ht_r = train_perceptron(_ht_X, _ht_y, eta=1.0, max_epochs=25)
{_TRAINING_RESULT_CHECKS}
assert not _ht_r["converged"] and _ht_r["epochs"] == 25, _ht_r
assert all(int(_ht_e) >= 1 for _ht_e in _ht_r["errors"]), _ht_r["errors"]
assert np.any(_ht_predicted != _ht_y), _ht_predicted
''',
    "xor_mlp_hand": f'''
_ht_shapes = {{"XOR_W1": [(2, 2)], "XOR_b1": [(2,)], "XOR_W2": [(2, 1), (2,)], "XOR_b2": [(1,), ()]}}
for _ht_name, _ht_allowed in _ht_shapes.items():
    _ht_value = globals()[_ht_name]
    assert isinstance(_ht_value, (np.ndarray, int, float, list)) and not isinstance(_ht_value, bool), _ht_name
    _ht_value = np.asarray(_ht_value)
    assert _ht_value.shape in _ht_allowed, (_ht_name, _ht_value.shape)
    assert np.issubdtype(_ht_value.dtype, np.number) and np.all(np.isfinite(_ht_value)), _ht_name
_ht_hidden = ({_XOR_INPUTS} @ np.asarray(XOR_W1, dtype=float) + np.asarray(XOR_b1, dtype=float) >= 0).astype(int)
_ht_out = (_ht_hidden @ np.asarray(XOR_W2, dtype=float).reshape(-1)
           + np.asarray(XOR_b2, dtype=float).reshape(-1) >= 0).astype(int)
assert _ht_out.tolist() == [0, 1, 1, 0], f"expected [0, 1, 1, 0], got {{_ht_out.tolist()}}"
''',
    "xor_keras_model": f'''
_ht_layers = [_ht_l for _ht_l in xor_model.layers if not isinstance(_ht_l, keras.layers.InputLayer)]
assert len(_ht_layers) == 2 and all(isinstance(_ht_l, keras.layers.Dense) for _ht_l in _ht_layers), _ht_layers
assert [_ht_l.units for _ht_l in _ht_layers] == [2, 1] and _ht_layers[0].kernel.shape[0] == 2, _ht_layers
assert xor_model.count_params() == 9, xor_model.count_params()
assert isinstance(xor_param_count, (int, np.integer)) and not isinstance(xor_param_count, bool), xor_param_count
assert xor_param_count == 9, xor_param_count
_ht_proba = np.asarray(xor_model.predict({_XOR_INPUTS}.astype("float32"), verbose=0)).reshape(-1)
assert _ht_proba.size == 4 and ((_ht_proba > 0.5).astype(int) == [0, 1, 1, 0]).all(), _ht_proba
''',
}
"""Stock nbgrader hidden tests, by grade id: the kit's hidden graders as in-kernel asserts.

Every name they bind starts with ``_ht_`` so that they never clobber a
student's variable. They are all-or-nothing per cell, as nbgrader scores them.
"""


@dataclasses.dataclass
class Submission:
    """One student's hand-in: a kit sample under a batch-unique student id."""

    student: str
    sample: samples.Sample

    def answers(self):
        """``{grade_id: source}`` of the sample's solution cells."""
        nb = nbformat.reads(self.sample.content, as_version=4)
        return {c.metadata.nbgrader["grade_id"]: c.source for c in nb.cells if utils.is_solution(c)}


# --- the batch ----------------------------------------------------------------

def make_batch(count):
    """`count` submissions cycling through the solution, release and flawed samples.

    Returns:
        ``(notebook_name, [Submission])``.
    """
    notebook_name, all_samples = samples.assignment_samples(course.KIT_ROOT, ASSIGNMENT)
    usable = [s for s in all_samples if s.student.split("-", 1)[1] not in BROKEN_SAMPLES]
    batch = [Submission(f"b{n + 1:02d}-{usable[n % len(usable)].student}", usable[n % len(usable)])
             for n in range(count)]
    return notebook_name, batch


# --- the stock course -----------------------------------------------------------

def stock_master(master):
    """The kit's master with `HIDDEN_TESTS` appended to its autograded grade cells.

    Raises:
        ValueError: the master's autograded cells and `HIDDEN_TESTS` disagree.
    """
    nb = copy.deepcopy(master)
    graded = samples.autograded_points(nb)
    if set(graded) != set(HIDDEN_TESTS):
        raise ValueError(f"Expected hidden tests for exactly the autograded cells {sorted(graded)}, "
                         f"received tests for {sorted(HIDDEN_TESTS)}: update HIDDEN_TESTS.")
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in HIDDEN_TESTS:
            cell.source = (f"{cell.source.rstrip()}\n\n### BEGIN HIDDEN TESTS\n"
                           f"{HIDDEN_TESTS[grade_id].strip()}\n### END HIDDEN TESTS")
    return nb


def stock_config_text():
    """A stock ``nbgrader_config.py``: names, timeout and the kit's code stub, no kit steps."""
    code_stub = dict(course.load_config(course.KIT_ROOT).ClearSolutions.code_stub)
    return "\n".join([
        "# Stock nbgrader: hidden tests in the grade cells, nbgrader's own autograde pipeline.",
        "c = get_config()  # noqa: F821",
        'c.CourseDirectory.course_id = "nndl-stock"',
        f"c.CourseDirectory.db_assignments = [{{'name': {ASSIGNMENT!r}}}]",
        f"c.Execute.timeout = {CELL_TIMEOUT}",
        f"c.ClearSolutions.code_stub = {code_stub!r}",
    ]) + "\n"


def rebase(release, answers):
    """A copy of the stock release whose solution cells hold a sample's answers.

    Raises:
        ValueError: the sample lacks an answer cell the release has.
    """
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        if utils.is_solution(cell):
            grade_id = cell.metadata.nbgrader["grade_id"]
            if grade_id not in answers:
                raise ValueError(f"Expected the sample to answer {grade_id!r}, received answers for "
                                 f"{sorted(answers)}.")
            cell.source = answers[grade_id]
    return nb


def make_stock_course(folder, notebook_name, batch, env):
    """Write, generate and fill the stock course in `folder`."""
    source = folder / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    master = nbformat.read(str(course.KIT_ROOT / "source" / ASSIGNMENT / notebook_name), as_version=4)
    nbformat.write(stock_master(master), str(source / notebook_name))
    (folder / "nbgrader_config.py").write_text(stock_config_text())
    subprocess.run([str(BIN / "nbgrader"), "generate_assignment", ASSIGNMENT, "--force"],
                   cwd=folder, env=env, check=True, capture_output=True, text=True)
    release = nbformat.read(str(folder / "release" / ASSIGNMENT / notebook_name), as_version=4)
    for submission in batch:
        target = folder / "submitted" / submission.student / ASSIGNMENT
        target.mkdir(parents=True)
        nbformat.write(rebase(release, submission.answers()), str(target / notebook_name))


# --- the kit's course --------------------------------------------------------------

def make_kit_course(folder, notebook_name, batch):
    """Write and build a kit course in `folder`, with the batch submitted."""
    course.write_course_config(folder, graders=course.KIT_ROOT / "autograder")
    shutil.copytree(course.KIT_ROOT / "source" / ASSIGNMENT, folder / "source" / ASSIGNMENT)
    build.build(folder, assignment=ASSIGNMENT)
    renamed = [dataclasses.replace(s.sample, student=s.student) for s in batch]
    samples.write_submissions(folder, ASSIGNMENT, renamed, notebook_name)


# --- timing ------------------------------------------------------------------------

class ForeignCpu:
    """CPU seconds that processes outside this benchmark use while a phase runs.

    Timings are only comparable on an otherwise idle machine; this measures
    how far from idle it was. A sampling thread reads every process's CPU
    times once a second; processes that live less than a second between two
    samples are missed, so the figure is a lower bound.
    """

    def __init__(self, interval=1.0):
        self.interval = interval
        self.seconds = 0.0
        self._seen = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self._started = time.time()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()

    def _watch(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self):
        me = psutil.Process()
        ours = {me.pid} | {child.pid for child in me.children(recursive=True)}
        for proc in psutil.process_iter(["cpu_times", "create_time"]):
            if proc.pid in ours or proc.info["cpu_times"] is None:
                continue
            used = proc.info["cpu_times"].user + proc.info["cpu_times"].system
            key = (proc.pid, proc.info["create_time"])
            if key not in self._seen:
                # A process born during the phase counts from zero; an older one from now.
                self._seen[key] = 0.0 if proc.info["create_time"] >= self._started else used
            self.seconds += max(0.0, used - self._seen[key])
            self._seen[key] = max(used, self._seen[key])


def timed_command(command, cwd, env, log_path):
    """Run a command to completion, its output to `log_path`.

    Returns:
        ``(seconds, exit_status)``.
    """
    with open(log_path, "w") as log:
        started = time.perf_counter()
        status = subprocess.run(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    return time.perf_counter() - started, status


class PhaseTimedClient(NotebookClient):
    """An nbclient `NotebookClient` that also times its kernel's start and its shutdown.

    The shutdown is nbclient's graceful one (a shutdown request, then up to
    `KernelManager.shutdown_wait_time` for the kernel to exit), which stock
    nbgrader's `Execute` uses too; the kit kills its sandboxed kernel instead.
    """

    start_s = 0.0
    shutdown_s = 0.0

    async def _timed(self, phase, awaitable):
        started = time.perf_counter()
        try:
            return await awaitable
        finally:
            setattr(self, phase, getattr(self, phase) + time.perf_counter() - started)

    async def async_start_new_kernel(self, **kwargs):
        return await self._timed("start_s", super().async_start_new_kernel(**kwargs))

    async def async_start_new_kernel_client(self):
        # The kernel counts as started once it answers: this waits for that.
        return await self._timed("start_s", super().async_start_new_kernel_client())

    async def _async_cleanup_kernel(self):
        return await self._timed("shutdown_s", super()._async_cleanup_kernel())


def bare_execution(batch):
    """Execute each submission top to bottom in a fresh kernel, no grading.

    Returns:
        One ``{"total_s", "kernel_start_s", "kernel_shutdown_s"}`` per submission.
    """
    timings = []
    for submission in batch:
        nb = nbformat.reads(submission.sample.content, as_version=4)
        with tempfile.TemporaryDirectory(prefix="nndl-bench-bare-") as scratch:
            client = PhaseTimedClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=True,
                                      resources={"metadata": {"path": scratch}})
            started = time.perf_counter()
            try:
                client.execute(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            except DeadKernelError:
                pass  # the notebook ends where its kernel died, as a bare run would
            timings.append({"total_s": time.perf_counter() - started, "kernel_start_s": client.start_s,
                            "kernel_shutdown_s": client.shutdown_s})
    return timings


def median_seconds(command, env, repeats=REPEATS):
    """Median wall time of a short command run `repeats` times from a scratch folder."""
    times = []
    with tempfile.TemporaryDirectory(prefix="nndl-bench-cold-") as scratch:
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run(command, cwd=scratch, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


_SAVE_MODEL_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[2])  # the assignment's grader folder, as the graders import it
import reference
X, y = reference.xor_data()
model = reference.build_xor_model()
model.compile(optimizer="adam", loss="binary_crossentropy")
model.fit(X.astype("float32"), y.astype("float32"), epochs=1, verbose=0)
model.save(sys.argv[1])
"""

_KERAS_COST_SCRIPT = """
import json, sys, time
started = time.perf_counter()
import keras
imported = time.perf_counter()
from nndl.bridge.models import load_model_safely
loads = []
for _ in range(3):
    load_started = time.perf_counter()
    load_model_safely(sys.argv[1])
    loads.append(time.perf_counter() - load_started)
print(json.dumps([imported - started, loads[0], loads[-1]]))
"""


def keras_costs(env, repeats=REPEATS):
    """What Keras costs a fresh grader process: its import, a first and a later safe model load.

    The model is a trained 2-2-1 network saved as the student's kernel saves
    `xor_model`; each measurement runs in a fresh isolated interpreter, as the
    graders do.

    Returns:
        Medians over `repeats` processes, in seconds.
    """
    with tempfile.TemporaryDirectory(prefix="nndl-bench-model-") as scratch:
        model_path = pathlib.Path(scratch) / "xor_model.keras"
        subprocess.run([sys.executable, "-I", "-c", _SAVE_MODEL_SCRIPT, str(model_path),
                        str(course.KIT_ROOT / "autograder" / ASSIGNMENT)],
                       env=env, check=True, capture_output=True)
        runs = [json.loads(subprocess.run([sys.executable, "-I", "-c", _KERAS_COST_SCRIPT, str(model_path)],
                                          env=env, check=True, capture_output=True, text=True).stdout)
                for _ in range(repeats)]
    import_s, first_s, later_s = (statistics.median(column) for column in zip(*runs))
    return {"keras_import_cold_s": import_s, "model_first_load_s": first_s, "model_later_load_s": later_s}


class RequestTimer:
    """Stands in for a `NotebookRun` towards the graders, timing each kernel round trip."""

    def __init__(self, run, calls):
        self.run = run
        self.calls = calls

    def request(self, op, name, *args, **kwargs):
        """`NotebookRun.request`, timed per operation into ``calls[op] = [count, seconds]``."""
        started = time.perf_counter()
        try:
            return self.run.request(op, name, *args, **kwargs)
        finally:
            entry = self.calls.setdefault(op, [0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - started


def _timed(spans, label, function, wrap_run=None):
    """`function`, adding each call's wall time to ``spans[label]``.

    With `wrap_run`, the call's second argument (a `NotebookRun`) is first
    replaced by ``wrap_run(run)``.
    """
    def timed(*args, **kwargs):
        if wrap_run is not None:
            args = (args[0], wrap_run(args[1]), *args[2:])
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spans[label] = spans.get(label, 0.0) + time.perf_counter() - started
    return timed


def kit_breakdown(kit_folder, submission, env):
    """Where one kit submission's grading time goes, phase by phase, in the kit's own pipeline.

    Grades `submission` again in this process, step by step as a batch does
    (`coordinator.Batch`'s own steps: intake, the job's preparation, the
    worker's `run_job`, storing the verdicts, recording in the gradebook),
    twice: the first run starts this process's grader template (as a batch's
    first submission does in each worker), the second finds it warm, as every
    later submission does. Inside the run, timers wrap the sandboxed execution
    (of which the kernel's start, from the verdict's stats), the hidden
    graders' run (and within it each kernel round trip) and the kernel's
    stop; the grader process's start (until its graders are collected and
    Keras imported) runs beside the execution, and is reported from the
    verdict's stats. Then times, in fresh processes, what a grader process
    started from scratch pays: its start and collection, a cold Keras
    import, safe model loads.
    """
    from nndl.batch import coordinator
    from nndl.batch.worker import run_job
    from nndl.kernel.run import NotebookRun
    from nndl.score.runner import GraderProcess, grader_command

    runs = []
    for _ in range(2):
        batch = coordinator.Batch(kit_folder, ASSIGNMENT, student=submission.student, regrade=True)
        state = batch.states[submission.student]
        spans, calls = {}, {}
        with contextlib.ExitStack() as patches:
            for owner, name, label, wrap_run in [
                    (NotebookRun, "execute", "sandboxed_execution_s", None),
                    (GraderProcess, "serve", "graders_s", lambda run: RequestTimer(run, calls)),
                    (NotebookRun, "close", "kernel_stop_s", None)]:
                patches.enter_context(mock.patch.object(
                    owner, name, _timed(spans, label, getattr(owner, name), wrap_run)))
            started = time.perf_counter()
            for label, step in (("intake_s", batch._take_in), ("prepare_job_s", batch._prepare)):
                began = time.perf_counter()
                step(state)
                spans[label] = time.perf_counter() - began
            result = run_job(state.job, batch.graders)
            began = time.perf_counter()
            batch._store(state, result)
            batch._record(state)
            spans["recording_s"] = time.perf_counter() - began
            total = time.perf_counter() - started
        verdicts = list(result.verdicts.values())
        outcomes = [o for verdict in verdicts for o in verdict.outcomes]
        stats = verdicts[0].stats if verdicts else {}
        runs.append({
            "graded": bool(outcomes) and state.stage == coordinator.RECORDED,
            "total_s": total,
            **spans,
            "kernel_start_s": stats.get("kernel_start_seconds"),
            "grader_start_s": stats.get("grader_start_seconds"),
            "worker_and_rest_s": total - sum(spans.values()),
            "kernel_round_trips": {op: {"count": n, "seconds": s} for op, (n, s) in sorted(calls.items())},
        })
    return {
        "submission": submission.student,
        **runs[1],
        "first_run": runs[0],
        "grader_process_start_and_collect_s": median_seconds(
            grader_command(batch.settings.grader_dir) + ["--collect-only"],
            {**env, "PYTHONPATH": "", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}),
        "python_start_s": median_seconds([sys.executable, "-I", "-c", "pass"], env),
        **keras_costs(env),
    }


# --- points --------------------------------------------------------------------------

def recorded_points(folder):
    """``{student: row}`` of `gradebook.cell_scores` for a course folder."""
    _, rows = gradebook.cell_scores(f"sqlite:///{folder / 'gradebook.db'}", ASSIGNMENT)
    return {row["student"]: row for row in rows}


def _why(kit, stock, max_points):
    """A short reason for one cell's two scores differing."""
    if stock is None:
        return "stock recorded no score"
    if kit is None:
        return "kit recorded no score"
    if stock == 0 and 0 < kit < max_points:
        return "kit partial credit, stock all-or-nothing"
    return "different verdict"


def compare_points(batch, kit_rows, stock_rows, max_points):
    """Per student: both totals, the kit against the sample's prediction, cells that differ."""
    comparison = []
    for submission in batch:
        kit = kit_rows.get(submission.student)
        stock = stock_rows.get(submission.student)
        kit_scores = kit["scores"] if kit else {}
        stock_scores = stock["scores"] if stock else {}
        differences = {}
        for grade_id in submission.sample.expected:
            k, s = kit_scores.get(grade_id), stock_scores.get(grade_id)
            if k is None or s is None or abs(k - s) > 1e-6:
                differences[grade_id] = {"kit": k, "stock": s, "why": _why(k, s, max_points[grade_id])}
        kit_as_predicted = all(kit_scores.get(g) is not None and abs(kit_scores[g] - p) <= 1e-6
                               for g, p in submission.sample.expected.items())
        comparison.append({
            "student": submission.student,
            "kit_total": kit["total"] if kit else None,
            "stock_total": stock["total"] if stock else None,
            "kit_as_predicted": kit_as_predicted,
            "differences": differences,
        })
    return comparison


def failed_students(log_path):
    """Students nbgrader's log says it could not process."""
    text = pathlib.Path(log_path).read_text(errors="replace")
    return sorted(set(re.findall(r"error processing assignment '[^']*' for student '([^']*)'", text)))


# --- the report ------------------------------------------------------------------------

def machine():
    """This machine and the versions that matter to the figures."""
    cpuinfo = pathlib.Path("/proc/cpuinfo").read_text() if pathlib.Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "python": platform.python_version(),
        **{package: _version(package) for package in ("nbgrader", "nbclient", "keras")},
        "tensorflow": _version("tensorflow-cpu") or _version("tensorflow"),
    }


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def kit_version():
    """The kit's commit, and the files of its engine that differ from it (the kit is being worked on)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=course.KIT_ROOT, capture_output=True, text=True).stdout

    engine = ("--", "nndl", "nbgrader_config.py")
    return {"commit": git("rev-parse", "HEAD").strip(),
            "uncommitted": git("status", "--porcelain", *engine).splitlines(),
            "uncommitted_sha256": hashlib.sha256(git("diff", "HEAD", *engine).encode()).hexdigest()}


def format_report(report):
    """The report as plain-text tables."""
    m = report["machine"]
    lines = [f"{report['submissions']} submissions of {ASSIGNMENT} on {m['nproc']} CPUs ({m['cpu_model']}), "
             f"kit at {report['kit_version']['commit'][:7]}"
             f"{' with uncommitted changes' if report['kit_version']['uncommitted'] else ''}"
             f"{' (CHANGED DURING THE RUN)' if report['kit_changed_during_run'] else ''}",
             "load average (1, 5, 15 min) before {} and after {}".format(
                 *(", ".join(f"{x:.2f}" for x in la) for la in report["load_average_before_after"])), ""]
    lines.append(f"{'way':<18}{'wall s':>9}{'s/submission':>14}{'overhead over bare, s/submission':>34}"
                 f"{'other processes, CPU s':>24}")
    for way in ("bare", "stock", "kit_template_off", "kit"):
        w = report["ways"][way]
        overhead = "" if way == "bare" else f"{w['overhead_over_bare_s']:.2f}"
        lines.append(f"{way:<18}{w['wall_s']:>9.1f}{w['per_submission_s']:>14.2f}{overhead:>34}"
                     f"{w['foreign_cpu_s']:>24.1f}")
    bare = report["ways"]["bare"]
    lines.append(f"bare, mean per notebook: kernel start {bare['kernel_start_s']:.2f} s, "
                 f"graceful kernel shutdown {bare['kernel_shutdown_s']:.2f} s")
    lines.append(f"\nratio kit/stock (wall): {report['ratio_kit_over_stock']:.2f}; with the grader template off: "
                 f"{report['ratio_kit_template_off_over_stock']:.2f}")
    lines.append("the kit's points with the template off and on: "
                 + ("the same for every student" if report["template_off_same_points"] else "DIFFERENT"))
    for way in ("stock", "kit_template_off", "kit"):
        w = report["ways"][way]
        if w["exit_status"] != 0:
            lines.append(f"{way}: exit status {w['exit_status']}; not processed: "
                         f"{', '.join(w['failed_students']) or 'see its log'}")
    lines += _points_table(report["points"]) + _breakdown_lines(report["kit_breakdown"])
    return "\n".join(lines)


def _points_table(points):
    lines = ["", f"{'student':<38}{'kit':>6}{'stock':>7}  kit as predicted  cells that differ (kit/stock)"]
    for row in points:
        kit = "-" if row["kit_total"] is None else f"{row['kit_total']:g}"
        stock = "-" if row["stock_total"] is None else f"{row['stock_total']:g}"
        cells = "; ".join(f"{g} {d['kit']}/{d['stock']} ({d['why']})" for g, d in row["differences"].items())
        predicted = "yes" if row["kit_as_predicted"] else "NO"
        lines.append(f"{row['student']:<38}{kit:>6}{stock:>7}  {predicted:<16}  {cells}")
    return lines


def _breakdown_lines(b):
    trips = b["kernel_round_trips"]
    trip_s = sum(v["seconds"] for v in trips.values())
    trip_text = ", ".join(f"{v['count']} {op}" for op, v in trips.items())
    execution = b.get("sandboxed_execution_s", 0)
    kernel_start = b.get("kernel_start_s") or 0
    grader_start = b.get("grader_start_s")
    first = b.get("first_run", {})
    return [
        "",
        f"kit, one submission ({b['submission']}) graded again with timers, {b['total_s']:.2f} s in all "
        f"(the grader template warm; {first.get('total_s', 0):.2f} s the first time, starting it):",
        f"  intake                          {b.get('intake_s', 0):6.2f} s",
        f"  job preparation (nbgrader)      {b.get('prepare_job_s', 0):6.2f} s",
        f"  kernel start (sandboxed)        {kernel_start:6.2f} s",
        f"  execution                       {execution - kernel_start:6.2f} s",
        f"  grader start, beside those      "
        + (f"{grader_start:6.2f} s" if grader_start is not None else "     - ")
        + (f" ({first['grader_start_s']:.2f} s the first time)" if first.get("grader_start_s") is not None else ""),
        f"  grader run                      {b.get('graders_s', 0):6.2f} s",
        f"    of which kernel round trips   {trip_s:6.2f} s ({trip_text})",
        f"  kernel stop                     {b.get('kernel_stop_s', 0):6.2f} s",
        f"  recording (nbgrader gradebook)  {b.get('recording_s', 0):6.2f} s",
        f"  the worker and the rest         {b['worker_and_rest_s']:6.2f} s",
        "measured apart, in fresh processes (median of 3): what a grader process started from scratch pays",
        f"  grader process start + collection  {b['grader_process_start_and_collect_s']:5.2f} s",
        f"  python -I start                    {b['python_start_s']:5.2f} s",
        f"  import keras                       {b['keras_import_cold_s']:5.2f} s",
        f"  safe .keras model load             {b['model_first_load_s']:5.2f} s first, "
        f"{b['model_later_load_s']:.2f} s later",
    ]


def run_benchmark(count, out, workdir):
    """Build both courses in `workdir`, grade the batch three ways, return the report."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    version_before, load_before = kit_version(), os.getloadavg()
    notebook_name, batch = make_batch(count)
    stock_folder, kit_folder, fresh_folder = workdir / "stock", workdir / "kit", workdir / "kit-template-off"
    make_stock_course(stock_folder, notebook_name, batch, env)
    make_kit_course(kit_folder, notebook_name, batch)
    make_kit_course(fresh_folder, notebook_name, batch)

    stock_log, kit_log = out / "stock_autograde.log", out / "kit_autograde.log"
    fresh_log = out / "kit_template_off_autograde.log"
    with ForeignCpu() as bare_foreign:
        bare_runs = bare_execution(batch)
    bare = [run["total_s"] for run in bare_runs]
    with ForeignCpu() as stock_foreign:
        stock_s, stock_status = timed_command([str(BIN / "nbgrader"), "autograde", ASSIGNMENT, "--force"],
                                              stock_folder, env, stock_log)
    with ForeignCpu() as fresh_foreign:
        fresh_s, fresh_status = timed_command([str(BIN / "nndl"), "autograde", ASSIGNMENT], fresh_folder,
                                              {**env, template.TEMPLATE_ENV: "0"}, fresh_log)
    with ForeignCpu() as kit_foreign:
        kit_s, kit_status = timed_command([str(BIN / "nndl"), "autograde", ASSIGNMENT], kit_folder, env, kit_log)
    max_points = gradebook.max_points(f"sqlite:///{kit_folder / 'gradebook.db'}", ASSIGNMENT)
    points = compare_points(batch, recorded_points(kit_folder), recorded_points(stock_folder), max_points)
    template_off_same_points = recorded_points(fresh_folder) == recorded_points(kit_folder)
    breakdown = kit_breakdown(kit_folder, batch[0], env)

    bare_mean = statistics.mean(bare)
    return {
        "assignment": ASSIGNMENT,
        "submissions": count,
        "command": shlex.join(sys.orig_argv),
        "machine": machine(),
        "kit_version": version_before,
        "kit_changed_during_run": kit_version() != version_before,
        "load_average_before_after": [load_before, os.getloadavg()],
        "kit_sandboxed": "WITHOUT the sandbox" not in kit_log.read_text(errors="replace"),
        "order": ["bare", "stock", "kit_template_off", "kit", "kit_breakdown"],
        "ways": {
            "bare": {"wall_s": sum(bare), "per_submission_s": bare_mean,
                     "kernel_start_s": statistics.mean(run["kernel_start_s"] for run in bare_runs),
                     "kernel_shutdown_s": statistics.mean(run["kernel_shutdown_s"] for run in bare_runs),
                     "per_notebook": dict(zip((s.student for s in batch), bare_runs)),
                     "foreign_cpu_s": bare_foreign.seconds},
            "stock": {**_way(stock_s, count, bare_mean, stock_status, failed_students(stock_log),
                             f"nbgrader autograde {ASSIGNMENT} --force"),
                      "foreign_cpu_s": stock_foreign.seconds},
            "kit_template_off": {**_way(fresh_s, count, bare_mean, fresh_status, [],
                                        f"{template.TEMPLATE_ENV}=0 nndl autograde {ASSIGNMENT}"),
                                 "foreign_cpu_s": fresh_foreign.seconds},
            "kit": {**_way(kit_s, count, bare_mean, kit_status, [], f"nndl autograde {ASSIGNMENT}"),
                    "foreign_cpu_s": kit_foreign.seconds},
        },
        "ratio_kit_over_stock": kit_s / stock_s,
        "ratio_kit_template_off_over_stock": fresh_s / stock_s,
        "template_off_same_points": template_off_same_points,
        "points": points,
        "kit_breakdown": breakdown,
    }


def _way(seconds, count, bare_mean, status, failed, command):
    return {"command": command, "wall_s": seconds, "per_submission_s": seconds / count,
            "overhead_over_bare_s": seconds / count - bare_mean, "exit_status": status,
            "failed_students": failed}


def main(argv=None):
    """Entry point: parse arguments, run, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=20, help="batch size (default 20)")
    parser.add_argument("--out", default="bench/out", help="folder for the JSON report and logs")
    parser.add_argument("--workdir", help="keep the two course folders here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.submissions < 1:
        parser.error(f"Expected --submissions to be a positive integer. Received: {args.submissions}")
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.workdir:
        workdir = pathlib.Path(args.workdir).resolve()
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        report = run_benchmark(args.submissions, out, workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="nndl-bench-") as scratch:
            report = run_benchmark(args.submissions, out, pathlib.Path(scratch))
    (out / "grading_overhead.json").write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    print(f"\nReport: {out / 'grading_overhead.json'}; logs beside it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
