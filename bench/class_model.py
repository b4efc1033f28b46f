"""How long would grading a whole class take on K GPU workers? A small model fed by batch_grading.json.

For a GPU-bound assignment (a deep Keras network trained for minutes per
submission), each submission costs its notebook's own run, T seconds, plus
what the kit adds; one coordinator (``nndl autograde``) records every
verdict in the gradebook, one after the other. With N students and K
workers (Ray tasks, one GPU each):

    in a worker, per submission:      T + o      o: the kit's overhead inside the worker
    in the coordinator, per one:      p + r      p: intake and preparing its job, before any result
                                                 r: recording (nbgrader's autograde replaying the verdict)
    once per batch:                   S          S: the Ray cluster's start + the command's own start

    A worker takes its next job as soon as it hands back a result (the
    coordinator records it meanwhile), so a worker's cycle is T + o:
    workers bound      W = ceil(N / K) * (T + o) + r    ceil: whole waves, the last one partly idle (the tail)
    coordinator bound  C = N * (p + r) + (T + o)        all serial in the one coordinator
    total              S + max(W, C)

o, p, r and S come from a ``bench/batch_grading.py`` report (``--from``), by
default from its ``workers1`` way, where nothing runs beside a submission:

    o = mean worker seconds per submission - mean bare execution
    r = mean of (report seconds - worker seconds) per submission: recording
    p = mean of the report's prepare_seconds: intake and building the job
    S = the Ray cluster's start (its ``ray`` way) + the command's start (Python, imports)

GPU slots (``[resources] gpu_slots``): k submissions share one GPU, each
slower than alone, together faster. With the measured sharing curve
(throughput of k sharing jobs over one job alone, ``--sharing``; by default
the H200 figures with the CIFAR-10 exercise model: 4 jobs 2.57x, 8 jobs
5.42x, 16 jobs 5.82x), a job on a GPU with k slots takes T * k / X(k), and G
GPUs are K = G * k workers:

    per job at k slots:  T_k = T * k / X(k)
    total                S + max(ceil(N / (G k)) * (T_k + o) + r, N * (p + r) + (T_k + o))

Each can be given
instead (``--worker-overhead``, ``--prepare``, ``--record``, ``--startup``);
without a report all must be. Measured on a CPU with
a01, o leaves out what a GPU adds (CUDA's start in the kernel and in the
grader process, bigger models to load): pass a larger ``--worker-overhead``
to see what that does.

Usage::

    .venv/bin/python bench/class_model.py [--from bench/out/batch_grading.json] [--students 300]
        [--notebook-seconds 180] [--workers 1,4,16] [--way workers1]
        [--worker-overhead S] [--prepare S] [--record S] [--startup S]
"""

import argparse
import json
import math
import pathlib
import sys

DEFAULT_REPORT = pathlib.Path(__file__).resolve().parent / "out" / "batch_grading.json"
#: Jobs sharing one GPU -> throughput over one job alone. Measured on one H200 (16 cores), the
#: CIFAR-10 20x100 exercise model, Keras 3.15 on JAX: alone 2.5 s/epoch; 4 sharing 3.9 s/epoch
#: each; 8 sharing 3.7 s; 16 sharing 6.9 s (the host's cores, one per job, then bind).
MEASURED_SHARING = "1:1,4:2.57,8:5.42,16:5.82"
ALSO_NOTEBOOK_SECONDS = (60, 600)


def overheads_from_report(report, way):
    """``({"o", "p", "r", "S"}, notes)`` from a batch_grading.json report's `way`.

    p needs a serial way; for a parallel `way` it is taken from the report's
    workers1 way when there is one.

    Raises:
        ValueError: the report lacks the way, its kit report, or the bare execution.
    """
    ways = report.get("ways", {})
    w = ways.get(way)
    if not w or "kit" not in w:
        raise ValueError(f"the report has no graded kit way {way!r} (it has: {', '.join(ways)})")
    kit = w["kit"]
    bare_mean = report.get("derived", {}).get("bare_mean_s")
    if bare_mean is None or kit.get("worker_s_mean") is None or not kit.get("record_s"):
        raise ValueError(f"the report lacks the bare execution or {way}'s worker and record times")
    n = report["submissions"]
    o = kit["worker_s_mean"] - bare_mean
    r = kit["record_s"]["mean"]
    notes = [f"from {way} of a {n}-submission run ({report.get('finished', '?')}, "
             f"kit {report.get('kit_version', {}).get('commit', '?')[:7]}):",
             f"  o = {kit['worker_s_mean']:.2f} s in the worker - {bare_mean:.2f} s bare = {o:.2f} s"]
    if kit.get("prepare_s"):
        p = kit["prepare_s"]["mean"]
        notes.append(f"  p = {p:.2f} s mean intake and job preparation per submission "
                     f"(median {kit['prepare_s']['median']:.2f} s)")
    else:
        p = 0.0
        notes.append("  p = 0: the report has no preparation times (an older kit; give --prepare)")
    notes.append(f"  r = {r:.2f} s mean recording per submission (median {kit['record_s']['median']:.2f} s)")
    cluster = (report.get("ray_cluster") or {}).get("start_s") or 0.0
    notes.append(f"  S = {cluster:.1f} s Ray cluster start + {kit['command_start_s']:.1f} s command start "
                 f"= {cluster + kit['command_start_s']:.1f} s")
    noisy = [name for name, v in ways.items() if v.get("foreign_cpu_s", 0) > 0.1 * v.get("wall_s", float("inf"))]
    if noisy:
        notes.append(f"  (other processes used much CPU during {', '.join(noisy)} in that run: the figures are noisy)")
    return {"o": o, "p": p, "r": r, "S": cluster + kit["command_start_s"]}, notes


