"""How long would grading a whole class take on K GPU workers? A small model fed by batch_grading.json.

For a GPU-bound assignment (a deep Keras network trained for minutes per
submission), each submission costs its notebook's own run, T seconds, plus
what the kit adds; one coordinator (``nndl autograde``) records every
verdict in the gradebook, one after the other. With N students and K
workers (Ray tasks, one GPU each):

    in a worker, per submission:      T + o      o: the kit's overhead inside the worker
    in the coordinator, per one:      r          r: recording (nbgrader's autograde replaying the verdict)
    once per batch:                   S          S: cluster start + the command's time outside submissions

    As the kit is now, a worker is handed its next job only after the
    coordinator has recorded its last one, so a worker's cycle is
        c = T + o + r
    workers bound      W = ceil(N / K) * c          ceil: whole waves; the last one partly idle (the tail)
    coordinator bound  C = N * r + (T + o)           every recording is serial; the first waits for a first job
    total              S + max(W, C)

    "dispatch first" (a worker handed its next job before the recording):
        S + max(ceil(N / K) * (T + o) + r, C)

o, r and S come from a ``bench/batch_grading.py`` report (``--from``), by
default from its ``workers1`` way, where nothing runs beside a submission:

    o = mean worker seconds per submission - mean bare execution
      = the kit's overhead in worker-seconds - r - (time outside submissions) / N
    r = mean of (report seconds - worker seconds) per submission
    S = the Ray cluster's start (its ``ray`` way) + the way's time outside submissions

Each can be given instead (``--worker-overhead``, ``--record``,
``--startup``); without a report all three must be. Measured on a CPU with
a01, o leaves out what a GPU adds (CUDA's start in the kernel and in the
grader process, bigger models to load): pass a larger ``--worker-overhead``
to see what that does.

Usage::

    .venv/bin/python bench/class_model.py [--from bench/out/batch_grading.json] [--students 300]
        [--notebook-seconds 180] [--workers 1,4,16] [--way workers1]
        [--worker-overhead S] [--record S] [--startup S]
"""

import argparse
import json
import math
import pathlib
import sys

DEFAULT_REPORT = pathlib.Path(__file__).resolve().parent / "out" / "batch_grading.json"
ALSO_NOTEBOOK_SECONDS = (60, 600)


def overheads_from_report(report, way):
    """``(o, r, S, notes)`` from a batch_grading.json report's `way`.

    Raises:
        ValueError: the report lacks the way, its kit report, or the bare execution.
    """
    w = report.get("ways", {}).get(way)
    if not w or "kit" not in w:
        raise ValueError(f"the report has no graded kit way {way!r} (it has: {', '.join(report.get('ways', {}))})")
    kit = w["kit"]
    bare_mean = report.get("derived", {}).get("bare_mean_s")
    if bare_mean is None or kit.get("worker_s_mean") is None or not kit.get("record_s"):
        raise ValueError(f"the report lacks the bare execution or {way}'s worker and record times")
    n = report["submissions"]
    o = kit["worker_s_mean"] - bare_mean
    r = kit["record_s"]["mean"]
    outside = kit["outside_submissions_s"]
    if outside is None:  # a parallel way: its time outside submissions is not separable; take the command's start
        outside = kit["command_start_s"]
    ray = report.get("ray_cluster") or {}
    cluster = ray.get("start_s") or 0.0
    notes = [f"from {way} of a {n}-submission run ({report.get('finished', '?')}, "
             f"kit {report.get('kit_version', {}).get('commit', '?')[:7]}):",
             f"  o = {kit['worker_s_mean']:.2f} s in the worker - {bare_mean:.2f} s bare = {o:.2f} s"]
    total = report.get("derived", {}).get("overhead", {}).get(way, {}).get("worker_s_per_submission")
    if total is not None and kit["outside_submissions_s"] is not None:
        notes.append(f"    (the kit's overhead in worker-seconds {total:.2f} s = o + r + outside/N = "
                     f"{o:.2f} + {r:.2f} + {kit['outside_submissions_s'] / n:.2f})")
    notes.append(f"  r = {r:.2f} s mean recording per submission (median {kit['record_s']['median']:.2f} s)")
    notes.append(f"  S = {cluster:.1f} s Ray cluster start + {outside:.1f} s outside submissions = {cluster + outside:.1f} s")
    if any(v.get("foreign_cpu_s", 0) > 0.1 * v.get("wall_s", 1e9) for v in report.get("ways", {}).values()):
        notes.append("  (other processes used much CPU during some ways of that run: the figures are noisy)")
    return o, r, cluster + outside, notes


