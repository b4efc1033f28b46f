"""Step 5 of DESIGN.md: verdicts recorded where nbgrader and the instructor see them.

`step`: `GradeInSandbox`, the kit's step in nbgrader's autograde pipeline.
`cells`: a verdict written into the grade cells' outputs, for nbgrader to score.
`caps`: every message capped (per message, per grade cell, per submission) before it is written.
`gradebook`: grades read back out of nbgrader's gradebook.
"""
