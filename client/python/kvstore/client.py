"""kvstore.client: Client, one connection to kvstored, with the namespaces
it registers and its layer-by-layer paged gets (the package's docstring
says how to use it).
"""
import ctypes
import errno as _errno
import operator
import os
import threading
import weakref

from . import _lib
from ._lib import load_library
from .errors import KVC_ECLOSED, KVC_ENOTIER, KVC_EREFUSED, KvError, _check, strerror
from .keys import _U32, _key, _keys, _name, _u
from .layout import _devbytes, _devptr, _pages

__all__ = [
    "Client", "Namespace", "PagedOp",
    "TIER_HBM", "TIER_DRAM", "TIER_SSD", "TIER_REMOTE", "TIER_NONE",
    "PLAN_LOADED", "PLAN_COMPUTED", "PLAN_BOTH",
    "GPU_AUTO", "GPU_ZEROCOPY", "GPU_STAGED",
    "GPU_REGISTER_ALL", "GPU_NO_HBM", "PUT_HBM",
    "MAX_BATCH", "MAX_TIERS", "DEFAULT_SOCKET",
]

TIER_HBM = 0
TIER_DRAM = 1
TIER_SSD = 2
TIER_REMOTE = 3
TIER_NONE = 0xff

# enum kvc_plan_kind: the plan a request got for its cached chunks
PLAN_LOADED = 1  # every cached chunk loaded
PLAN_COMPUTED = 2  # cached chunks existed; all recomputed
PLAN_BOTH = 3  # part loaded, part computed at once

MAX_TIERS = 4
MAX_BATCH = 1024  # keys per message; the library splits larger batches
DEFAULT_SOCKET = "./var/kvstore.sock"

GPU_AUTO = 0
GPU_ZEROCOPY = 1
GPU_STAGED = 2

GPU_REGISTER_ALL = 1 << 0  # gpu_open: page-lock the DRAM mapping in the background
GPU_NO_HBM = 1 << 1  # gpu_open: never open the daemon's HBM arena
PUT_HBM = 1 << 2  # put_gpu/put_paged: into HBM when there is room

_FLUSH_DROP = 1 << 0


# ---- argument conversion ---------------------------------------------------

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


# ---- paged gets, layer by layer -----------------------------------------------

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

    def cluster(self):
        """The daemon's remote tier and its Redis Cluster as the daemon sees
        it (kvc_cluster) as a dict: "remote" (False: no remote tier, and
        everything else 0 or empty), "up", "seen" (connected once), masters,
        masters_down, nodes_known, write_queue, write_inflight, age_ms (of
        the view), stores, store_bytes, store_failures, loads, load_bytes,
        load_failures, probes, probe_hits, corrupt, timeouts, errors, moved,
        asks, refreshes, conn_errors; and "nodes": one dict per node, with
        addr, slots (0: not a master), conns_open, state (0 up, else a
        negative errno while the daemon leaves the node alone), ranges (a
        list of (first, last) slot pairs, inclusive) and ranges_total."""
        cl = _lib.Cluster()
        _check(self._call("kvc_cluster", ctypes.byref(cl)), "kvc_cluster")
        d = {f: getattr(cl, f) for f, _ in _lib.Cluster._fields_[:-1]}
        for f in ("remote", "up", "seen"):
            d[f] = bool(d[f])
        d["nodes"] = [{"addr": n.addr.decode("utf-8", "replace"), "slots": n.slots,
                       "conns_open": n.conns_open, "state": n.state,
                       "ranges": [(r.first, r.last) for r in n.ranges[:n.n_ranges]],
                       "ranges_total": n.ranges_total}
                      for n in cl.nodes[:cl.n_nodes]]
        return d

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
