"""The pytest plugin loaded into the hidden-grader process.

It gives grader files the `student` fixture and the `grade_cell` marker, and
sends each test's outcome back over the pipe it was given (never through a
file a kernel could reach); its state lives in pytest's `config.stash`. The process
it runs in never imports or executes student code: the fixture's requests go
to the coordinator over a pipe, and answers come back as data.
"""

import json
import os
import time

import pytest

from nndl.bridge import codec as bridge
from nndl.score import GRADING_MODE_ENV, SEED_ENV, SUBMITTED_WEIGHTS_ENV, StudentError

BRIDGE_ENV = "NNDL_GRADER_BRIDGE_FDS"
#: The `Student` talking to the coordinator, or None outside the kit's runner.
STUDENT = pytest.StashKey()
#: The tests collected, and the outcomes of those that ran.
COLLECTED = pytest.StashKey()
RESULTS = pytest.StashKey()


class Student:
    """The student's notebook as graders see it: answers, never code.

    Every method raises `StudentError` with a message for the student when no
    answer can be had.
    """

    def __init__(self, reader, writer):
        self._reader = reader
        self._writer = writer

    def _ask(self, op, name, args=(), kwargs=None, timeout=None):
        enc_args, enc_kwargs = bridge.encode_arguments(args, kwargs or {})
        self._writer.write(json.dumps({"op": op, "name": name, "args": enc_args,
                                       "kwargs": enc_kwargs, "timeout": timeout}) + "\n")
        self._writer.flush()
        line = self._reader.readline()
        if not line:
            raise RuntimeError("the grading coordinator went away")
        # The coordinator passes on what the kernel sent, checked; it is read
        # under the same limits, so an answer can only ever fail as this call.
        try:
            answer = bridge.loads(line)
        except bridge.BridgeDecodeError as error:
            raise StudentError(f"the answer for '{name}' could not be read: {error}") from None
        if not answer["ok"]:
            raise StudentError(answer["error"])
        return answer

    def _decode(self, name, answer):
        try:
            return bridge.decode(answer["value"])
        except bridge.BridgeDecodeError as error:
            raise StudentError(f"the answer for '{name}' could not be read: {error}") from None

    def value(self, name):
        """The value of the notebook's global `name`, as data."""
        return self._decode(name, self._ask("value", name))

    def call(self, name, *args, **kwargs):
        """Call the notebook's function `name` with these (data) arguments.

        Pass ``timeout=`` seconds through `call_with_timeout` when a call may
        legitimately take long (training).
        """
        return self._decode(name, self._ask("call", name, args, kwargs))

    def call_with_timeout(self, timeout, name, *args, **kwargs):
        """`call`, with its own time limit in seconds."""
        return self._decode(name, self._ask("call", name, args, kwargs, timeout=timeout))

    def model(self, name):
        """The notebook's Keras model `name`, checked and loaded safely."""
        return self._load(name, self._ask("model", name)["path"])

    def submitted_model(self, filename):
        """The ``.keras`` file `filename` handed in beside the notebook, checked and loaded safely.

        Its weights are the student's, trained wherever they liked: grade its
        architecture from it, and its accuracy from `retrained_model`.
        """
        return self._load(filename, self._ask("submitted_model", filename)["path"])

    def retrained_model(self, filename, **recipe):
        """The architecture of the handed-in `filename`, trained afresh in a sandbox of its own.

        Fresh weights, the training split only, the grading profile's seed;
        `recipe` overrides `nndl.kernel.retrain.RECIPE_DEFAULTS` (dataset,
        train, valid, epochs, batch_size, optimizer, learning_rate, patience).
        """
        return self._load(filename, self._ask("retrain", filename, kwargs=recipe)["path"])

    def _load(self, name, path):
        from nndl.bridge.models import ModelRejected, load_model_safely

        try:
            return load_model_safely(path)
        except ModelRejected as error:
            raise StudentError(f"'{name}': {error}") from None


@pytest.fixture(scope="session")
def grading():
    """How this assignment is graded: ``grading.mode`` ("retrain" or "submitted"),
    ``grading.grade_submitted_weights`` and ``grading.profile``."""
    import types

    return types.SimpleNamespace(mode=os.environ.get(GRADING_MODE_ENV) or "retrain",
                                 grade_submitted_weights=os.environ.get(SUBMITTED_WEIGHTS_ENV) == "1",
                                 profile=os.environ.get("NNDL_PROFILE") or "full")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "grade_cell(grade_id, weight=1): the nbgrader grade cell this test scores")
    config.stash[RESULTS] = []
    config.stash[COLLECTED] = []
    config.stash[STUDENT] = None
    fds = os.environ.get(BRIDGE_ENV)
    if fds:
        read_fd, write_fd = (int(fd) for fd in fds.split(","))
        config.stash[STUDENT] = Student(os.fdopen(read_fd, "r"), os.fdopen(write_fd, "w"))


