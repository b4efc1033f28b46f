"""One notebook, graded: steps 2 to 4 of DESIGN.md in one plain function.

`grade_notebook` runs a sanitised notebook in the sandbox (`nndl.kernel`),
runs the hidden graders against the live kernel in their own process
(`nndl.score`), and returns the `Verdict`. It knows nothing of nbgrader's
gradebook or of batches: the nbgrader step (`nndl.record.step`) and the batch
worker (`nndl.batch.worker`) are thin adapters over it.
"""

import logging
import os
import pathlib
import re
import shutil
import time

import nbformat

import nndl_datasets
from nndl import scratch
from nndl.contracts import Verdict
from nndl.kernel import sandbox
from nndl.kernel.run import NotebookRun
from nndl.record.caps import cap_verdict
from nndl.score import GRADING_MODE_ENV, SUBMITTED_WEIGHTS_ENV
from nndl.score import SEED_ENV as GRADER_SEED_ENV
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


#: Set where grading runs, every notebook runs with this seed instead of one drawn per run: to
#: replay a verdict's ``seed``, or to make a test batch reproducible.
RUN_SEED_ENV = "NNDL_RUN_SEED"

#: A model file a grader may name: a plain file name ending in .keras.
MODEL_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.keras")


class SubmissionServices:
    """Graders' requests about the files handed in, rather than the live kernel.

    ``submitted_model``: a ``.keras`` file handed in beside the notebook, for
    the graders to check and load. ``retrain``: its architecture trained
    afresh, by the kit's own code, in a new sandboxed kernel under the same
    limits, profile and seed (`nndl.kernel.retrain`); no student code runs
    there, and the training split is all it has.
    """

    def __init__(self, files_dir, exports_dir, settings, seed, *, sandbox_mode, logger):
        self.files_dir = pathlib.Path(files_dir)
        self.exports_dir = pathlib.Path(exports_dir)
        self.settings = settings
        self.seed = seed
        self.sandbox_mode = sandbox_mode
        self.log = logger
        self.retrained = []  # (file name, seconds) of each retraining, for the verdict's stats

    def answer(self, op, name, kwargs):
        if not isinstance(name, str) or not MODEL_FILE_NAME.fullmatch(name):
            return {"ok": False, "error": f"{name!r} is not a model file name (name.keras)"}
        path = self.files_dir / name
        if not path.is_file() or path.is_symlink():
            return {"ok": False, "error": f"no model file {name!r} was handed in beside the notebook"}
        if op == "submitted_model":
            return {"ok": True, "path": self._export(path, name)}
        return self._retrain(path, name, kwargs or {})

    def _export(self, path, name):
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        target = self.exports_dir / f"{len(list(self.exports_dir.iterdir()))}-{name}"
        shutil.copyfile(path, target)
        return str(target)

    def _retrain(self, path, name, given):
        from nndl.bridge.models import ModelRejected, check_model_file
        from nndl.kernel import retrain

        try:
            recipe = retrain.recipe(**given)
        except retrain.RecipeError as error:
            raise ValueError(f"the grader's retraining recipe: {error}") from None
        try:
            check_model_file(path)  # refused here, before any kernel loads it
        except ModelRejected as error:
            return {"ok": False, "error": f"the model file {name} was refused: {error}"}
        started = time.monotonic()
        with scratch.TemporaryDirectory("nndl-retrain-") as folder:
            shutil.copyfile(path, pathlib.Path(folder, name))
            nb = retrain.retraining_notebook(name, recipe)
            with NotebookRun(nb, self.settings.limits, scratch_files=folder, log=self.log,
                             gpu=self.settings.resources.gpu, sandbox_mode=self.sandbox_mode,
                             data_dir=self.settings.sandbox_data_dir or None,
                             extra_env=run_environment(self.settings, self.seed)) as run:
                problems = run.execute()
                errors = [f"{o.get('ename')}: {o.get('evalue')}" for o in nb.cells[0].get("outputs", [])
                          if o.get("output_type") == "error"]
                if problems or errors:
                    why = "; ".join([p.message for p in problems] + errors)
                    return {"ok": False, "error": f"retraining the architecture of {name} failed: {why}"}
                answer = run.request("model", "retrained")
                if not answer["ok"]:
                    return {"ok": False, "error": f"retraining the architecture of {name}: {answer['error']}"}
                exported = self._export(answer["path"], f"retrained-{name}")
        self.retrained.append((name, round(time.monotonic() - started, 3)))
        return {"ok": True, "path": exported}


