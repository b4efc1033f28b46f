"""A class at a time: `nndl autograde` over every collected submission.

`jobs` (a submission as a GradingJob, prepared by the coordinator), `worker`
(grading a job where it runs), `pool` (local worker processes or a Ray
cluster), `coordinator` (the Batch: one state per submission, the only writer
of the gradebook), `report` (progress, summary, JSON report).
"""
