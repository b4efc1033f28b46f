"""Step 2 of DESIGN.md: a student's notebook running in a fresh, sandboxed kernel.

`run.NotebookRun` executes the notebook and serves the graders' requests;
`sandbox` builds the bubblewrap sandbox and watches its limits;
`training_data` makes the training-split-only dataset copies a sandbox sees.
"""
