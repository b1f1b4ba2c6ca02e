"""kvstore - Python binding of libkvc, the client library of kvstore.

Standard library only: ctypes over libkvc.so (see load_library() for where
it is looked for; $KVSTORE_LIB names it). PyTorch is used when present
(tensors as device pointers, torch streams and events) and never needed
to import the package.

    import kvstore

    with kvstore.Client("/run/kvstore/kvstore.sock") as kv:  # None: $KVSTORE_SOCKET
        ns = kv.namespace("llama3-8b/bf16/tp0of1/c256", hidden=4096)
        keys = kvstore.prefix_keys(ns.salt, prompt_tokens, 256)
        hits, tiers = kv.lookup(ns, keys)          # leading chunks cached
        for key in keys[:hits]:
            chunk = kv.get(ns, key)                # bytes, or None if evicted
        parent = keys[hits - 1] if hits else None
        for i in range(hits, len(keys)):
            kv.put(ns, keys[i], chunk_bytes(i), parent=parent,
                   tokens=256, position=256 * i)   # False: already cached
            parent = keys[i]

Keys are 16-byte `bytes`: the struct kvc_key as it goes on the wire, lo
(uint64, little-endian) then hi. key_hex() and key_from_hex() convert to
and from the 32-hex-digit text form kvctl uses.

Errors: every failure of the C library raises KvError, whose .code is the
negative code the library returned (-errno or -KVC_E*, e.g.
-kvstore.KVC_ENONS) and .message its kvc_strerror() text. Misses are not
errors: get() returns None, and batch calls return per-key statuses
(0 or a negative code) rather than raising for one key. Bad arguments
found before the library is called raise ValueError or TypeError.

Threads: a Client may be shared by threads. The C handle runs its calls
one at a time (a mutex per handle) and ctypes drops the GIL while a call
runs, so other Python threads go on; open one Client per thread for
requests in parallel. close() waits for calls in progress on other
threads and makes later ones raise KvError(-KVC_ECLOSED).

GPU calls (gpu_open, gpu_mode, get_gpu, put_gpu, get_paged, put_paged,
get_paged_layers) raise KvError(-KVC_ENOGPU) on a machine or build without
a usable GPU. Their arguments:
  - device memory: an int (a device address), an object with .data_ptr()
    (a torch tensor, which must be contiguous), or one with
    __cuda_array_interface__ (CuPy, Numba);
  - stream: 0 or None (the legacy default stream), an int (a cudaStream_t),
    an object with .cuda_stream (torch.cuda.Stream), with __cuda_stream__()
    (the CUDA stream protocol: CuPy and others) or with ._as_parameter_ (a
    ctypes pointer);
  - event: None (none recorded), an int (a cudaEvent_t), an object with
    .cuda_event (torch.cuda.Event: one not recorded yet has no CUDA event,
    so it is first recorded on the given stream to create it) or with
    ._as_parameter_.
The copies are queued on the stream and the calls return without waiting:
keep the device memory allocated until the stream (or the event) has
passed them, as with any asynchronous CUDA copy.
"""
import array
import ctypes
import errno as _errno
import operator
import os
import threading
import weakref

from . import _lib
from ._lib import load_library

__version__ = "0.1"

__all__ = [
    "KvError", "Client", "Namespace", "Layout", "PagedOp", "load_library",
    "strerror", "ns_salt", "prefix_key", "content_key", "prefix_keys",
    "key_hex", "key_from_hex",
    "TIER_HBM", "TIER_DRAM", "TIER_SSD", "TIER_NONE",
    "PLAN_LOADED", "PLAN_COMPUTED", "PLAN_BOTH",
    "LAYOUT_VLLM", "LAYOUT_VLLM_SPLIT", "LAYOUT_FLASHINFER", "LAYOUT_SGLANG", "LAYOUT_HF",
    "GPU_AUTO", "GPU_ZEROCOPY", "GPU_STAGED",
    "GPU_REGISTER_ALL", "GPU_NO_HBM", "PUT_HBM",
    "MAX_BATCH", "MAX_TIERS", "DEFAULT_SOCKET", "KEY_BYTES",
]

# ---- constants (kvc.h) ---------------------------------------------------

# enum kvc_error: positive, as in C; a KvError's code is their negative.
KVC_EPROTO = 20001
KVC_EVERSION = 20002
KVC_EMSGSIZE = 20003
KVC_EBATCH = 20004
KVC_ECONNS = 20005
KVC_EPINS = 20006
KVC_EUNCOMMITTED = 20007
KVC_EFULL = 20008
KVC_ENOGPU = 20009
KVC_EGPU = 20010
KVC_ENONS = 20011
KVC_ETOOBIG = 20012
KVC_EPEER = 20013
KVC_ECLOSED = 20014
KVC_ENSLIMIT = 20015
KVC_ENOTIER = 20016
KVC_ECORRUPT = 20017
KVC_ENOPARENT = 20018
KVC_EFORMAT = 20019
KVC_ETIMEDOUT = 20020
KVC_ELOCKED = 20021
KVC_ENSREC = 20022
KVC_EQUOTA = 20023
KVC_EMETA = 20024
KVC_EEXPIRED = 20025
KVC_EMEMORY = 20026
KVC_EREFUSED = 20027
__all__ += [n for n in list(globals()) if n.startswith("KVC_E")]

TIER_HBM = 0
TIER_DRAM = 1
TIER_SSD = 2
TIER_NONE = 0xff

# enum kvc_plan_kind: the plan a request got for its cached chunks
PLAN_LOADED = 1  # every cached chunk loaded
PLAN_COMPUTED = 2  # cached chunks existed; all recomputed
PLAN_BOTH = 3  # part loaded, part computed at once

MAX_TIERS = 4
MAX_BATCH = 1024  # keys per message; the library splits larger batches
DEFAULT_SOCKET = "./var/kvstore.sock"
KEY_BYTES = 16

LAYOUT_VLLM = 0  # per layer [2, num_blocks, block_size, H, D]
LAYOUT_VLLM_SPLIT = 1  # per layer K and V [num_blocks, block_size, H, D]
LAYOUT_FLASHINFER = 2  # per layer [num_blocks, 2, block_size, H, D]
LAYOUT_SGLANG = 3  # per layer K and V [num_tokens, H, D]
LAYOUT_HF = 4  # per layer K and V [1, H, tokens, D] (transformers)

GPU_AUTO = 0
GPU_ZEROCOPY = 1
GPU_STAGED = 2

GPU_REGISTER_ALL = 1 << 0  # gpu_open: page-lock the DRAM mapping in the background
GPU_NO_HBM = 1 << 1  # gpu_open: never open the daemon's HBM arena
PUT_HBM = 1 << 2  # put_gpu/put_paged: into HBM when there is room

_FLUSH_DROP = 1 << 0

_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1
# an array typecode of 4-byte unsigned and signed ints
_TOK = "I" if array.array("I").itemsize == 4 else "L"
_I32 = "i" if array.array("i").itemsize == 4 else "l"


# ---- errors ---------------------------------------------------------------

def strerror(code):
    """kvc_strerror(code): the name of an error code (negative or positive)."""
    try:
        s = load_library().kvc_strerror(int(code))
    except OSError:
        s = None
    if s:
        return s.decode("utf-8", "replace")
    return os.strerror(abs(int(code)))


