"""Batch grading: one worker, two workers and Ray, against stock nbgrader, on the same batch.

Grades the same batch of a01_perceptrons_xor submissions (the kit's samples,
cycled, as in `grading_overhead.py`) these ways, one after the other on this
machine, each into its own fresh course folder:

1. bare: every notebook executed top to bottom in a fresh kernel (nbclient),
   serially, no grading: the notebooks' own execution, the floor.
2. stock: stock nbgrader, serial (``nbgrader autograde``), hidden tests in
   the grade cells (the stock course of `grading_overhead.py`).
3. workers1: ``nndl autograde --workers 1``.
4. workers2: ``nndl autograde --workers 2``.
5. ray: ``nndl autograde --ray ADDRESS`` on a local Ray cluster of 2 CPUs
   (and no GPU) that this script starts in its own process (`ray.init`)
   just before, times apart (not part of the grading wall time) and stops
   right after, also on error.

For each way: wall time (the command, start to exit), per submission, the
speed-ups, and the grading overhead per submission over the bare execution,
in two forms:

- worker-seconds: ``(wall x slots - bare total) / N``, slots being the
  submissions the way grades at once (1 for stock and workers1, the pool's
  size for workers2 and ray). What grading costs on top of the notebooks'
  own execution, in seconds of a worker slot; on a machine with as many
  cores as slots it is comparable across serial and parallel ways.
- wall: ``(wall - bare total / slots) / N``, the same divided by slots: how
  much later the batch ends than a perfect slots-way split of the bare
  execution would, per submission.

Peak memory per worker comes from two sources: the kit's report (each
worker process's own lifetime peak RSS, and the peak RSS of the largest
descendant it waited for: a kernel tree or a grader process), and a
sampler here (psutil, every 0.5 s) of the grading processes' RSS: the whole
``nndl`` process tree, and each worker's subtree (a local pool's
multiprocessing workers; for Ray, the raylet's worker processes, which are
not under ``nndl``). Sampled sums count shared pages once per process.

The points each kit way recorded must be identical (compared per student
and grade cell); stock nbgrader's are compared with the kit's as in
`grading_overhead.py`. Other processes' CPU use is measured during every
way (`grading_overhead.ForeignCpu`): a way during which others used much
CPU is flagged, its timings are not clean.

Usage::

    .venv/bin/python bench/batch_grading.py [--submissions 40] [--out bench/out]
        [--ways bare,stock,workers1,workers2,ray] [--workdir DIR]

Writes ``<out>/batch_grading.json``, each kit way's own report
(``<out>/<way>.json``) and each way's log (``<out>/batch_grading_<way>.log``).
With ``--ways`` naming a subset, the ways not run are taken over from the
``batch_grading.json`` already in `out` (same assignment and batch size),
marked as such, so that the ratios can still be printed.
"""

import argparse
import collections
import contextlib
import datetime
import json
import os
import pathlib
import shlex
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import grading_overhead as go  # noqa: E402  (sets TF_CPP_MIN_LOG_LEVEL before TensorFlow can load)
import psutil  # noqa: E402

from nndl import course  # noqa: E402
from nndl.record import gradebook  # noqa: E402

ASSIGNMENT = go.ASSIGNMENT
BIN = go.BIN
WAYS = ("bare", "stock", "workers1", "workers2", "ray")
KIT_WAYS = ("workers1", "workers2", "ray")
#: CPUs of the local Ray cluster.
RAY_CPUS = 2
#: The Ray cluster's object store; the jobs are a few hundred KiB each.
RAY_OBJECT_STORE_BYTES = 256 * 2**20
#: Seconds between two RSS samples.
SAMPLE_INTERVAL = 0.5
#: Flag a way when other processes used more than this share of one core on average during it.
FOREIGN_CPU_WARN = 0.10
#: The issue's targets on this 2-core machine.
TARGET_SPEEDUP = 1.8

SPEEDUPS = (("workers1", "workers2"), ("workers1", "ray"), ("stock", "workers2"), ("stock", "workers1"))


# --- memory ---------------------------------------------------------------------