def model(n, k, t, o, p, r, s):
    """Seconds to grade `n` submissions on `k` workers, and which bound sets it."""
    waves = math.ceil(n / k)
    workers_bound = waves * (t + o) + r
    coordinator_bound = n * (p + r) + (t + o)
    return {"waves": waves, "workers_bound_s": workers_bound, "coordinator_bound_s": coordinator_bound,
            "total_s": s + max(workers_bound, coordinator_bound),
            "binding": "workers" if workers_bound >= coordinator_bound else "coordinator"}


def parse_sharing(text):
    """``{k: X(k)}`` from ``"1:1,4:2.57,..."``; X(1) must be 1."""
    curve = {}
    for item in text.split(","):
        k, x = item.split(":")
        curve[int(k)] = float(x)
    if curve.get(1) != 1.0 or any(k < 1 or x <= 0 for k, x in curve.items()):
        raise ValueError("the sharing curve needs 1:1 and positive slots and throughputs")
    return curve


def shared_gpu_table(n, gpus, curve, t, o, p, r, s):
    """Hours for `n` students on G GPUs with k slots each, for every k of the measured curve."""
    ks = sorted(curve)
    lines = [f"T = {t:g} s per notebook alone on a GPU, {n} students; hours with k slots per GPU "
             f"(per job T_k = T * k / X(k)):",
             "  " + f"{'G GPUs':>7}" + "".join(f"{f'k={k} ({curve[k]:g}x)':>16}" for k in ks)]
    for g in gpus:
        cells = []
        for k in ks:
            m = model(n, g * k, t * k / curve[k], o, p, r, s)
            cells.append(f"{m['total_s'] / 3600:>13.2f} h{'*' if m['binding'] == 'coordinator' else ' '}")
        lines.append("  " + f"{g:>7}" + "".join(f"{c:>16}" for c in cells))
    lines.append("  (* bound by the coordinator)")
    return lines


def format_table(n, ks, t, o, p, r, s):
    """One T's table over the K."""
    lines = [f"T = {t:g} s per notebook ({n} students, o = {o:.2f} s, p = {p:.2f} s, r = {r:.2f} s, S = {s:.1f} s):",
             f"  {'K':>4}{'waves':>7}{'workers h':>11}{'coord. h':>10}{'total h':>9}{'speed-up':>10}"
             f"{'bound by':>13}"]
    base = None
    for k in ks:
        m = model(n, k, t, o, p, r, s)
        base = base or m["total_s"]
        lines.append(f"  {k:>4}{m['waves']:>7}{m['workers_bound_s'] / 3600:>11.2f}"
                     f"{m['coordinator_bound_s'] / 3600:>10.2f}{m['total_s'] / 3600:>9.2f}"
                     f"{base / m['total_s']:>9.1f}x{m['binding']:>13}")
    if p + r > 0:
        lines.append(f"  the coordinator binds from about K = {(t + o) / (p + r):.0f} workers on "
                     "((T + o) / (p + r))")
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
    parser.add_argument("--prepare", type=float, help="p in seconds (instead of the report's)")
    parser.add_argument("--record", type=float, help="r in seconds (instead of the report's)")
    parser.add_argument("--startup", type=float, help="S in seconds (instead of the report's)")
    parser.add_argument("--sharing", default=MEASURED_SHARING,
                        help="jobs sharing one GPU : throughput over one alone, comma-separated "
                             f"(default, measured on an H200: {MEASURED_SHARING})")
    args = parser.parse_args(argv)
    try:
        curve = parse_sharing(args.sharing)
    except ValueError as error:
        parser.error(f"Expected --sharing like {MEASURED_SHARING}: {error}")
    try:
        ks = [int(k) for k in args.workers.split(",") if k.strip()]
    except ValueError:
        parser.error(f"Expected --workers as comma-separated integers. Received: {args.workers}")
    if not ks or min(ks) < 1 or args.students < 1 or args.notebook_seconds < 0:
        parser.error("Expected positive --workers and --students, and --notebook-seconds >= 0.")

    given = {"o": args.worker_overhead, "p": args.prepare, "r": args.record, "S": args.startup}
    figures, notes = dict(given), []
    if None in given.values():
        path = pathlib.Path(args.report)
        if not path.exists():
            parser.error(f"No report at {path}: run bench/batch_grading.py first, or give all of "
                         "--worker-overhead, --prepare, --record and --startup.")
        try:
            measured, notes = overheads_from_report(json.loads(path.read_text()), args.way)
        except (ValueError, KeyError, TypeError, json.JSONDecodeError) as error:
            parser.error(f"Could not take the overheads from {path}: {error}. Give --worker-overhead, "
                         "--prepare, --record and --startup instead.")
        figures = {name: measured[name] if value is None else value for name, value in given.items()}
    print(f"Grading {args.students} students on K GPU workers (hours):")
    print("  total = S + max(ceil(N/K) * (T + o) + r, N * (p + r) + (T + o))   [workers bound, coordinator bound]")
    for line in notes:
        print(line)
    overridden = [name for name, value in given.items() if value is not None]
    if overridden:
        print(f"  given on the command line: {', '.join(f'{n} = {given[n]:g} s' for n in overridden)}")
    for t in sorted({args.notebook_seconds, *ALSO_NOTEBOOK_SECONDS}):
        print()
        print("\n".join(format_table(args.students, ks, t, figures["o"], figures["p"], figures["r"], figures["S"])))
    print()
    print("Sharing each GPU (gpu_slots = k):")
    for t in sorted({args.notebook_seconds, *ALSO_NOTEBOOK_SECONDS}):
        print()
        print("\n".join(shared_gpu_table(args.students, ks, curve, t, figures["o"], figures["p"], figures["r"],
                                        figures["S"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
