"""Admitting a student's Keras model on the trusted side (nndl.bridge.models)."""

import io
import json
import re
import zipfile

import numpy as np
import pytest

from nndl.bridge import models as export

keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")
L = keras.layers


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


def _save(model, path):
    model.save(path)
    return path


def _layers(node):
    """Every serialised object in a config, nested models included."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "class_name" in node:
                yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _set(class_name, **values):
    """A config edit setting `values` in every layer of `class_name`."""
    def edit(config):
        for layer in _layers(config):
            if layer["class_name"] == class_name:
                layer["config"].update(values)
    return edit


def _widen_input(width):
    """A config edit making every declared input shape ``(None, width)``."""
    def edit(config):
        for layer in _layers(config):
            if "batch_shape" in layer.get("config", {}):
                layer["config"]["batch_shape"] = [None, width]
            if isinstance(layer.get("build_config"), dict) and "input_shape" in layer["build_config"]:
                layer["build_config"]["input_shape"] = [None, width]
    return edit


def _nested_functional():
    inputs = keras.Input((2**16,))
    inner = keras.Sequential([keras.Input((2**16,)), L.Dense(2)], name="inner")
    return keras.Model(inputs, inner(inputs))


#: Tiny honest models, and a config edit that makes each ask for far more memory than
#: the file holds, when loaded or when called: (model, edit, what the refusal says).
SIZE_ATTACKS = {
    "dense_10e9_units": (lambda: keras.Sequential([keras.Input((4,)), L.Dense(2)]),
                         _set("Dense", units=10**9), "graders load at most"),
    "dense_64_GiB_kernel": (lambda: keras.Sequential([keras.Input((2**20,)), L.Dense(2)]),
                            _set("Dense", units=2**14), "graders load at most"),
    "embedding_10e8_by_1000": (lambda: keras.Sequential([keras.Input((3,), dtype="int32"), L.Embedding(10, 4)]),
                               _set("Embedding", input_dim=10**8, output_dim=1000), "graders load at most"),
    "conv2d_giant_filters": (lambda: keras.Sequential([keras.Input((100, 100, 3)), L.Conv2D(2, 3)]),
                             _set("Conv2D", filters=10**5, kernel_size=[99, 99]), "graders load at most"),
    "sequential_nested_in_functional": (_nested_functional, _set("Dense", units=2**16), "graders load at most"),
    "lstm_10e5_units": (lambda: keras.Sequential([keras.Input((3, 4)), L.LSTM(2)]),
                        _set("LSTM", units=10**5), "graders load at most"),
    "batchnorm_512_MiB_over_a_tiny_file": (lambda: keras.Sequential([keras.Input((4,)), L.BatchNormalization()]),
                                           _widen_input(2**25), "does not match the weights"),
    "normalization_broadcast_to_10e9": (
        lambda: keras.Sequential([keras.Input((4,)), L.Normalization(mean=0.5, variance=2.0)]),
        _widen_input(10**9), "graders accept at most"),
    "upsampling_by_1000_at_every_call": (
        lambda: keras.Sequential([keras.Input((28, 28, 1)), L.UpSampling2D(2)]),
        _set("UpSampling2D", size=[1000, 1000]), "graders accept at most"),
    "unbuilt_dense_10e9": (lambda: keras.Sequential([L.Dense(2)]), _set("Dense", units=10**9), "saved unbuilt"),
}


def _peak_rss_reset():
    """Reset this process's peak RSS (Linux), returning the RSS now in MiB."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pytest.skip("cannot reset the peak RSS here (/proc/self/clear_refs)")
    return _status_mib("VmRSS")


def _status_mib(key):
    with open("/proc/self/status") as handle:
        return int(re.search(rf"{key}:\s+(\d+) kB", handle.read()).group(1)) / 1024


def _never_loaded(*args, **kwargs):
    raise AssertionError("Keras was asked to load a model the checks should have refused")


