"""Plain nbgrader assignments: graded by their own grade cells' tests, run in the sandbox.

An assignment with no hidden graders (no ``autograder/<assignment>/test_*.py``)
is graded as stock nbgrader grades it: its grade cells' own asserts run in the
notebook, and nbgrader's `SaveAutoGrades` scores each grade cell from its
outputs (an error earns 0; `nbgrader.utils.determine_grade`). What changes is
where the notebook runs: in the kit's sandbox, with the kit's limits
(`nndl.kernel.run.NotebookRun`), so a notebook that hangs, forks or fills
the disk is contained and the rest of the batch goes on.

`grade_plain` runs the notebook and returns a `Verdict` with no test outcomes,
only the executed cells' outputs, so verdicts are stored and replayed as for
any assignment. Its outputs are those stock nbgrader's ``Execute`` leaves
(errors kept, a timed-out cell given its ``CellTimeoutError``), and more where
the sandbox stopped something: a cell stopped by a limit, and a cell that never
ran because of one, get an error output, so they score 0 as a failing test
would, never full marks for having no output. `record_plain` puts a verdict's
outputs into the notebook for nbgrader's later steps.

The tests run inside the student's kernel, where the student's own code can
defeat them (redefine what they call, patch ``assert``-free checks, print a
fake result): `notice` says so, once per batch, and how to add hidden graders.
"""

import logging
import os
import pathlib

import nbformat
from nbformat.v4 import new_output

from nndl import scratch
from nndl.contracts import Verdict
from nndl.kernel import sandbox
from nndl.kernel.run import NotebookRun
from nndl.record import caps

log = logging.getLogger(__name__)

#: The error name of an output the kit adds where its sandbox stopped or skipped a cell.
LIMIT_ERROR = "SandboxLimit"
#: nbclient leaves cells with this tag unrun (as stock nbgrader does); see `_mark_unrun`.
SKIP_TAG = "skip-execution"

_noticed = set()


def notice(assignment, graders_root):
    """The sentence said once per batch of a plain assignment: where its tests run, and what to do."""
    folder = pathlib.Path(graders_root) / str(assignment)
    readme = pathlib.Path(graders_root) / "README.md"
    how = f"see {readme}" if readme.is_file() else "see the kit's README, 'How a grader file reads'"
    return (f"{assignment} has no hidden graders ({folder}/test_*.py), so it is graded as nbgrader grades it: "
            "the tests in its grade cells run inside the student's kernel (sandboxed), where the student's "
            "own code can defeat them (by redefining what the tests call, or faking their output). "
            f"To grade it with hidden graders that run outside the kernel, add {folder}/test_*.py ({how}).")


def notice_once(logger, assignment, graders_root):
    """Log `notice` as a warning, the first time this process grades `assignment` plainly."""
    key = (str(assignment), str(graders_root))
    if key not in _noticed:
        _noticed.add(key)
        logger.warning(notice(assignment, graders_root))