@pytest.fixture(scope="session")
def student(pytestconfig):
    """The student's notebook, reachable only through the coordinator."""
    if pytestconfig.stash[STUDENT] is None:
        raise RuntimeError("graders must be run by the kit's grading runner (nndl.score.runner)")
    return pytestconfig.stash[STUDENT]


#: The run's seed, drawn once per grader process.
RUN_SEED = pytest.StashKey()


@pytest.fixture
def rng(request):
    """A numpy Generator for inputs chosen at grading time: a fresh seed each grading run.

    Graders draw the arrays, shapes and sizes they pass to the student's
    functions from it, so that outputs seen in one run (or printed by the
    visible checks) are worth nothing in the next. Each test gets its own
    stream, derived from the run's seed and the test's name.
    """
    import zlib

    import numpy as np

    config = request.config
    if RUN_SEED not in config.stash:
        fixed = os.environ.get(SEED_ENV, "")
        config.stash[RUN_SEED] = int(fixed) if fixed.isdigit() else int.from_bytes(os.urandom(8), "little")
    return np.random.default_rng([config.stash[RUN_SEED], zlib.crc32(request.node.nodeid.encode())])


@pytest.fixture(scope="session")
def calibration(pytestconfig):
    """Calibrated thresholds of the grading profile (`nndl.calibration.Thresholds`).

    ``calibration.check("test_accuracy", accuracy, "accuracy on the hidden test split",
    data="fashion_mnist")`` passes when the value reaches the threshold that
    `nndl calibrate` derived from runs of the reference solution.
    """
    from nndl import calibration as calibrated

    return calibrated.Thresholds(
        pytestconfig.rootpath, os.environ.get("NNDL_PROFILE") or "full",
        calibrating=os.environ.get(calibrated.CALIBRATING_ENV) == "1",
        tell=lambda message: _tell(pytestconfig, message))


def _message(excinfo):
    """The failed check's message for the student, capped here already: it may quote a huge answer."""
    from nndl.record.caps import cap_text

    error = excinfo.value
    if isinstance(error, StudentError):
        return cap_text(str(error))
    if isinstance(error, AssertionError):
        text = cap_text(str(error).strip())
        return text or "a hidden check failed"
    # Not the student's answer being wrong: the grader itself broke on it.
    return cap_text(f"the grader could not check this answer ({type(error).__name__}: {error})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("grade_cell")
    if marker is None:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        item.config.stash[RESULTS].append({
            "test": item.nodeid,
            "grade_cell": marker.args[0],
            "weight": float(marker.kwargs.get("weight", 1)),
            "passed": report.outcome == "passed",
            "message": "" if call.excinfo is None else _message(call.excinfo),
        })
        _tell(item.config, {"op": "result", "result": item.config.stash[RESULTS][-1]})


def pytest_collection_finish(session):
    """Import Keras now if the graders will need it, while the notebook still runs.

    The grader process is started beside the notebook's run and waits for
    it at its first request; Keras's import (seconds of CPU) done here
    overlaps that run instead of following it. Graders that never mention
    Keras (nor ask for a model) do not pay for it.
    """
    if session.config.stash.get(STUDENT, None) is None:
        return
    sources = []
    for path in {item.path for item in session.items}:
        try:
            sources.append(path.read_text())
        except OSError:
            continue
    if any("keras" in text or "student.model" in text for text in sources):
        import keras  # noqa: F401
    _tell(session.config, {"op": "ready", "at": time.time()})


def pytest_collection_modifyitems(config, items):
    config.stash[COLLECTED] = [
        {"test": item.nodeid,
         "grade_cell": item.get_closest_marker("grade_cell").args[0],
         "weight": float(item.get_closest_marker("grade_cell").kwargs.get("weight", 1))}
        for item in items if item.get_closest_marker("grade_cell") is not None
    ]
    _tell(config, {"op": "collected", "collected": config.stash[COLLECTED]})


def _tell(config, message):
    """Send `message` to the coordinator now, so that it survives the process being stopped."""
    student = config.stash.get(STUDENT, None)
    if student is not None:
        student._writer.write(json.dumps(message) + "\n")
        student._writer.flush()


def pytest_unconfigure(config):
    # The verdicts go back over the pipe, never through a file a kernel could reach.
    student = config.stash.get(STUDENT, None)
    if student is not None:
        student._writer.write(json.dumps({"op": "results",
                                          "collected": config.stash[COLLECTED],
                                          "results": config.stash[RESULTS]}) + "\n")
        student._writer.flush()