@pytest.mark.parametrize("attack", sorted(SIZE_ATTACKS))
def test_declared_sizes_are_refused_before_allocating(attack, tmp_path, monkeypatch):
    """Is a tiny file whose config asks for huge weights or tensors refused, holding no more memory?"""
    build, edit, refusal = SIZE_ATTACKS[attack]
    path = _rewrite_config(_save(build(), tmp_path / "honest.keras"), tmp_path / "attack.keras", edit)
    assert path.stat().st_size < 10 * 2**20
    monkeypatch.setattr(keras.saving, "load_model", _never_loaded)
    before = _peak_rss_reset()
    with pytest.raises(export.ModelRejected, match=refusal):
        export.load_model_safely(path)
    held = _status_mib("VmHWM") - before
    assert held < 64, f"checking the model took {held:.0f} MiB more memory"


#: Honest architectures the size checks must admit, nested and preprocessing models included.
def _honest_models():
    inputs = keras.Input((6,))
    inner = keras.Sequential([keras.Input((6,)), L.Dense(3)], name="inner")
    both = L.Concatenate()([inner(inputs), L.Dense(3)(inputs)])
    norm = L.Normalization()
    norm.adapt(np.arange(10, dtype="float32").reshape(5, 2))
    text = L.TextVectorization(max_tokens=20, output_sequence_length=4)
    text.adapt(["hello world", "a b c"])
    attention = keras.Input((5, 8))
    return {
        "mlp": keras.Sequential([keras.Input((8,)), L.Dense(4, activation="relu"), L.Dropout(0.1),
                                 L.BatchNormalization(), L.Dense(1)]),
        "cnn": keras.Sequential([keras.Input((28, 28, 1)), L.Rescaling(1 / 255), L.RandomFlip(), L.Conv2D(4, 3),
                                 L.MaxPooling2D(), L.SeparableConv2D(4, 3), L.GlobalAveragePooling2D(),
                                 L.Dense(10, activation="softmax")]),
        "rnn": keras.Sequential([keras.Input((None,), dtype="int32"), L.Embedding(100, 8),
                                 L.Bidirectional(L.LSTM(4, return_sequences=True)), L.GRU(3), L.Dense(1)]),
        "functional_with_nested_sequential": keras.Model(inputs, L.Dense(2)(L.Add()([both, both]))),
        "attention": keras.Model(attention, L.Flatten()(L.MultiHeadAttention(2, 4)(attention, attention))),
        "preprocessing": keras.Sequential([keras.Input((2,)), norm, L.Normalization(mean=0.5, variance=2.0),
                                           L.Dense(2)]),
        "text": keras.Sequential([keras.Input((1,), dtype="string"), text, L.Embedding(20, 3)]),
    }


def test_honest_models_are_admitted_and_load(tmp_path):
    """Do honest architectures of every kind pass the checks and load with their weights?"""
    for name, model in _honest_models().items():
        path = _save(model, tmp_path / f"{name}.keras")
        loaded = export.load_model_safely(path)
        assert [w.shape for w in loaded.weights] == [w.shape for w in model.weights], name
        for mine, theirs in zip(loaded.weights, model.weights):
            np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs), err_msg=name)


def test_weight_budget_follows_the_graders_memory_cap(tmp_path, monkeypatch):
    """Does the grader runner's memory cap bound the weights one model may bring (a sixth of it)?"""
    small = _save(keras.Sequential([keras.Input((100,)), L.Dense(100)]), tmp_path / "small.keras")  # 40 KiB
    large = _save(keras.Sequential([keras.Input((1000,)), L.Dense(2000)]), tmp_path / "large.keras")  # 7.6 MiB
    monkeypatch.setenv(export.MEMORY_LIMIT_ENV, str(24 * 2**20))
    assert export.weight_budget() == 4 * 2**20
    export.check_model_file(small)
    with pytest.raises(export.ModelRejected, match=r"graders load at most 4\.0 MiB"):
        export.check_model_file(large)
    monkeypatch.delenv(export.MEMORY_LIMIT_ENV)
    export.check_model_file(large)