class PlainRun(NotebookRun):
    """A `NotebookRun` that leaves its cells' outputs as nbgrader's ``Execute`` would.

    Like nbgrader's ``Execute.on_cell_executed``, a cell whose reply is an
    error that no output shows (a timeout's ``CellTimeoutError``, or an error
    whose output was dropped by the output cap) gets that error as an output.
    It remembers which cells ran to the end (`completed`).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.completed = set()
        self.output_problems = []  # the CellProblems that only say output was dropped

    def _start_kernel(self):
        super()._start_kernel()
        self.client.on_cell_executed = self._cell_executed

    def _output_dropped(self, index):
        before = len(self.problems)
        super()._output_dropped(index)
        self.output_problems.extend(self.problems[before:])

    def _cell_executed(self, cell, cell_index, execute_reply, **_):
        if self.client is None or self.client.transient:
            return  # a probe of the kernel, not a cell of the notebook
        self.completed.add(cell_index)
        content = (execute_reply or {}).get("content", {})
        if content.get("status") != "error":
            return
        ename = caps.cap_text(content.get("ename", "Error"), 200, 1)
        if any(o.get("output_type") == "error" and o.get("ename") == ename for o in cell.outputs):
            return
        # Capped as a grader's message is: the reply is the student's, and bypasses the output caps.
        lines = [str(line)[:caps.MESSAGE_CHARS] for line in list(content.get("traceback") or [])[:caps.MESSAGE_LINES]]
        traceback = caps.cap_text("\n".join(lines)) if lines else \
            "ERROR: An error occurred while showtraceback was disabled"
        cell.outputs.append(new_output("error", ename=ename, evalue=caps.cap_text(content.get("evalue", "")),
                                       traceback=[traceback]))


def grade_plain(nb, settings, files, graders=None, *, logger=None, seed=None):
    """Run one sanitised notebook of a plain assignment in the sandbox; its outputs are the verdict.

    Args:
        nb: the notebook (an nbformat node, or its JSON text); a node gets the run's outputs.
        settings: the assignment's `nndl.settings.GradingSettings` (``plain`` is true).
        files: relative path -> bytes, put beside the notebook in its scratch folder.
        graders: unused (a plain assignment has none); here so that this and
            `nndl.grade.grade_notebook` are called alike.
        seed: the run's seed (``nndl_datasets.seed()`` in the notebook); drawn at random when None.

    Returns:
        A `nndl.contracts.Verdict` with no outcomes: the cells' outputs, the run's problems and figures.

    Raises:
        nndl.kernel.sandbox.SandboxUnavailable: no sandbox, and grading without it not allowed.
    """
    from nndl.grade import run_environment, write_files

    logger = logger or log
    if isinstance(nb, str):
        nb = nbformat.reads(nb, as_version=4)
    mode = sandbox.sandbox_mode(settings.allow_unsandboxed)
    if mode != "bubblewrap":
        logger.warning("GRADING WITHOUT THE SANDBOX: %s", sandbox.bubblewrap_problem())
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little") >> 1
    for cell in nb.cells:  # as nbgrader's ClearOutput leaves them: what has no count did not run here
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    with scratch.TemporaryDirectory("nndl-job-") as workdir:
        files_dir = pathlib.Path(workdir, "files")
        files_dir.mkdir()
        write_files(files_dir, files)
        with PlainRun(nb, settings.limits, scratch_files=files_dir, log=logger, gpu=settings.resources.gpu,
                      sandbox_mode=mode, data_dir=settings.sandbox_data_dir or None,
                      extra_env=run_environment(settings, seed)) as run:
            problems = run.execute()
            stats = {"execution_seconds": run.execution_seconds, "restarts": run.restarts,
                     "peak_memory_mb": run.peak_memory_bytes / 2**20, "seed": seed}
            completed, output_problems = set(run.completed), list(run.output_problems)
    limit_problems = [p for p in problems if not any(p is q for q in output_problems)]
    _mark_limits(nb, limit_problems)
    _mark_unrun(nb, completed, limit_problems)
    outputs = {str(i): cell.outputs for i, cell in enumerate(nb.cells) if cell.cell_type == "code"}
    # Stock nbgrader's autograded notebooks keep each cell's execution count; so do replayed verdicts.
    stats["execution_counts"] = {str(i): cell.execution_count for i, cell in enumerate(nb.cells)
                                 if cell.cell_type == "code" and isinstance(cell.execution_count, int)}
    return caps.cap_verdict(Verdict(outcomes=[], problems=problems, outputs=outputs, stats=stats))


def _limit_error(message):
    message = caps.cap_text(message)
    return new_output("error", ename=LIMIT_ERROR, evalue=message, traceback=[f"{LIMIT_ERROR}: {message}"])


def _mark_limits(nb, problems):
    """An error output under each cell the sandbox stopped, skipped or could not run again."""
    for problem in problems:
        if 0 <= problem.index < len(nb.cells) and nb.cells[problem.index].cell_type == "code":
            nb.cells[problem.index].outputs.append(_limit_error(problem.message))


def _mark_unrun(nb, completed, problems):
    """An error output under each cell that never ran because the run stopped early.

    Stock nbgrader gives a grade cell with no output full marks; a cell left
    unrun because the notebook's time ran out, or its kernel was lost too
    often, must not earn them. Cells the kernel skips by design (empty, or
    tagged ``skip-execution`` outside grade cells) are left as they are.
    """
    from nbgrader import utils

    stopped = [p.message for p in problems if "not run" in p.message]
    why = stopped[-1] if stopped else "the notebook stopped before it"
    with_problem = {p.index for p in problems}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or index in completed or index in with_problem or not cell.source.strip():
            continue
        graded = utils.is_grade(cell) and not utils.is_solution(cell)
        if SKIP_TAG in cell.metadata.get("tags", []) and not graded:
            continue
        cell.outputs.append(_limit_error(f"Cell {index + 1} was not run: {why}"))


def record_plain(nb, verdict):
    """Give the notebook the verdict's outputs and execution counts, for nbgrader's `SaveAutoGrades` to score from.

    What intake said of the submission (``metadata.nndl.intake``) is added
    as printed text under each grade cell that lost its points (printed text
    changes no score).
    """
    from nbgrader import utils

    from nndl.grade import apply_outputs
    from nndl.record.cells import autograded_cells, intake_notices

    apply_outputs(nb, verdict)
    for index, count in dict(verdict.stats.get("execution_counts") or {}).items():
        if str(index).isdigit() and int(index) < len(nb.cells) and nb.cells[int(index)].cell_type == "code":
            nb.cells[int(index)].execution_count = int(count)
    notices = intake_notices(nb)
    if not notices:
        return
    budget = caps.Budget()
    text = "\n".join(f"[autograder] Note: {caps.cap_message(n, budget)}" for n in notices) + "\n"
    for cell in autograded_cells(nb):
        if utils.determine_grade(cell)[0] == 0:
            cell.outputs.append(new_output("stream", name="stdout", text=text))
