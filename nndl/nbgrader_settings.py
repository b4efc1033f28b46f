"""What the kit sets in nbgrader's configuration: its step in the autograde pipeline, and reproducible builds.

A course's ``nbgrader_config.py`` calls `apply_kit_settings(c)` and then says
what is its own (course id, folders, gradebook). The settings ship with the
package, so a course made by an installed kit (`nndl.course.write_course_config`)
never depends on a checkout's files. Without the kit's step in
``Autograde.autograde_preprocessors``, nbgrader would run the notebook in its
own kernel, outside the sandbox: `check_kit_pipeline` refuses that.
"""


def apply_kit_settings(c):
    """Set the kit's nbgrader settings on config `c` (a traitlets Config)."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties, CheckCellMetadata, ClearMarkScheme, ClearOutput, IgnorePattern,
        IncludeHeaderFooter, LimitOutput, LockCells, SaveAutoGrades,
    )

    from nndl.record.step import GradeInSandbox

    c.CourseDirectory.solution_directory = "solutions"
    # Released notebooks carry no outputs and no solution; solutions keep no outputs either,
    # so `nndl build` is reproducible and a test can compare it with what is committed.
    c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    c.ClearOutput.enabled = True
    # nbgrader executes the solutions by default, which stamps run times into them; the kit's
    # tests run them instead, so solutions/ is rebuilt byte for byte.
    c.GenerateSolution.preprocessors = [IncludeHeaderFooter, LockCells, ClearOutput, ClearMarkScheme]
    # A deleted grade cell comes back from the master, so its points are still recorded.
    c.OverwriteCells.add_missing_cells = True
    # The kit's step replaces nbgrader's in-kernel Execute: the notebook runs sandboxed, and the
    # hidden graders (autograder/<assignment>/test_*.py) score it from a separate process.
    c.Autograde.autograde_preprocessors = [
        GradeInSandbox,
        IgnorePattern,
        ClearMetadataPreprocessor,
        LimitOutput,
        SaveAutoGrades,
        AssignLatePenalties,
        CheckCellMetadata,
    ]


def check_kit_pipeline(config, config_file):
    """Refuse a course whose nbgrader autograde pipeline lacks the kit's step, or still executes in-kernel.

    Raises:
        ValueError: saying what to add to `config_file`.
    """
    from nbgrader.preprocessors import Execute

    from nndl.record.step import GradeInSandbox

    steps = config.get("Autograde", {}).get("autograde_preprocessors", [])
    names = [getattr(s, "__name__", str(s)) for s in steps]
    if not any(s is GradeInSandbox or n == GradeInSandbox.__name__ for s, n in zip(steps, names)) or any(
            s is Execute or (isinstance(s, type) and issubclass(s, Execute)) for s in steps):
        raise ValueError(
            f"{config_file} does not put the kit's step in nbgrader's autograde pipeline "
            f"(Autograde.autograde_preprocessors is {names or 'nbgrader default, with in-kernel Execute'}), "
            "so student code would run outside the sandbox. Add to it:\n"
            "    from nndl.nbgrader_settings import apply_kit_settings\n"
            "    apply_kit_settings(c)")
