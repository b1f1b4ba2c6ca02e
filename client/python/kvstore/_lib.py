"""ctypes declarations of libkvc (client/kvc.h), and finding the library.

Every structure mirrors its C declaration field for field, in order, with
the C types' own sizes, so ctypes lays it out as the C compiler does on
the same ABI (x86-64 and aarch64 Linux: LP64). tests/test_binding.py checks
the sizes and offsets against figures read off a C program compiled from
kvc.h. Every function gets argtypes and restype: a call with the wrong
arguments fails in ctypes, not in C.

Nothing here keeps a reference to caller memory; the callers in
__init__.py keep the objects whose buffers they pass alive for the call.
"""
import ctypes
import ctypes.util
import os
import threading

__all__ = ["load_library", "Key", "Loc", "GetDesc", "PutDesc", "GpuDesc",
           "CLayout", "PagedDesc", "TierStats", "Stats", "FlushResult", "SlotRange",
           "ClusterNode", "Cluster"]

MAX_TIERS = 4
CLUSTER_NODES = 64
CLUSTER_RANGES = 16

c_u8 = ctypes.c_uint8
c_u32 = ctypes.c_uint32
c_u64 = ctypes.c_uint64
c_int = ctypes.c_int
c_size = ctypes.c_size_t
c_ptr = ctypes.c_void_p


class Key(ctypes.Structure):
    """struct kvc_key: bytes(Key) is the 16-byte key, lo then hi (LE)."""
    _fields_ = [("lo", c_u64), ("hi", c_u64)]


class Loc(ctypes.Structure):
    """struct kvc_loc"""
    _fields_ = [("status", c_int), ("tier", c_u8), ("offset", c_u64),
                ("bytes", c_u64), ("ptr", c_ptr)]


class GetDesc(ctypes.Structure):
    """struct kvc_get_desc"""
    _fields_ = [("key", Key), ("buf", c_ptr), ("cap", c_size),
                ("bytes", c_size), ("status", c_int)]


class PutDesc(ctypes.Structure):
    """struct kvc_put_desc"""
    _fields_ = [("key", Key), ("parent", Key), ("has_parent", c_int),
                ("tokens", c_u32), ("position", c_u32), ("data", c_ptr),
                ("bytes", c_size), ("status", c_int)]


class GpuDesc(ctypes.Structure):
    """struct kvc_gpu_desc"""
    _fields_ = [("key", Key), ("dev", c_ptr), ("cap", c_size),
                ("bytes", c_size), ("status", c_int), ("tier", c_u8)]


class CLayout(ctypes.Structure):
    """struct kvc_layout (enum kvc_layout_kind is an int)"""
    _fields_ = [("kind", c_int), ("layers", c_u32), ("block_size", c_u32),
                ("num_blocks", c_u32), ("kv_heads", c_u32), ("head_dim", c_u32),
                ("elem_bytes", c_u32), ("chunk_tokens", c_u32),
                ("k", ctypes.POINTER(c_ptr)), ("v", ctypes.POINTER(c_ptr))]


class PagedDesc(ctypes.Structure):
    """struct kvc_paged_desc"""
    _fields_ = [("key", Key), ("pages", ctypes.POINTER(ctypes.c_int32)),
                ("parent", Key), ("has_parent", c_int), ("position", c_u32),
                ("status", c_int), ("tier", c_u8)]


class TierStats(ctypes.Structure):
    """struct kvc_tier_stats (names are NUL-terminated)"""
    _fields_ = [("name", ctypes.c_char * 16), ("policy", ctypes.c_char * 24),
                ("capacity_bytes", c_u64), ("used_bytes", c_u64), ("chunks", c_u64),
                ("hits", c_u64), ("misses", c_u64), ("evictions", c_u64),
                ("promotions", c_u64), ("demotions", c_u64),
                ("alloc_failures", c_u64), ("read_bw", c_u64),
                ("read_samples", c_u64), ("read_bytes", c_u64)]


class Stats(ctypes.Structure):
    """struct kvc_stats"""
    _fields_ = [("n_tiers", ctypes.c_uint), ("tiers", TierStats * MAX_TIERS),
                ("connections", ctypes.c_uint), ("pinned_chunks", c_u64),
                ("pending_chunks", c_u64), ("checksum_failures", c_u64),
                ("uptime_ms", c_u64), ("namespaces", c_u64),
                ("writeback_failures", c_u64), ("writeback_lost", c_u64),
                ("ssd_records_missing", c_u64), ("ssd_records_wrong_ns", c_u64),
                ("records", c_u64), ("max_records", c_u64), ("meta_bytes", c_u64),
                ("plans_loaded", c_u64), ("plans_computed", c_u64),
                ("plans_both", c_u64), ("plan_tokens_loaded", c_u64),
                ("plan_tokens_computed", c_u64)]


