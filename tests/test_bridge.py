"""The data channel between the student's kernel and the graders (nndl.bridge)."""

import base64
import io
import json
import pickle

import numpy as np
import pytest

from nndl.bridge import codec as bridge


def test_round_trip_of_plain_data_and_arrays():
    """Does plain data, with arrays inside, come back equal and with its dtype?"""
    value = {"a": [1, 2.5, None, True, "x"], "w": np.arange(6, dtype=np.float32).reshape(2, 3),
             "n": np.int64(7)}
    back = bridge.decode(json.loads(json.dumps(bridge.encode(value))))
    assert back["a"] == [1, 2.5, None, True, "x"]
    assert back["w"].dtype == np.float32 and back["w"].shape == (2, 3)
    assert np.array_equal(back["w"], value["w"])
    assert back["n"] == 7 and type(back["n"]) is int


def test_object_arrays_are_refused():
    """Is an object array, which would need pickle, refused on the way out?"""
    with pytest.raises(TypeError):
        bridge.encode(np.array([object()], dtype=object))


def test_pickled_array_from_a_kernel_is_not_unpickled():
    """Does a forged answer carrying a pickled object array fail instead of unpickling?"""
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    forged = {"__ndarray__": base64.b64encode(buffer.getvalue()).decode()}
    with pytest.raises(bridge.BridgeDecodeError):
        bridge.decode(forged)


def test_arbitrary_pickle_bytes_are_never_loaded(tmp_path):
    """Is an answer file holding a pickle rejected as not JSON?"""
    path = tmp_path / "answer.json"
    path.write_bytes(pickle.dumps({"ok": True, "value": 1}))
    with pytest.raises(bridge.BridgeDecodeError, match="not valid JSON"):
        bridge.read_answer(path)


def test_unknown_shapes_of_data_are_rejected():
    """Does a dict that is not one of the bridge's encodings fail to decode?"""
    with pytest.raises(bridge.BridgeDecodeError):
        bridge.decode({"__class__": "os.system", "args": ["true"]})


def test_oversized_answer_is_refused(tmp_path, monkeypatch):
    """Is an answer file over the cap refused before it is parsed?"""
    monkeypatch.setattr(bridge, "MAX_ANSWER_BYTES", 100)
    path = tmp_path / "answer.json"
    path.write_text(json.dumps({"ok": True, "value": "x" * 200}))
    with pytest.raises(bridge.BridgeDecodeError, match="larger than"):
        bridge.read_answer(path)


def test_answer_without_the_ok_flag_is_refused(tmp_path):
    """Does a file that is JSON but not an answer count as no answer?"""
    path = tmp_path / "answer.json"
    path.write_text(json.dumps({"value": 5}))
    with pytest.raises(bridge.BridgeDecodeError, match="format"):
        bridge.read_answer(path)


def test_tuples_reach_the_kernel_as_tuples():
    """Are a grader's tuple arguments decoded as tuples (the kernel code relies on it)?"""
    args, kwargs = bridge.encode_arguments(((1, 2), [3]), {"k": (4,)})
    assert bridge.decode(args) == [(1, 2), [3]]
    assert bridge.decode(kwargs) == {"k": (4,)}