class KvError(Exception):
    """A failure reported by libkvc.

    code: the negative code the C library returned (-errno or -KVC_E*);
    message: kvc_strerror(code); call: the C function that failed.
    """

    def __init__(self, code, call=None, detail=None):
        code = -abs(int(code))
        self.code = code
        self.message = strerror(code)
        self.call = call
        self.detail = detail
        super().__init__(code, self.message)

    @property
    def errno(self):
        """The positive code (an errno value below 20000)."""
        return -self.code

    def __str__(self):
        s = "%s (%d)" % (self.message, self.code)
        if self.call:
            s = "%s: %s" % (self.call, s)
        if self.detail:
            s = "%s: %s" % (s, self.detail)
        return s

    def __reduce__(self):
        return (KvError, (self.code, self.call, self.detail))


# ---- argument conversion ---------------------------------------------------

def _key(k, what="key"):
    """A 16-byte bytes-like object as a struct kvc_key."""
    if isinstance(k, bytes) and len(k) == KEY_BYTES:
        return _lib.Key.from_buffer_copy(k)
    try:
        mv = memoryview(k)
    except TypeError:
        raise TypeError("%s must be %d bytes, not %s"
                        % (what, KEY_BYTES, type(k).__name__)) from None
    if mv.nbytes != KEY_BYTES:
        raise ValueError("%s must be %d bytes, not %d" % (what, KEY_BYTES, mv.nbytes))
    return _lib.Key.from_buffer_copy(mv.tobytes())


def _keys(keys):
    """A sequence of keys as a ctypes array of struct kvc_key."""
    if not isinstance(keys, (list, tuple)):
        keys = list(keys)
    n = len(keys)
    arr = (_lib.Key * n)()
    try:
        raw = b"".join(keys)
    except TypeError:
        raw = b""
    if len(raw) == n * KEY_BYTES and all(len(k) == KEY_BYTES for k in keys):
        ctypes.memmove(arr, raw, len(raw))
    else:
        for i, k in enumerate(keys):
            arr[i] = _key(k, "keys[%d]" % i)
    return arr, n


def _ns(ns):
    """A namespace id: a Namespace or an int."""
    if isinstance(ns, Namespace):
        return ns.id
    try:
        v = operator.index(ns)
    except TypeError:
        raise TypeError("ns must be a Namespace or an int, not %s"
                        % type(ns).__name__) from None
    if not 0 <= v <= _U32:
        raise ValueError("namespace id %d out of range" % v)
    return v


def _u(v, bits, what):
    v = operator.index(v)
    if not 0 <= v < (1 << bits):
        raise ValueError("%s %d out of range (uint%d)" % (what, v, bits))
    return v


def _tokens(tokens):
    """Token ids as a uint32 array.array (address, count, the array)."""
    if isinstance(tokens, array.array) and tokens.typecode == _TOK:
        arr = tokens
    else:
        if hasattr(tokens, "tolist"):  # torch tensors, numpy arrays
            tokens = tokens.tolist()
        try:
            arr = array.array(_TOK, tokens)
        except OverflowError:
            raise ValueError("token ids must be in [0, 2**32)") from None
    addr, n = arr.buffer_info()
    return addr, n, arr


def _wbuf(out, what="out"):
    """A writable, contiguous buffer: (ctypes array over it or None, nbytes)."""
    try:
        mv = memoryview(out)
    except TypeError:
        raise TypeError("%s must be a writable buffer (bytearray, memoryview, "
                        "array, numpy array), not %s" % (what, type(out).__name__)) from None
    if mv.readonly:
        raise TypeError("%s is read-only" % what)
    if not mv.c_contiguous:
        raise ValueError("%s is not C-contiguous" % what)
    n = mv.nbytes
    if n == 0:
        return None, 0
    return (ctypes.c_char * n).from_buffer(mv), n


def _rbuf(data, what="data"):
    """A readable buffer: (address, nbytes, object to keep alive).

    bytes are passed as they are (no copy), writable contiguous buffers
    through ctypes.from_buffer (no copy); read-only or non-contiguous ones
    are copied first.
    """
    if isinstance(data, bytes):
        if not data:
            return None, 0, data
        p = ctypes.c_char_p(data)
        return ctypes.cast(p, ctypes.c_void_p).value, len(data), (data, p)
    try:
        mv = memoryview(data)
    except TypeError:
        raise TypeError("%s must be a bytes-like object, not %s"
                        % (what, type(data).__name__)) from None
    n = mv.nbytes
    if n == 0:
        return None, 0, mv
    if not mv.c_contiguous:
        return _rbuf(mv.tobytes(), what)
    if mv.readonly:
        buf = (ctypes.c_char * n).from_buffer_copy(mv)
    else:
        buf = (ctypes.c_char * n).from_buffer(mv)
    return ctypes.addressof(buf), n, buf


def _devptr(x, what="pointer"):
    """A device address from an int, a tensor (.data_ptr()) or an object with
    __cuda_array_interface__."""
    if isinstance(x, int):
        if x < 0:
            raise ValueError("%s must not be negative" % what)
        return x
    if isinstance(x, ctypes.c_void_p):
        return x.value or 0
    if hasattr(x, "data_ptr"):
        contig = getattr(x, "is_contiguous", None)
        if contig is not None and not contig():
            raise ValueError("%s: tensor is not contiguous" % what)
        return int(x.data_ptr())
    iface = getattr(x, "__cuda_array_interface__", None)
    if iface is not None:
        if iface.get("strides") is not None:
            raise ValueError("%s: array is not C-contiguous" % what)
        return int(iface["data"][0])
    raise TypeError("%s must be an int (device address), a tensor or a CUDA "
                    "array, not %s" % (what, type(x).__name__))


def _devbytes(x):
    """The size in bytes of a tensor or CUDA array, or None for an address."""
    if hasattr(x, "data_ptr") and hasattr(x, "element_size"):
        return int(x.numel()) * int(x.element_size())
    iface = getattr(x, "__cuda_array_interface__", None)
    if iface is not None:
        n = int(iface["typestr"][2:])
        for d in iface["shape"]:
            n *= int(d)
        return n
    return None


def _handle_of(obj, attr, what):
    if obj is None:
        return None
    if isinstance(obj, int):
        if obj < 0:
            raise ValueError("%s must not be negative" % what)
        return obj or None
    v = getattr(obj, attr, None)
    if v is not None:
        return int(v) or None
    p = getattr(obj, "_as_parameter_", None)
    if p is not None:
        if isinstance(p, ctypes.c_void_p):
            return p.value
        return int(p) or None
    if isinstance(obj, ctypes.c_void_p):
        return obj.value
    raise TypeError("%s must be an int or have .%s, not %s"
                    % (what, attr, type(obj).__name__))


def _stream(s):
    """A cudaStream_t as an int (None: the legacy default stream)."""
    proto = getattr(s, "__cuda_stream__", None)
    if proto is not None and not hasattr(s, "cuda_stream"):
        return int(proto()[1]) or None  # (version, handle)
    return _handle_of(s, "cuda_stream", "stream")


