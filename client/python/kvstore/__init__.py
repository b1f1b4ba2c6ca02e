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
from . import _lib  # noqa: F401 (kvstore._lib: the C declarations)
from . import client, errors, keys, layout
from ._lib import load_library
from .client import *  # noqa: F401,F403
from .errors import *  # noqa: F401,F403
from .keys import *  # noqa: F401,F403
from .layout import *  # noqa: F401,F403
# Private helpers the binding's tests reach as kvstore._name.
from .client import _event, _stream  # noqa: F401
from .layout import _devbytes, _devptr, _pages  # noqa: F401

__version__ = "0.1"

__all__ = ["load_library"] + errors.__all__ + keys.__all__ + layout.__all__ + client.__all__
