"""The course's dataset loader (nndl_datasets)."""

import numpy as np
import pytest

import nndl_datasets


@pytest.mark.data
@pytest.mark.parametrize("name, x_shape, y_shape", [
    ("mnist", (60000, 28, 28), (60000,)),
    ("fashion_mnist", (60000, 28, 28), (60000,)),
    ("cifar10", (50000, 32, 32, 3), (50000, 1)),
])
def test_loads_in_the_shapes_keras_returns(data_dir, name, x_shape, y_shape):
    """Does each dataset come back in keras.datasets' shapes and dtypes?"""
    (x_train, y_train), (x_test, y_test) = nndl_datasets.load_data(name, directory=data_dir)
    assert x_train.shape == x_shape and x_train.dtype == np.uint8
    assert y_train.shape == y_shape
    assert x_test.shape[1:] == x_shape[1:] and len(x_test) == len(y_test) == 10000


@pytest.mark.data
def test_mnist_is_the_real_mnist(data_dir):
    """Are these MNIST's published first labels (5 0 4 1 9 / 7 2 1 0 4)?"""
    (_, y_train), (_, y_test) = nndl_datasets.load_data("mnist", directory=data_dir)
    assert list(y_train[:5]) == [5, 0, 4, 1, 9] and list(y_test[:5]) == [7, 2, 1, 0, 4]


def test_training_split_only_directory(tmp_path):
    """Does a sandbox's data folder (training split only) load with the test arrays absent?"""
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((3, 28, 28), np.uint8), y_train=np.arange(3))
    (x_train, y_train), (x_test, y_test) = nndl_datasets.load_data("mnist", directory=tmp_path)
    assert x_train.shape == (3, 28, 28) and x_test is None and y_test is None


def test_missing_file_names_the_fix(tmp_path, monkeypatch):
    """Does a data folder without the file say where to put it and how else to get it?"""
    monkeypatch.setenv("NNDL_DATA_DIR", str(tmp_path))
    with pytest.raises(nndl_datasets.DatasetUnavailable, match="not in the data directory") as info:
        nndl_datasets.load_data("cifar10")
    assert "NNDL_DATA_DIR" in str(info.value)


def test_neither_source_names_both_fixes(tmp_path, monkeypatch):
    """With no data folder and no network, does the error name both ways to fix it?"""
    monkeypatch.delenv("NNDL_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty Keras cache: it must download
    with pytest.raises(nndl_datasets.DatasetUnavailable) as info:
        nndl_datasets.load_data("fashion_mnist")
    assert "NNDL_DATA_DIR" in str(info.value) and "internet" in str(info.value)


def test_unknown_name_echoes_the_value():
    """Is an unknown dataset name refused, echoing what was received?"""
    with pytest.raises(ValueError, match="name='imagenet'"):
        nndl_datasets.load_data("imagenet")


def test_fingerprint_changes_with_the_data(tmp_path):
    """Does the fingerprint tell two different data files apart, and repeat for the same one?"""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    np.savez(a / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.arange(2))
    np.savez(b / "mnist.npz", x_train=np.ones((2, 28, 28), np.uint8), y_train=np.arange(2))
    assert nndl_datasets.fingerprint("mnist", directory=a) == nndl_datasets.fingerprint("mnist", directory=a)
    assert nndl_datasets.fingerprint("mnist", directory=a) != nndl_datasets.fingerprint("mnist", directory=b)