def _event(ev, stream=None):
    """A cudaEvent_t as an int, or None. A torch.cuda.Event is created lazily
    by torch at its first record(): record it once so that it exists (the
    library records it again after its copies)."""
    if ev is None:
        return None
    if (not isinstance(ev, int) and getattr(ev, "cuda_event", None) == 0 and
            hasattr(ev, "record")):
        if stream is not None and hasattr(stream, "cuda_stream"):
            ev.record(stream)
        else:
            ev.record()
    h = _handle_of(ev, "cuda_event", "event")
    if h is None:
        raise ValueError("event has no CUDA event")
    return h


def _name(name):
    if isinstance(name, str):
        name = name.encode("utf-8")
    elif not isinstance(name, bytes):
        raise TypeError("name must be str, not %s" % type(name).__name__)
    if b"\0" in name:
        raise ValueError("name contains a NUL character")
    return name


def _check(rc, call):
    if rc < 0:
        raise KvError(rc, call)
    return rc


# ---- keys -------------------------------------------------------------------

def ns_salt(name):
    """A namespace's hash seed: XXH3-64 of its name (kvc_ns_salt)."""
    return load_library().kvc_ns_salt(_name(name))


def prefix_key(salt, parent, tokens):
    """Prefix key of a chunk of token ids whose previous chunk has key parent
    (None for the first chunk). kvc_key_prefix."""
    lib = load_library()
    salt = _u(salt, 64, "salt")
    pk = None if parent is None else ctypes.byref(_key(parent, "parent"))
    addr, n, keep = _tokens(tokens)
    k = lib.kvc_key_prefix(salt, pk, addr, n)
    del keep
    return bytes(k)


def content_key(salt, tokens):
    """Position-free key of a chunk of token ids (kvc_key_content); never equal
    to a prefix key."""
    lib = load_library()
    salt = _u(salt, 64, "salt")
    addr, n, keep = _tokens(tokens)
    k = lib.kvc_key_content(salt, addr, n)
    del keep
    return bytes(k)


def prefix_keys(salt, tokens, chunk_tokens):
    """Prefix keys of every full chunk of chunk_tokens tokens (kvc_key_chain);
    a partial tail has no key."""
    lib = load_library()
    salt = _u(salt, 64, "salt")
    chunk_tokens = operator.index(chunk_tokens)
    if chunk_tokens <= 0:
        raise ValueError("chunk_tokens must be positive")
    addr, n, keep = _tokens(tokens)
    chunks = n // chunk_tokens
    out = (_lib.Key * chunks)()
    got = lib.kvc_key_chain(salt, addr, n, chunk_tokens, out, chunks)
    del keep
    assert got == chunks
    raw = bytes(out)
    return [raw[i:i + KEY_BYTES] for i in range(0, len(raw), KEY_BYTES)]


def key_hex(key):
    """A key as 32 hex digits, hi then lo (kvc_key_to_hex)."""
    k = _key(key)
    buf = ctypes.create_string_buffer(33)
    load_library().kvc_key_to_hex(ctypes.byref(k), buf)
    return buf.value.decode("ascii")


def key_from_hex(s):
    """Parse 32 hex digits (kvc_key_from_hex); ValueError if malformed."""
    if isinstance(s, str):
        try:
            s = s.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError("not a key: %r" % s) from None
    k = _lib.Key()
    if b"\0" in s or load_library().kvc_key_from_hex(s, ctypes.byref(k)):
        raise ValueError("not a key (32 hex digits): %r" % s)
    return bytes(k)


# ---- namespaces --------------------------------------------------------------

class Namespace:
    """A namespace registered on a Client: id (per daemon), name, salt.

    Pass it (or its id) as the ns of every data call, and its salt to the
    key functions.
    """
    __slots__ = ("id", "name", "salt")

    def __init__(self, id, name, salt):
        self.id = id
        self.name = name
        self.salt = salt

    def __index__(self):
        return self.id

    __int__ = __index__

    def __eq__(self, other):
        if not isinstance(other, Namespace):
            return NotImplemented
        return (self.id, self.name, self.salt) == (other.id, other.name, other.salt)

    def __hash__(self):
        return hash((self.id, self.name, self.salt))

    def __repr__(self):
        return "Namespace(id=%d, name=%r, salt=0x%016x)" % (self.id, self.name, self.salt)


# ---- paged layouts -----------------------------------------------------------

def _tensorish(objs, who):
    """Check objs look like tensors; ImportError when they cannot be because
    torch is missing."""
    objs = list(objs)
    if not objs:
        raise ValueError("%s: no layers" % who)
    for t in objs:
        if not all(hasattr(t, a) for a in ("shape", "data_ptr", "element_size")):
            try:
                import torch  # noqa: F401
            except ImportError:
                raise ImportError("%s needs PyTorch tensors, and torch is not "
                                  "installed" % who) from None
            raise TypeError("%s takes torch tensors, not %s" % (who, type(t).__name__))
        if getattr(t, "is_cuda", True) is False:
            raise ValueError("%s: tensors must be on a CUDA device" % who)
        contig = getattr(t, "is_contiguous", None)
        if contig is not None and not contig():
            raise ValueError("%s: tensors must be contiguous" % who)
    shape = tuple(objs[0].shape)
    dtype = getattr(objs[0], "dtype", None)
    for i, t in enumerate(objs):
        if tuple(t.shape) != shape or getattr(t, "dtype", None) != dtype:
            raise ValueError("%s: layer %d has shape %s %s, layer 0 %s %s"
                             % (who, i, tuple(t.shape), getattr(t, "dtype", None),
                                shape, dtype))
    return objs, shape, int(objs[0].element_size())