class RssSampler:
    """Peak RSS of a grading command's processes, sampled every `interval` seconds in a thread.

    The command is this process's child whose command line holds
    "autograde" (``nndl autograde`` or ``nbgrader autograde``). Workers are:

    - its direct children that are multiprocessing workers (``spawn_main``,
      not the resource tracker): a local pool's;
    - with `ray`, this process's descendants outside that tree that are Ray
      worker processes (``ray::...`` or ``default_worker.py``): the Ray
      cluster started here runs under this process, not under ``nndl``.

    A worker counts with its whole subtree (sandboxed kernel, grader
    process). Processes shorter than an interval can be missed, and RSS sums
    count shared pages once per process: a lower bound per process, an upper
    one for sums.
    """

    def __init__(self, *, ray=False, interval=SAMPLE_INTERVAL):
        self.ray = ray
        self.interval = interval
        self.samples = 0
        self.peak_total = 0.0  # the command's tree plus Ray worker subtrees
        self.peak_command_own = 0.0  # the command's process alone (the coordinator)
        self.peak_command_tree = 0.0
        self.peak_ray_system = 0.0  # raylet, GCS and the rest of the cluster: not grading
        self.workers = {}  # pid -> {"peak_subtree_mb", "peak_own_mb", "peak_processes", "kind"}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _watch(self):
        while not self._stop.wait(self.interval):
            try:
                self._sample()
            except Exception:  # a sampling hiccup must not end the benchmark  # noqa: BLE001
                pass

    def _sample(self):
        rss, parent_of, cmd = {}, {}, {}
        for proc in psutil.process_iter(["ppid", "cmdline", "memory_info"]):
            info = proc.info
            parent_of[proc.pid] = info["ppid"]
            rss[proc.pid] = info["memory_info"].rss / 2**20 if info["memory_info"] else 0.0
            cmd[proc.pid] = info["cmdline"] or []
        children = collections.defaultdict(list)
        for pid, ppid in parent_of.items():
            children[ppid].append(pid)

        def subtree(pid):
            found, todo = [], [pid]
            while todo:
                p = todo.pop()
                found.append(p)
                todo.extend(children.get(p, ()))
            return found

        me = os.getpid()
        roots = [p for p in children.get(me, ()) if "autograde" in cmd.get(p, ())[:4]]
        if not roots:
            return
        root = roots[0]
        tree = set(subtree(root))
        workers = {p: "local" for p in children.get(root, ()) if _is_local_worker(cmd[p])}
        ray_rest = set()
        if self.ray:
            mine = set(subtree(me)) - tree - {me}
            for p in mine:
                if _is_ray_worker(cmd[p]):
                    workers[p] = "ray"
            ray_rest = mine
        self.samples += 1
        total = sum(rss[p] for p in tree)
        for pid, kind in workers.items():
            procs = subtree(pid)
            ray_rest -= set(procs)
            size = sum(rss[p] for p in procs)
            if kind == "ray":
                total += size
            entry = self.workers.setdefault(pid, {"kind": kind, "peak_subtree_mb": 0.0, "peak_own_mb": 0.0,
                                                  "peak_processes": 0})
            entry["peak_subtree_mb"] = max(entry["peak_subtree_mb"], size)
            entry["peak_own_mb"] = max(entry["peak_own_mb"], rss[pid])
            entry["peak_processes"] = max(entry["peak_processes"], len(procs))
        self.peak_total = max(self.peak_total, total)
        self.peak_command_own = max(self.peak_command_own, rss[root])
        self.peak_command_tree = max(self.peak_command_tree, sum(rss[p] for p in tree))
        self.peak_ray_system = max(self.peak_ray_system, sum(rss[p] for p in ray_rest))

    def facts(self, job_pids=None):
        """The peaks, in MiB. With `job_pids`, workers that ran no job are summed up apart."""
        workers, idle = {}, []
        for pid, entry in sorted(self.workers.items()):
            if job_pids is not None and entry["kind"] == "ray" and pid not in job_pids:
                idle.append(entry["peak_subtree_mb"])
                continue
            workers[str(pid)] = {k: round(v, 1) if isinstance(v, float) else v for k, v in entry.items()}
        return {"interval_s": self.interval, "samples": self.samples,
                "peak_total_mb": round(self.peak_total, 1),
                "peak_command_process_mb": round(self.peak_command_own, 1),
                "peak_command_tree_mb": round(self.peak_command_tree, 1),
                **({"peak_ray_system_mb": round(self.peak_ray_system, 1),
                    "ray_workers_without_a_job": len(idle),
                    "ray_workers_without_a_job_peak_mb": round(max(idle, default=0.0), 1)} if self.ray else {}),
                "workers": workers}


