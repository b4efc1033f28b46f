"""Step 3 of DESIGN.md, trusted half: admit a student's Keras model as data.

A `.keras` file is a zip archive holding `config.json` (the architecture),
`metadata.json` and the weights (`model.weights.h5`). Before Keras
deserialises anything, the archive is checked here, in the process that will
load it:

- its size, its members and their uncompressed sizes (zip bombs);
- every object named in the config, against an allow-list of Keras's own
  classes;
- the weights file, an HDF5 file: only groups, hard links and plain numeric
  datasets stored inside the file itself. External links, soft links, external
  raw-data files, virtual datasets and filters would make the loader read
  other files of the host, or expand a few stored bytes into many; they are
  refused here whatever the installed Keras would do with them;
- the sizes the architecture declares: the config is built with Keras's own
  classes in a scope where variables are never created (and, on TensorFlow,
  in a graph, so no operation runs), which gives every variable's shape and
  every layer's output shape at no cost in memory. A model whose variables
  take more than its weights file holds, or more than this process may spend
  on one model, or whose layers make a tensor too large for one example, or
  that was saved unbuilt (it would create its weights when first called), is
  refused before Keras allocates anything: a config of a few bytes can
  otherwise ask for gigabytes.

Only then is it loaded, with ``safe_mode=True`` (no Python lambdas),
``compile=False`` (no student losses or metrics) and no custom objects.
"""

import contextlib
import io
import json
import math
import os
import re
import zipfile
import zlib

#: Largest model file accepted, in bytes.
MAX_MODEL_BYTES = 200 * 2**20
#: Largest total uncompressed size of the archive's members, in bytes.
MAX_UNCOMPRESSED_BYTES = 1024 * 2**20
#: Most bytes of weights one model may hold, in any process.
MAX_WEIGHT_BYTES = 1024 * 2**20
#: Set by the grader runner: the memory (bytes) the process loading models may hold.
#: One model's weights may use a sixth of it: loading holds them about three times
#: (Keras's copy of the weights file, the variables, each array on its way in),
#: on top of what the process held before.
MEMORY_LIMIT_ENV = "NNDL_GRADER_MEMORY_BYTES"
#: Bytes a model's variables may exceed the datasets of its weights file by.
WEIGHT_SLACK_BYTES = 2**20
#: Most groups and datasets a weights file may hold.
MAX_H5_OBJECTS = 100_000
#: Most values one layer's input or output may hold for one example (256 MiB of float32):
#: a course model's largest feature map is thousands of times smaller.
MAX_EXAMPLE_VALUES = 2**26
#: The members a Keras 3 archive may hold. Weights saved as ``model.weights.npz``
#: are refused: ``model.save`` never writes them, and they would need checks of
#: their own (Keras 3.10 reads them with no size check at all).
ALLOWED_MEMBERS = {"config.json", "metadata.json", "model.weights.h5", "assets/"}
WEIGHTS_MEMBER = "model.weights.h5"
#: Modules whose classes may appear in a model's config.
ALLOWED_MODULES = ("keras", "keras.layers", "keras.initializers", "keras.regularizers",
                   "keras.constraints", "keras.optimizers", "keras.optimizers.schedules",
                   "keras.losses", "keras.metrics", "keras.activations")
#: How Keras 3 names a functional model (``keras.Model(inputs, outputs)``) in its config.
FUNCTIONAL = ("keras.src.models.functional", "Functional")
#: Classes that run arbitrary code or load other files, refused everywhere.
DENIED_CLASSES = {"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"}


#: What reading a damaged, encrypted or oddly compressed archive member raises.
_UNREADABLE = (zipfile.BadZipFile, OSError, EOFError, zlib.error, RuntimeError, NotImplementedError)


class ModelRejected(ValueError):
    """The model file is not admitted; the message says why, for the student."""