class Layout:
    """An engine's paged KV cache on one GPU (struct kvc_layout).

    k (and v for LAYOUT_VLLM_SPLIT, LAYOUT_SGLANG and LAYOUT_HF) hold one
    device pointer per layer: ints, tensors or CUDA arrays. The Layout keeps them,
    and the pointer arrays it hands the library, alive as long as it lives.
    chunk_bytes is the size of one chunk of the store in this layout
    (layer-major, [layers][K, V][chunk_tokens][kv_heads][head_dim]).
    Raises ValueError for a layout the library refuses.
    """

    def __init__(self, kind, layers, block_size, num_blocks, kv_heads, head_dim,
                 elem_bytes, chunk_tokens, k, v=None):
        kind = operator.index(kind)
        if kind not in _LAYOUT_NAMES:
            raise ValueError("unknown layout kind %d" % kind)
        dims = {}
        for nm, val in (("layers", layers), ("block_size", block_size),
                        ("num_blocks", num_blocks), ("kv_heads", kv_heads),
                        ("head_dim", head_dim), ("elem_bytes", elem_bytes),
                        ("chunk_tokens", chunk_tokens)):
            val = operator.index(val)
            if not 0 < val <= _U32:
                raise ValueError("%s must be in [1, 2**32), not %d" % (nm, val))
            dims[nm] = val
        layers = dims["layers"]
        if dims["chunk_tokens"] % dims["block_size"]:
            raise ValueError("chunk_tokens (%d) must be a multiple of block_size (%d)"
                             % (dims["chunk_tokens"], dims["block_size"]))
        if kind == LAYOUT_SGLANG and dims["block_size"] != 1:
            raise ValueError("LAYOUT_SGLANG needs block_size 1 (token slots)")
        if kind == LAYOUT_HF and dims["block_size"] != 1:
            raise ValueError("LAYOUT_HF needs block_size 1 (token positions)")
        row = dims["kv_heads"] * dims["head_dim"] * dims["elem_bytes"]
        if row % 16:
            raise ValueError("a token's row (kv_heads * head_dim * elem_bytes = %d "
                             "bytes) must be a multiple of 16" % row)
        if kind == LAYOUT_HF and (dims["head_dim"] * dims["elem_bytes"]) % 16:
            raise ValueError("LAYOUT_HF: a head (head_dim * elem_bytes = %d bytes) "
                             "must be a multiple of 16"
                             % (dims["head_dim"] * dims["elem_bytes"]))
        k = list(k)
        if len(k) != layers:
            raise ValueError("k has %d layers, layers is %d" % (len(k), layers))
        if kind in (LAYOUT_VLLM_SPLIT, LAYOUT_SGLANG, LAYOUT_HF):
            if v is None:
                raise ValueError("this layout kind needs v (per-layer V buffers)")
        if v is not None:
            v = list(v)
            if len(v) != layers:
                raise ValueError("v has %d layers, layers is %d" % (len(v), layers))
        self.kind = kind
        for nm, val in dims.items():
            setattr(self, nm, val)
        self._keep = (k, v)  # tensors stay allocated while the layout lives
        self._k = (ctypes.c_void_p * layers)(*[_devptr(x, "k[%d]" % i)
                                               for i, x in enumerate(k)])
        self._v = None
        if v is not None:
            self._v = (ctypes.c_void_p * layers)(*[_devptr(x, "v[%d]" % i)
                                                   for i, x in enumerate(v)])
        pv = ctypes.POINTER(ctypes.c_void_p)
        self._c = _lib.CLayout(kind, layers, dims["block_size"], dims["num_blocks"],
                               dims["kv_heads"], dims["head_dim"], dims["elem_bytes"],
                               dims["chunk_tokens"], ctypes.cast(self._k, pv),
                               ctypes.cast(self._v, pv) if self._v is not None else None)
        self.chunk_bytes = load_library().kvc_layout_chunk_bytes(ctypes.byref(self._c))
        if not self.chunk_bytes:
            raise ValueError("libkvc refuses this layout")

    @property
    def pages_per_chunk(self):
        """Engine blocks (token slots for SGLang, token positions for HF) per
        chunk."""
        return self.chunk_tokens // self.block_size

    @property
    def layer_bytes(self):
        """Bytes of one layer's slice of a chunk (contiguous in the chunk)."""
        return self.chunk_bytes // self.layers

    def __repr__(self):
        return ("Layout(%s, layers=%d, block_size=%d, num_blocks=%d, kv_heads=%d, "
                "head_dim=%d, elem_bytes=%d, chunk_tokens=%d, chunk_bytes=%d)"
                % (_LAYOUT_NAMES[self.kind], self.layers, self.block_size, self.num_blocks,
                   self.kv_heads, self.head_dim, self.elem_bytes, self.chunk_tokens,
                   self.chunk_bytes))

    @classmethod
    def vllm(cls, kv_caches, chunk_tokens):
        """vLLM: per layer one tensor [2, num_blocks, block_size, kv_heads,
        head_dim] (K then V)."""
        ts, shape, eb = _tensorish(kv_caches, "Layout.vllm")
        if len(shape) != 5 or shape[0] != 2:
            raise ValueError("Layout.vllm: per-layer tensors must be [2, num_blocks, "
                             "block_size, kv_heads, head_dim], not %s" % (shape,))
        _, nb, bs, h, d = shape
        return cls(LAYOUT_VLLM, len(ts), bs, nb, h, d, eb, chunk_tokens, ts)

    @classmethod
    def vllm_split(cls, k_caches, v_caches, chunk_tokens):
        """Separate per-layer K and V tensors [num_blocks, block_size, kv_heads,
        head_dim]."""
        ks, shape, eb = _tensorish(k_caches, "Layout.vllm_split")
        vs, vshape, veb = _tensorish(v_caches, "Layout.vllm_split")
        if len(shape) != 4 or vshape != shape or veb != eb or len(vs) != len(ks):
            raise ValueError("Layout.vllm_split: K and V must be alike, [num_blocks, "
                             "block_size, kv_heads, head_dim], not %s and %s"
                             % (shape, vshape))
        nb, bs, h, d = shape
        return cls(LAYOUT_VLLM_SPLIT, len(ks), bs, nb, h, d, eb, chunk_tokens, ks, vs)

    @classmethod
    def flashinfer(cls, kv_caches, chunk_tokens):
        """FlashInfer: per layer one tensor [num_blocks, 2, block_size,
        kv_heads, head_dim]."""
        ts, shape, eb = _tensorish(kv_caches, "Layout.flashinfer")
        if len(shape) != 5 or shape[1] != 2:
            raise ValueError("Layout.flashinfer: per-layer tensors must be [num_blocks, "
                             "2, block_size, kv_heads, head_dim], not %s" % (shape,))
        nb, _, bs, h, d = shape
        return cls(LAYOUT_FLASHINFER, len(ts), bs, nb, h, d, eb, chunk_tokens, ts)

    @classmethod
    def sglang(cls, k_buffers, v_buffers, chunk_tokens):
        """SGLang: per layer K and V buffers [num_tokens, kv_heads, head_dim],
        indexed by token slot."""
        ks, shape, eb = _tensorish(k_buffers, "Layout.sglang")
        vs, vshape, veb = _tensorish(v_buffers, "Layout.sglang")
        if len(shape) != 3 or vshape != shape or veb != eb or len(vs) != len(ks):
            raise ValueError("Layout.sglang: K and V must be alike, [num_tokens, "
                             "kv_heads, head_dim], not %s and %s" % (shape, vshape))
        nt, h, d = shape
        return cls(LAYOUT_SGLANG, len(ks), 1, nt, h, d, eb, chunk_tokens, ks, vs)

    @classmethod
    def hf(cls, keys, values, chunk_tokens):
        """Hugging Face transformers: per layer K and V tensors [1, kv_heads,
        tokens, head_dim] (batch 1, contiguous), a page per token position:
        pages are positions in the tensors, below their tokens dimension
        (the capacity; a StaticCache's max_cache_len)."""
        ks, shape, eb = _tensorish(keys, "Layout.hf")
        vs, vshape, veb = _tensorish(values, "Layout.hf")
        if len(shape) != 4 or vshape != shape or veb != eb or len(vs) != len(ks):
            raise ValueError("Layout.hf: K and V must be alike, [1, kv_heads, tokens, "
                             "head_dim], not %s and %s" % (shape, vshape))
        if shape[0] != 1:
            raise ValueError("Layout.hf: batch must be 1, not %d (shape %s)"
                             % (shape[0], shape))
        _, h, cap, d = shape
        return cls(LAYOUT_HF, len(ks), 1, cap, h, d, eb, chunk_tokens, ks, vs)


_LAYOUT_NAMES = {LAYOUT_VLLM: "VLLM", LAYOUT_VLLM_SPLIT: "VLLM_SPLIT",
                 LAYOUT_FLASHINFER: "FLASHINFER", LAYOUT_SGLANG: "SGLANG", LAYOUT_HF: "HF"}


