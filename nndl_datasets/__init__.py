"""The course's one dataset loader: MNIST, Fashion-MNIST and CIFAR-10.

`load_data(name)` returns ``(x_train, y_train), (x_test, y_test)`` exactly as
``keras.datasets.<name>.load_data()`` does. It reads ``<name>.npz`` (arrays
``x_train``, ``y_train``, ``x_test``, ``y_test``) from the data directory,
which GPU workers and grading sandboxes need because they have no network.
The data directory is the ``NNDL_DATA_DIR`` environment variable, else
`DEFAULT_DATA_DIR` if set by the course. With no data directory it falls back
to ``keras.datasets`` (which downloads, or reads Keras's cache). With neither
it fails with a message naming both ways to fix it.

This package is safe to give students: it holds loading code only. Example::

    from nndl_datasets import load_data
    (x_train, y_train), (x_test, y_test) = load_data("mnist")
"""

import hashlib
import os
import pathlib

import numpy as np

#: The datasets the course uses, and the keras.datasets module of each.
DATASETS = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "cifar10": "cifar10"}
#: The arrays a dataset file must hold.
ARRAYS = ("x_train", "y_train", "x_test", "y_test")
#: A course-wide data directory, used when NNDL_DATA_DIR is not set.
DEFAULT_DATA_DIR = None


#: The grading profile's environment variable, and the profiles: see `profile`.
PROFILE_ENV = "NNDL_PROFILE"
PROFILES = ("full", "smoke")
#: The run's seed's environment variable: see `seed`.
SEED_ENV = "NNDL_SEED"


def profile():
    """The scale to run an assignment at: ``"full"`` (the default) or ``"smoke"``.

    Notebooks read their sizes from it (how much data, how many epochs), so
    the same notebook runs as the exercise is written in JupyterLab and on
    GPU graders, and briefly on CPU graders. Choose one yourself with
    ``%env NNDL_PROFILE=smoke`` before this call.
    """
    value = os.environ.get(PROFILE_ENV, "") or "full"
    if value not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={value!r} is not a profile; use one of {', '.join(PROFILES)}")
    return value


def seed(default=42):
    """The seed to start random numbers from: the grading run's when graded, else `default`.

    Graders draw a fresh seed for every run, so an answer is graded as
    trained with any seed, as its calibrated threshold expects.
    """
    value = os.environ.get(SEED_ENV, "")
    return int(value) if value.isdigit() else default


class DatasetUnavailable(RuntimeError):
    """The dataset can be found neither in the data directory nor through Keras."""


def data_dir():
    """The configured data directory, or None."""
    value = os.environ.get("NNDL_DATA_DIR") or DEFAULT_DATA_DIR
    return pathlib.Path(value) if value else None


def dataset_path(name, directory=None):
    """Where `name`'s file is expected in the data directory (may not exist)."""
    _check_name(name)
    directory = pathlib.Path(directory) if directory else data_dir()
    return None if directory is None else directory / f"{name}.npz"


def load_data(name, *, directory=None):
    """Load a dataset as ``keras.datasets.<name>.load_data()`` returns it.

    Args:
        name: "mnist", "fashion_mnist" or "cifar10".
        directory: a data directory to use instead of the configured one.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``. A data directory may hold
        the training split only (grading sandboxes do); the test arrays are
        then None.

    Raises:
        ValueError: unknown dataset name.
        DatasetUnavailable: no data directory holds it and Keras cannot get it.
    """
    path = dataset_path(name, directory)
    if path is not None:
        if not path.exists():
            raise DatasetUnavailable(
                f"{name}.npz is not in the data directory {path.parent}. Put it there "
                f"(arrays {', '.join(ARRAYS)}; in this course, run shared/data/prepare {path.parent}), "
                "or unset NNDL_DATA_DIR to download it through keras.datasets.")
        with np.load(path, allow_pickle=False) as data:
            missing = [a for a in ("x_train", "y_train") if a not in data.files]
            if missing:
                raise DatasetUnavailable(f"{path} lacks the arrays {', '.join(missing)}; "
                                         f"a dataset file holds {', '.join(ARRAYS)}.")
            arrays = {a: (data[a] if a in data.files else None) for a in ARRAYS}
        return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
    try:
        import keras

        return getattr(keras.datasets, DATASETS[name]).load_data()
    except Exception as error:
        raise DatasetUnavailable(
            f"Could not load {name}: no data directory is set and keras.datasets could not get it "
            f"({type(error).__name__}: {error}). Either set NNDL_DATA_DIR to a folder holding {name}.npz "
            f"(arrays {', '.join(ARRAYS)}), or connect to the internet so keras.datasets.{DATASETS[name]} "
            "can download it.") from None


def fingerprint(name, *, directory=None):
    """A SHA-256 over the dataset's arrays, for recording what a threshold was calibrated on."""
    (x_train, y_train), (x_test, y_test) = load_data(name, directory=directory)
    digest = hashlib.sha256()
    for array in (x_train, y_train, x_test, y_test):
        if array is not None:
            digest.update(str((array.dtype.str, array.shape)).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _check_name(name):
    if name not in DATASETS:
        raise ValueError(f"Expected `name` to be one of {', '.join(sorted(DATASETS))}. Received: name={name!r}")
