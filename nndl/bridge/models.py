"""Step 3 of DESIGN.md, trusted half: admit a student's Keras model as data.

A `.keras` file is a zip archive holding `config.json` (the architecture),
`metadata.json` and the weights. Before Keras deserialises anything, the
archive is checked here: its size, its members and their uncompressed sizes
(zip bombs), and every object named in the config against an allow-list of
Keras's own classes. Only then is it loaded, with ``safe_mode=True`` (no
Python lambdas), ``compile=False`` (no student losses or metrics) and no
custom objects.
"""

import json
import zipfile

#: Largest model file accepted, in bytes.
MAX_MODEL_BYTES = 200 * 2**20
#: Largest total uncompressed size of the archive's members, in bytes.
MAX_UNCOMPRESSED_BYTES = 1024 * 2**20
#: The members a Keras 3 archive may hold.
ALLOWED_MEMBERS = {"config.json", "metadata.json", "model.weights.h5", "model.weights.npz", "assets/"}
#: Modules whose classes may appear in a model's config.
ALLOWED_MODULES = ("keras", "keras.layers", "keras.initializers", "keras.regularizers",
                   "keras.constraints", "keras.optimizers", "keras.optimizers.schedules",
                   "keras.losses", "keras.metrics", "keras.activations")
#: Classes that run arbitrary code or load other files, refused everywhere.
DENIED_CLASSES = {"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"}


class ModelRejected(ValueError):
    """The model file is not admitted; the message says why, for the student."""


def check_model_file(path):
    """Check a `.keras` archive without deserialising it.

    Returns:
        The parsed config (a dict).

    Raises:
        ModelRejected: oversized, not a Keras archive, unexpected members,
            a zip bomb, or a class outside the allow-list.
    """
    import os

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
        except (ValueError, zipfile.BadZipFile) as error:
            raise ModelRejected(f"the model's config.json cannot be read ({error})") from None
    check_config_classes(config)
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
        if module is None and name in ("__tuple__", "__bytes__", "__numpy__", "__lambda__", "function"):
            if name in ("__lambda__", "function"):
                raise ModelRejected("the model contains a Python function; use Keras's built-in layers "
                                    "and activation names only")
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


def load_model_safely(path):
    """Check, then load, a student's `.keras` file.

    Returns:
        A `keras.Model`, uncompiled.

    Raises:
        ModelRejected: when the checks or the load fail.
    """
    check_model_file(path)
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False, custom_objects=None)
    except Exception as error:
        raise ModelRejected(f"the model could not be loaded ({type(error).__name__}: {error})") from None
