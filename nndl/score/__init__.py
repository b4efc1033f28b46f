"""Step 4 of DESIGN.md: the hidden graders, run where student code never is.

`nndl.score.runner` starts pytest in a separate, isolated process over
an assignment's grader folder and serves its requests to the student's kernel;
`nndl.score.plugin` is the pytest side of that conversation (the
`student` fixture and the `grade_cell` marker). This module holds only what
grader files import.
"""


class StudentError(AssertionError):
    """The student's code could not give an answer to check.

    Raised by the `student` fixture when a name is undefined, the student's
    function raised, its result is not data, or the kernel died. The message
    is written for the student and becomes their feedback as it is.
    """


#: The grading run's seed for the graders' random inputs (the `rng` fixture): drawn per run by
#: `nndl.grade` and kept in the verdict's stats (``grader_seed``), so a run's inputs can be drawn again.
SEED_ENV = "NNDL_GRADER_SEED"
#: The assignment's grading mode and whether handed-in weights are graded (the `grading` fixture).
GRADING_MODE_ENV = "NNDL_GRADING_MODE"
SUBMITTED_WEIGHTS_ENV = "NNDL_GRADE_SUBMITTED_WEIGHTS"