def _rewrite_weights(src, dst, edit):
    """Copy a .keras archive, letting `edit(h5, kernel_path)` change its model.weights.h5 with h5py."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "model.weights.h5":
                buffer = io.BytesIO(data)
                with h5py.File(buffer, "r+") as h5:
                    edit(h5, min(_datasets(h5)))
                data = buffer.getvalue()
            zout.writestr(item, data)
    return dst


def _datasets(h5):
    """The paths of every dataset in an open HDF5 file."""
    names = []
    h5.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _replace(make):
    """An edit swapping the first weights dataset for `make(h5, path, array)`."""
    def edit(h5, path):
        array = h5[path][()]
        del h5[path]
        make(h5, path, array)
    return edit


def _host_files(folder):
    """A host file of raw floats and an HDF5 file with a dataset, as a planted weights file would point at."""
    raw = folder / "host.bin"
    raw.write_bytes(np.full(64, 7, dtype="float32").tobytes())
    with h5py.File(folder / "host.h5", "w") as h5:
        h5["data"] = np.full((2, 2), 7, dtype="float32")
    return raw, folder / "host.h5"


def _virtual(h5, path, array, host):
    layout = h5py.VirtualLayout(shape=array.shape, dtype=array.dtype)
    layout[...] = h5py.VirtualSource(str(host), "data", shape=array.shape)
    h5.create_virtual_dataset(path, layout)


#: Ways an HDF5 weights file can make its reader read host files or expand: (edit, what the refusal says).
HDF5_ATTACKS = {
    "external_raw_storage": (lambda raw, host: _replace(lambda h5, path, a: h5.create_dataset(
        path, a.shape, a.dtype, external=[(str(raw), 0, a.nbytes)])), "another file"),
    "external_link": (lambda raw, host: _replace(
        lambda h5, path, a: h5.__setitem__(path, h5py.ExternalLink(str(host), "/data"))), "ExternalLink"),
    "soft_link": (lambda raw, host: _replace(lambda h5, path, a: (
        h5.__setitem__("elsewhere", a), h5.__setitem__(path, h5py.SoftLink("/elsewhere")))), "SoftLink"),
    "virtual_dataset": (lambda raw, host: _replace(lambda h5, path, a: _virtual(h5, path, a, host)), "virtual"),
    "compressed_dataset": (lambda raw, host: _replace(
        lambda h5, path, a: h5.create_dataset(path, data=a, compression="gzip")), "filtered"),
    "unallocated_1_GiB_dataset": (lambda raw, host: _replace(
        lambda h5, path, a: h5.create_dataset(path, (2**28,), "float32")), "declares 1.0 GiB"),
    "named_datatype": (lambda raw, host: lambda h5, path: h5.__setitem__("T", np.dtype("float32")), "Datatype"),
    "object_references": (lambda raw, host: lambda h5, path: h5.create_dataset(
        "refs", (1,), dtype=h5py.ref_dtype), "not plain numbers"),
    "strings": (lambda raw, host: lambda h5, path: h5.create_dataset(
        "names", data=["a", "b"], dtype=h5py.string_dtype()), "not plain numbers"),
}


@pytest.mark.parametrize("attack", sorted(HDF5_ATTACKS))
def test_hdf5_features_reaching_outside_the_file_are_refused(attack, dense_model_file, tmp_path, monkeypatch):
    """Is a weights file with links, external or virtual storage, filters or odd types refused before Keras reads it?"""
    make_edit, refusal = HDF5_ATTACKS[attack]
    path = _rewrite_weights(dense_model_file, tmp_path / "planted.keras", make_edit(*_host_files(tmp_path)))
    monkeypatch.setattr(keras.saving, "load_model", _never_loaded)
    with pytest.raises(export.ModelRejected, match=f"model.weights.h5 .*{refusal}"):
        export.load_model_safely(path)


def test_npz_weights_are_refused(dense_model_file, tmp_path):
    """Is an archive carrying its weights as model.weights.npz (never written by model.save) refused?"""
    path = tmp_path / "npz.keras"
    with zipfile.ZipFile(dense_model_file) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.infolist():
            if item.filename != "model.weights.h5":
                zout.writestr(item, zin.read(item.filename))
        buffer = io.BytesIO()
        np.savez(buffer, a=np.zeros(3))
        zout.writestr("model.weights.npz", buffer.getvalue())
    with pytest.raises(export.ModelRejected, match="model.weights.npz"):
        export.check_model_file(path)
