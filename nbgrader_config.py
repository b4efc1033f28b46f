"""The kit's own course, as nbgrader sees it. `nbgrader ...` and `nndl ...` both read it.

The kit's settings (its step in nbgrader's autograde pipeline, reproducible
builds) come from the package (`nndl.nbgrader_settings`); what follows them is
this course's own.
"""

from nndl.nbgrader_settings import apply_kit_settings

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file
apply_kit_settings(c)

c.CourseDirectory.course_id = "nndl"
c.CourseDirectory.db_assignments = [{"name": name} for name in (
    "a01_perceptrons_xor", "a02_mlp_shapes", "a03_initialization", "a04_batch_norm", "a05_optimizers",
    "a06_cifar10_deep")]

# Limits (defaults in nndl/settings.py, Limits) can be set here for the whole course, e.g.
# c.GradeInSandbox.cell_timeout = 120, and per assignment in autograder/<assignment>/assignment.toml.
