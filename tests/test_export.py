"""Admitting a student's Keras model on the trusted side (nndl.bridge.models)."""

import json
import zipfile

import pytest

from nndl.bridge import models as export

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def dense_model_file(tmp_path_factory):
    """A small built-in Keras model saved as a .keras file."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="tanh"),
                              keras.layers.BatchNormalization(), keras.layers.Dense(1, activation="sigmoid")])
    path = tmp_path_factory.mktemp("models") / "ok.keras"
    model.save(path)
    return path


def _rewrite_config(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return dst


def test_builtin_model_loads(dense_model_file):
    """Does a model made only of Keras's own layers load, uncompiled?"""
    model = export.load_model_safely(dense_model_file)
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "BatchNormalization", "Dense"]
    assert model.count_params() == sum(int(w.numpy().size) for w in model.weights)


def test_lambda_layer_is_rejected_before_loading(tmp_path):
    """Is a Lambda layer (arbitrary code) refused by the allow-list, not merely by safe_mode?"""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(export.ModelRejected, match="Lambda"):
        export.check_model_file(path)


def test_unknown_class_is_rejected(dense_model_file, tmp_path):
    """Is a layer class from outside Keras refused?"""
    def edit(config):
        config["config"]["layers"][1]["module"] = "evil.layers"
        config["config"]["layers"][1]["class_name"] = "Backdoor"
    path = _rewrite_config(dense_model_file, tmp_path / "unknown.keras", edit)
    with pytest.raises(export.ModelRejected, match="Backdoor"):
        export.check_model_file(path)


def test_custom_registered_object_is_rejected(dense_model_file, tmp_path):
    """Is a Keras-module class carrying a custom registered name refused?"""
    def edit(config):
        config["config"]["layers"][1]["registered_name"] = "my_package>Dense"
    path = _rewrite_config(dense_model_file, tmp_path / "registered.keras", edit)
    with pytest.raises(export.ModelRejected, match="custom"):
        export.check_model_file(path)


def test_zip_bomb_is_rejected(tmp_path, monkeypatch):
    """Is an archive that unpacks past the cap refused without unpacking it?"""
    monkeypatch.setattr(export, "MAX_UNCOMPRESSED_BYTES", 10 * 2**20)
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"\0" * (20 * 2**20))
    assert path.stat().st_size < 1 * 2**20
    with pytest.raises(export.ModelRejected, match="unpacks to more than"):
        export.check_model_file(path)


def test_oversized_file_is_rejected(dense_model_file, monkeypatch):
    """Is a model file over the size cap refused?"""
    monkeypatch.setattr(export, "MAX_MODEL_BYTES", 100)
    with pytest.raises(export.ModelRejected, match="at most"):
        export.check_model_file(dense_model_file)


def test_unexpected_member_is_rejected(dense_model_file, tmp_path):
    """Is an archive with extra files (a planted pickle, say) refused?"""
    path = tmp_path / "extra.keras"
    with zipfile.ZipFile(dense_model_file) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, zin.read(item.filename))
        zout.writestr("payload.pkl", b"\x80\x04.")
    with pytest.raises(export.ModelRejected, match="unexpected member"):
        export.check_model_file(path)


def test_not_a_zip_is_rejected(tmp_path):
    """Does a file that is not an archive give a clear message?"""
    path = tmp_path / "junk.keras"
    path.write_bytes(b"not a zip")
    with pytest.raises(export.ModelRejected, match="not a Keras archive"):
        export.check_model_file(path)
