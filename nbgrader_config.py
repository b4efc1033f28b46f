"""The course, as nbgrader sees it: names, folders, timeouts and the autograde
pipeline with the kit's step in it. `nbgrader ...` and `nndl ...` both read it.
"""

from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties, CheckCellMetadata, ClearMarkScheme, ClearOutput, IgnorePattern,
    IncludeHeaderFooter, LimitOutput, LockCells, SaveAutoGrades,
)

from nndl.record.step import GradeInSandbox

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "nndl"
c.CourseDirectory.solution_directory = "solutions"
c.CourseDirectory.db_assignments = [{"name": "a01_perceptrons_xor"}]

# Released notebooks carry no outputs and no solution; solutions keep no outputs either,
# so `nndl build` is reproducible and a test can compare it with what is committed.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearOutput.enabled = True
# nbgrader executes the solutions by default, which stamps run times into them; the kit's
# tests run them instead (tests/test_a01_grading.py), so solutions/ is rebuilt byte for byte.
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
# Limits (defaults in nndl/settings.py, Limits) can be set here for the whole course, e.g.
# c.GradeInSandbox.cell_timeout = 120, and per assignment in autograder/<assignment>/assignment.toml.
