"""Calibrated thresholds: what the reference solution reaches, per grading profile.

An accuracy threshold is not a number to copy out of one run. `nndl
calibrate ASSIGNMENT --profile P --seeds N` grades the assignment's solution
N times under profile P, each run with its own seed, and writes
``autograder/<assignment>/calibration/<P>.json``: per measurement (what a
grader passed to ``calibration.check``), the values, their mean and standard
deviation, and the threshold derived by `THRESHOLD_RULE`; with the seeds, the
command, the library versions and the fingerprints of the data the
measurements were made on.

Graders read the threshold of the profile they grade under. Grading with a
calibration made on other data or other library versions warns loudly
(`grading_notices`); grading under a profile with no calibration, when the
assignment has calibrated thresholds, stops before anything runs.

This module is imported by the grader process: it imports nothing heavy.
"""

import datetime
import importlib.metadata
import json
import math
import os
import pathlib
import platform

#: How a threshold follows from N runs of the reference, for measurements where higher is
#: better (accuracies, and differences such as MC dropout's gain over one pass): the one-sided
#: prediction bound of Student's t for one more run. If runs are normal, a solution as good as
#: the reference, trained with a seed of its own, falls below the threshold in a share
#: `FALSE_FAILURE` of gradings, however few runs the calibration made (few runs widen the bound:
#: t grows and the spread is uncertain). The margin is never less than `MIN_MARGIN` (half a point
#: of accuracy), for spreads that are not normal.
FALSE_FAILURE = 0.001
MIN_MARGIN = 0.005
THRESHOLD_RULE = (f"threshold = mean - max(t({1 - FALSE_FAILURE:g}, N - 1) * std * sqrt(1 + 1/N), "
                  f"{MIN_MARGIN:g}); std with N - 1")
#: Set in the grader process's environment while `nndl calibrate` runs: checks record only.
CALIBRATING_ENV = "NNDL_CALIBRATING"
FOLDER = "calibration"
#: The packages whose versions a calibration records and grading compares: Keras, numpy and
#: the Keras backend's own.
PACKAGES = ("keras", "numpy")
BACKEND_PACKAGES = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "jax": ("jax", "jaxlib"), "torch": ("torch",)}


class CalibrationMissing(LookupError):
    """No calibrated threshold for this measurement under this profile; says what to run."""


def path(grader_dir, profile):
    """Where an assignment's calibration for `profile` lives."""
    return pathlib.Path(grader_dir) / FOLDER / f"{profile}.json"


def threshold_of(values):
    """``(mean, std, threshold)`` of a measurement's values (two or more) by `THRESHOLD_RULE`."""
    from scipy import stats

    values = [float(v) for v in values]
    n = len(values)
    if n < 2:
        raise ValueError("a threshold needs the values of two runs or more")
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    spread = float(stats.t.ppf(1 - FALSE_FAILURE, n - 1)) * std * math.sqrt(1 + 1 / n)
    return mean, std, mean - max(spread, MIN_MARGIN)


def environment(backend="tensorflow"):
    """The Python, Keras backend and package versions a calibration made on `backend` depends on."""
    versions = {"python": platform.python_version(), "keras_backend": backend}
    for package in PACKAGES + BACKEND_PACKAGES.get(backend, ()):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def fingerprints(datasets, directory=None):
    """``{name: fingerprint}`` of the datasets in the trusted data directory; None where missing."""
    import nndl_datasets

    found = {}
    for name in sorted(set(datasets)):
        file = nndl_datasets.dataset_path(name, directory)
        if file is None or not file.is_file():  # never keras.datasets' download, from here
            found[name] = None
            continue
        try:
            found[name] = nndl_datasets.fingerprint(name, directory=directory)
        except Exception:  # missing or unreadable: reported as such by the caller
            found[name] = None
    return found


def summarise(assignment, profile, runs, *, seeds, command, backend="tensorflow"):
    """The calibration document from the measurements of each run (``[{name: {value, data}}]``)."""
    names = sorted(set().union(*(run.keys() for run in runs))) if runs else []
    measurements = {}
    datasets = set()
    for name in names:
        values = [run[name]["value"] for run in runs if name in run]
        if len(values) != len(runs):
            raise ValueError(f"measurement {name!r} was made in {len(values)} of {len(runs)} runs")
        mean, std, threshold = threshold_of(values)
        data = next((run[name].get("data") for run in runs if run[name].get("data")), None)
        if data:
            datasets.add(data)
        measurements[name] = {"values": values, "mean": mean, "std": std, "threshold": threshold, "data": data}
    return {
        "assignment": assignment,
        "profile": profile,
        "rule": THRESHOLD_RULE,
        "measurements": measurements,
        "seeds": list(seeds),
        "command": command,
        "versions": environment(backend),
        "data": fingerprints(datasets),
        "made": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
    }


