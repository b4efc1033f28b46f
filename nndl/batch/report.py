"""What a batch shows while it runs, and what it leaves behind.

- `Progress`: a bar with counts, rate and ETA on a terminal; one plain line
  per submission where output goes to a log or CI.
- `summary`: the lines printed at the end (graded, not graded with reasons,
  time per submission: median and worst).
- `write_report`: the run as JSON, for scripts and dashboards.
"""

import datetime
import os
import pathlib
import statistics
import sys
import time

REPORT_VERSION = 1


class Progress:
    """Shows a batch's progress; call it with each `SubmissionResult` as it finishes.

    Args:
        total: submissions in the batch.
        stream: where to write (default: standard error).
        bar: draw a redrawn bar; default: when `stream` is a terminal and not in CI.
        hide: messages not to repeat per submission (e.g. the sandbox warning).
    """

    def __init__(self, total, *, stream=None, bar=None, hide=()):
        self.total = total
        self.stream = stream or sys.stderr
        if bar is None:
            bar = (hasattr(self.stream, "isatty") and self.stream.isatty() and not os.environ.get("CI")
                   and os.environ.get("TERM") != "dumb")
        self.bar = bar
        self.hide = set(hide)
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self._ran = 0  # submissions that took a worker run, for the rate

    def __call__(self, result):
        self.done += 1
        self.failed += 0 if result.graded else 1
        self._ran += 1 if result.attempts else 0
        lines = [self._line(result)] + [f"    note: {m}" for m in result.messages if m not in self.hide]
        if self.bar:
            self.stream.write("\r\033[K" + "\n".join(lines) + "\n" + self._bar())
        else:
            self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()

    def close(self):
        """End the bar's line."""
        if self.bar:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def _line(self, result):
        where = f"[{self.done}/{self.total}]"
        if not result.graded:
            return f"{where} could not grade {result.student}: {result.error}"
        how = "replayed" if not result.attempts else f"in {result.seconds:.1f} s"
        extra = f", {result.attempts} attempts" if result.attempts > 1 else ""
        return f"{where} graded {result.student} {how}{extra}{self._eta_text(' · ')}"

    def _rate(self):
        elapsed = time.monotonic() - self.started
        return self._ran / elapsed if self._ran and elapsed > 0 else None

    def _eta_text(self, prefix):
        rate = self._rate()
        left = self.total - self.done
        if not rate or not left:
            return ""
        return f"{prefix}ETA {_duration(left / rate)}"

    def _bar(self, width=30):
        filled = int(width * self.done / max(1, self.total))
        rate = self._rate()
        rate_text = f" · {rate * 60:.1f}/min" if rate else ""
        failed = f", {self.failed} not graded" if self.failed else ""
        return (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}{failed}"
                f"{rate_text}{self._eta_text(' · ')}")


def summary(results, wall_seconds):
    """The end-of-batch lines: counts, reasons, time per submission."""
    graded = [r for r in results if r.graded]
    failed = [r for r in results if not r.graded]
    ran = [r.seconds for r in graded if r.attempts]
    lines = [f"{len(graded)} graded, {len(failed)} could not be graded, in {_duration(wall_seconds)}."]
    replayed = sum(1 for r in graded if not r.attempts)
    if replayed:
        lines.append(f"{replayed} replayed from verdicts stored by an earlier run.")
    if ran:
        worst = max((r for r in graded if r.attempts), key=lambda r: r.seconds)
        lines.append(f"Time per submission: median {statistics.median(ran):.1f} s, "
                     f"worst {worst.seconds:.1f} s ({worst.student}).")
    for result in failed:
        lines.append(f"  not graded: {result.student}: {result.error}")
    return lines


def default_path(root, assignment):
    """``.nndl/reports/<assignment>/<UTC time>.json`` in the course."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return pathlib.Path(root) / ".nndl" / "reports" / str(assignment) / f"{stamp}.json"


def write_report(path, *, assignment, results, started, pool, db_url, profile="full", notices=()):
    """Write the run's JSON report (atomically) and return its path.

    Holds, per submission: graded or not and why, score and maximum from the
    gradebook, seconds (worker run and recording), the coordinator's intake
    and preparation seconds, attempts, whether it was replayed, the worker it ran
    on with that worker's peak memory, and the messages the student sees.
    """
    from nndl.record import gradebook

    scores = {}
    try:
        _, rows = gradebook.cell_scores(db_url, assignment)
        scores = {row["student"]: row for row in rows}
    except Exception as error:  # the report must not fail the batch; say why scores are missing
        scores_error = f"{type(error).__name__}: {error}"
    else:
        scores_error = None
    finished = time.time()
    ran = [r.seconds for r in results if r.graded and r.attempts]
    document = {
        "version": REPORT_VERSION,
        "assignment": assignment,
        "profile": profile,
        "notices": list(notices),
        "started": _iso(started),
        "finished": _iso(finished),
        "wall_seconds": round(finished - started, 3),
        "pool": pool,
        "gradebook": redact(db_url),
        "counts": {"submissions": len(results), "graded": sum(r.graded for r in results),
                   "not_graded": sum(not r.graded for r in results),
                   "replayed": len([r for r in results if r.graded and not r.attempts])},
        "seconds_per_submission": {"median": statistics.median(ran) if ran else None,
                                   "worst": max(ran) if ran else None},
        "submissions": [{
            "student": r.student,
            "graded": r.graded,
            "error": r.error or None,
            "score": scores.get(r.student, {}).get("total") if r.graded else None,
            "max_score": scores.get(r.student, {}).get("max") if r.graded else None,
            "seconds": round(r.seconds, 3),
            "prepare_seconds": round(r.prepare_seconds, 3),
            "attempts": r.attempts,
            "replayed": r.graded and not r.attempts,
            "worker": r.worker,
            "messages": r.messages,
        } for r in results],
    }
    if scores_error:
        document["scores_error"] = scores_error
    from nndl.store import write_json_atomically

    write_json_atomically(path, document, indent=2, default=str)
    return pathlib.Path(path)


def _iso(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="seconds")


def redact(db_url):
    """A database URL without its password."""
    if "://" in db_url and "@" in db_url.split("://", 1)[1]:
        scheme, rest = db_url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}" if ":" in credentials else db_url
    return db_url


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