_IOTA_MAX = 1 << 21  # the longest cached 0, 1, 2, ... (8 MiB)
_iota = array.array(_I32)


def _range_i32(r):
    """range r as array('i'): a slice of a cached 0, 1, 2, ... when it fits
    (a memcpy, where array(range) makes an int per entry: about 1 ms for
    32K)."""
    global _iota
    lo, hi = (r.start, r.stop) if r.step > 0 else (r.stop + 1, r.start + 1)
    if len(r) and 0 <= lo and hi <= _IOTA_MAX:
        iota = _iota
        if hi > len(iota):
            iota = array.array(_I32, range(min(max(hi, 2 * len(iota)), _IOTA_MAX)))
            _iota = iota  # a new array: slices already taken stay valid
        return iota[r.start:r.stop:r.step] if r.stop >= 0 else iota[r.start::r.step]
    return array.array(_I32, r)


def _int32s(obj, what):
    """obj (a sequence of ints, a range, an array, a tensor of any shape) as
    array('i'), without a Python int per entry where it can: an int32
    tensor is copied as bytes (from the CPU; a tensor elsewhere comes to it
    first), an array('i') is taken as it is, a range is a slice of a cached
    one, a list goes through array's own C loop."""
    if isinstance(obj, array.array) and obj.typecode == _I32:
        return obj
    if isinstance(obj, range):
        try:
            return _range_i32(obj)
        except OverflowError:
            raise ValueError("%s: page ids must be int32" % what) from None
    if hasattr(obj, "tolist"):  # a tensor (or an ndarray)
        if hasattr(obj, "data_ptr") and str(getattr(obj, "dtype", "")) == "torch.int32":
            dev = getattr(obj, "device", None)
            if dev is not None and getattr(dev, "type", "cpu") != "cpu":
                obj = obj.cpu()
            obj = obj.contiguous()
            out = array.array(_I32, bytes(4 * obj.numel()))
            if len(out):
                ctypes.memmove(out.buffer_info()[0], obj.data_ptr(), 4 * len(out))
            return out
        obj = obj.tolist()
        if isinstance(obj, list) and obj and isinstance(obj[0], list):  # 2-D
            obj = [x for row in obj for x in row]
    try:
        return array.array(_I32, obj)
    except OverflowError:
        raise ValueError("%s: page ids must be int32" % what) from None


def _is_flat(pages, n, ppc):
    """One sequence of page ids for all keys, rather than one per key?"""
    if isinstance(pages, (range, array.array)):
        return True
    shape = getattr(pages, "shape", None)
    if shape is not None and hasattr(pages, "tolist"):  # a tensor: taken whole
        shape = tuple(shape)
        if len(shape) == 2 and shape != (n, ppc):
            raise ValueError("pages: a 2-D tensor must be [%d keys, %d pages], not %s"
                             % (n, ppc, shape))
        if len(shape) not in (1, 2):
            raise ValueError("pages: a tensor must be 1-D or 2-D, not %s" % (shape,))
        return True
    if isinstance(pages, (list, tuple)) and pages:
        first = pages[0]
        return not hasattr(first, "__len__") and hasattr(first, "__index__")
    return False


def _pages(layout, pages, n):
    """Page ids for n keys as one int32 buffer; returns (buffer, per-key
    pointers). pages: per key a sequence of ids, a range or a tensor; or
    all keys' ids in one: a flat sequence, a range, an array('i') or a
    tensor (1-D, or 2-D [n, pages_per_chunk]), n * pages_per_chunk ids in
    key order."""
    ppc = layout.pages_per_chunk
    if _is_flat(pages, n, ppc):
        flat = _int32s(pages, "pages")
        if len(flat) != n * ppc:
            raise ValueError("%d page ids for %d keys of %d pages each"
                             % (len(flat), n, ppc))
    else:
        pages = list(pages)
        if len(pages) != n:
            raise ValueError("%d page lists for %d keys" % (len(pages), n))
        flat = array.array(_I32)
        for i, row in enumerate(pages):
            row = _int32s(row, "pages[%d]" % i)
            if len(row) != ppc:
                raise ValueError("pages[%d] has %d entries, a chunk needs %d"
                                 % (i, len(row), ppc))
            flat.extend(row)
    addr = flat.buffer_info()[0]
    pi = ctypes.POINTER(ctypes.c_int32)
    ptrs = [ctypes.cast(addr + i * ppc * 4, pi) for i in range(n)]
    return flat, ptrs


class PagedOp:
    """A layer-by-layer paged get in progress (Client.get_paged_layers()).

    found: per key (status, tier), as begin left them; count: how many were
    found. load(b, e, event) queues layers [b, e) of all found chunks on the
    op's stream; end() lets the op go (idempotent; also on leaving a with
    block, on Client.close(), and when the op is collected).
    """

    def __init__(self, client, nsid, layout, keys, pages, stream):
        self._client = client
        self._lock = threading.Lock()
        self._p = None
        self.layout = layout
        self._stream_obj = stream
        s = _stream(stream)
        karr, n = _keys(keys)
        self._flat, ptrs = _pages(layout, pages, n)
        self._d = (_lib.PagedDesc * n)()
        for i in range(n):
            self._d[i].key = karr[i]
            self._d[i].pages = ptrs[i]
        op = ctypes.c_void_p()
        h = client._hold("kvc_get_paged_begin")
        try:
            rc = client._lib.kvc_get_paged_begin(h, nsid, ctypes.byref(layout._c),
                                                 self._d, n, s, ctypes.byref(op))
            if rc < 0:
                raise KvError(rc, "kvc_get_paged_begin")
            self._p = op.value
            client._ops.add(self)
        finally:
            client._unhold()
        self.count = rc
        self.found = [(d.status, d.tier) for d in self._d]

    def load(self, layer_begin, layer_end, event=None):
        """Queue layers [layer_begin, layer_end) on the stream; record event
        after them."""
        ev = _event(event, self._stream_obj)
        c = self._client
        c._hold("kvc_get_paged_layers")
        try:
            with self._lock:
                if self._p is None:
                    raise KvError(-_errno.EINVAL, "kvc_get_paged_layers",
                                  "the operation has ended")
                rc = c._lib.kvc_get_paged_layers(self._p, _u(layer_begin, 32, "layer"),
                                                 _u(layer_end, 32, "layer"), ev)
        finally:
            c._unhold()
        _check(rc, "kvc_get_paged_layers")

    def _end_locked(self):
        p, self._p = self._p, None
        if p is None:
            return 0
        return self._client._lib.kvc_get_paged_end(p)

    def end(self):
        """Let the operation go: its pins are released once its copies are
        done. Idempotent."""
        c = self._client
        try:
            c._hold("kvc_get_paged_end")
        except KvError:
            return  # the client closed, which ended the op
        try:
            with self._lock:
                rc = self._end_locked()
        finally:
            c._unhold()
        _check(rc, "kvc_get_paged_end")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.end()

    def __del__(self):
        try:
            if getattr(self, "_p", None) is not None:
                self.end()
        except Exception:
            pass


# ---- the client -------------------------------------------------------------

