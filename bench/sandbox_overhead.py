"""What the bubblewrap sandbox costs per submission, side by side with the unsandboxed run.

Runs the same notebook (a01's worked solution by default) N times in each of
the two modes of `nndl.kernel.run.NotebookRun`, alternating so that machine
noise falls on both: "bubblewrap" (the full sandbox: namespaces, unprivileged
user, minimal mounts) and "namespace" (what grading without the sandbox does:
only a network namespace). Each run starts a kernel, executes every cell and
answers one grader request, then tears everything down. Prints the median
wall time of each mode and their ratio, and writes a JSON report.

    .venv/bin/python bench/sandbox_overhead.py [--runs 5] [--notebook PATH] [--out bench/out]
"""

import argparse
import json
import pathlib
import platform
import statistics
import sys
import time

import nbformat

KIT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(KIT))

from nndl.kernel import sandbox  # noqa: E402
from nndl.kernel.run import NotebookRun  # noqa: E402
from nndl.settings import Limits  # noqa: E402


def one_run(notebook_path, mode):
    """Seconds to start, execute and tear down one notebook run in `mode`."""
    nb = nbformat.read(str(notebook_path), as_version=4)
    started = time.perf_counter()
    with NotebookRun(nb, Limits(), sandbox_mode=mode) as run:
        problems = run.execute()
        answer = run.request("value", "xor_param_count")
    seconds = time.perf_counter() - started
    if problems or not answer["ok"]:
        raise RuntimeError(f"the benchmark notebook did not run cleanly in {mode}: {problems} {answer}")
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--notebook", default=str(KIT / "solutions" / "a01_perceptrons_xor" / "perceptrons_xor.ipynb"))
    parser.add_argument("--out", default=str(KIT / "bench" / "out"))
    args = parser.parse_args(argv)
    problem = sandbox.bubblewrap_problem()
    if problem:
        sys.exit(f"The sandbox cannot start here ({problem}); there is nothing to compare.")
    times = {"bubblewrap": [], "namespace": []}
    one_run(args.notebook, "bubblewrap")  # warm the file cache for both
    for index in range(args.runs):
        order = ("bubblewrap", "namespace") if index % 2 == 0 else ("namespace", "bubblewrap")
        for mode in order:
            times[mode].append(one_run(args.notebook, mode))
            print(f"run {index + 1}/{args.runs} {mode:<10} {times[mode][-1]:6.2f} s", flush=True)
    median = {mode: statistics.median(values) for mode, values in times.items()}
    report = {
        "notebook": args.notebook, "runs": args.runs, "seconds": times, "median_seconds": median,
        "ratio_sandboxed_over_unsandboxed": median["bubblewrap"] / median["namespace"],
        "overhead_seconds_per_submission": median["bubblewrap"] - median["namespace"],
        "machine": {"cpus": __import__("os").cpu_count(), "processor": platform.processor() or platform.machine()},
    }
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sandbox_overhead.json").write_text(json.dumps(report, indent=2))
    print(f"\nmedian per submission: sandboxed {median['bubblewrap']:.2f} s, "
          f"unsandboxed {median['namespace']:.2f} s, ratio {report['ratio_sandboxed_over_unsandboxed']:.3f}, "
          f"overhead {report['overhead_seconds_per_submission']:+.2f} s")


if __name__ == "__main__":
    main()