def _is_local_worker(argv):
    """A multiprocessing spawn child (a `LocalPool` worker), not the resource tracker."""
    text = " ".join(argv[:4])
    return "spawn_main" in text and "resource_tracker" not in text


def _is_ray_worker(argv):
    """A Ray worker process: retitled ``ray::IDLE`` or ``ray::<task>``, or still ``python .../default_worker.py``.

    Only the first arguments count: the raylet's own command line names
    default_worker.py too, as the command it starts workers with. Ray's
    agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) are not workers.
    """
    if not argv:
        return False
    if argv[0].startswith("ray::"):
        return not argv[0].split()[0].endswith("Agent")  # ray::DashboardAgent, ray::RuntimeEnvAgent: Ray's own
    return any(a.endswith("default_worker.py") for a in argv[:2])


# --- the Ray cluster ------------------------------------------------------------------

@contextlib.contextmanager
def ray_cluster(cpus=RAY_CPUS):
    """A local Ray cluster of `cpus` CPUs and no GPU, started in this process and stopped on leaving.

    Its processes are this process's children (so `go.ForeignCpu` counts
    them as ours) and live in a temporary folder of their own, so that
    nothing of another Ray session on this machine is touched.

    Yields:
        ``{"address", "start_s", "resources"}``.
    """
    import ray

    temp_dir = tempfile.mkdtemp(prefix="nndl-ray-")
    saved_env = {k: v for k, v in os.environ.items() if k.startswith("RAY_")}
    started = time.perf_counter()
    try:
        ray.init(num_cpus=cpus, num_gpus=0, include_dashboard=False, object_store_memory=RAY_OBJECT_STORE_BYTES,
                 log_to_driver=False, logging_level="WARNING", _temp_dir=temp_dir)
        start_s = time.perf_counter() - started
        yield {"address": ray.get_runtime_context().gcs_address, "start_s": start_s,
               "resources": {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}}
    finally:
        stopped = time.perf_counter()
        ray.shutdown()
        print(f"  Ray cluster stopped in {time.perf_counter() - stopped:.1f} s", flush=True)
        shutil.rmtree(temp_dir, ignore_errors=True)
        for key in [k for k in os.environ if k.startswith("RAY_")]:  # what ray.init set for its cluster
            if key not in saved_env:
                del os.environ[key]
        os.environ.update(saved_env)


# --- the kit's reports -------------------------------------------------------------------

def kit_report_facts(report, command_wall_s):
    """What a kit way's ``--report`` says: pool, record times, workers and their peak memory.

    Record time per submission = the report's seconds minus its worker's
    seconds: the coordinator's recording (nbgrader's autograde replaying the
    verdict into the gradebook), serial in the one coordinator.
    """
    ran = [s for s in report["submissions"] if s["graded"] and s["attempts"] and s.get("worker")]
    record = [s["seconds"] - s["worker"].get("seconds", 0.0) for s in ran]
    worker_s = [s["worker"].get("seconds", 0.0) for s in ran]
    per_worker = {}
    for s in ran:
        w = s["worker"]
        entry = per_worker.setdefault(f"{w.get('host')}:{w.get('pid')}", {
            "host": w.get("host"), "pid": w.get("pid"), "jobs": 0, "seconds": 0.0,
            "peak_rss_mb": 0.0, "peak_child_rss_mb": 0.0, "gpus": w.get("gpus")})
        entry["jobs"] += 1
        entry["seconds"] = round(entry["seconds"] + w.get("seconds", 0.0), 3)
        entry["peak_rss_mb"] = max(entry["peak_rss_mb"], w.get("peak_rss_mb") or 0.0)
        entry["peak_child_rss_mb"] = max(entry["peak_child_rss_mb"], w.get("peak_child_rss_mb") or 0.0)
    return {
        "pool": report["pool"],
        "counts": report["counts"],
        "report_wall_s": report["wall_seconds"],
        # Before autograde() starts its clock: Python, imports, the sandbox check, counting submissions.
        "command_start_s": command_wall_s - report["wall_seconds"],
        "seconds_per_submission": report["seconds_per_submission"],
        "worker_s_mean": statistics.mean(worker_s) if worker_s else None,
        "record_s": _spread(record),
        # The coordinator's intake and job preparation per submission (serial, overlapping the workers).
        "prepare_s": _spread([s["prepare_seconds"] for s in report["submissions"] if "prepare_seconds" in s]),
        "workers": sorted(per_worker.values(), key=lambda w: (str(w["host"]), w["pid"] or 0)),
        "not_graded": {s["student"]: s["error"] for s in report["submissions"] if not s["graded"]},
    }