def model(n, k, t, o, r, s):
    """Seconds to grade `n` submissions on `k` workers; the bounds and the dispatch-first variant."""
    waves = math.ceil(n / k)
    workers_bound = waves * (t + o + r)
    coordinator_bound = n * r + (t + o)
    return {"waves": waves, "workers_bound_s": workers_bound, "coordinator_bound_s": coordinator_bound,
            "total_s": s + max(workers_bound, coordinator_bound),
            "binding": "workers" if workers_bound >= coordinator_bound else "coordinator",
            "dispatch_first_s": s + max(waves * (t + o) + r, coordinator_bound)}


def format_table(n, ks, t, o, r, s):
    """One T's table over the K."""
    lines = [f"T = {t:g} s per notebook ({n} students, o = {o:.2f} s, r = {r:.2f} s, S = {s:.1f} s):",
             f"  {'K':>4}{'waves':>7}{'workers h':>11}{'coord. h':>10}{'total h':>9}{'speed-up':>10}"
             f"{'bound by':>13}{'dispatch first h':>18}"]
    base = None
    for k in ks:
        m = model(n, k, t, o, r, s)
        base = base or m["total_s"]
        lines.append(f"  {k:>4}{m['waves']:>7}{m['workers_bound_s'] / 3600:>11.2f}"
                     f"{m['coordinator_bound_s'] / 3600:>10.2f}{m['total_s'] / 3600:>9.2f}"
                     f"{base / m['total_s']:>9.1f}x{m['binding']:>13}{m['dispatch_first_s'] / 3600:>18.2f}")
    if r > 0:
        lines.append(f"  the coordinator binds from K = {(t + o + r) / r:.0f} workers on (c / r)")
    return lines


def main(argv=None):
    """Entry point: read the overheads, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="report", default=str(DEFAULT_REPORT),
                        help="a bench/batch_grading.py report (default: bench/out/batch_grading.json)")
    parser.add_argument("--way", default="workers1", help="the report's kit way to take o, r, S from (default workers1)")
    parser.add_argument("--students", type=int, default=300, help="N (default 300)")
    parser.add_argument("--notebook-seconds", type=float, default=180,
                        help="T: one notebook's own run in seconds (default 180; 60 and 600 are printed too)")
    parser.add_argument("--workers", default="1,4,16", help="K values, comma-separated (default 1,4,16)")
    parser.add_argument("--worker-overhead", type=float, help="o in seconds (instead of the report's)")
    parser.add_argument("--record", type=float, help="r in seconds (instead of the report's)")
    parser.add_argument("--startup", type=float, help="S in seconds (instead of the report's)")
    args = parser.parse_args(argv)
    try:
        ks = [int(k) for k in args.workers.split(",") if k.strip()]
    except ValueError:
        parser.error(f"Expected --workers as comma-separated integers. Received: {args.workers}")
    if not ks or min(ks) < 1 or args.students < 1 or args.notebook_seconds < 0:
        parser.error("Expected positive --workers and --students, and --notebook-seconds >= 0.")

    o, r, s, notes = args.worker_overhead, args.record, args.startup, []
    path = pathlib.Path(args.report)
    if None in (o, r, s):
        if not path.exists():
            parser.error(f"No report at {path}: run bench/batch_grading.py first, or give all of "
                         "--worker-overhead, --record and --startup.")
        try:
            measured = overheads_from_report(json.loads(path.read_text()), args.way)
        except (ValueError, KeyError, json.JSONDecodeError) as error:
            parser.error(f"Could not take the overheads from {path}: {error}. Give --worker-overhead, "
                         "--record and --startup instead.")
        o = measured[0] if o is None else o
        r = measured[1] if r is None else r
        s = measured[2] if s is None else s
        notes = measured[3]
    given = [name for name, value in (("o", args.worker_overhead), ("r", args.record), ("S", args.startup))
             if value is not None]
    print(f"Grading {args.students} students on K GPU workers:")
    print("  total = S + max(ceil(N/K) * (T + o + r), N * r + (T + o))   [workers bound, coordinator bound]")
    print("  dispatch first = S + max(ceil(N/K) * (T + o) + r, N * r + (T + o))")
    for line in notes:
        print(line)
    if given:
        print(f"  given on the command line: {', '.join(given)}")
    for t in sorted({args.notebook_seconds, *ALSO_NOTEBOOK_SECONDS}):
        print()
        print("\n".join(format_table(args.students, ks, t, o, r, s)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