class FlushResult(ctypes.Structure):
    """struct kvc_flush_result"""
    _fields_ = [("chunks", c_u64), ("bytes", c_u64), ("skipped", c_u64),
                ("why", c_int)]


class SlotRange(ctypes.Structure):
    """struct kvc_slot_range"""
    _fields_ = [("first", ctypes.c_uint16), ("last", ctypes.c_uint16)]


class ClusterNode(ctypes.Structure):
    """struct kvc_cluster_node (addr is NUL-terminated)"""
    _fields_ = [("addr", ctypes.c_char * 64), ("slots", ctypes.c_uint),
                ("conns_open", ctypes.c_uint), ("state", c_int), ("n_ranges", ctypes.c_uint),
                ("ranges_total", ctypes.c_uint), ("ranges", SlotRange * CLUSTER_RANGES)]


class Cluster(ctypes.Structure):
    """struct kvc_cluster"""
    _fields_ = [("remote", c_int), ("up", c_int), ("seen", c_int),
                ("masters", ctypes.c_uint), ("masters_down", ctypes.c_uint),
                ("nodes_known", ctypes.c_uint), ("n_nodes", ctypes.c_uint),
                ("write_queue", ctypes.c_uint), ("write_inflight", ctypes.c_uint),
                ("age_ms", c_u64), ("stores", c_u64), ("store_bytes", c_u64),
                ("store_failures", c_u64), ("loads", c_u64), ("load_bytes", c_u64),
                ("load_failures", c_u64), ("probes", c_u64), ("probe_hits", c_u64),
                ("corrupt", c_u64), ("timeouts", c_u64), ("errors", c_u64),
                ("moved", c_u64), ("asks", c_u64), ("refreshes", c_u64),
                ("conn_errors", c_u64), ("nodes", ClusterNode * CLUSTER_NODES)]


P = ctypes.POINTER
_handle = c_ptr  # struct kvc *
_op = c_ptr  # struct kvc_paged_op *