def _spread(values):
    if not values:
        return None
    return {"median": statistics.median(values), "mean": statistics.mean(values), "max": max(values),
            "total": sum(values)}


# --- one way ------------------------------------------------------------------------------

def _points(folder):
    return go.recorded_points(folder)


def _loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def run_bare(batch):
    """The notebooks' own execution, serial."""
    load_before = _loadavg()
    with go.ForeignCpu() as foreign:
        runs = go.bare_execution(batch)
    totals = [run["total_s"] for run in runs]
    return {"command": "nbclient, one fresh kernel per notebook, serial (grading_overhead.bare_execution)",
            "wall_s": sum(totals), "per_submission_s": statistics.mean(totals), "slots": 1,
            "kernel_start_s": statistics.mean(run["kernel_start_s"] for run in runs),
            "kernel_shutdown_s": statistics.mean(run["kernel_shutdown_s"] for run in runs),
            "per_notebook": dict(zip((s.student for s in batch), runs)),
            "foreign_cpu_s": foreign.seconds, "load_average_before_after": [load_before, _loadavg()]}


def run_stock(folder, notebook_name, batch, env, out):
    """Stock nbgrader, one ``nbgrader autograde`` over the batch."""
    go.make_stock_course(folder, notebook_name, batch, env)
    log = out / "batch_grading_stock.log"
    command = [str(BIN / "nbgrader"), "autograde", ASSIGNMENT, "--force"]
    load_before = _loadavg()
    with go.ForeignCpu() as foreign, RssSampler() as sampler:
        wall, status = go.timed_command(command, folder, env, log)
    return {"command": f"nbgrader autograde {ASSIGNMENT} --force", "wall_s": wall,
            "per_submission_s": wall / len(batch), "slots": 1, "exit_status": status,
            "failed_students": go.failed_students(log), "log": str(log),
            "foreign_cpu_s": foreign.seconds, "load_average_before_after": [load_before, _loadavg()],
            "rss_sampled": sampler.facts()}, _points(folder)


def run_kit(way, folder, notebook_name, batch, env, out, pool_args, *, ray=False):
    """One ``nndl autograde`` over the batch with `pool_args`, its report in ``<out>/<way>.json``."""
    go.make_kit_course(folder, notebook_name, batch)
    log, report_path = out / f"batch_grading_{way}.log", out / f"{way}.json"
    report_path.unlink(missing_ok=True)
    command = [str(BIN / "nndl"), "autograde", ASSIGNMENT, *pool_args, "--report", str(report_path)]
    load_before = _loadavg()
    with go.ForeignCpu() as foreign, RssSampler(ray=ray) as sampler:
        wall, status = go.timed_command(command, folder, env, log)
    result = {"command": shlex.join(["nndl", *command[1:]]), "wall_s": wall,
              "per_submission_s": wall / len(batch), "exit_status": status, "log": str(log),
              "sandboxed": "WITHOUT the sandbox" not in log.read_text(errors="replace"),
              "foreign_cpu_s": foreign.seconds, "load_average_before_after": [load_before, _loadavg()]}
    if report_path.exists():
        facts = kit_report_facts(json.loads(report_path.read_text()), wall)
        result.update(report=str(report_path), slots=facts["pool"].get("size") or 1, kit=facts)
        job_pids = {w["pid"] for w in facts["workers"]}
    else:
        result.update(report=None, slots=None, error=f"no report written; see {log}")
        job_pids = None
    result["rss_sampled"] = sampler.facts(job_pids)
    return result, _points(folder)