def run_environment(settings, seed):
    """What the notebook's kernel is told of the run: profile, seed, Keras backend, its GPU share."""
    env = {nndl_datasets.PROFILE_ENV: settings.profile, nndl_datasets.SEED_ENV: str(int(seed)),
           "KERAS_BACKEND": settings.resources.keras_backend}
    if settings.resources.gpu:
        device = (os.environ.get("CUDA_VISIBLE_DEVICES") or "").split(",")[0]
        env.update(sandbox.gpu_share_environment(settings.resources.gpu_slots, device))
    return env


def grade_notebook(nb, settings, files, graders, *, logger=None, seed=None):
    """Run one sanitised notebook in the sandbox and score it with the hidden graders.

    Args:
        nb: the notebook (an nbformat node, or its JSON text); a node gets the run's outputs.
        settings: the assignment's `nndl.settings.GradingSettings`.
        files: relative path -> bytes, put beside the notebook in its scratch folder.
        graders: the assignment's grader folder as data (relative path -> bytes). The
            grader process imports them, helpers such as ``reference.py`` included,
            from a private copy of exactly these bytes.
        seed: the run's seed, which the notebook reads from `nndl_datasets.seed()`;
            when None, `RUN_SEED_ENV`'s value or else drawn at random (kept in the verdict's stats).

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
    if seed is None:
        fixed = os.environ.get(RUN_SEED_ENV, "")
        seed = int(fixed) if fixed.isdigit() else int.from_bytes(os.urandom(4), "little") >> 1
    # The graders' own random inputs (their `rng` fixture): drawn here, kept in the verdict's stats.
    grader_seed = int.from_bytes(os.urandom(8), "little") >> 1
    with scratch.TemporaryDirectory("nndl-job-") as workdir:
        grader_dir = pathlib.Path(workdir, "graders", settings.assignment)
        write_files(grader_dir, graders)
        files_dir = pathlib.Path(workdir, "files")
        files_dir.mkdir()
        write_files(files_dir, files)
        # The grader process starts now and imports its graders while the notebook runs.
        grader_process = start_graders(grader_dir, limits=limits,
                                       env=dict(os.environ, **{nndl_datasets.PROFILE_ENV: settings.profile,
                                                               "KERAS_BACKEND": settings.resources.keras_backend,
                                                               GRADER_SEED_ENV: str(grader_seed),
                                                               GRADING_MODE_ENV: settings.grading.mode,
                                                               SUBMITTED_WEIGHTS_ENV: "1" if
                                                               settings.grading.grade_submitted_weights else "0"}))
        try:
            with NotebookRun(nb, limits, scratch_files=files_dir, log=logger, gpu=settings.resources.gpu,
                             sandbox_mode=mode, data_dir=settings.sandbox_data_dir or None,
                             extra_env=run_environment(settings, seed)) as run:
                problems = run.execute()
                services = SubmissionServices(files_dir, pathlib.Path(workdir, "models"), settings, seed,
                                              sandbox_mode=mode, logger=logger)
                report = grader_process.serve(run, timeout=limits.grader_timeout, services=services)
                stats = {"execution_seconds": run.execution_seconds, "kernel_start_seconds": run.kernel_start_seconds,
                         "grader_start_seconds": grader_process.start_seconds, "restarts": run.restarts,
                         "peak_memory_mb": run.peak_memory_bytes / 2**20, "seed": seed,
                         "grader_seed": grader_seed}
                if services.retrained:
                    stats["retrained"] = services.retrained
        finally:
            grader_process.close()
    outputs = {str(i): cell.outputs for i, cell in enumerate(nb.cells) if cell.cell_type == "code"}
    # Graders quote student values in their messages: capped before the verdict is stored or shown.
    return cap_verdict(Verdict(outcomes=report.outcomes, problems=problems, outputs=outputs, stats=stats,
                               log=report.log[-5000:], measurements=report.measurements))


def apply_outputs(nb, verdict):
    """Give the notebook's code cells the outputs its run produced."""
    for index, outputs in verdict.outputs.items():
        cell = nb.cells[int(index)]
        if cell.cell_type == "code":
            cell.outputs = [nbformat.from_dict(o) for o in outputs]
