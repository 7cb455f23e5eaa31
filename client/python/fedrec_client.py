"""fedrec's client library (include/fedrec/client.h) for Python, through ctypes.

The same calls as the C API, one to one; the C API is the contract and this module adds no
logic. For research notebooks and tools: open a device's store, record events, sync with a
coordinator, recommend and explain, all on this machine. The library is libfedrec-client.so
(built with the project: build/release/client/libfedrec-client.so); set FEDREC_CLIENT_LIB to
its path, or pass lib= to Client.

    from fedrec_client import Client
    with Client("me.db") as c:
        c.record("i42", 1.0)
        print(c.recommend(5))
"""
import ctypes
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple


class _Error(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("msg", ctypes.c_char * 512)]


class _Config(ctypes.Structure):
    _fields_ = [
        ("store", ctypes.c_char_p), ("target", ctypes.c_char_p), ("ca_file", ctypes.c_char_p),
        ("cert_file", ctypes.c_char_p), ("key_file", ctypes.c_char_p), ("insecure", ctypes.c_int),
        ("token", ctypes.c_char_p), ("coordinator_key", ctypes.c_char_p), ("catalogue", ctypes.c_char_p),
        ("weights", ctypes.c_char_p), ("max_catalogue_mb", ctypes.c_uint32), ("max_participation", ctypes.c_uint32),
        ("min_separation", ctypes.c_uint32), ("authority_key", ctypes.c_char_p), ("call_timeout_ms", ctypes.c_uint32),
        ("sync_timeout_ms", ctypes.c_uint32), ("must_exist", ctypes.c_int), ("region", ctypes.c_char_p),
    ]


class _Outcome(ctypes.Structure):
    _fields_ = [
        ("result", ctypes.c_int), ("failure", ctypes.c_int), ("round", ctypes.c_uint64),
        ("model_version", ctypes.c_uint64), ("retry_after_ms", ctypes.c_uint32), ("resumed_at", ctypes.c_uint64),
        ("detail", ctypes.c_char * 600),
    ]


EXPLAIN_MAX = 5


class _Entry(ctypes.Structure):
    _fields_ = [("item", ctypes.c_char * 64), ("contribution", ctypes.c_float)]


class _Explanation(ctypes.Structure):
    _fields_ = [
        ("item", ctypes.c_char * 64), ("score", ctypes.c_float), ("history", ctypes.c_int32), ("n", ctypes.c_int32),
        ("by", _Entry * EXPLAIN_MAX), ("similar", _Entry * EXPLAIN_MAX), ("rest", ctypes.c_float),
        ("n_similar", ctypes.c_int32),
    ]


# fedrec_sync_result and fedrec_sync_failure
NOT_SELECTED, PARTICIPATED, LEFT_OUT, STOPPED, SPENT = range(5)
RESULTS = ("not selected", "participated", "left out", "stopped", "models only")
FAIL_NONE, FAIL_NETWORK, FAIL_CONFIG, FAIL_AUTH, FAIL_INTEGRITY = range(5)


class FedrecError(Exception):
    """A call that failed: status is the fedrec_status number; for sync, failure says whether
    retrying helps (FAIL_NETWORK) and retry_after_ms when."""

    def __init__(self, status: int, message: str, failure: int = 0, retry_after_ms: int = 0):
        super().__init__(message)
        self.status, self.failure, self.retry_after_ms = status, failure, retry_after_ms


@dataclass
class SyncOutcome:
    result: int
    round: int
    model_version: int
    retry_after_ms: int
    resumed_at: int
    detail: str


@dataclass
class Explanation:
    item: str
    score: float
    history: int
    by: List[Tuple[str, float]]        # history items and their exact contributions
    rest: float                        # score = sum of by + rest
    similar: List[Tuple[str, float]]   # history items nearest in content, with the cosine