# --- figures from the ways ---------------------------------------------------------------------

def derive(ways, points, batch, max_points):
    """Overheads, speed-ups, targets and the points comparisons, from the ways' raw figures."""
    count = len(batch)
    bare = ways.get("bare")
    bare_total = bare["wall_s"] if bare and "wall_s" in bare else None
    overhead = {}
    for name in WAYS[1:]:
        w = ways.get(name)
        if bare_total is None or not w or "wall_s" not in w or not w.get("slots"):
            continue
        slots = w["slots"]
        overhead[name] = {"slots": slots,
                          "worker_s_per_submission": (w["wall_s"] * slots - bare_total) / count,
                          "wall_s_per_submission": (w["wall_s"] - bare_total / slots) / count}
        if "kit" in w and w["kit"]["worker_s_mean"] is not None:
            # Inside the worker only: sandboxed kernel, graders, nothing of the coordinator.
            overhead[name]["inside_worker_s_per_submission"] = w["kit"]["worker_s_mean"] - bare_total / count
    speedups = {}
    for slow, fast in SPEEDUPS:
        if ways.get(slow, {}).get("wall_s") and ways.get(fast, {}).get("wall_s"):
            speedups[f"{slow}/{fast}"] = ways[slow]["wall_s"] / ways[fast]["wall_s"]
    targets = {}
    if "workers1/workers2" in speedups:
        targets["speedup_workers2_over_workers1"] = {
            "target": f">= {TARGET_SPEEDUP}", "value": speedups["workers1/workers2"],
            "met": speedups["workers1/workers2"] >= TARGET_SPEEDUP}
    if "stock" in overhead:
        stock = overhead["stock"]["worker_s_per_submission"]
        for name in KIT_WAYS:
            if name in overhead:
                value = overhead[name]["worker_s_per_submission"]
                targets[f"overhead_{name}_vs_stock"] = {
                    "target": f"<= stock's {stock:.2f} worker-s per submission", "value": value,
                    "met": value <= stock}

    kit_ways = [name for name in KIT_WAYS if name in points]
    disagreements = []
    for name in kit_ways[1:]:
        reference = kit_ways[0]
        for student in sorted(set(points[reference]) | set(points[name])):
            a, b = points[reference].get(student), points[name].get(student)
            if a is None or b is None or a["scores"] != b["scores"] or a["total"] != b["total"]:
                disagreements.append({"student": student, reference: a and a["scores"], name: b and b["scores"]})
    stock_vs_kit = None
    if "stock" in points and kit_ways and max_points:
        stock_vs_kit = {"kit_way": kit_ways[0],
                        "rows": go.compare_points(batch, points[kit_ways[0]], points["stock"], max_points)}
    return {"bare_total_s": bare_total, "bare_mean_s": bare_total / count if bare_total is not None else None,
            "overhead": overhead, "speedups": speedups, "targets": targets,
            "kit_ways_compared": kit_ways, "kit_points_identical": not disagreements if len(kit_ways) > 1 else None,
            "kit_points_disagreements": disagreements, "points_stock_vs_kit": stock_vs_kit}


# --- the run --------------------------------------------------------------------------------------

