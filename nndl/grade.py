"""One notebook, graded: steps 2 to 4 of DESIGN.md in one plain function.

`grade_notebook` runs a sanitised notebook in the sandbox (`nndl.kernel`),
runs the hidden graders against the live kernel in their own process
(`nndl.score`), and returns the `Verdict`. It knows nothing of nbgrader's
gradebook or of batches: the nbgrader step (`nndl.record.step`) and the batch
worker (`nndl.batch.worker`) are thin adapters over it.
"""

import logging
import pathlib

import nbformat

from nndl import scratch
from nndl.contracts import Verdict
from nndl.kernel import sandbox
from nndl.kernel.run import NotebookRun
from nndl.record.caps import cap_verdict
from nndl.score.runner import start_graders

log = logging.getLogger(__name__)


def write_files(folder, files):
    """Write `files` (relative path -> bytes) under `folder`, refusing paths that leave it."""
    folder = pathlib.Path(folder).resolve()
    for relative, content in files.items():
        target = (folder / relative).resolve()
        if folder not in target.parents:
            raise ValueError(f"refusing to write {relative!r} outside {folder}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def grade_notebook(nb, settings, files, graders, *, logger=None):
    """Run one sanitised notebook in the sandbox and score it with the hidden graders.

    Args:
        nb: the notebook (an nbformat node, or its JSON text); a node gets the run's outputs.
        settings: the assignment's `nndl.settings.GradingSettings`.
        files: relative path -> bytes, put beside the notebook in its scratch folder.
        graders: the assignment's grader folder as data (relative path -> bytes). The
            grader process imports them, helpers such as ``reference.py`` included,
            from a private copy of exactly these bytes.

    Returns:
        A `nndl.contracts.Verdict`.

    Raises:
        nndl.kernel.sandbox.SandboxUnavailable: no sandbox, and grading without it not allowed.
        nndl.score.runner.GraderSetupError: the graders themselves could not run.
    """
    logger = logger or log
    if isinstance(nb, str):
        nb = nbformat.reads(nb, as_version=4)
    mode = sandbox.sandbox_mode(settings.allow_unsandboxed)
    if mode != "bubblewrap":
        logger.warning("GRADING WITHOUT THE SANDBOX: %s", sandbox.bubblewrap_problem())
    limits = settings.limits
    with scratch.TemporaryDirectory("nndl-job-") as workdir:
        grader_dir = pathlib.Path(workdir, "graders", settings.assignment)
        write_files(grader_dir, graders)
        files_dir = pathlib.Path(workdir, "files")
        files_dir.mkdir()
        write_files(files_dir, files)
        # The grader process starts now and imports its graders while the notebook runs.
        grader_process = start_graders(grader_dir, limits=limits)
        try:
            with NotebookRun(nb, limits, scratch_files=files_dir, log=logger, gpu=settings.resources.gpu,
                             sandbox_mode=mode, data_dir=settings.sandbox_data_dir or None) as run:
                problems = run.execute()
                report = grader_process.serve(run, timeout=limits.grader_timeout)
                stats = {"execution_seconds": run.execution_seconds, "restarts": run.restarts,
                         "peak_memory_mb": run.peak_memory_bytes / 2**20}
        finally:
            grader_process.close()
    outputs = {str(i): cell.outputs for i, cell in enumerate(nb.cells) if cell.cell_type == "code"}
    # Graders quote student values in their messages: capped before the verdict is stored or shown.
    return cap_verdict(Verdict(outcomes=report.outcomes, problems=problems, outputs=outputs, stats=stats,
                               log=report.log[-5000:]))


def apply_outputs(nb, verdict):
    """Give the notebook's code cells the outputs its run produced."""
    for index, outputs in verdict.outputs.items():
        cell = nb.cells[int(index)]
        if cell.cell_type == "code":
            cell.outputs = [nbformat.from_dict(o) for o in outputs]
