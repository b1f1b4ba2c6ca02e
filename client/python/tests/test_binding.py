"""Tests of the kvstore Python binding against a real kvstored.

Needs libkvc.so ($KVSTORE_LIB, else the binding's own search) and the
daemon ($KVSTORED, else build/kvstored of this tree); without either the
module is skipped. No GPU and no torch needed: GPU calls are checked to
fail with KVC_ENOGPU (skipped where a GPU is usable), and layouts are
built from fake tensors.

Run: PYTHONPATH=client/python KVSTORE_LIB=build/libkvc.so \
     KVSTORED=build/kvstored python3 -m unittest discover -s client/python/tests -v
"""
import array
import ctypes
import errno
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import kvstore
from kvstore import _lib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))


def setUpModule():
    try:
        kvstore.load_library()
    except OSError as e:
        raise unittest.SkipTest("no libkvc: %s" % e)


def kvstored_path():
    p = os.environ.get("KVSTORED") or os.path.join(ROOT, "build", "kvstored")
    if not os.access(p, os.X_OK):
        raise unittest.SkipTest("no kvstored at %s (set KVSTORED)" % p)
    return p


class Daemon:
    """A kvstored on a socket in a fresh temporary directory."""

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="kvpy.")
        self.sock = os.path.join(self.dir, "kv.sock")
        self.log = os.path.join(self.dir, "daemon.log")
        cmd = [kvstored_path(), "--socket", self.sock, "--dram-bytes", "64M",
               "--hbm-bytes", "0", "--log", "warn"] + list(args)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            try:
                kvstore.Client(self.sock).close()
                return
            except kvstore.KvError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("kvstored did not start (exit %s):\n%s"
                                   % (self.proc.returncode, self.log_text()))
            time.sleep(0.02)

    def log_text(self):
        try:
            with open(self.log, "r", errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        """SIGTERM; returns the exit status (0 expected)."""
        try:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = "timeout"
            log = self.log_text()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        return rc, log


class DaemonCase(unittest.TestCase):
    """One daemon per TestCase class, and one shared Client on it."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon()
        cls.kv = kvstore.Client(cls.daemon.sock)

    @classmethod
    def tearDownClass(cls):
        cls.kv.close()
        rc, log = cls.daemon.stop()
        if rc != 0:
            raise AssertionError("kvstored exited %s on SIGTERM:\n%s" % (rc, log))


def rnd(seed, n):
    return random.Random(seed).randbytes(n)


def chain(ns, n, base):
    """n prefix keys of a prompt unique to base."""
    toks = [base * 1000 + i for i in range(4 * n)]
    return kvstore.prefix_keys(ns.salt, toks, 4)


# ---- no daemon --------------------------------------------------------------

class TestStructLayout(unittest.TestCase):
    """ctypes layouts against sizeof/offsetof printed by a C program compiled
    from client/kvc.h (x86-64 and aarch64 Linux, LP64)."""

    EXPECTED = {
        "Key": (16, {"lo": 0, "hi": 8}),
        "Loc": (32, {"status": 0, "tier": 4, "offset": 8, "bytes": 16, "ptr": 24}),
        "GetDesc": (48, {"key": 0, "buf": 16, "cap": 24, "bytes": 32, "status": 40}),
        "PutDesc": (72, {"key": 0, "parent": 16, "has_parent": 32, "tokens": 36,
                         "position": 40, "data": 48, "bytes": 56, "status": 64}),
        "GpuDesc": (48, {"key": 0, "dev": 16, "cap": 24, "bytes": 32, "status": 40,
                         "tier": 44}),
        "CLayout": (48, {"kind": 0, "layers": 4, "block_size": 8, "num_blocks": 12,
                         "kv_heads": 16, "head_dim": 20, "elem_bytes": 24,
                         "chunk_tokens": 28, "k": 32, "v": 40}),
        "PagedDesc": (56, {"key": 0, "pages": 16, "parent": 24, "has_parent": 40,
                           "position": 44, "status": 48, "tier": 52}),
        "TierStats": (136, {"name": 0, "policy": 16, "capacity_bytes": 40,
                            "used_bytes": 48, "chunks": 56, "hits": 64, "misses": 72,
                            "evictions": 80, "promotions": 88, "demotions": 96,
                            "alloc_failures": 104, "read_bw": 112, "read_samples": 120,
                            "read_bytes": 128}),
        "Stats": (696, {"n_tiers": 0, "tiers": 8, "connections": 552,
                        "pinned_chunks": 560, "pending_chunks": 568,
                        "checksum_failures": 576, "uptime_ms": 584, "namespaces": 592,
                        "writeback_failures": 600, "writeback_lost": 608,
                        "ssd_records_missing": 616, "ssd_records_wrong_ns": 624,
                        "records": 632, "max_records": 640, "meta_bytes": 648,
                        "plans_loaded": 656, "plans_computed": 664, "plans_both": 672,
                        "plan_tokens_loaded": 680, "plan_tokens_computed": 688}),
        "FlushResult": (32, {"chunks": 0, "bytes": 8, "skipped": 16, "why": 24}),
        "SlotRange": (4, {"first": 0, "last": 2}),
        "ClusterNode": (148, {"addr": 0, "slots": 64, "conns_open": 68, "state": 72,
                              "n_ranges": 76, "ranges_total": 80, "ranges": 84}),
        "Cluster": (9640, {"remote": 0, "up": 4, "seen": 8, "masters": 12,
                           "masters_down": 16, "nodes_known": 20, "n_nodes": 24,
                           "write_queue": 28, "write_inflight": 32, "age_ms": 40,
                           "stores": 48, "store_bytes": 56, "store_failures": 64,
                           "loads": 72, "load_bytes": 80, "load_failures": 88,
                           "probes": 96, "probe_hits": 104, "corrupt": 112,
                           "timeouts": 120, "errors": 128, "moved": 136, "asks": 144,
                           "refreshes": 152, "conn_errors": 160, "nodes": 168}),
    }

    def test_layouts(self):
        if ctypes.sizeof(ctypes.c_void_p) != 8:
            self.skipTest("figures are for LP64")
        for name, (size, fields) in self.EXPECTED.items():
            st = getattr(_lib, name)
            with self.subTest(struct=name):
                self.assertEqual(ctypes.sizeof(st), size)
                self.assertEqual([f for f, _ in st._fields_], list(fields))
                for f, off in fields.items():
                    self.assertEqual(getattr(st, f).offset, off, f)


class TestKeys(unittest.TestCase):
    # Computed with XXH3 one-shot calls over the concatenated input (parent
    # key bytes, then uint32 LE tokens), not through libkvc: an independent
    # check of the key scheme, and keys must never change across versions.
    TOKS = [1, 2, 3, 4, 5, 6, 7, 8, 100000, 4000000000, 0, 9]
    SALT_X = 0xeaf06c6480b2cd11
    CHAIN = ["9ead5c00661e623680530223be804f25", "2f6a4ccc5a0515370e67195297f1599a",
             "7f0698d777620d200a8c5352ee4ae6d2"]
    CONTENT = "41d16b6cc505a49f56e1a10ea6f2a130"

    def test_ns_salt(self):
        self.assertEqual(kvstore.ns_salt("x"), self.SALT_X)
        self.assertEqual(kvstore.ns_salt("llama3-8b/bf16/tp0of1/c256"), 0x66c81cd149a0b68c)
        self.assertEqual(kvstore.ns_salt(b"x"), self.SALT_X)
        self.assertRaises(ValueError, kvstore.ns_salt, "a\0b")

    def test_known_vectors(self):
        keys = kvstore.prefix_keys(self.SALT_X, self.TOKS, 4)
        self.assertEqual([k.hex() for k in keys], self.CHAIN)
        self.assertEqual(kvstore.content_key(self.SALT_X, self.TOKS[:4]).hex(), self.CONTENT)

    def test_chain_is_folded_prefix_key(self):
        s = kvstore.ns_salt("x")
        keys = kvstore.prefix_keys(s, self.TOKS, 4)
        self.assertEqual(len(keys), 3)
        parent = None
        for i, k in enumerate(keys):
            self.assertIsInstance(k, bytes)
            self.assertEqual(len(k), 16)
            want = kvstore.prefix_key(s, parent, self.TOKS[4 * i:4 * i + 4])
            self.assertEqual(k, want)
            parent = k
        self.assertEqual(keys[1], kvstore.prefix_key(
            s, kvstore.prefix_key(s, None, self.TOKS[:4]), self.TOKS[4:8]))
        # a partial tail has no key; other token containers agree
        self.assertEqual(kvstore.prefix_keys(s, self.TOKS[:11], 4), keys[:2])
        self.assertEqual(kvstore.prefix_keys(s, tuple(self.TOKS), 4), keys)
        self.assertEqual(kvstore.prefix_keys(s, array.array("I", self.TOKS), 4), keys)
        self.assertEqual(kvstore.prefix_keys(s, iter(self.TOKS), 4), keys)
        self.assertEqual(kvstore.prefix_keys(s, [], 4), [])
        self.assertEqual(kvstore.prefix_key(s, bytearray(keys[0]), self.TOKS[4:8]), keys[1])

    def test_content_key(self):
        s = kvstore.ns_salt("x")
        c = kvstore.content_key(s, self.TOKS[:4])
        self.assertNotEqual(c, kvstore.prefix_key(s, None, self.TOKS[:4]))
        self.assertEqual(c, kvstore.content_key(s, list(self.TOKS[:4])))
        self.assertNotEqual(c, kvstore.content_key(s + 1, self.TOKS[:4]))

    def test_hex(self):
        k = kvstore.prefix_key(1234, None, [5, 6, 7])
        h = kvstore.key_hex(k)
        self.assertEqual(len(h), 32)
        # hi then lo, each as a big-endian number
        self.assertEqual(h, k[8:][::-1].hex() + k[:8][::-1].hex())
        self.assertEqual(kvstore.key_from_hex(h), k)
        self.assertEqual(kvstore.key_from_hex(h.upper()), k)
        for bad in ("", "0" * 31, "0" * 33, "g" * 32, "é" * 32, "0" * 16 + "\0" + "0" * 15):
            self.assertRaises(ValueError, kvstore.key_from_hex, bad)

    def test_bad_arguments(self):
        self.assertRaises(ValueError, kvstore.prefix_key, 1, b"short", [1])
        self.assertRaises(TypeError, kvstore.prefix_key, 1, "not bytes", [1])
        self.assertRaises(ValueError, kvstore.prefix_key, -1, None, [1])
        self.assertRaises(ValueError, kvstore.prefix_key, 1 << 64, None, [1])
        self.assertRaises(ValueError, kvstore.prefix_key, 1, None, [-1])
        self.assertRaises(ValueError, kvstore.prefix_key, 1, None, [1 << 32])
        self.assertRaises(ValueError, kvstore.prefix_keys, 1, [1, 2], 0)
        self.assertRaises(ValueError, kvstore.key_hex, b"\0" * 15)


class FakeTensor:
    """Enough of a torch tensor for Layout's class methods."""

    def __init__(self, shape, ptr, dtype="bf16", esize=2, contiguous=True, cuda=True):
        self.shape = tuple(shape)
        self.dtype = dtype
        self._ptr = ptr
        self._esize = esize
        self._contig = contiguous
        self.is_cuda = cuda

    def data_ptr(self):
        return self._ptr

    def element_size(self):
        return self._esize

    def is_contiguous(self):
        return self._contig

    def numel(self):
        n = 1
        for d in self.shape:
            n *= d
        return n


class TestLayout(unittest.TestCase):

    def test_chunk_bytes(self):
        lay = kvstore.Layout(kvstore.LAYOUT_VLLM, 2, 16, 8, 8, 128, 2, 32, [0x1000, 0x2000])
        self.assertEqual(lay.chunk_bytes, 2 * 2 * 32 * 8 * 128 * 2)
        self.assertEqual(lay.pages_per_chunk, 2)
        self.assertEqual(lay.layer_bytes, lay.chunk_bytes // 2)
        self.assertEqual(list(lay._k), [0x1000, 0x2000])
        sp = kvstore.Layout(kvstore.LAYOUT_VLLM_SPLIT, 1, 16, 8, 8, 128, 2, 16, [1 << 20],
                            [2 << 20])
        self.assertEqual(sp.chunk_bytes, 2 * 16 * 8 * 128 * 2)
        sg = kvstore.Layout(kvstore.LAYOUT_SGLANG, 1, 1, 1000, 8, 64, 2, 16, [1], [2])
        self.assertEqual(sg.pages_per_chunk, 16)
        self.assertIn("SGLANG", repr(sg))
        hf = kvstore.Layout(kvstore.LAYOUT_HF, 2, 1, 4096, 8, 128, 2, 256, [1, 2], [3, 4])
        self.assertEqual((hf.chunk_bytes, hf.pages_per_chunk), (2 * 2 * 256 * 8 * 128 * 2, 256))
        self.assertIn("Layout(HF,", repr(hf))

    def test_bad_layouts(self):
        L = kvstore.Layout
        ok = dict(kind=kvstore.LAYOUT_VLLM, layers=2, block_size=16, num_blocks=8,
                  kv_heads=8, head_dim=128, elem_bytes=2, chunk_tokens=32, k=[1, 2])
        L(**ok)
        for change in (dict(chunk_tokens=24),  # not a multiple of block_size
                       dict(k=[1]),  # a layer short
                       dict(layers=0, k=[]),
                       dict(head_dim=0),
                       dict(kv_heads=1, head_dim=3),  # 6-byte rows
                       dict(kind=7),
                       dict(kind=kvstore.LAYOUT_VLLM_SPLIT),  # no v
                       dict(kind=kvstore.LAYOUT_VLLM_SPLIT, v=[1]),
                       dict(kind=kvstore.LAYOUT_SGLANG, v=[1, 2]),  # block_size 16
                       dict(kind=kvstore.LAYOUT_HF, v=[1, 2]),  # block_size 16
                       dict(kind=kvstore.LAYOUT_HF, block_size=1, chunk_tokens=32),  # no v
                       # 8-byte heads: each token's head is a piece of its own
                       dict(kind=kvstore.LAYOUT_HF, block_size=1, kv_heads=4, head_dim=4,
                            v=[1, 2]),
                       dict(kind=5),
                       dict(k=[1, -5])):
            with self.subTest(change=change):
                self.assertRaises(ValueError, L, **dict(ok, **change))
        self.assertRaises(TypeError, L, **dict(ok, k=[1, "x"]))

    def test_vllm_from_tensors(self):
        ts = [FakeTensor((2, 100, 16, 8, 128), 0x10000 * (i + 1)) for i in range(3)]
        lay = kvstore.Layout.vllm(ts, 64)
        self.assertEqual((lay.kind, lay.layers, lay.num_blocks, lay.block_size, lay.kv_heads,
                          lay.head_dim, lay.elem_bytes, lay.chunk_tokens),
                         (kvstore.LAYOUT_VLLM, 3, 100, 16, 8, 128, 2, 64))
        self.assertEqual(list(lay._k), [t.data_ptr() for t in ts])
        self.assertEqual(lay.chunk_bytes, 3 * 2 * 64 * 8 * 128 * 2)
        fi = kvstore.Layout.flashinfer([FakeTensor((100, 2, 16, 8, 128), 64)], 16)
        self.assertEqual((fi.kind, fi.num_blocks), (kvstore.LAYOUT_FLASHINFER, 100))
        with self.assertRaises(ValueError):
            kvstore.Layout.vllm([FakeTensor((3, 100, 16, 8, 128), 1)], 16)
        with self.assertRaises(ValueError):
            kvstore.Layout.vllm(ts[:1] + [FakeTensor((2, 99, 16, 8, 128), 1)], 16)
        with self.assertRaises(ValueError):
            kvstore.Layout.vllm([FakeTensor((2, 100, 16, 8, 128), 1, contiguous=False)], 16)
        with self.assertRaises(ValueError):
            kvstore.Layout.vllm([FakeTensor((2, 100, 16, 8, 128), 1, cuda=False)], 16)
        with self.assertRaises(ValueError):
            kvstore.Layout.vllm(ts, 24)  # chunk_tokens not a multiple of 16
        with self.assertRaises(ValueError):
            kvstore.Layout.vllm([], 16)

    def test_sglang_from_tensors(self):
        ks = [FakeTensor((4096, 8, 64), 0x100 * (i + 1)) for i in range(2)]
        vs = [FakeTensor((4096, 8, 64), 0x100000 * (i + 1)) for i in range(2)]
        lay = kvstore.Layout.sglang(ks, vs, 32)
        self.assertEqual((lay.kind, lay.block_size, lay.num_blocks, lay.pages_per_chunk),
                         (kvstore.LAYOUT_SGLANG, 1, 4096, 32))
        self.assertEqual(list(lay._v), [v.data_ptr() for v in vs])
        with self.assertRaises(ValueError):
            kvstore.Layout.sglang(ks, [FakeTensor((4096, 8, 32), 1)] * 2, 32)

    def test_hf_from_tensors(self):
        ks = [FakeTensor((1, 8, 4096, 128), 0x100 * (i + 1)) for i in range(3)]
        vs = [FakeTensor((1, 8, 4096, 128), 0x100000 * (i + 1)) for i in range(3)]
        lay = kvstore.Layout.hf(ks, vs, 256)
        self.assertEqual((lay.kind, lay.layers, lay.block_size, lay.num_blocks, lay.kv_heads,
                          lay.head_dim, lay.elem_bytes, lay.pages_per_chunk),
                         (kvstore.LAYOUT_HF, 3, 1, 4096, 8, 128, 2, 256))
        self.assertEqual(list(lay._k), [k.data_ptr() for k in ks])
        self.assertEqual(list(lay._v), [v.data_ptr() for v in vs])
        self.assertEqual(lay.chunk_bytes, 3 * 2 * 256 * 8 * 128 * 2)
        bad = {
            "batch 2": ([FakeTensor((2, 8, 4096, 128), 1)], [FakeTensor((2, 8, 4096, 128), 2)]),
            "3-D": ([FakeTensor((8, 4096, 128), 1)], [FakeTensor((8, 4096, 128), 2)]),
            "K and V apart": (ks[:1], [FakeTensor((1, 8, 2048, 128), 2)]),
            "layers differ": (ks, vs[:2]),
            "dtypes differ": (ks[:1], [FakeTensor((1, 8, 4096, 128), 2, esize=4)]),
            "not contiguous": ([FakeTensor((1, 8, 4096, 128), 1, contiguous=False)], vs[:1]),
            "on the CPU": (ks[:1], [FakeTensor((1, 8, 4096, 128), 2, cuda=False)]),
            "4-byte heads": ([FakeTensor((1, 8, 64, 2), 1)], [FakeTensor((1, 8, 64, 2), 2)]),
            "no layers": ([], []),
        }
        for what, (k, v) in bad.items():
            with self.subTest(what=what):
                self.assertRaises(ValueError, kvstore.Layout.hf, k, v, 256)

    def test_needs_tensors(self):
        try:
            import torch  # noqa: F401
            want = TypeError
        except ImportError:
            want = ImportError
        self.assertRaises(want, kvstore.Layout.vllm, [[1, 2, 3]], 16)


class FakeIdTensor:
    """A CPU integer tensor of page ids: tolist always; the bytes (data_ptr,
    contiguous, numel) too, for int32."""

    def __init__(self, ids, shape, dtype="torch.int32"):
        self._ids = list(ids)
        self.shape = tuple(shape)
        self.dtype = dtype
        self._buf = array.array("i", self._ids)
        self.copied_as_bytes = False

    def tolist(self):
        if len(self.shape) == 2:
            w = self.shape[1]
            return [self._ids[i:i + w] for i in range(0, len(self._ids), w)]
        return list(self._ids)

    def contiguous(self):
        return self

    def numel(self):
        return len(self._ids)

    def data_ptr(self):
        self.copied_as_bytes = True
        return self._buf.buffer_info()[0]


class TestPages(unittest.TestCase):
    """The forms page ids come in (no GPU: _pages alone)."""

    LAY = kvstore.Layout(kvstore.LAYOUT_HF, 1, 1, 1 << 16, 2, 64, 2, 4, [1], [2])

    def pages(self, pages, n):
        flat, ptrs = kvstore._pages(self.LAY, pages, n)
        self.assertEqual(len(ptrs), n)
        for i, p in enumerate(ptrs):  # each key's pointer into the buffer
            self.assertEqual([p[j] for j in range(4)], list(flat[4 * i:4 * i + 4]))
        return list(flat)

    def test_forms(self):
        want = list(range(7, 19))
        forms = {
            "per key lists": [want[0:4], want[4:8], want[8:12]],
            "per key ranges": [range(7, 11), range(11, 15), range(15, 19)],
            "per key tensors": [FakeIdTensor(want[i:i + 4], (4,)) for i in (0, 4, 8)],
            "per key int64 tensors": [FakeIdTensor(want[i:i + 4], (4,), "torch.int64")
                                      for i in (0, 4, 8)],
            "flat list": want,
            "flat tuple": tuple(want),
            "flat range": range(7, 19),
            "flat array": array.array("i", want),
            "1-D tensor": FakeIdTensor(want, (12,)),
            "2-D tensor": FakeIdTensor(want, (3, 4)),
            "2-D int64 tensor": FakeIdTensor(want, (3, 4), "torch.int64"),
        }
        for what, pages in forms.items():
            with self.subTest(form=what):
                self.assertEqual(self.pages(pages, 3), want)
        t = FakeIdTensor(want, (12,))
        self.pages(t, 3)
        self.assertTrue(t.copied_as_bytes)  # int32: no Python int per id
        t = FakeIdTensor(want, (12,), "torch.int64")
        self.pages(t, 3)
        self.assertFalse(t.copied_as_bytes)
        self.assertEqual(self.pages([], 0), [])
        self.assertEqual(self.pages(range(0), 0), [])

    def test_ranges(self):
        self.assertEqual(self.pages(range(40000, 40000 + 4 * 1000), 1000),
                         list(range(40000, 44000)))
        self.assertEqual(self.pages([range(8, 4, -1)], 1), [8, 7, 6, 5])
        self.assertEqual(self.pages(range(0, 8, 2), 1), [0, 2, 4, 6])
        self.assertEqual(self.pages(range(-2, 2), 1), [-2, -1, 0, 1])  # the library refuses
        self.assertEqual(self.pages(range(3, -1, -1), 1), [3, 2, 1, 0])
        big = (1 << 31) - 4
        self.assertEqual(self.pages(range(big, big + 4), 1), list(range(big, big + 4)))
        self.assertRaises(ValueError, kvstore._pages, self.LAY, range(big, big + 8), 2)

    def test_bad(self):
        bad = {
            "flat, one short": (list(range(11)), 3),
            "flat range, one long": (range(13), 3),
            "a key short": ([[1, 2, 3, 4], [1, 2, 3]], 2),
            "a key missing": ([[1, 2, 3, 4]], 2),
            "2-D tensor the other way": (FakeIdTensor(range(12), (4, 3)), 3),
            "3-D tensor": (FakeIdTensor(range(12), (3, 2, 2)), 3),
            "past int32": ([[1, 2, 3, 1 << 31]], 1),
            "past int32, flat": ([1, 2, 3, 1 << 31], 1),
            "past int32, range": ([range((1 << 31) - 2, (1 << 31) + 2)], 1),
        }
        for what, (pages, n) in bad.items():
            with self.subTest(what=what):
                self.assertRaises(ValueError, kvstore._pages, self.LAY, pages, n)
        self.assertRaises(TypeError, kvstore._pages, self.LAY, [[1, 2, 3, "x"]], 1)


class TestGpuArguments(unittest.TestCase):
    """How device pointers, streams and events are taken (no GPU needed)."""

    def test_pointers(self):
        self.assertEqual(kvstore._devptr(0x1000), 0x1000)
        self.assertEqual(kvstore._devptr(ctypes.c_void_p(0x2000)), 0x2000)
        t = FakeTensor((4, 8), 0x3000, esize=2)
        self.assertEqual((kvstore._devptr(t), kvstore._devbytes(t)), (0x3000, 64))
        self.assertRaises(ValueError, kvstore._devptr, FakeTensor((4,), 1, contiguous=False))

        class CudaArray:
            __cuda_array_interface__ = {"data": (0x4000, False), "shape": (3, 5),
                                        "typestr": "<f4", "strides": None, "version": 3}
        self.assertEqual((kvstore._devptr(CudaArray()), kvstore._devbytes(CudaArray())),
                         (0x4000, 60))
        self.assertIsNone(kvstore._devbytes(0x1000))
        self.assertRaises(TypeError, kvstore._devptr, "0x1000")
        self.assertRaises(ValueError, kvstore._devptr, -1)

    def test_streams_and_events(self):
        class Stream:  # torch.cuda.Stream
            cuda_stream = 0x5000

        class ProtoStream:  # the CUDA stream protocol
            def __cuda_stream__(self):
                return (0, 0x6000)

        class Event:  # torch.cuda.Event: created at its first record()
            def __init__(self):
                self.cuda_event = 0
                self.recorded_on = "nothing"

            def record(self, stream=None):
                self.recorded_on = stream
                self.cuda_event = 0x7000

        for s, want in ((None, None), (0, None), (0x10, 0x10), (Stream(), 0x5000),
                        (ProtoStream(), 0x6000), (ctypes.c_void_p(0x20), 0x20)):
            self.assertEqual(kvstore._stream(s), want)
        self.assertRaises(TypeError, kvstore._stream, "default")
        self.assertIsNone(kvstore._event(None))
        self.assertEqual(kvstore._event(0x30), 0x30)
        ev = Event()
        st = Stream()
        self.assertEqual(kvstore._event(ev, st), 0x7000)
        self.assertIs(ev.recorded_on, st)
        ev = Event()
        self.assertEqual(kvstore._event(ev, 0), 0x7000)
        self.assertIsNone(ev.recorded_on)


# ---- against a daemon -----------------------------------------------------------

class TestClient(DaemonCase):

    def setUp(self):
        self.ns = self.kv.namespace("test/py/%s" % self._testMethodName)

    def test_namespace(self):
        a = self.kv.namespace("test/py/ns")
        b = self.kv.namespace("test/py/ns")
        self.assertEqual(a, b)
        self.assertEqual(a.id, b.id)
        self.assertEqual(a.name, "test/py/ns")
        self.assertEqual(a.salt, kvstore.ns_salt("test/py/ns"))
        self.assertNotEqual(self.kv.namespace("test/py/other").id, a.id)
        m = self.kv.namespace("test/py/model", hidden=4096, a=2.0, b=26.0)
        self.assertEqual(self.kv.namespace("test/py/model").id, m.id)
        with kvstore.Client(self.daemon.sock) as other:  # ids are per daemon
            self.assertEqual(other.namespace("test/py/ns").id, a.id)
        with self.assertRaises(kvstore.KvError) as cm:
            self.kv.namespace("test/py/bad", hidden=0)
        self.assertEqual(cm.exception.code, -errno.EINVAL)
        with self.assertRaises(kvstore.KvError) as cm:
            self.kv.namespace("")
        self.assertEqual(cm.exception.code, -errno.EINVAL)
        self.assertEqual(int(a), a.id)

    def test_put_get_round_trip(self):
        ns = self.ns
        for i, size in enumerate((1, 17, 4096, 65537, (1 << 20) + 3)):
            with self.subTest(size=size):
                key = kvstore.prefix_key(ns.salt, None, [i, size])
                data = rnd(size, size)
                self.assertTrue(self.kv.put(ns, key, data, tokens=4, position=0))
                self.assertFalse(self.kv.put(ns, key, data))  # -EEXIST
                self.assertEqual(self.kv.get(ns, key), data)
                self.assertEqual(self.kv.get(ns.id, key), data)
                out = bytearray(size + 10)
                self.assertEqual(self.kv.get(ns, key, out), size)
                self.assertEqual(bytes(out[:size]), data)
                mv = memoryview(bytearray(size + 64))[32:32 + size]
                self.assertEqual(self.kv.get(ns, key, mv), size)
                self.assertEqual(mv.tobytes(), data)
                arr = array.array("B", bytes(size))
                self.assertEqual(self.kv.get(ns, key, arr), size)
                self.assertEqual(arr.tobytes(), data)

    def test_put_buffer_kinds(self):
        ns = self.ns
        base = rnd(7, 8192)
        cases = {
            "bytearray": bytearray(base),
            "readonly memoryview": memoryview(base)[100:5000],
            "writable memoryview": memoryview(bytearray(base))[8:4000],
            "strided memoryview": memoryview(base)[::3],
            "array of doubles": array.array("d", range(300)),
            "ctypes array": (ctypes.c_char * 333).from_buffer_copy(base[:333]),
        }
        for i, (what, data) in enumerate(cases.items()):
            with self.subTest(kind=what):
                key = kvstore.content_key(ns.salt, [i])
                self.assertTrue(self.kv.put(ns, key, data))
                self.assertEqual(self.kv.get(ns, key), memoryview(data).tobytes())
        with self.assertRaises(kvstore.KvError) as cm:
            self.kv.put(ns, kvstore.content_key(ns.salt, [99]), b"")
        self.assertEqual(cm.exception.code, -errno.EINVAL)
        self.assertRaises(TypeError, self.kv.put, ns, kvstore.content_key(ns.salt, [98]), "str")
        self.assertRaises(ValueError, self.kv.put, ns, b"x" * 15, b"data")

    def test_timeout(self):
        # A stopped daemon: the call gives up after set_timeout's ms, and
        # the client is closed for further use (issue 11).
        with kvstore.Client(self.daemon.sock) as c:
            c.set_timeout(200)
            self.assertGreater(c.ping(), 0)
            os.kill(self.daemon.proc.pid, signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                with self.assertRaises(kvstore.KvError) as cm:
                    c.ping()
                self.assertEqual(cm.exception.code, -kvstore.KVC_ETIMEDOUT)
                self.assertLess(time.monotonic() - t0, 2.0)
            finally:
                os.kill(self.daemon.proc.pid, signal.SIGCONT)
            with self.assertRaises(kvstore.KvError) as cm:
                c.ping()
            self.assertEqual(cm.exception.code, -kvstore.KVC_ECLOSED)
            self.assertRaises(ValueError, c.set_timeout, -1)

    def test_get_missing(self):
        key = kvstore.prefix_key(self.ns.salt, None, [424242])
        self.assertIsNone(self.kv.get(self.ns, key))
        self.assertIsNone(self.kv.get(self.ns, key, bytearray(10)))

    def test_get_too_small(self):
        key = kvstore.prefix_key(self.ns.salt, None, [5])
        self.kv.put(self.ns, key, rnd(5, 1000))
        with self.assertRaises(kvstore.KvError) as cm:
            self.kv.get(self.ns, key, bytearray(999))
        e = cm.exception
        self.assertEqual(e.code, -errno.ENOBUFS)
        self.assertEqual(e.code, -105)
        self.assertEqual(e.message, os.strerror(errno.ENOBUFS))
        self.assertIn("kvc_get", str(e))
        self.assertIn("-105", str(e))
        self.assertIn("1000", str(e))
        self.assertRaises(TypeError, self.kv.get, self.ns, key, b"\0" * 2000)  # read-only

    def test_lookup(self):
        ns = self.ns
        keys = chain(ns, 3, 1)
        self.assertEqual(self.kv.lookup(ns, keys), (0, [kvstore.TIER_NONE] * 3))
        self.assertTrue(self.kv.put(ns, keys[0], b"a" * 64, None, 4, 0))
        with self.assertRaises(kvstore.KvError) as cm:  # its parent is missing
            self.kv.put(ns, keys[2], b"c" * 64, keys[1], 4, 8)
        self.assertEqual(cm.exception.code, -kvstore.KVC_ENOPARENT)
        self.assertTrue(self.kv.put(ns, keys[2], b"c" * 64))
        self.assertEqual(self.kv.lookup(ns, keys),
                         (1, [kvstore.TIER_DRAM, kvstore.TIER_NONE, kvstore.TIER_DRAM]))
        self.assertTrue(self.kv.put(ns, keys[1], b"b" * 64, keys[0], 4, 4))
        self.assertEqual(self.kv.lookup(ns, keys), (3, [kvstore.TIER_DRAM] * 3))
        self.assertEqual(self.kv.lookup(ns, []), (0, []))

    def test_batches(self):
        ns = self.ns
        keys = chain(ns, 40, 2)
        datas = [rnd(100 + i, 100 + 37 * i) for i in range(40)]
        items = []
        for i, (k, d) in enumerate(zip(keys, datas)):
            parent = keys[i - 1] if i else None
            # every tuple length the call takes
            items.append([(k, d), (k, d, parent), (k, d, parent, 4),
                          (k, d, parent, 4, 4 * i)][i % 4])
        self.assertEqual(self.kv.put_batch(ns, items), [0] * 40)
        self.assertEqual(self.kv.put_batch(ns, items[:3]), [-errno.EEXIST] * 3)
        outs = [bytearray(len(d)) for d in datas]
        self.assertEqual(self.kv.get_batch(ns, keys, outs), [0] * 40)
        self.assertEqual([bytes(o) for o in outs], datas)
        missing = kvstore.content_key(ns.salt, [1, 2, 3])
        st = self.kv.get_batch(ns, [keys[0], missing, keys[1], keys[2]],
                               [bytearray(len(datas[0])), bytearray(10), bytearray(5), None])
        self.assertEqual(st, [0, -errno.ENOENT, -errno.ENOBUFS, -errno.ENOBUFS])
        self.assertRaises(ValueError, self.kv.get_batch, ns, keys[:2], [bytearray(1)])
        self.assertRaises(ValueError, self.kv.put_batch, ns, [(keys[0],)])

    def test_batches_past_max_batch(self):
        ns = self.ns
        n = 2 * kvstore.MAX_BATCH + 100
        keys = [kvstore.content_key(ns.salt, [7, i]) for i in range(n)]
        self.assertEqual(self.kv.put_batch(ns, [(k, k) for k in keys]), [0] * n)
        hits, tiers = self.kv.lookup(ns, keys)
        self.assertEqual((hits, set(tiers)), (n, {kvstore.TIER_DRAM}))
        outs = [bytearray(16) for _ in keys]
        self.assertEqual(self.kv.get_batch(ns, keys, outs), [0] * n)
        self.assertEqual([bytes(o) for o in outs], keys)
        self.assertEqual(self.kv.prefetch(ns, keys), [0] * n)
        self.assertEqual(self.kv.score(ns, keys, [0.5] * n), [0] * n)
        self.assertEqual(self.kv.evict(ns, keys), [0] * n)
        self.assertEqual(self.kv.lookup(ns, keys)[0], 0)

    def test_prefetch_score_evict(self):
        ns = self.ns
        k, missing = chain(ns, 2, 3)
        self.kv.put(ns, k, b"z" * 256)
        self.assertEqual(self.kv.prefetch(ns, [k, missing]), [0, -errno.ENOENT])
        self.assertEqual(self.kv.score(ns, [k, missing], [0.25, 0.5]), [0, -errno.ENOENT])
        self.assertEqual(self.kv.score(ns, [k], [1.5]), [-errno.EINVAL])
        self.assertRaises(ValueError, self.kv.score, ns, [k], [])
        self.assertEqual(self.kv.evict(ns, [k, missing]), [0, -errno.ENOENT])
        self.assertIsNone(self.kv.get(ns, k))
        self.assertEqual(self.kv.evict(ns, []), [])

    def test_stats(self):
        ns = self.ns
        self.kv.put(ns, kvstore.content_key(ns.salt, [11]), b"s" * 5000)
        st = self.kv.stats()
        for f in ("connections", "pinned_chunks", "pending_chunks", "checksum_failures",
                  "uptime_ms", "namespaces", "tiers"):
            self.assertIn(f, st)
        self.assertGreaterEqual(st["connections"], 1)
        self.assertGreaterEqual(st["namespaces"], 1)
        self.assertEqual(st["pinned_chunks"], 0)
        dram = [t for t in st["tiers"] if t["name"] == "dram"]
        self.assertEqual(len(dram), 1, st["tiers"])
        dram = dram[0]
        self.assertEqual(dram["policy"], "lru")
        self.assertEqual(dram["capacity_bytes"], 64 << 20)
        self.assertGreaterEqual(dram["chunks"], 1)
        self.assertGreaterEqual(dram["used_bytes"], 5000)
        for f in ("hits", "misses", "evictions", "promotions", "demotions", "alloc_failures",
                  "read_bw", "read_samples", "read_bytes"):
            self.assertIsInstance(dram[f], int)
        for f in ("plans_loaded", "plans_computed", "plans_both", "plan_tokens_loaded",
                  "plan_tokens_computed"):
            self.assertIsInstance(st[f], int)
        self.assertEqual(self.kv.policy(kvstore.TIER_DRAM), "lru")

    def test_cluster_without_remote(self):
        # The class's daemon has no remote tier: a dict that says so.
        cl = self.kv.cluster()
        self.assertIs(cl["remote"], False)
        self.assertIs(cl["up"], False)
        self.assertEqual(cl["nodes"], [])
        self.assertEqual(cl["stores"] + cl["probes"] + cl["masters"], 0)
        for f in ("masters_down", "nodes_known", "write_queue", "age_ms", "store_bytes",
                  "load_bytes", "corrupt", "timeouts", "errors", "refreshes",
                  "conn_errors"):
            self.assertEqual(cl[f], 0, f)

    def test_report_bw_and_plan(self):
        # A daemon of its own: the figures start from nothing.
        d = Daemon()
        try:
            with kvstore.Client(d.sock) as kv:
                def dram():
                    return [t for t in kv.stats()["tiers"] if t["name"] == "dram"][0]
                self.assertEqual((dram()["read_bw"], dram()["read_samples"]), (0, 0))
                # 32 MiB in 0.6 ms, then 8 GB/s: the first is taken as is, the
                # next weighs 1/8 (docs/protocol.md, BW_REPORT).
                kv.report_bw(kvstore.TIER_DRAM, 32 << 20, 0.0006)
                r1 = (32 << 20) * 10**9 // 600000
                self.assertEqual(dram()["read_bw"], r1)
                kv.report_bw(kvstore.TIER_DRAM, 8 * 10**9, 1.0)
                avg8 = 8 * r1 - r1 + 8 * 10**9
                t = dram()
                self.assertEqual((t["read_bw"], t["read_samples"], t["read_bytes"]),
                                 (avg8 // 8, 2, (32 << 20) + 8 * 10**9))
                for tier, nbytes, secs, code in (
                        (kvstore.TIER_HBM, 1 << 20, 1e-4, -kvstore.KVC_ENOTIER),
                        (kvstore.TIER_SSD, 1 << 20, 1e-4, -kvstore.KVC_ENOTIER),
                        (7, 1 << 20, 1e-4, -kvstore.KVC_ENOTIER),
                        (kvstore.TIER_DRAM, 0, 1e-4, -errno.EINVAL),
                        (kvstore.TIER_DRAM, 1 << 20, 0, -errno.EINVAL),
                        (kvstore.TIER_DRAM, 11 * 10**12, 1.0, -errno.ERANGE),
                        (kvstore.TIER_DRAM, 999, 1.0, -errno.ERANGE)):
                    with self.assertRaises(kvstore.KvError) as cm:
                        kv.report_bw(tier, nbytes, secs)
                    self.assertEqual(cm.exception.code, code, (tier, nbytes, secs))
                self.assertEqual(dram()["read_samples"], 2)
                self.assertRaises(ValueError, kv.report_bw, kvstore.TIER_DRAM, 1, -1.0)
                self.assertRaises(ValueError, kv.report_bw, kvstore.TIER_DRAM, 1, float("nan"))
                self.assertRaises(ValueError, kv.report_bw, kvstore.TIER_DRAM, -1, 1.0)

                kv.report_plan(kvstore.PLAN_LOADED, 512, 0)
                kv.report_plan(kvstore.PLAN_BOTH, 256, 768)
                kv.report_plan(kvstore.PLAN_BOTH, 0, 256)
                kv.report_plan(kvstore.PLAN_COMPUTED, 0, 1024)
                for kind in (0, 4, 2**32 - 1):
                    with self.assertRaises(kvstore.KvError) as cm:
                        kv.report_plan(kind, 1, 1)
                    self.assertEqual(cm.exception.code, -errno.EINVAL)
                st = kv.stats()
                self.assertEqual([st[k] for k in ("plans_loaded", "plans_computed", "plans_both",
                                                  "plan_tokens_loaded",
                                                  "plan_tokens_computed")],
                                 [1, 1, 2, 768, 2048])
                self.assertEqual(kv.ping() >= 0, True)
        finally:
            rc, log = d.stop()
            self.assertEqual(rc, 0, log)

    def test_flush(self):
        ns = self.ns
        keys = chain(ns, 5, 4)
        for k in keys:
            self.kv.put(ns, k, b"f" * 3000)
        # nothing below DRAM: nothing to write back
        self.assertEqual(self.kv.flush()["chunks"], 0)
        r = self.kv.flush(kvstore.TIER_DRAM, drop=True)
        self.assertEqual(set(r), {"chunks", "bytes", "skipped"})
        self.assertGreaterEqual(r["chunks"], 5)
        self.assertGreaterEqual(r["bytes"], 5 * 3000)
        self.assertEqual(r["skipped"], 0)
        self.assertEqual(self.kv.lookup(ns, keys)[0], 0)
        dram = [t for t in self.kv.stats()["tiers"] if t["name"] == "dram"][0]
        self.assertEqual((dram["chunks"], dram["used_bytes"]), (0, 0))
        with self.assertRaises(kvstore.KvError) as cm:
            self.kv.flush(kvstore.TIER_SSD)
        self.assertEqual(cm.exception.code, -kvstore.KVC_ENOTIER)

    def test_ping(self):
        a = self.kv.ping()
        time.sleep(0.01)
        b = self.kv.ping()
        self.assertIsInstance(a, int)
        self.assertGreaterEqual(b, a)

    def test_errors(self):
        key = kvstore.content_key(self.ns.salt, [1])
        with self.assertRaises(kvstore.KvError) as cm:
            self.kv.lookup(4000000, [key])
        e = cm.exception
        self.assertEqual(e.code, -kvstore.KVC_ENONS)
        self.assertEqual(e.errno, kvstore.KVC_ENONS)
        self.assertEqual(e.message, kvstore.strerror(-kvstore.KVC_ENONS))
        self.assertTrue(e.message and e.message != "unknown error")
        self.assertIn("kvc_lookup", str(e))
        self.assertIn(str(-kvstore.KVC_ENONS), str(e))
        for call in (lambda: self.kv.get(4000000, key),
                     lambda: self.kv.put(4000000, key, b"x"),
                     lambda: self.kv.evict(4000000, [key])):
            with self.assertRaises(kvstore.KvError) as cm:
                call()
            self.assertEqual(cm.exception.code, -kvstore.KVC_ENONS)
        self.assertRaises(TypeError, self.kv.lookup, "ns", [key])
        self.assertRaises(ValueError, self.kv.lookup, -1, [key])

    def test_connect_and_close(self):
        with self.assertRaises(kvstore.KvError) as cm:
            kvstore.Client(os.path.join(self.daemon.dir, "nothing.sock"))
        self.assertIn(cm.exception.code, (-errno.ENOENT, -errno.ECONNREFUSED))
        old = os.environ.get("KVSTORE_SOCKET")
        os.environ["KVSTORE_SOCKET"] = self.daemon.sock
        try:
            c = kvstore.Client()
        finally:
            if old is None:
                del os.environ["KVSTORE_SOCKET"]
            else:
                os.environ["KVSTORE_SOCKET"] = old
        ns = c.namespace("test/py/closed")
        c.close()
        c.close()
        self.assertTrue(c.closed)
        for call in (c.ping, c.stats, lambda: c.get(ns, b"k" * 16),
                     lambda: c.put(ns, b"k" * 16, b"v"), lambda: c.namespace("x")):
            with self.assertRaises(kvstore.KvError) as cm:
                call()
            self.assertEqual(cm.exception.code, -kvstore.KVC_ECLOSED)
        with kvstore.Client(self.daemon.sock) as c2:
            c2.ping()
        self.assertTrue(c2.closed)
        c3 = kvstore.Client(self.daemon.sock)
        del c3  # __del__ closes quietly

    def test_threads_share_a_client(self):
        ns = self.ns
        errors = []
        barrier = threading.Barrier(4)

        def work(t):
            try:
                r = random.Random(t)
                barrier.wait()
                mine = {}
                for i in range(60):
                    key = kvstore.content_key(ns.salt, [t, i])
                    data = r.randbytes(r.randrange(1, 20000))
                    mine[key] = data
                    if not self.kv.put(ns, key, data):
                        errors.append("thread %d: put %d was not new" % (t, i))
                    if self.kv.get(ns, key) != data:
                        errors.append("thread %d: get %d differs" % (t, i))
                keys = list(mine)
                outs = [bytearray(len(mine[k])) for k in keys]
                if self.kv.get_batch(ns, keys, outs) != [0] * len(keys):
                    errors.append("thread %d: get_batch failed" % t)
                if [bytes(o) for o in outs] != [mine[k] for k in keys]:
                    errors.append("thread %d: get_batch bytes differ" % t)
                if self.kv.lookup(ns, keys)[0] != len(keys):
                    errors.append("thread %d: lookup short" % t)
            except Exception as e:  # reported below, with the thread
                errors.append("thread %d: %r" % (t, e))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        self.assertEqual(errors, [])
        self.assertFalse(any(th.is_alive() for th in threads))

    def test_close_while_threads_call(self):
        c = kvstore.Client(self.daemon.sock)
        ns = c.namespace("test/py/closing")
        key = kvstore.content_key(ns.salt, [1])
        data = rnd(1, 100000)
        c.put(ns, key, data)
        ends = []

        def work():
            try:
                while True:
                    if c.get(ns, key) != data or c.get(ns, key, bytearray(len(data))) != len(data):
                        ends.append("wrong bytes")
                        return
            except kvstore.KvError as e:
                ends.append(e.code)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for th in threads:
            th.start()
        time.sleep(0.1)
        c.close()  # waits for the calls in progress
        for th in threads:
            th.join(10)
        self.assertEqual(ends, [-kvstore.KVC_ECLOSED] * 3)
        self.assertEqual(self.kv.stats()["pinned_chunks"], 0)

    def test_gpu_without_gpu(self):
        with kvstore.Client(self.daemon.sock) as probe:
            try:
                probe.gpu_open()
            except kvstore.KvError as e:
                self.assertEqual(e.code, -kvstore.KVC_ENOGPU)
                self.assertEqual(e.code, -20009)
            else:
                self.skipTest("a GPU is usable here")
        kv, ns = self.kv, self.ns
        key = kvstore.content_key(ns.salt, [1])
        lay = kvstore.Layout(kvstore.LAYOUT_VLLM, 2, 16, 8, 8, 128, 2, 32, [0x1000, 0x2000])
        calls = {
            "gpu_open": lambda: kv.gpu_open(0, kvstore.GPU_REGISTER_ALL),
            "gpu_mode": lambda: kv.gpu_mode(kvstore.GPU_STAGED),
            "get_gpu": lambda: kv.get_gpu(ns, [key], [0x1000], [4096]),
            "put_gpu": lambda: kv.put_gpu(ns, [(key, 0x1000, 4096)], kvstore.PUT_HBM),
            "get_paged": lambda: kv.get_paged(ns, lay, [key], [[0, 1]]),
            "put_paged": lambda: kv.put_paged(ns, lay, [(key, [0, 1], None, 0)]),
            "get_paged_layers": lambda: kv.get_paged_layers(ns, lay, [key], [[0, 1]]),
        }
        for name, call in calls.items():
            with self.subTest(call=name):
                with self.assertRaises(kvstore.KvError) as cm:
                    call()
                self.assertEqual(cm.exception.code, -kvstore.KVC_ENOGPU)
        # nothing was queued: nothing to wait for
        kv.gpu_flush()
        self.assertEqual(kv.gpu_registered(), (0, 64 << 20))
        # argument errors come first
        self.assertRaises(ValueError, kv.get_paged, ns, lay, [key], [[0, 1, 2]])
        self.assertRaises(ValueError, kv.get_paged, ns, lay, [key], [])
        self.assertRaises(ValueError, kv.get_gpu, ns, [key], [0x1000])
        self.assertRaises(ValueError, kv.get_gpu, ns, [key], [0x1000], None)
        self.assertRaises(TypeError, kv.get_gpu, ns, [key], ["x"], 10)
        self.assertRaises(TypeError, kv.get_gpu, ns, [key], [1], 10, stream="s")


if __name__ == "__main__":
    unittest.main()
