"""One submission's grading job, prepared by the coordinator.

`make_job` turns a student's collected submission into a
`nndl.contracts.GradingJob`: its notebooks sanitised as nbgrader's autograde
sanitises them (locked and grade cells restored from the master, deleted
grade cells put back), each with its verdict's key; the files handed in
beside them and the master's; and the assignment's settings. The job is
data only: a worker anywhere can grade it (`nndl.batch.worker`) without a
shared filesystem, and never reads a submission folder or the gradebook.
"""

import pathlib

import nbformat

from nndl import course
from nndl.contracts import GradingJob, NotebookJob, notebook_key


def make_job(api, config, settings, graders_digest, student):
    """One student's submission as a `GradingJob`.

    Reads the gradebook (the master's cells, for nbgrader's checks) and never writes it.

    Args:
        api: the course's nbgrader API.
        config: the course's nbgrader config.
        settings: the assignment's `GradingSettings`.
        graders_digest: `nndl.contracts.graders_digest` of the graders; part of every key.
        student: the student's id.
    """
    from nbgrader.converters import Autograde

    coursedir = api.coursedir
    assignment = settings.assignment
    folder = pathlib.Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
    source = pathlib.Path(coursedir.format_path(coursedir.source_directory, ".", assignment))
    files, notes = course.submission_files(folder, source)
    notebooks = []
    sanitizers = Autograde(coursedir=coursedir, config=config).sanitize_preprocessors
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        resources = {"nbgrader": {"notebook": path.stem, "assignment": assignment,
                                  "student": student, "db_url": coursedir.db_url},
                     "metadata": {"path": str(folder)}}
        for preprocessor in sanitizers:
            nb, resources = preprocessor(config=config).preprocess(nb, resources)
        notebooks.append(NotebookJob(name=path.name, notebook=nbformat.writes(nb),
                                     key=notebook_key(nb, assignment, student, graders_digest,
                                                      settings.profile)))
    return GradingJob(assignment=assignment, student=student, notebooks=notebooks, files=files,
                      settings=settings, notes=notes)