class Client:
    """One connection to kvstored (kvc_connect); see the module docstring.

    socket: the daemon's socket path (None: $KVSTORE_SOCKET, else
    DEFAULT_SOCKET). Raises KvError when it cannot connect (-ENOENT or
    -ECONNREFUSED: no daemon there).
    """

    def __init__(self, socket=None):
        self._h = None
        self._cv = threading.Condition(threading.Lock())
        self._busy = 0
        self._ops = weakref.WeakSet()
        self._lib = load_library()
        self.socket = socket
        path = None if socket is None else os.fsencode(socket)
        h = ctypes.c_void_p()
        rc = self._lib.kvc_connect(path, ctypes.byref(h))
        if rc:
            raise KvError(rc, "kvc_connect", socket if socket is not None else None)
        self._h = h.value

    # A call holds the handle (counts itself busy) so that close() cannot
    # free it under the call.
    def _hold(self, call):
        with self._cv:
            if self._h is None:
                raise KvError(-KVC_ECLOSED, call, "the client is closed")
            self._busy += 1
            return self._h

    def _unhold(self):
        with self._cv:
            self._busy -= 1
            if not self._busy:
                self._cv.notify_all()

    def _call(self, fn, *args):
        h = self._hold(fn)
        try:
            return getattr(self._lib, fn)(h, *args)
        finally:
            self._unhold()

    @property
    def closed(self):
        return self._h is None

    def close(self):
        """Close the connection (kvc_close): the daemon releases this client's
        pins and allocations; GPU copies in flight finish first. Waits for
        calls in progress on other threads. Idempotent."""
        cv = getattr(self, "_cv", None)
        if cv is None:
            return
        with cv:
            h, self._h = self._h, None
            if h is None:
                return
            while self._busy:
                cv.wait()
        for op in list(self._ops):
            with op._lock:
                op._end_locked()
        self._lib.kvc_close(h)

    def set_timeout(self, ms):
        """Wait at most ms milliseconds for each reply from the daemon, 0 for
        ever (kvc_set_timeout; the default is $KVSTORE_TIMEOUT_MS, else
        30000). A call that runs out raises KvError(KVC_ETIMEDOUT) and
        closes the connection: later calls raise KVC_ECLOSED."""
        _check(self._call("kvc_set_timeout", _u(ms, 32, "ms")), "kvc_set_timeout")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return "<kvstore.Client %s%s>" % (self.socket or "(default socket)",
                                          " closed" if self.closed else "")

    # ---- namespaces ----

    def namespace(self, name, hidden=None, a=2.0, b=26.0):
        """Register namespace name on this connection (kvc_ns_register, or
        kvc_ns_register_model when hidden, the model's hidden size, is given:
        GDSF's cost model, a and b as in kvc.h). Registering a name again
        returns the same id. KvError: -EINVAL, -EACCES (another user's),
        -KVC_ENSLIMIT."""
        raw = _name(name)
        out = ctypes.c_uint32()
        if hidden is None:
            rc = self._call("kvc_ns_register", raw, ctypes.byref(out))
            call = "kvc_ns_register"
        else:
            rc = self._call("kvc_ns_register_model", raw, _u(hidden, 32, "hidden"),
                            float(a), float(b), ctypes.byref(out))
            call = "kvc_ns_register_model"
        if rc:
            raise KvError(rc, call, repr(name))
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return Namespace(out.value, name, self._lib.kvc_ns_salt(raw))

    # ---- reading ----

    def lookup(self, ns, keys):
        """How many leading keys are cached, and each key's fastest tier
        (TIER_NONE: not cached): (count, [tier, ...])."""
        arr, n = _keys(keys)
        tiers = (ctypes.c_uint8 * n)()
        rc = _check(self._call("kvc_lookup", _ns(ns), arr, n, tiers), "kvc_lookup")
        return rc, list(tiers)

    def get(self, ns, key, out=None):
        """One chunk. out None: its bytes. out a writable buffer (bytearray,
        memoryview, array.array, numpy array): copied into it, returns the
        number of bytes; KvError(-ENOBUFS) when it is too small. A key not
        cached returns None."""
        nsid = _ns(ns)
        k = _key(key)
        if out is not None:
            buf, cap = _wbuf(out)
            size = ctypes.c_size_t()
            addr = ctypes.addressof(buf) if buf is not None else None
            rc = self._call("kvc_get", nsid, ctypes.byref(k), addr, cap,
                            ctypes.byref(size))
            del buf
            if rc == -_errno.ENOENT:
                return None
            if rc == -_errno.ENOBUFS:
                raise KvError(rc, "kvc_get", "the chunk has %d bytes, out %d"
                              % (size.value, cap))
            _check(rc, "kvc_get")
            return size.value
        # Size unknown: pin, copy out of the arena mapping once, release.
        lib = self._lib
        h = self._hold("kvc_pin")
        try:
            loc = _lib.Loc()
            _check(lib.kvc_pin(h, nsid, ctypes.byref(k), 1, ctypes.byref(loc)), "kvc_pin")
            if loc.status == -_errno.ENOENT:
                return None
            if loc.status:
                raise KvError(loc.status, "kvc_pin")
            try:
                if not loc.ptr:
                    raise KvError(-KVC_ENOTIER, "kvc_pin", "chunk in a tier not mapped here")
                return ctypes.string_at(loc.ptr, loc.bytes)
            finally:
                rc = lib.kvc_release(h, nsid, ctypes.byref(k), 1, None)
                if rc < 0:
                    raise KvError(rc, "kvc_release")
        finally:
            self._unhold()

    def get_batch(self, ns, keys, outs):
        """Copy chunks into writable buffers outs[i] (kvc_get_batch); per key
        0, -ENOENT, -ENOBUFS, ... (an out may be None: -ENOBUFS)."""
        arr, n = _keys(keys)
        outs = list(outs)
        if len(outs) != n:
            raise ValueError("%d outs for %d keys" % (len(outs), n))
        d = (_lib.GetDesc * n)()
        keep = []
        for i, o in enumerate(outs):
            d[i].key = arr[i]
            if o is None:
                continue
            buf, cap = _wbuf(o, "outs[%d]" % i)
            if buf is not None:
                keep.append(buf)
                d[i].buf = ctypes.addressof(buf)
                d[i].cap = cap
        rc = self._call("kvc_get_batch", _ns(ns), d, n)
        del keep
        _check(rc, "kvc_get_batch")
        return [x.status for x in d]

    # ---- writing ----

    def put(self, ns, key, data, parent=None, tokens=0, position=0):
        """Store one chunk (kvc_put): True stored, False already cached.
        data: any bytes-like object (copied into the arena straight from
        its buffer). parent: the previous chunk's key, for a prefix chunk
        after the first; tokens and position for cost-aware eviction."""
        k = _key(key)
        pk = None if parent is None else ctypes.byref(_key(parent, "parent"))
        addr, n, keep = _rbuf(data)
        rc = self._call("kvc_put", _ns(ns), ctypes.byref(k), pk,
                        _u(tokens, 32, "tokens"), _u(position, 32, "position"), addr, n)
        del keep
        if rc == -_errno.EEXIST:
            return False
        _check(rc, "kvc_put")
        return True

    def put_batch(self, ns, items):
        """Store chunks (kvc_put_batch). items: (key, data[, parent[, tokens[,
        position]]]) each; returns per item 0 (stored), -EEXIST, ..."""
        items = list(items)
        n = len(items)
        d = (_lib.PutDesc * n)()
        keep = []
        for i, it in enumerate(items):
            key, data, parent, tokens, position = _item(it, 2, 5, "items[%d]" % i,
                                                        (None, 0, 0))
            x = d[i]
            x.key = _key(key, "items[%d] key" % i)
            if parent is not None:
                x.parent = _key(parent, "items[%d] parent" % i)
                x.has_parent = 1
            x.tokens = _u(tokens, 32, "tokens")
            x.position = _u(position, 32, "position")
            addr, nb, k = _rbuf(data, "items[%d] data" % i)
            keep.append(k)
            x.data = addr
            x.bytes = nb
        rc = self._call("kvc_put_batch", _ns(ns), d, n)
        del keep
        _check(rc, "kvc_put_batch")
        return [x.status for x in d]

    # ---- management ----

    def _status_op(self, fn, ns, keys):
        arr, n = _keys(keys)
        st = (ctypes.c_int * n)()
        _check(self._call(fn, _ns(ns), arr, n, st), fn)
        return list(st)

    def prefetch(self, ns, keys):
        """Start moving chunks up into DRAM (kvc_prefetch); per key 0 (in DRAM
        or on its way) or -ENOENT."""
        return self._status_op("kvc_prefetch", ns, keys)

    def evict(self, ns, keys):
        """Drop chunks (kvc_evict); per key 0, -ENOENT or -EBUSY."""
        return self._status_op("kvc_evict", ns, keys)

    def score(self, ns, keys, scores):
        """Report attention scores in [0, 1] (kvc_score, for H2O); per key 0,
        -ENOENT or -EINVAL."""
        arr, n = _keys(keys)
        scores = list(scores)
        if len(scores) != n:
            raise ValueError("%d scores for %d keys" % (len(scores), n))
        sc = (ctypes.c_float * n)(*scores)
        st = (ctypes.c_int * n)()
        _check(self._call("kvc_score", _ns(ns), arr, sc, n, st), "kvc_score")
        return list(st)

    def stats(self):
        """The daemon's counters (kvc_stats) as a dict; "tiers" lists one dict
        per tier (name, policy, capacity_bytes, used_bytes, chunks, hits,
        misses, evictions, promotions, demotions, alloc_failures, and
        read_bw: the tier's read bandwidth in bytes/s, a moving average, 0
        before any sample; read_samples, read_bytes). The plans clients
        reported: plans_loaded, plans_computed, plans_both,
        plan_tokens_loaded, plan_tokens_computed."""
        st = _lib.Stats()
        _check(self._call("kvc_stats", ctypes.byref(st)), "kvc_stats")
        tiers = []
        for t in st.tiers[:st.n_tiers]:
            d = {"name": t.name.decode("utf-8", "replace"),
                 "policy": t.policy.decode("utf-8", "replace")}
            for f, _ in _lib.TierStats._fields_[2:]:
                d[f] = getattr(t, f)
            tiers.append(d)
        return {"connections": st.connections, "pinned_chunks": st.pinned_chunks,
                "pending_chunks": st.pending_chunks,
                "checksum_failures": st.checksum_failures,
                "uptime_ms": st.uptime_ms, "namespaces": st.namespaces,
                "writeback_failures": st.writeback_failures,
                "writeback_lost": st.writeback_lost,
                "ssd_records_missing": st.ssd_records_missing,
                "ssd_records_wrong_ns": st.ssd_records_wrong_ns,
                "records": st.records, "max_records": st.max_records,
                "meta_bytes": st.meta_bytes,
                "plans_loaded": st.plans_loaded, "plans_computed": st.plans_computed,
                "plans_both": st.plans_both,
                "plan_tokens_loaded": st.plan_tokens_loaded,
                "plan_tokens_computed": st.plan_tokens_computed,
                "tiers": tiers}

    def report_bw(self, tier, nbytes, seconds):
        """Report a timed read out of tier (TIER_HBM or TIER_DRAM): nbytes
        copied from the daemon's mapping in seconds (say, from CUDA events'
        elapsed_time() / 1000), for the tier's read_bw in stats()
        (kvc_report_bw). seconds is rounded to whole nanoseconds. The daemon
        refuses a tier it lacks (KVC_ENOTIER), TIER_SSD, which it times
        itself, and nbytes or a time of 0 (EINVAL), and a rate below 1 KB/s
        or above 10 TB/s (ERANGE): KvError."""
        try:
            ns = round(seconds * 1e9)
        except (ValueError, OverflowError):
            raise ValueError("seconds must be a finite number, not %r" % (seconds,)) from None
        _check(self._call("kvc_report_bw", _u(tier, 8, "tier"), _u(nbytes, 64, "nbytes"),
                          _u(ns, 64, "nanoseconds")), "kvc_report_bw")

    def report_plan(self, kind, tokens_loaded, tokens_computed):
        """Report the plan one request got for its cached chunks: kind
        PLAN_LOADED, PLAN_COMPUTED or PLAN_BOTH, and its cached tokens loaded
        and computed (kvc_report_plan); stats() counts them. A request
        without cached chunks is not reported. Another kind: KvError
        (EINVAL)."""
        _check(self._call("kvc_report_plan", _u(kind, 32, "kind"),
                          _u(tokens_loaded, 64, "tokens_loaded"),
                          _u(tokens_computed, 64, "tokens_computed")), "kvc_report_plan")

    def flush(self, tier=TIER_NONE, drop=False):
        """Write tier (TIER_NONE: every tier) back to the tier below and wait
        until durable, or with drop=True drop its unpinned chunks
        (kvc_flush). Returns {"chunks", "bytes", "skipped"}. When the tier
        below refused chunks (they are not durable) raises KvError with
        KVC_EREFUSED, its detail the same dict plus "why" (the refusal's
        message)."""
        r = _lib.FlushResult()
        rc = self._call("kvc_flush", _u(tier, 8, "tier"), _FLUSH_DROP if drop else 0,
                        ctypes.byref(r))
        res = {"chunks": r.chunks, "bytes": r.bytes, "skipped": r.skipped}
        if rc == -KVC_EREFUSED:
            raise KvError(rc, "kvc_flush", dict(res, why=strerror(r.why)))
        _check(rc, "kvc_flush")
        return res

    def policy(self, tier, name=None):
        """The eviction policy of tier; with name, switch it first
        (kvc_policy). Returns the policy's name afterwards."""
        out = ctypes.create_string_buffer(16)
        _check(self._call("kvc_policy", _u(tier, 8, "tier"),
                          None if name is None else _name(name), out), "kvc_policy")
        return out.value.decode("utf-8", "replace")

    def ping(self):
        """Round trip to the daemon (kvc_ping); returns its uptime in ms."""
        up = ctypes.c_uint64()
        _check(self._call("kvc_ping", ctypes.byref(up)), "kvc_ping")
        return up.value

    # ---- GPU ----

    def gpu_open(self, device=-1, flags=0):
        """Bind this client to CUDA device (-1: the current one) and open the
        daemon's HBM arena when it is on that GPU (kvc_gpu_open). Optional:
        the first GPU call does it with (-1, 0). flags: GPU_REGISTER_ALL,
        GPU_NO_HBM."""
        _check(self._call("kvc_gpu_open", int(device), _u(flags, 32, "flags")),
               "kvc_gpu_open")

    def gpu_mode(self, mode):
        """Choose how DRAM chunks reach paged layouts (GPU_AUTO, GPU_ZEROCOPY,
        GPU_STAGED); returns the previous mode."""
        return _check(self._call("kvc_gpu_mode", operator.index(mode)), "kvc_gpu_mode")

    def gpu_flush(self):
        """Wait until every copy this client queued is done, its pins
        released and puts committed (kvc_gpu_flush). Raises the first error
        met since the last flush. With no GPU state opened there is nothing
        to wait for, and it returns at once (as the C call does)."""
        _check(self._call("kvc_gpu_flush"), "kvc_gpu_flush")

    def gpu_registered(self):
        """(bytes of the DRAM mapping page-locked so far, its size)."""
        done = ctypes.c_uint64()
        total = ctypes.c_uint64()
        self._call("kvc_gpu_registered", ctypes.byref(done), ctypes.byref(total))
        return done.value, total.value

    def get_gpu(self, ns, keys, ptrs, caps=None, stream=0, event=None):
        """Copy chunks into device buffers on stream, record event after them
        (kvc_get_gpu). ptrs: per key a device pointer or tensor; caps: per
        key its size in bytes, one int for all, or None (from the tensors).
        Returns per key (status, bytes, tier)."""
        arr, n = _keys(keys)
        ptrs = list(ptrs)
        if len(ptrs) != n:
            raise ValueError("%d ptrs for %d keys" % (len(ptrs), n))
        if caps is None or isinstance(caps, int):
            caps = [caps] * n
        caps = list(caps)
        if len(caps) != n:
            raise ValueError("%d caps for %d keys" % (len(caps), n))
        d = (_lib.GpuDesc * n)()
        for i in range(n):
            d[i].key = arr[i]
            d[i].dev = _devptr(ptrs[i], "ptrs[%d]" % i)
            cap = caps[i] if caps[i] is not None else _devbytes(ptrs[i])
            if cap is None:
                raise ValueError("caps[%d]: the size of a raw pointer must be given" % i)
            d[i].cap = cap
        s = _stream(stream)
        ev = _event(event, stream)
        rc = self._call("kvc_get_gpu", _ns(ns), d, n, s, ev)
        _check(rc, "kvc_get_gpu")
        return [(x.status, x.bytes, x.tier) for x in d]

    def put_gpu(self, ns, items, flags=0, stream=0, event=None):
        """Store chunks from device memory (kvc_put_gpu). items: (key, dev_ptr,
        nbytes[, parent[, tokens[, position]]]); nbytes may be None for a
        tensor. flags: PUT_HBM. Returns per item 0 (queued), -EEXIST, ..."""
        items = list(items)
        n = len(items)
        d = (_lib.PutDesc * n)()
        for i, it in enumerate(items):
            key, ptr, nbytes, parent, tokens, position = _item(
                it, 2, 6, "items[%d]" % i, (None, None, 0, 0))
            x = d[i]
            x.key = _key(key, "items[%d] key" % i)
            if parent is not None:
                x.parent = _key(parent, "items[%d] parent" % i)
                x.has_parent = 1
            x.tokens = _u(tokens, 32, "tokens")
            x.position = _u(position, 32, "position")
            x.data = _devptr(ptr, "items[%d] pointer" % i)
            if nbytes is None:
                nbytes = _devbytes(ptr)
                if nbytes is None:
                    raise ValueError("items[%d]: the size of a raw pointer must be "
                                     "given" % i)
            x.bytes = nbytes
        s = _stream(stream)
        ev = _event(event, stream)
        rc = self._call("kvc_put_gpu", _ns(ns), d, n, _u(flags, 32, "flags"), s, ev)
        _check(rc, "kvc_put_gpu")
        return [x.status for x in d]

    # ---- paged ----

    def get_paged(self, ns, layout, keys, pages, stream=0, event=None):
        """Scatter chunks into the engine's pages (kvc_get_paged). pages: per
        key chunk_tokens / block_size block ids (token slots for SGLang,
        positions for HF), a sequence of ints, a range or a tensor; or all
        keys' ids in one flat sequence, range, array('i') or tensor (1-D,
        or 2-D [keys, pages_per_chunk]), key after key. A range or an int32
        tensor costs no Python int per id (HF: range(0, n * chunk_tokens)).
        Returns per key (status, tier)."""
        arr, n = _keys(keys)
        flat, ptrs = _pages(layout, pages, n)
        d = (_lib.PagedDesc * n)()
        for i in range(n):
            d[i].key = arr[i]
            d[i].pages = ptrs[i]
        s = _stream(stream)
        ev = _event(event, stream)
        rc = self._call("kvc_get_paged", _ns(ns), ctypes.byref(layout._c), d, n, s, ev)
        del flat
        _check(rc, "kvc_get_paged")
        return [(x.status, x.tier) for x in d]

    def put_paged(self, ns, layout, items, flags=0, stream=0, event=None):
        """Gather chunks out of the engine's pages and store them
        (kvc_put_paged). items: (key, pages[, parent[, position]]); pages as
        one key's in get_paged (a range, say).
        Returns per item 0 (queued), -EEXIST, ..."""
        items = list(items)
        n = len(items)
        parts = [_item(it, 2, 4, "items[%d]" % i, (None, 0)) for i, it in enumerate(items)]
        flat, ptrs = _pages(layout, [p[1] for p in parts], n)
        d = (_lib.PagedDesc * n)()
        for i, (key, _, parent, position) in enumerate(parts):
            x = d[i]
            x.key = _key(key, "items[%d] key" % i)
            x.pages = ptrs[i]
            if parent is not None:
                x.parent = _key(parent, "items[%d] parent" % i)
                x.has_parent = 1
            x.position = _u(position, 32, "position")
        s = _stream(stream)
        ev = _event(event, stream)
        rc = self._call("kvc_put_paged", _ns(ns), ctypes.byref(layout._c), d, n,
                        _u(flags, 32, "flags"), s, ev)
        del flat
        _check(rc, "kvc_put_paged")
        return [x.status for x in d]

    def get_paged_layers(self, ns, layout, keys, pages, stream=0):
        """Begin a layer-by-layer paged get (kvc_get_paged_begin): pins the
        chunks and returns a PagedOp; op.load(b, e, event) queues layers
        [b, e); op.end() (or leaving `with`) lets it go. pages as in
        get_paged.

            with kv.get_paged_layers(ns, layout, keys, pages, stream) as op:
                for l in range(layout.layers):
                    op.load(l, l + 1, events[l])
        """
        return PagedOp(self, _ns(ns), layout, keys, pages, stream)


def _item(it, least, most, what, defaults):
    """Unpack a tuple of least..most fields, the rest from defaults."""
    it = tuple(it)
    if not least <= len(it) <= most:
        raise ValueError("%s must have %d to %d fields, not %d" % (what, least, most, len(it)))
    return it + tuple(defaults[len(it) - least:])