def _load(path: Optional[str]) -> ctypes.CDLL:
    path = path or os.environ.get("FEDREC_CLIENT_LIB") or "libfedrec-client.so"
    lib = ctypes.CDLL(path)
    p, e = ctypes.c_void_p, ctypes.POINTER(_Error)
    sigs = {
        "fedrec_client_open": [ctypes.POINTER(p), ctypes.POINTER(_Config), e],
        "fedrec_client_record": [p, ctypes.c_char_p, ctypes.c_float, e],
        "fedrec_client_history_size": [p, ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int64), e],
        "fedrec_client_sync": [p, ctypes.POINTER(_Outcome), e],
        "fedrec_client_recommend": [p, ctypes.c_int32, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float),
                                    ctypes.POINTER(ctypes.c_int32), e],
        "fedrec_client_explain": [p, ctypes.c_char_p, ctypes.POINTER(_Explanation), e],
        "fedrec_client_set_region": [p, ctypes.c_char_p, e],
    }
    for name, args in sigs.items():
        f = getattr(lib, name)
        f.argtypes, f.restype = args, ctypes.c_int
    lib.fedrec_client_close.argtypes, lib.fedrec_client_close.restype = [p], None
    lib.fedrec_client_title.argtypes = [p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.fedrec_client_title.restype = ctypes.c_int
    lib.fedrec_client_model_version.argtypes, lib.fedrec_client_model_version.restype = [p], ctypes.c_uint64
    return lib


def _b(s: Optional[str]) -> Optional[bytes]:
    return None if s is None else s.encode()


class Client:
    """A device's client handle (fedrec_client_open): keyword arguments are the fields of
    fedrec_client_config; None or 0 takes the value saved in the store. One thread at a time."""

    def __init__(self, store: str, *, target=None, ca_file=None, cert_file=None, key_file=None, insecure=False,
                 token=None, coordinator_key=None, catalogue=None, weights=None, max_catalogue_mb=0,
                 max_participation=0, min_separation=0, authority_key=None, call_timeout_ms=0, sync_timeout_ms=0,
                 must_exist=False, region=None, lib=None):
        self._lib = _load(lib)
        self._h = ctypes.c_void_p()
        cfg = _Config(_b(store), _b(target), _b(ca_file), _b(cert_file), _b(key_file), int(insecure), _b(token),
                      _b(coordinator_key), _b(catalogue), _b(weights), max_catalogue_mb, max_participation,
                      min_separation, _b(authority_key), call_timeout_ms, sync_timeout_ms, int(must_exist), _b(region))
        self._call("fedrec_client_open", ctypes.byref(self._h), ctypes.byref(cfg), handle=False)

    def _call(self, name, *args, handle=True):
        if handle and not self._h:
            raise FedrecError(8, "fedrec client: the handle is closed")
        err = _Error()
        st = getattr(self._lib, name)(*((self._h,) if handle else ()), *args, ctypes.byref(err))
        if st:
            raise FedrecError(st, err.msg.decode(errors="replace"))

    def record(self, item: str, weight: float = 1.0) -> None:
        self._call("fedrec_client_record", _b(item), weight)

    def history_size(self) -> Tuple[int, int]:
        events, items = ctypes.c_int64(), ctypes.c_int64()
        self._call("fedrec_client_history_size", ctypes.byref(events), ctypes.byref(items))
        return events.value, items.value

    def sync(self) -> SyncOutcome:
        o = _Outcome()
        try:
            self._call("fedrec_client_sync", ctypes.byref(o))
        except FedrecError as e:
            e.failure, e.retry_after_ms = o.failure, o.retry_after_ms
            raise
        return SyncOutcome(o.result, o.round, o.model_version, o.retry_after_ms, o.resumed_at,
                           o.detail.decode(errors="replace"))

    def recommend(self, k: int = 10) -> List[Tuple[str, float]]:
        if k < 1:
            raise FedrecError(5, "recommend: k must be >= 1")
        items = (ctypes.c_char * 64 * k)()
        scores = (ctypes.c_float * k)()
        n = ctypes.c_int32()
        self._call("fedrec_client_recommend", k, items, scores, ctypes.byref(n))
        return [(items[r].value.decode(), scores[r]) for r in range(n.value)]

    def explain(self, item: str) -> Explanation:
        x = _Explanation()
        self._call("fedrec_client_explain", _b(item), ctypes.byref(x))
        return Explanation(x.item.decode(), x.score, x.history,
                           [(x.by[r].item.decode(), x.by[r].contribution) for r in range(x.n)], x.rest,
                           [(x.similar[r].item.decode(), x.similar[r].contribution) for r in range(x.n_similar)])

    def set_region(self, groups: str) -> None:
        self._call("fedrec_client_set_region", _b(groups))

    def title(self, item: str) -> Optional[str]:
        buf = ctypes.create_string_buffer(256)
        if not self._h or self._lib.fedrec_client_title(self._h, _b(item), buf, 256):
            return None
        return buf.value.decode(errors="replace")

    def model_version(self) -> int:
        return self._lib.fedrec_client_model_version(self._h) if self._h else 0

    def close(self) -> None:
        if self._h:
            self._lib.fedrec_client_close(self._h)
            self._h = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
