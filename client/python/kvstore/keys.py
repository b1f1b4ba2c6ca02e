"""kvstore.keys: chunk keys (prefix and content keys, namespace salts, the
hex form), and the conversion of the arguments they share with the rest of
the binding: keys, token ids, names, unsigned ints.
"""
import array
import ctypes
import operator

from . import _lib
from ._lib import load_library

__all__ = ["ns_salt", "prefix_key", "content_key", "prefix_keys", "key_hex", "key_from_hex",
           "KEY_BYTES"]

KEY_BYTES = 16

_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1
# an array typecode of 4-byte unsigned ints
_TOK = "I" if array.array("I").itemsize == 4 else "L"


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


def _name(name):
    if isinstance(name, str):
        name = name.encode("utf-8")
    elif not isinstance(name, bytes):
        raise TypeError("name must be str, not %s" % type(name).__name__)
    if b"\0" in name:
        raise ValueError("name contains a NUL character")
    return name


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