def run_benchmark(count, out, workdir, ways_to_run):
    """Grade the batch each way in `ways_to_run`, in order.

    Returns:
        ``(batch, ways, points, max_points)``: the submissions, each way's
        figures, each graded way's recorded points per student, the master's
        points per grade cell.
    """
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    os.environ.update(PATH=env["PATH"])  # the Ray cluster's workers inherit this process's environment
    notebook_name, batch = go.make_batch(count)
    ways, points, max_points = {}, {}, None
    pools = {"workers1": ["--workers", "1"], "workers2": ["--workers", "2"]}
    for way in WAYS:
        if way not in ways_to_run:
            continue
        print(f"{way}: grading {count} submissions ...", flush=True)
        version = go.kit_version()
        started = time.time()
        try:
            if way == "bare":
                ways[way] = run_bare(batch)
            elif way == "stock":
                ways[way], points[way] = run_stock(workdir / way, notebook_name, batch, env, out)
            elif way in pools:
                ways[way], points[way] = run_kit(way, workdir / way, notebook_name, batch, env, out, pools[way])
            else:  # ray: start the cluster, time it apart, always stop it
                with ray_cluster() as cluster:
                    ray_facts = {"cpus": RAY_CPUS, "start_s": cluster["start_s"], "resources": cluster["resources"]}
                    print(f"  Ray cluster of {RAY_CPUS} CPUs started in {cluster['start_s']:.1f} s "
                          f"at {cluster['address']}", flush=True)
                    # ray.init turned on the cluster's token authentication in this process's
                    # environment (RAY_AUTH_MODE); a driver joining by address needs it too.
                    ray_env = {**env, **{k: v for k, v in os.environ.items() if k.startswith("RAY_")}}
                    ways[way], points[way] = run_kit(way, workdir / way, notebook_name, batch, ray_env, out,
                                                     ["--ray", cluster["address"]], ray=True)
                    ways[way]["command"] = ways[way]["command"].replace(cluster["address"], "ADDRESS")
                    ways[way]["ray_cluster"] = ray_facts
        except Exception as error:  # one way failing must not lose the others' figures
            traceback.print_exc()
            ways[way] = {"error": f"{type(error).__name__}: {error}"}
        ways[way].update(started=_iso(started), kit_version=version)
        if way in points and max_points is None and way in KIT_WAYS:
            max_points = gradebook.max_points(f"sqlite:///{workdir / way / 'gradebook.db'}", ASSIGNMENT)
        w = ways[way]
        if "wall_s" in w:
            print(f"  {w['wall_s']:.1f} s" + (f", exit status {w['exit_status']}" if "exit_status" in w else ""),
                  flush=True)
    return batch, ways, points, max_points


def _iso(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="seconds")