def read(grader_dir, profile):
    """The calibration document of `profile`, or None when there is none."""
    file = path(grader_dir, profile)
    if not file.is_file():
        return None
    return json.loads(file.read_text())


def calibrated_profiles(grader_dir):
    folder = pathlib.Path(grader_dir) / FOLDER
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def grading_notices(grader_dir, assignment, profile, data_directory=None, backend="tensorflow"):
    """What an instructor must hear before grading with these thresholds.

    Returns:
        A list of warnings (empty when the calibration matches this machine's data and versions,
        or when the assignment has no calibrated thresholds at all).

    Raises:
        CalibrationMissing: thresholds exist for other profiles but not for `profile`.
    """
    profiles = calibrated_profiles(grader_dir)
    if not profiles:
        return []
    document = read(grader_dir, profile)
    if document is None:
        raise CalibrationMissing(
            f"{assignment} has calibrated thresholds for the profile(s) {', '.join(profiles)} but not for "
            f"{profile!r}. Calibrate it first: nndl calibrate {assignment} --profile {profile} --seeds 5")
    notices = []
    here = environment(backend)
    compared = ("keras_backend",) + PACKAGES + BACKEND_PACKAGES.get(backend, ())
    changed = [f"{name} {document['versions'].get(name)} -> {here.get(name)}"
               for name in compared if document["versions"].get(name) != here.get(name)]
    if changed:
        notices.append(f"WARNING: {assignment}'s {profile} thresholds were calibrated with other library "
                       f"versions ({'; '.join(changed)}). Accuracies may differ; recalibrate: "
                       f"nndl calibrate {assignment} --profile {profile} --seeds {len(document['seeds'])}")
    now = fingerprints(document["data"], data_directory)
    for name, fingerprint in sorted(document["data"].items()):
        if now.get(name) is None:
            notices.append(f"WARNING: {assignment}'s graders measure on {name}, which is not in the data "
                           "directory (NNDL_DATA_DIR): those checks will fail. Prepare the data first.")
        elif now[name] != fingerprint:
            notices.append(f"WARNING: {assignment}'s {profile} thresholds were calibrated on other {name} data "
                           f"(fingerprint {fingerprint[:12]}, here {now[name][:12]}). Recalibrate: nndl "
                           f"calibrate {assignment} --profile {profile} --seeds {len(document['seeds'])}")
    return notices


class Thresholds:
    """The graders' side: the `calibration` fixture.

    ``calibration.check(name, value, what, data=...)`` records the measurement
    (sent to the coordinator, which `nndl calibrate` collects) and, when
    grading, asserts that it reaches the calibrated threshold of the profile.
    """

    def __init__(self, grader_dir, profile, *, calibrating=False, tell=None):
        self.grader_dir = pathlib.Path(grader_dir)
        self.profile = profile
        self.calibrating = calibrating
        self._tell = tell or (lambda message: None)
        self._document = None

    def _measurement(self, name):
        if self._document is None:
            self._document = read(self.grader_dir, self.profile) or {"measurements": {}}
        found = self._document["measurements"].get(name)
        if found is None:
            raise CalibrationMissing(
                f"no calibrated threshold for {name!r} under the profile {self.profile!r}; the instructor "
                f"must run: nndl calibrate {self.grader_dir.name} --profile {self.profile}")
        return found

    def threshold(self, name):
        """The calibrated threshold of measurement `name` under this profile."""
        return float(self._measurement(name)["threshold"])

    def check(self, name, value, what, *, data=None):
        """Record `value`; when grading, assert it reaches the threshold (message for the student)."""
        value = float(value)
        self._tell({"op": "measured", "name": name, "value": value, "data": data})
        if self.calibrating:
            return
        found = self._measurement(name)
        assert math.isfinite(value) and value >= found["threshold"], (
            f"{what}: expected at least {found['threshold']:.4f}, received {value:.4f} "
            f"(profile {self.profile!r}; the reference solution reaches {found['mean']:.4f} ± {found['std']:.4f} "
            f"over {len(found['values'])} runs; the threshold leaves room for runs with other seeds)")