def weight_budget():
    """Most bytes of weights one model may hold in this process.

    A sixth of the memory cap the grader runner set for this process
    (`MEMORY_LIMIT_ENV`), and never more than `MAX_WEIGHT_BYTES`.
    """
    try:
        memory = int(os.environ[MEMORY_LIMIT_ENV])
    except (KeyError, ValueError):
        return MAX_WEIGHT_BYTES
    return max(0, min(MAX_WEIGHT_BYTES, memory // 6))


def check_model_file(path, *, max_weight_bytes=None):
    """Check a `.keras` archive without allocating its weights.

    Args:
        path: the `.keras` file.
        max_weight_bytes: most bytes of weights admitted; `weight_budget()` if None.

    Returns:
        The parsed config (a dict).

    Raises:
        ModelRejected: oversized, not a Keras archive, unexpected members,
            a zip bomb, a class outside the allow-list, a weights file that is
            not plain HDF5 data, or an architecture that asks for more memory
            than it may have (`check_declared_sizes`).
    """
    budget = weight_budget() if max_weight_bytes is None else max_weight_bytes
    size = os.path.getsize(path)
    if size > MAX_MODEL_BYTES:
        raise ModelRejected(f"the model file is {size / 2**20:.0f} MiB; at most "
                            f"{MAX_MODEL_BYTES // 2**20} MiB is accepted")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelRejected(f"the model file is not a Keras archive ({error})") from None
    with archive:
        total = 0
        for info in archive.infolist():
            top = info.filename.split("/", 1)[0] + ("/" if "/" in info.filename else "")
            if info.filename == "model.weights.npz":
                raise ModelRejected("the model's weights are saved as model.weights.npz; graders accept "
                                    "only model.weights.h5, which model.save('name.keras') writes")
            if info.filename not in ALLOWED_MEMBERS and top not in ALLOWED_MEMBERS:
                raise ModelRejected(f"the model file holds an unexpected member {info.filename!r}")
            total += info.file_size
            if total > MAX_UNCOMPRESSED_BYTES:
                raise ModelRejected("the model file unpacks to more than "
                                    f"{MAX_UNCOMPRESSED_BYTES // 2**20} MiB")
        try:
            with archive.open("config.json") as handle:
                config = json.loads(handle.read(64 * 2**20 + 1))
        except KeyError:
            raise ModelRejected("the model file has no config.json") from None
        except (ValueError, *_UNREADABLE) as error:
            raise ModelRejected(f"the model's config.json cannot be read ({error})") from None
        check_config_classes(config)
        try:
            weights_size = archive.getinfo(WEIGHTS_MEMBER).file_size
        except KeyError:
            raise ModelRejected(f"the model file has no {WEIGHTS_MEMBER}; save the model with "
                                "model.save('name.keras')") from None
        if weights_size > budget + WEIGHT_SLACK_BYTES:
            raise ModelRejected(f"the model's weights take {_size(weights_size)}; graders load at most "
                                f"{_size(budget)} of weights")
        try:
            with archive.open(WEIGHTS_MEMBER) as handle:
                stored = check_weights_file(handle.read())
        except _UNREADABLE as error:
            raise ModelRejected(f"the model's {WEIGHTS_MEMBER} cannot be read ({error})") from None
    check_declared_sizes(config, stored, budget)
    return config


def check_config_classes(config):
    """Refuse any object in a serialised Keras config that is not Keras's own.

    Raises:
        ModelRejected: naming the first class that is not allowed.
    """
    import keras

    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        stack.extend(node.values())
        if "class_name" not in node:
            continue
        name, module = node.get("class_name"), node.get("module")
        registered = node.get("registered_name")
        if not isinstance(name, str) or name in DENIED_CLASSES:
            raise ModelRejected(f"the model uses the layer or object {name!r}, which graders do not load "
                                "(it can run arbitrary code); use Keras's built-in layers only")
        if module is None and name in ("__tuple__", "__bytes__", "__numpy__", "__keras_tensor__",
                                       "__lambda__", "function"):
            if name in ("__lambda__", "function"):
                raise ModelRejected("the model contains a Python function; use Keras's built-in layers "
                                    "and activation names only")
            continue
        if (module, name) == FUNCTIONAL:
            continue
        if module not in ALLOWED_MODULES:
            raise ModelRejected(f"the model uses {name!r} from {module!r}, which is not one of Keras's "
                                "built-in classes; custom classes are not accepted")
        if registered not in (None, name):
            raise ModelRejected(f"the model uses a custom registered object {registered!r}; "
                                "custom classes are not accepted")
        namespace = keras
        for part in module.split(".")[1:]:
            namespace = getattr(namespace, part, None)
        if namespace is None or not hasattr(namespace, name) and not _known_model_class(module, name):
            raise ModelRejected(f"the model uses an unknown class {module}.{name}")


def _known_model_class(module, name):
    return module == "keras" and name in ("Sequential", "Functional", "Model", "DTypePolicy", "FloatDTypePolicy")


def check_weights_file(data):
    """Check a model's weights file (HDF5 bytes) holds only plain data of its own.

    Every link is walked without following any that leaves the file.

    Returns:
        The bytes its datasets hold, once read into memory.

    Raises:
        ModelRejected: not HDF5; a soft, external or user-defined link; a
            named datatype; a dataset stored in other files, virtual,
            filtered (compressed), of a non-numeric type, or declaring more
            than it stores; more than `MAX_H5_OBJECTS` objects.
    """
    import h5py

    def refuse(what):
        raise ModelRejected(f"the model's {WEIGHTS_MEMBER} {what}; graders accept only the plain "
                            "weights that model.save writes")

    try:
        h5 = h5py.File(io.BytesIO(data), "r")
    except (OSError, ValueError) as error:
        raise ModelRejected(f"the model's {WEIGHTS_MEMBER} is not an HDF5 file ({error})") from None
    with h5:
        root = h5["/"]
        seen, stack, declared = {root.id}, [("/", root)], 0
        while stack:
            where, group = stack.pop()
            for name in group:
                path = f"{where.rstrip('/')}/{name}"
                link = group.get(name, getlink=True)
                if not isinstance(link, h5py.HardLink):
                    refuse(f"links {path!r} to somewhere else (an HDF5 {type(link).__name__})")
                item = group[name]
                if item.id in seen:
                    continue
                seen.add(item.id)
                if len(seen) > MAX_H5_OBJECTS:
                    refuse(f"holds more than {MAX_H5_OBJECTS} objects")
                if isinstance(item, h5py.Group):
                    stack.append((path, item))
                elif isinstance(item, h5py.Dataset):
                    declared += _check_dataset(path, item, refuse)
                else:
                    refuse(f"holds {path!r}, an HDF5 {type(item).__name__}, not a group or dataset")
    if declared > len(data):
        refuse(f"declares {_size(declared)} of data in {_size(len(data))}")
    return declared


def _check_dataset(path, dataset, refuse):
    """Bytes `dataset` holds in memory, after refusing anything but plain numbers stored here."""
    if dataset.external:
        refuse(f"stores {path!r} in another file ({dataset.external[0][0]!r})")
    if dataset.is_virtual:
        refuse(f"makes {path!r} a virtual dataset (read from other datasets or files)")
    dtype = dataset.dtype
    if dtype.kind not in "biufcV" or dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        refuse(f"holds {path!r} of type {dtype}, not plain numbers")
    plist = dataset.id.get_create_plist()
    if plist.get_nfilters():
        refuse(f"stores {path!r} filtered (compressed)")
    declared = math.prod(dataset.shape or ()) * dtype.itemsize
    stored = dataset.id.get_storage_size()
    if declared > stored:
        refuse(f"declares {_size(declared)} for {path!r} but stores {_size(stored)}")
    return declared


def declared_shapes(config):
    """What the model in `config` would create, built without allocating it.

    The model is built from its config by Keras itself, with variables left
    uninitialised (a stateless scope) and, on TensorFlow, inside a graph, so
    that no value is allocated and no operation runs: this costs what the
    config costs, whatever sizes it declares. The variables made here are
    forgotten before returning, so nothing initialises them later.

    Returns:
        ``(variables, tensors, unbuilt)``: ``[(path, shape, dtype)]`` of every
        variable, ``[(layer name, shape)]`` of every layer's inputs and
        outputs, and the names of the model or its layers if left unbuilt.

    Raises:
        ModelRejected: Keras cannot build the model from this config.
    """
    import keras
    from keras.src.backend.common import global_state
    from keras.src.saving.serialization_lib import ObjectSharingScope

    pending = list(global_state.get_global_attribute("uninitialized_variables") or [])
    try:
        with contextlib.ExitStack() as stack:
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                stack.enter_context(tf.Graph().as_default())
            stack.enter_context(keras.StatelessScope(initialize_variables=False))
            stack.enter_context(ObjectSharingScope())
            model = keras.saving.deserialize_keras_object(dict(config, compile_config=None),
                                                          safe_mode=True)
            if not isinstance(model, keras.Model):
                raise ModelRejected(f"the file holds a {type(model).__name__}, not a Keras model")
            layers = list(model._flatten_layers(include_self=True, recursive=True))
            variables = [(v.path, tuple(int(d) for d in v.shape), str(v.dtype)) for v in model.weights]
            tensors = [(layer.name, tuple(t.shape)) for layer in layers for node in layer._inbound_nodes
                       for t in (*node.input_tensors, *node.output_tensors)]
            unbuilt = [layer.name for layer in (model, *model.layers) if not layer.built]
            return variables, tensors, unbuilt
    except ModelRejected:
        raise
    except Exception as error:
        raise ModelRejected("the model cannot be built from its config "
                            f"({type(error).__name__}: {str(error)[:300]})") from None
    finally:
        global_state.set_global_attribute("uninitialized_variables", pending)


def check_declared_sizes(config, stored_bytes, max_weight_bytes):
    """Refuse a model whose architecture asks for more memory than it may have.

    Args:
        config: the model's parsed config.
        stored_bytes: the bytes its weights file holds (`check_weights_file`).
        max_weight_bytes: the most bytes of weights admitted.

    Returns:
        The bytes its variables will take.

    Raises:
        ModelRejected: unbuilt; weights over `max_weight_bytes`, or over
            what the weights file holds (a config that does not match its
            weights); a layer's input or output over `MAX_EXAMPLE_VALUES`
            per example (it would be allocated when the model is built, or
            for every example it is given).
    """
    variables, tensors, unbuilt = declared_shapes(config)
    if unbuilt:
        raise ModelRejected(f"the model was saved unbuilt ({unbuilt[0]!r} has no input shape), so it "
                            "holds no weights; start it with keras.Input(shape=...) and train it before saving")
    sizes = [(math.prod(shape) * _itemsize(dtype), path, shape) for path, shape, dtype in variables]
    total = sum(size for size, _, _ in sizes)
    if total > min(max_weight_bytes, stored_bytes + WEIGHT_SLACK_BYTES):
        _, path, shape = max(sizes)
        declared = (f"the model's architecture declares {_size(total)} of weights "
                    f"(the largest, {path}, has shape {shape})")
        if total > max_weight_bytes:
            raise ModelRejected(f"{declared}; graders load at most {_size(max_weight_bytes)} of weights")
        raise ModelRejected(f"{declared}, but its weights file holds only {_size(stored_bytes)}: the config "
                            "does not match the weights")
    for layer, shape in tensors:
        values = math.prod(d or 1 for d in shape[1:])
        if values > MAX_EXAMPLE_VALUES:
            raise ModelRejected(f"the model's layer {layer!r} handles tensors of shape {shape}, "
                                f"{values:,} values for each example; graders accept at most "
                                f"{MAX_EXAMPLE_VALUES:,}")
    return total


def _itemsize(dtype):
    """Bytes per element of a Keras dtype name (``float32``, ``bfloat16``, ``float8_e4m3fn``, ``bool``...)."""
    if dtype == "bool":
        return 1
    bits = re.search(r"\d+", dtype)
    return max(1, int(bits.group()) // 8) if bits else 8


def _size(n):
    """`n` bytes for a person to read: ``512 B``, ``4.0 MiB``, ``11.0 GiB``."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"


def load_model_safely(path, *, max_weight_bytes=None):
    """Check, then load, a student's `.keras` file.

    Args:
        path: the `.keras` file.
        max_weight_bytes: most bytes of weights admitted; `weight_budget()` if None.

    Returns:
        A `keras.Model`, uncompiled.

    Raises:
        ModelRejected: when the checks or the load fail.
    """
    check_model_file(path, max_weight_bytes=max_weight_bytes)
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False, custom_objects=None)
    except Exception as error:
        raise ModelRejected(f"the model could not be loaded ({type(error).__name__}: {error})") from None