def merge_earlier(report, earlier_path):
    """Take over from an earlier report the ways this run did not run (same assignment and batch size)."""
    if not earlier_path.exists():
        return
    try:
        earlier = json.loads(earlier_path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    if earlier.get("assignment") != report["assignment"] or earlier.get("submissions") != report["submissions"]:
        return
    for way in WAYS:
        if way in report["ways"] or way not in earlier.get("ways", {}):
            continue
        report["ways"][way] = {**earlier["ways"][way], "from_earlier_run": earlier.get("finished")}
        if way in earlier.get("points_recorded", {}):
            report["points_recorded"][way] = earlier["points_recorded"][way]
    if report["max_points"] is None:
        report["max_points"] = earlier.get("max_points")


# --- the printed report ------------------------------------------------------------------------------

def format_report(report):
    """The report as plain text: the table, the definitions, speed-ups, targets, memory, points."""
    m, d, ways = report["machine"], report["derived"], report["ways"]
    n = report["submissions"]
    version = report["kit_version"]
    lines = [f"{n} submissions of {ASSIGNMENT} on {m['nproc']} CPUs ({m['cpu_model']}), "
             f"kit at {version['commit'][:7]}{' with uncommitted changes' if version['uncommitted'] else ''}",
             ""]
    header = (f"{'way':<10}{'wall s':>9}{'s/subm':>9}{'slots':>7}{'overhead worker-s':>19}"
              f"{'overhead wall s':>17}{'peak RSS MiB':>14}{'others CPU s':>14}")
    lines += [header, "-" * len(header)]
    warnings = []
    for name in WAYS:
        w = ways.get(name)
        if w is None:
            continue
        if "wall_s" not in w:
            lines.append(f"{name:<10}  FAILED: {w.get('error', 'see its log')}")
            continue
        o = d["overhead"].get(name, {})
        worker = f"{o['worker_s_per_submission']:+.2f}" if o else "-"
        wall = f"{o['wall_s_per_submission']:+.2f}" if o else "-"
        rss = w.get("rss_sampled", {}).get("peak_total_mb")
        mark = f" (earlier run, {w['from_earlier_run']})" if w.get("from_earlier_run") else ""
        if w.get("kit_version") and w["kit_version"] != version:
            mark += " (kit differed: see kit_version)"
        lines.append(f"{name:<10}{w['wall_s']:>9.1f}{w['per_submission_s']:>9.2f}{w.get('slots') or '-':>7}"
                     f"{worker:>19}{wall:>17}{(f'{rss:.0f}' if rss else '-'):>14}{w['foreign_cpu_s']:>14.1f}{mark}")
        if w["foreign_cpu_s"] > FOREIGN_CPU_WARN * w["wall_s"]:
            warnings.append(f"WARNING: other processes used {w['foreign_cpu_s']:.1f} CPU s during {name} "
                            f"({100 * w['foreign_cpu_s'] / w['wall_s']:.0f}% of one core on average): "
                            "its timing is not clean; rerun it on an idle machine (--ways).")
        if w.get("exit_status"):
            failed = w.get("failed_students") or list(w.get("kit", {}).get("not_graded", {}))
            lines.append(f"{'':<10}  exit status {w['exit_status']}; not graded: {', '.join(failed) or 'see its log'}")
        if w.get("sandboxed") is False:
            warnings.append(f"WARNING: {name} graded WITHOUT the sandbox.")
    lines += [
        "",
        "wall s: the way's command from start to exit (bare: the sum of the notebooks' runs); the Ray",
        "  cluster's start is not in it. slots: submissions graded at once (the pool's size).",
        "overhead worker-s: (wall x slots - bare total) / N, grading's cost per submission above the",
        "  notebooks' own execution, in worker-slot seconds (serial ways: slots = 1).",
        "overhead wall s: (wall - bare total / slots) / N, how much later per submission the batch ends",
        "  than a perfect split of the bare execution over the slots would.",
        "peak RSS MiB: sampled peak of the sum of RSS over the grading processes (the command's tree,",
        "  plus for Ray the raylet's worker processes); shared pages count once per process.",
        "others CPU s: CPU time of processes that are not this benchmark's during the way (a lower bound).",
    ]
    if report.get("ray_cluster"):
        rc = report["ray_cluster"]
        lines.append(f"Ray cluster ({rc['cpus']} CPUs) start: {rc['start_s']:.1f} s, not counted above.")
    lines.append("")
    for key, value in d["speedups"].items():
        lines.append(f"speed-up {key:<18} {value:5.2f}x  (wall of {key.split('/')[0]} / wall of {key.split('/')[1]})")
    for key, t in d["targets"].items():
        lines.append(f"target {key}: {t['value']:.2f}, wanted {t['target']}: {'MET' if t['met'] else 'NOT MET'}")
    lines += _kit_lines(ways) + _memory_lines(ways)
    lines.append("")
    if d["kit_points_identical"] is None:
        lines.append("points: fewer than two kit ways, nothing to compare between them")
    elif d["kit_points_identical"]:
        lines.append(f"points: identical across the kit ways ({', '.join(d['kit_ways_compared'])}), "
                     "every student and grade cell")
    else:
        lines.append(f"points: THE KIT WAYS DISAGREE for {len(d['kit_points_disagreements'])} students:")
        for row in d["kit_points_disagreements"]:
            lines.append(f"  {row}")
    if d["points_stock_vs_kit"]:
        lines.append(f"stock vs kit ({d['points_stock_vs_kit']['kit_way']}):")
        lines += go._points_table(d["points_stock_vs_kit"]["rows"])[1:]
    return "\n".join(lines + ([""] + warnings if warnings else []))


def _kit_lines(ways):
    lines = []
    for name in KIT_WAYS:
        kit = ways.get(name, {}).get("kit")
        if not kit:
            continue
        rec, per = kit["record_s"], kit["seconds_per_submission"]
        text = (f"{name}: per submission median {per['median']:.2f} s, worst {per['worst']:.2f} s; "
                if per["median"] is not None else f"{name}: ")
        text += (f"in the worker {kit['worker_s_mean']:.2f} s mean; "
                 if kit["worker_s_mean"] is not None else "")
        text += (f"recording (serial, coordinator) median {rec['median']:.2f} s, total {rec['total']:.1f} s; "
                 if rec else "")
        prep = kit.get("prepare_s")
        text += (f"preparing (serial, coordinator) median {prep['median']:.2f} s, total {prep['total']:.1f} s; "
                 if prep else "")
        text += f"command start {kit['command_start_s']:.1f} s"
        lines.append(text)
    return [""] + lines if lines else []


def _memory_lines(ways):
    lines = []
    for name in ("stock", *KIT_WAYS):
        w = ways.get(name)
        if not w or "wall_s" not in w:
            continue
        s = w.get("rss_sampled", {})
        head = (f"{name}: sampled peaks: command process {s.get('peak_command_process_mb', 0):.0f} MiB, "
                f"its tree {s.get('peak_command_tree_mb', 0):.0f} MiB")
        if "peak_ray_system_mb" in s:
            head += (f", Ray's own processes {s['peak_ray_system_mb']:.0f} MiB, "
                     f"{s['ray_workers_without_a_job']} Ray workers that ran no job "
                     f"(largest {s['ray_workers_without_a_job_peak_mb']:.0f} MiB)")
        lines.append(head)
        reported = {w2["pid"]: w2 for w2 in w.get("kit", {}).get("workers", [])}
        sampled = s.get("workers", {})
        for pid in sorted(set(reported) | {int(p) for p in sampled}):
            r, smp = reported.get(pid), sampled.get(str(pid))
            text = f"  worker {pid}:"
            if r:
                text += (f" {r['jobs']} jobs, {r['seconds']:.1f} s; report: own peak {r['peak_rss_mb']:.0f} MiB, "
                         f"largest child {r['peak_child_rss_mb']:.0f} MiB;")
            else:
                text += " (ran no job by the report);"
            if smp:
                text += (f" sampled: own {smp['peak_own_mb']:.0f} MiB, with its subtree {smp['peak_subtree_mb']:.0f} MiB"
                         f" ({smp['peak_processes']} processes at most)")
            else:
                text += " not sampled"
            lines.append(text)
    return [""] + lines if lines else []


def main(argv=None):
    """Entry point: parse arguments, run the ways, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=40, help="batch size (default 40)")
    parser.add_argument("--out", default="bench/out", help="folder for the JSON reports and logs")
    parser.add_argument("--ways", default=",".join(WAYS),
                        help=f"comma-separated subset of {','.join(WAYS)} (default: all, in that order)")
    parser.add_argument("--workdir", help="keep the course folders here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.submissions < 1:
        parser.error(f"Expected --submissions to be a positive integer. Received: {args.submissions}")
    ways_to_run = [w.strip() for w in args.ways.split(",") if w.strip()]
    unknown = sorted(set(ways_to_run) - set(WAYS))
    if unknown or not ways_to_run:
        parser.error(f"Expected --ways among {','.join(WAYS)}. Received: {args.ways}")
    os.environ.setdefault("NNDL_DATA_DIR", str(course.KIT_ROOT / ".nndl" / "data"))
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    version_before, load_before = go.kit_version(), _loadavg()
    with contextlib.ExitStack() as stack:
        if args.workdir:
            workdir = pathlib.Path(args.workdir).resolve()
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
        else:
            workdir = pathlib.Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nndl-bench-batch-")))
        batch, ways, points, max_points = run_benchmark(args.submissions, out, workdir, ways_to_run)
    ray_facts = ways.get("ray", {}).get("ray_cluster")
    report = {
        "assignment": ASSIGNMENT,
        "submissions": args.submissions,
        "command": shlex.join(sys.orig_argv),
        "finished": _iso(time.time()),
        "machine": go.machine(),
        "kit_version": version_before,
        "kit_changed_during_run": go.kit_version() != version_before,
        "load_average_before_after": [load_before, _loadavg()],
        "nndl_data_dir": os.environ.get("NNDL_DATA_DIR"),
        "order": ways_to_run,
        "ways": ways,
        "ray_cluster": ray_facts,
        "max_points": max_points,
        "points_recorded": points,
    }
    path = out / "batch_grading.json"
    if set(ways_to_run) != set(WAYS):
        merge_earlier(report, path)
        if report["ray_cluster"] is None and "ray" in report["ways"]:
            report["ray_cluster"] = report["ways"]["ray"].get("ray_cluster")
    report["ways"] = {w: report["ways"][w] for w in WAYS if w in report["ways"]}
    report["derived"] = derive(report["ways"], report["points_recorded"], batch, report["max_points"])
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(format_report(report))
    print(f"\nReport: {path}; each kit way's report and every way's log beside it.")
    failed = any("wall_s" not in w for w in ways.values()) or report["derived"]["kit_points_identical"] is False
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
