"""The datasets a sandbox sees: the training split only.

Test labels never enter a sandbox: graders measure accuracy on the trusted
side, on data the student's code never had. This module makes (once, then
reuses) a copy of each dataset file in the trusted data directory that holds
only ``x_train`` and ``y_train``; `nndl_datasets.load_data` inside the sandbox
reads it and returns None for the test arrays.
"""

import hashlib
import os
import pathlib

import numpy as np

import nndl_datasets


def cache_root():
    """Where training-only copies are kept (outside any course folder)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "nndl" / "training-only"


def training_only_dir(source=None):
    """A folder of training-only copies of the datasets in `source` (NNDL_DATA_DIR by default).

    Returns:
        The folder's path as a string, or None when there is no data directory.
    """
    source = pathlib.Path(source) if source else nndl_datasets.data_dir()
    if source is None or not source.is_dir():
        return None
    key = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
    target = cache_root() / key
    target.mkdir(parents=True, exist_ok=True)
    for name in nndl_datasets.DATASETS:
        original = source / f"{name}.npz"
        copy = target / f"{name}.npz"
        if not original.exists():
            continue
        if copy.exists() and copy.stat().st_mtime >= original.stat().st_mtime:
            continue
        with np.load(original, allow_pickle=False) as data:
            partial = target / f".{name}.partial.npz"
            np.savez(partial, x_train=data["x_train"], y_train=data["y_train"])
        os.replace(partial, copy)
        os.chmod(copy, 0o644)
    os.chmod(target, 0o755)
    for parent in (target.parent, target.parent.parent):
        os.chmod(parent, 0o755)
    return str(target)