# name: (restype, argtypes), in kvc.h's order
_PROTOS = {
    "kvc_connect": (c_int, [ctypes.c_char_p, P(_handle)]),
    "kvc_close": (None, [_handle]),
    "kvc_set_timeout": (c_int, [_handle, ctypes.c_uint]),
    "kvc_ns_register": (c_int, [_handle, ctypes.c_char_p, P(c_u32)]),
    "kvc_ns_register_model": (c_int, [_handle, ctypes.c_char_p, c_u32,
                                      ctypes.c_double, ctypes.c_double, P(c_u32)]),
    "kvc_ns_salt": (c_u64, [ctypes.c_char_p]),
    "kvc_key_prefix": (Key, [c_u64, P(Key), c_ptr, c_size]),
    "kvc_key_content": (Key, [c_u64, c_ptr, c_size]),
    "kvc_key_chain": (c_size, [c_u64, c_ptr, c_size, c_size, P(Key), c_size]),
    "kvc_key_to_hex": (None, [P(Key), ctypes.c_char_p]),
    "kvc_key_from_hex": (c_int, [ctypes.c_char_p, P(Key)]),
    "kvc_lookup": (c_int, [_handle, c_u32, P(Key), c_size, P(c_u8)]),
    "kvc_pin": (c_int, [_handle, c_u32, P(Key), c_size, P(Loc)]),
    "kvc_release": (c_int, [_handle, c_u32, P(Key), c_size, P(c_int)]),
    "kvc_get_batch": (c_int, [_handle, c_u32, P(GetDesc), c_size]),
    "kvc_get": (c_int, [_handle, c_u32, P(Key), c_ptr, c_size, P(c_size)]),
    "kvc_put_batch": (c_int, [_handle, c_u32, P(PutDesc), c_size]),
    "kvc_put": (c_int, [_handle, c_u32, P(Key), P(Key), c_u32, c_u32, c_ptr, c_size]),
    "kvc_alloc": (c_int, [_handle, c_u32, P(PutDesc), c_size, P(c_ptr)]),
    "kvc_commit": (c_int, [_handle, c_u32, P(Key), c_size, P(c_int)]),
    "kvc_abort": (c_int, [_handle, c_u32, P(Key), c_size, P(c_int)]),
    "kvc_dram_base": (c_ptr, [_handle, P(c_size)]),
    "kvc_gpu_open": (c_int, [_handle, c_int, ctypes.c_uint]),
    "kvc_gpu_mode": (c_int, [_handle, c_int]),
    "kvc_gpu_flush": (c_int, [_handle]),
    "kvc_gpu_registered": (None, [_handle, P(c_u64), P(c_u64)]),
    "kvc_get_gpu": (c_int, [_handle, c_u32, P(GpuDesc), c_size, c_ptr, c_ptr]),
    "kvc_put_gpu": (c_int, [_handle, c_u32, P(PutDesc), c_size, ctypes.c_uint,
                            c_ptr, c_ptr]),
    "kvc_layout_chunk_bytes": (c_size, [P(CLayout)]),
    "kvc_get_paged": (c_int, [_handle, c_u32, P(CLayout), P(PagedDesc), c_size,
                              c_ptr, c_ptr]),
    "kvc_put_paged": (c_int, [_handle, c_u32, P(CLayout), P(PagedDesc), c_size,
                              ctypes.c_uint, c_ptr, c_ptr]),
    "kvc_get_paged_begin": (c_int, [_handle, c_u32, P(CLayout), P(PagedDesc), c_size,
                                    c_ptr, P(_op)]),
    "kvc_get_paged_layers": (c_int, [_op, c_u32, c_u32, c_ptr]),
    "kvc_get_paged_end": (c_int, [_op]),
    "kvc_stats": (c_int, [_handle, P(Stats)]),
    "kvc_report_bw": (c_int, [_handle, c_u8, c_u64, c_u64]),
    "kvc_report_plan": (c_int, [_handle, ctypes.c_uint, c_u64, c_u64]),
    "kvc_evict": (c_int, [_handle, c_u32, P(Key), c_size, P(c_int)]),
    "kvc_prefetch": (c_int, [_handle, c_u32, P(Key), c_size, P(c_int)]),
    "kvc_flush": (c_int, [_handle, c_u8, ctypes.c_uint, P(FlushResult)]),
    "kvc_score": (c_int, [_handle, c_u32, P(Key), P(ctypes.c_float), c_size, P(c_int)]),
    "kvc_policy": (c_int, [_handle, c_u8, ctypes.c_char_p, ctypes.c_char_p]),
    "kvc_ping": (c_int, [_handle, P(c_u64)]),
    "kvc_cluster": (c_int, [_handle, P(Cluster)]),
    "kvc_strerror": (ctypes.c_char_p, [c_int]),
}


def _declare(lib):
    missing = []
    for name, (res, args) in _PROTOS.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = res
        fn.argtypes = args
    if missing:
        raise OSError("%s is not a libkvc of this binding's version: no %s"
                      % (lib._name, ", ".join(missing)))
    return lib


_lock = threading.Lock()
_lib = None


def _candidates(path):
    if path:
        yield os.fspath(path)
        return
    env = os.environ.get("KVSTORE_LIB")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.normpath(os.path.join(here, "..", "..", "..", "build", "libkvc.so"))
    found = ctypes.util.find_library("kvc")
    if found:
        yield found
    yield "libkvc.so"


def load_library(path=None):
    """Load libkvc.so and return its ctypes.CDLL (declared, cached).

    Looks at path, else $KVSTORE_LIB (either one, when given, is the only
    place tried), else build/libkvc.so of the source tree this package
    sits in (client/python/kvstore -> ../../../build), else what
    ctypes.util.find_library("kvc") finds, else "libkvc.so" on the loader's
    path. Called lazily by everything that needs the library; call it
    first with a path to choose one. Raises OSError when none loads.
    """
    global _lib
    with _lock:
        if _lib is not None and path is None:
            return _lib
        errors = []
        for cand in _candidates(path):
            if os.sep in cand and not os.path.exists(cand):
                errors.append("%s: not found" % cand)
                continue
            try:
                lib = ctypes.CDLL(cand)
            except OSError as e:
                errors.append(str(e))
                continue
            _lib = _declare(lib)
            return _lib
        raise OSError("cannot load libkvc (set KVSTORE_LIB to build/libkvc.so): "
                      + "; ".join(errors))
