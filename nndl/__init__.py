"""The NNDL course kit's grading engine, one folder or module per step of DESIGN.md.

    intake.py         1. read a submitted notebook without running it; repair or replace what is broken
    kernel/           2. run it in a fresh kernel inside the bubblewrap sandbox, with limits
    bridge/           3. what leaves the kernel: data (JSON, .npy) and admitted .keras models
    score/            4. the hidden graders, in their own process that never imports student code
    record/           5. verdicts into nbgrader's grade cells: the nbgrader pipeline step, the gradebook;
                         plain.py: assignments without hidden graders, their own tests run in the sandbox
    grade.py          steps 2-4 for one notebook: grade_notebook(nb, settings, files, graders) -> Verdict
    batch/            a class at a time: jobs, workers and pools (local or Ray), the coordinator, the report
    contracts.py      the data crossing between steps: GradingJob, Verdict, TestOutcome (imports nothing of the kit)
    settings.py       GradingSettings: limits and resources, defaults in one place, typos refused
    course.py         the course directory and nbgrader's API over it
    store.py          what a course keeps between runs: verdicts, submissions not graded
    scratch.py        temporary folders, one root per process, swept when the process is gone
    build.py          release/ and solutions/ from source/
    init.py           `nndl init`: the kit in a new or existing nbgrader course
    cli/              the `nndl` command, the demo and its sample submissions

The hidden graders are course content (``autograder/<assignment>/`` of a
course), never part of this package: they reach workers as data.
"""
