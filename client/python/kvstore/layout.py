"""kvstore.layout: an engine's paged KV cache described for libkvc (Layout,
struct kvc_layout), the page ids of a paged call, and device memory as
arguments (addresses, tensors, CUDA arrays).
"""
import array
import ctypes
import operator

from . import _lib
from ._lib import load_library
from .keys import _U32

__all__ = ["Layout", "LAYOUT_VLLM", "LAYOUT_VLLM_SPLIT", "LAYOUT_FLASHINFER", "LAYOUT_SGLANG",
           "LAYOUT_HF"]

LAYOUT_VLLM = 0  # per layer [2, num_blocks, block_size, H, D]
LAYOUT_VLLM_SPLIT = 1  # per layer K and V [num_blocks, block_size, H, D]
LAYOUT_FLASHINFER = 2  # per layer [num_blocks, 2, block_size, H, D]
LAYOUT_SGLANG = 3  # per layer K and V [num_tokens, H, D]
LAYOUT_HF = 4  # per layer K and V [1, H, tokens, D] (transformers)

# an array typecode of 4-byte signed ints
_I32 = "i" if array.array("i").itemsize == 4 else "l"


# ---- device memory -----------------------------------------------------------

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
