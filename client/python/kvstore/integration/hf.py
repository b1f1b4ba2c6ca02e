"""kvstore.integration.hf: reuse cached KV in a Hugging Face transformers model.

For Llama-family decoder models (GQA included), batch 1:

    import kvstore
    from kvstore.integration import hf
    client = kvstore.Client()
    lm = hf.CachedLM(model, client)                   # model on a CUDA device
    out = lm.generate(input_ids, max_new_tokens=64)   # greedy
    out.tokens, out.cached_tokens, out.ttft_s, out.plan

What a request does (docs/integration.md, "The transformers adapter"):

- The model's KV cache is a slab the adapter owns, per layer one K and one
  V tensor [1, kv_heads, capacity, head_dim] (transformers' own layout),
  shared by every CachedLM of the model. The store copies chunks straight
  into it and out of it (kvstore.LAYOUT_HF, the kernels in kernels/): no
  staging buffer, no permute.
- The planner looks the prompt's whole chunks up and picks, from each
  tier's read bandwidth (the daemon's moving averages, STATS) and this
  model's measured prefill rate: load them all ("loaded"), recompute them
  ("computed": a load would be slower), or both at once ("both"): the
  prefix is computed forward from its first token while the store loads
  its last chunks, and the two meet at a planned chunk boundary. A hit that
  would be slower than recomputing is never taken as a plain load.
- Loads are layer-pipelined: one copy per layer on a load stream, each
  with its event, and a pre-hook on each decoder layer makes that layer
  wait for its own slice only; so layer l computes while l+1 loads.
  load="whole" loads everything first, for comparison.
- The suffix forward (the tokens after the cached prefix) is one CUDA
  graph replay (captured once per suffix length and capacity), so a hit is
  not bound by Python and kernel launches; the per-layer waits are event
  wait nodes in the graph. graphs=False runs it eagerly, for comparison.
- Prefill is chunked (prefill_chunk tokens at a time, from position 0, as
  vLLM and SGLang do): a chunk's KV depend on how it was computed, so the
  canonical computation makes a loaded chunk equal, bit for bit, the one
  a run without the store computes, and lets the "both" plan meet at any
  multiple of prefill_chunk.
- New full chunks are stored after the first token from a side stream;
  the daemon commits each in stream order (read-your-writes).

Identical outputs: a run without the store (use_store=False) with
split_at=n computes the first n tokens, then the rest exactly as a hit of
n cached tokens does (the same graph or eager path); its logits and tokens
are what a hit must reproduce bit for bit.

The namespace names the model, a fingerprint of its weights, the dtype and
the chunk size, so a different model (or the same one with other weights)
never reads another's KV. RoPE is applied before K is cached, so a chunk's
K is only valid at its positions: prefix keys (kvstore.prefix_keys) encode
exactly that.

PyTorch and transformers are needed here (not by the kvstore package).
"""

import hashlib
import time
import weakref

import torch

import kvstore

__all__ = ["CachedLM", "GenerateResult", "namespace_name", "Planner"]

from kvstore.plan import (EWMA, PLAN_BOTH, PLAN_COMPUTED, PLAN_LOADED, Planner,  # noqa: F401
                          ewma as _ewma)

_PLAN_NAMES = {0: "none", PLAN_LOADED: "loaded", PLAN_COMPUTED: "computed", PLAN_BOTH: "both"}
_TIER_NAMES = {"hbm": kvstore.TIER_HBM, "dram": kvstore.TIER_DRAM, "ssd": kvstore.TIER_SSD,
               "remote": kvstore.TIER_REMOTE}
# Tiers whose chunks come up into DRAM before they cross the link, timed by
# the daemon (its STATS read_bw), not by this adapter.
_BELOW = (kvstore.TIER_SSD, kvstore.TIER_REMOTE)


def _layers_kv(cache, layer):
    """The (keys, values) tensors of one layer of a transformers cache (for
    a slab cache: the tokens written so far)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return layers[layer].keys, layers[layer].values
    return cache.key_cache[layer], cache.value_cache[layer]


def _fingerprint(model, samples=4096):
    """SHA-256 of the parameter names, shapes and a sample of each of a few
    tensors (first, middle, last): cheap, and different weights differ."""
    h = hashlib.sha256()
    params = list(model.named_parameters())
    pick = {0, len(params) // 2, len(params) - 1} if params else set()
    for i, (name, p) in enumerate(params):
        h.update(name.encode())
        h.update(str(tuple(p.shape)).encode())
        if i in pick:
            flat = p.detach().reshape(-1)[:samples].contiguous()
            h.update(bytes(flat.view(torch.uint8).cpu().tolist()))
    return h.hexdigest()[:16]


def namespace_name(model, chunk_tokens):
    """model id / weights fingerprint / dtype / chunk size."""
    name = getattr(model.config, "_name_or_path", "") or model.config.model_type
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    return "hf/%s/%s/%s/c%d" % (name.strip("/") or "model", _fingerprint(model), dtype,
                                chunk_tokens)


def _round_up(x, m):
    return (x + m - 1) // m * m


class GenerateResult:
    """What CachedLM.generate() returns."""

    def __init__(self):
        self.tokens = []          # generated token ids
        self.first_logits = None  # logits of the first generated token (float32, CPU)
        self.cached_tokens = 0    # prompt tokens loaded from the store
        self.computed_prefix = 0  # cached prompt tokens recomputed instead (plan "both"
                                  # or "computed")
        self.prompt_tokens = 0
        self.plan = "none"        # none, loaded, computed, both
        self.load_path = ""       # pipelined or whole (when something was loaded)
        self.graph = False        # the suffix forward ran as a CUDA graph
        self.ttft_s = 0.0         # prompt in -> first token's logits on the host
        self.load_s = 0.0         # the loads' time on the load stream
        self.tiers = []           # tier of each loaded chunk


# ---- the slab cache ------------------------------------------------------------

class _SlabLayer:
    """One layer's cache over preallocated [1, H, cap, D] K and V views.

    Eager (static False): update() writes the new tokens after the ones
    held and returns views of [0, length), like transformers' DynamicLayer
    but in place. Static (graph capture and replay): update() writes at
    cache_position and returns the whole capacity; the caller's 4-D mask
    hides what is not there yet, and sets length itself afterwards."""

    is_sliding = False
    is_compileable = False

    def __init__(self, k, v):
        self.k_all, self.v_all = k, v
        self.cap = k.shape[2]
        self.length = 0
        self.static = False
        self.pos = None             # static mode: where the forward's tokens go
        self.is_initialized = True
        self.dtype, self.device = k.dtype, k.device
        self.keys = k[:, :, :0]
        self.values = v[:, :, :0]

    def lazy_initialization(self, key_states, value_states=None):
        pass

    def set_length(self, n):
        self.length = n
        self.keys = self.k_all[:, :, :n]
        self.values = self.v_all[:, :, :n]

    def update(self, key_states, value_states, cache_kwargs=None, *args, **kwargs):
        if self.static:
            pos = (cache_kwargs or {}).get("cache_position")
            pos = self.pos if pos is None else pos
            self.k_all.index_copy_(2, pos, key_states)
            self.v_all.index_copy_(2, pos, value_states)
            return self.k_all, self.v_all
        a = self.length
        q = key_states.shape[-2]
        if a + q > self.cap:
            raise RuntimeError("kvstore.integration.hf: %d tokens do not fit the cache's %d"
                               % (a + q, self.cap))
        self.k_all[:, :, a:a + q].copy_(key_states)
        self.v_all[:, :, a:a + q].copy_(value_states)
        self.set_length(a + q)
        return self.keys, self.values

    def get_mask_sizes(self, cache_position, *args, **kwargs):
        if self.static:
            return self.cap, 0
        q = cache_position if isinstance(cache_position, int) else cache_position.shape[0]
        return self.length + q, 0

    def get_seq_length(self, *args, **kwargs):
        return self.length

    def get_max_cache_shape(self, *args, **kwargs):
        return self.cap if self.static else -1

    def reset(self):
        self.set_length(0)


_layer_cls = None


def _layer_class():
    """_SlabLayer as a transformers CacheLayerMixin (transformers 5.17's
    Cache takes a layer that is not one for a linear-attention layer)."""
    global _layer_cls
    if _layer_cls is None:
        try:
            from transformers.cache_utils import CacheLayerMixin
        except ImportError:
            _layer_cls = _SlabLayer
        else:
            cls = type("SlabLayer", (_SlabLayer, CacheLayerMixin), {})
            cls.__abstractmethods__ = frozenset()    # ours are all there
            cls.supports_early_init = False
            _layer_cls = cls
    return _layer_cls


def _new_cache(model, layers):
    """A transformers DynamicCache whose layers are ours."""
    from transformers import DynamicCache

    try:
        cache = DynamicCache(config=model.config)
    except TypeError:
        cache = DynamicCache()
    cache.layers = layers
    return cache


class _Engine:
    """What every CachedLM of one model shares: the slab, the streams, the
    captured graphs, the per-layer hooks and events, and the prefill rate.
    One request at a time."""

    GRAN = 1024     # capacities (graph keys) are rounded up to this many tokens

    def __init__(self, model):
        cfg = model.config
        self.model = model
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.L = cfg.num_hidden_layers
        self.H = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        self.D = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.es = torch.tensor([], dtype=self.dtype).element_size()
        self.side = torch.cuda.Stream(device=self.device)   # stores
        self.load = torch.cuda.Stream(device=self.device)   # loads
        self.slab = None
        self.cap = 0
        self.layouts = {}
        self.graphs = {}
        self.graph_error = {}       # waits (bool) -> why capture failed
        self.keep_arg = None
        self.prefill_rate = 0.0     # tokens/s of computed prefill, moving average
        try:
            self.events = [torch.cuda.Event(external=True) for _ in range(self.L)]
        except TypeError:           # an older torch: no event nodes in graphs
            self.events = [torch.cuda.Event() for _ in range(self.L)]
        with torch.cuda.stream(self.load):
            for e in self.events:
                e.record()
        self.waiting = False        # the pre-hooks wait for the layer events
        self.hooks = []
        layers = self._decoder_layers()
        if layers is not None:
            for i, layer in enumerate(layers):
                self.hooks.append(layer.register_forward_pre_hook(self._hook(i)))

    def _decoder_layers(self):
        inner = getattr(self.model, "model", None)
        layers = getattr(inner, "layers", None)
        if layers is None or len(layers) != self.L:
            return None
        return layers

    def _hook(self, i):
        def pre_hook(module, args):
            if self.waiting:
                self.events[i].wait(torch.cuda.current_stream(self.device))
        return pre_hook

    @property
    def pipelinable(self):
        return bool(self.hooks)

    def ensure(self, tokens):
        """A slab of at least tokens tokens (graphs go when it grows)."""
        if self.slab is not None and self.cap >= tokens:
            return
        torch.cuda.synchronize(self.device)
        self.slab = None
        self.layouts.clear()
        self.graphs.clear()
        cap = _round_up(max(tokens, 4096), self.GRAN)
        # Zeroed: attention over the capacity under a mask still multiplies
        # the masked-out V rows by 0, and 0 * NaN (what fresh memory may
        # hold) is NaN (seen on the H100: NaN logits from the graph path).
        self.slab = torch.zeros((self.L, 2, 1, self.H, cap, self.D), dtype=self.dtype,
                                device=self.device)
        self.cap = cap

    def cache(self, cap):
        """A cache over the first cap tokens of the slab, empty."""
        cls = _layer_class()
        layers = [cls(self.slab[i, 0, :, :, :cap], self.slab[i, 1, :, :, :cap])
                  for i in range(self.L)]
        return _new_cache(self.model, layers)

    def layout(self, chunk_tokens):
        """The slab as a LAYOUT_HF layout for the store's chunks."""
        lay = self.layouts.get(chunk_tokens)
        if lay is None:
            ks = [self.slab[i, 0] for i in range(self.L)]
            vs = [self.slab[i, 1] for i in range(self.L)]
            lay = kvstore.Layout.hf(ks, vs, chunk_tokens)
            self.layouts[chunk_tokens] = lay
        return lay

    def note_prefill(self, tokens, seconds):
        if tokens > 0 and seconds > 0:
            self.prefill_rate = _ewma(self.prefill_rate, tokens / seconds)

    # ---- forward passes ----------------------------------------------------------

    def forward(self, ids, cache, pos, mask=None):
        """One forward pass; logits of the last position only where the
        model takes logits_to_keep (asked once: a retry would run the layers,
        and write the cache, twice)."""
        kw = dict(input_ids=ids, past_key_values=cache, use_cache=True, cache_position=pos)
        if mask is not None:
            kw["attention_mask"] = mask
        if self.keep_arg is None:
            import inspect
            try:
                params = inspect.signature(self.model.forward).parameters
                self.keep_arg = "logits_to_keep" in params
            except (TypeError, ValueError):
                self.keep_arg = False
        if self.keep_arg:
            kw["logits_to_keep"] = 1
        return self.model(**kw)

    def prefill(self, ids, cache, begin, end, chunk):
        """Compute tokens [begin, end) into cache in chunks that start at
        multiples of chunk (the canonical chunking); the last output."""
        out = None
        a = begin
        while a < end:
            b = min(end, (a // chunk + 1) * chunk)
            out = self.forward(ids[:, a:b], cache, torch.arange(a, b, device=self.device))
            a = b
        return out

    def suffix_graph(self, S, cap, waits):
        """The captured forward of S tokens over a cache of cap tokens:
        (graph, static inputs, static logits), or None when capture fails
        (then graph_error says why and the eager path runs)."""
        key = (S, cap, waits)
        g = self.graphs.get(key)
        if g is not None or waits in self.graph_error:
            return g
        dev = self.device
        ids = torch.zeros((1, S), dtype=torch.long, device=dev)
        # The warm-up passes write their K and V here: after every token a
        # request of up to cap tokens has before its suffix.
        pos = torch.arange(cap - S, cap, dtype=torch.long, device=dev)
        mask = torch.ones((1, 1, S, cap), dtype=torch.bool, device=dev)
        cache = self.cache(cap)
        for layer in cache.layers:
            layer.static = True
            layer.pos = pos
        main = torch.cuda.current_stream(dev)
        try:
            warm = torch.cuda.Stream(device=dev)
            warm.wait_stream(main)
            self.waiting = waits
            with torch.cuda.stream(warm):
                for _ in range(2):
                    self.forward(ids, cache, pos, mask)
            main.wait_stream(warm)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self.forward(ids, cache, pos, mask)
            logits = out.logits
        except Exception as e:     # noqa: BLE001 - any capture failure: run eagerly
            self.graph_error[waits] = "%s: %s" % (type(e).__name__, e)
            torch.cuda.synchronize(dev)
            return None
        finally:
            self.waiting = False
        # The key positions, for the mask each replay rebuilds.
        g = (graph, ids, pos, mask, logits, torch.arange(cap, device=dev))
        self.graphs[key] = g
        return g


_engines = weakref.WeakKeyDictionary()


def _engine(model):
    e = _engines.get(model)
    if e is None:
        e = _Engine(model)
        _engines[model] = e
    return e


# ---- the adapter -----------------------------------------------------------------

class CachedLM:
    """A causal LM (transformers, Llama family) with its prefill KV in kvstore.

    client: a kvstore.Client; chunk_tokens: tokens per chunk; store_hbm: put
    new chunks into the daemon's HBM tier when it has one (else DRAM);
    use_store: False runs the same code without the store (the baseline);
    prefill_chunk: tokens per prefill step (a multiple of chunk_tokens);
    graphs: the suffix forward of a hit as a CUDA graph; load: "auto"
    (plan, pipelined), "pipelined", "whole" (every layer before the
    forward) or "compute" (recompute what is cached).
    """

    def __init__(self, model, client, chunk_tokens=256, store_hbm=False, use_store=True,
                 namespace=None, prefill_chunk=2048, graphs=True, load="auto"):
        if prefill_chunk % chunk_tokens:
            raise ValueError("prefill_chunk must be a multiple of chunk_tokens")
        self.model = model
        self.client = client
        self.T = chunk_tokens
        self.C = prefill_chunk
        self.use_store = use_store
        self.graphs = graphs
        self.load_mode = load
        self.put_flags = kvstore.PUT_HBM if store_hbm else 0
        self.eng = _engine(model)
        e = self.eng
        self.device, self.dtype = e.device, e.dtype
        self.L, self.H, self.D = e.L, e.H, e.D
        self.chunk_bytes = self.L * 2 * self.T * self.H * self.D * e.es
        self.planner = Planner(self.T, self.chunk_bytes, self.C)
        self.bw = {}                # tier -> bytes/s of this adapter's own loads
        self.ns = None
        if use_store:
            self.ns = client.namespace(namespace or namespace_name(model, chunk_tokens),
                                       hidden=model.config.hidden_size)
            # Page-lock the whole DRAM mapping in the background now, so no
            # request pays a slab's registration.
            client.gpu_open(self.device.index if self.device.index is not None else -1,
                            kvstore.GPU_REGISTER_ALL)
        self.last_tokens = []
        self.last_cache = None
        self._stored_chunks = 0     # chunks of last_tokens already stored

    # ---- what the planner reads ------------------------------------------------

    def bandwidths(self):
        """tier -> read bytes/s to this GPU: the daemon's moving averages
        (STATS read_bw), this adapter's own loads where it has them; an SSD
        or remote chunk crosses the disk or the network and then the link
        from DRAM."""
        bw = {}
        try:
            for t in self.client.stats()["tiers"]:
                tid = _TIER_NAMES.get(t.get("name"))
                if tid is not None and t.get("read_bw"):
                    bw[tid] = float(t["read_bw"])
        except (kvstore.KvError, KeyError):
            pass
        bw.update(self.bw)
        link = bw.get(kvstore.TIER_DRAM, 0.0)
        for t in _BELOW:
            if bw.get(t) and link:
                bw[t] = 1.0 / (1.0 / bw[t] + 1.0 / link)
        return bw

    def _report(self, fn, *args):
        f = getattr(self.client, fn, None)
        if f is None:
            return
        try:
            f(*args)
        except kvstore.KvError:
            pass

    # ---- loading and storing chunks ----------------------------------------

    def _keys(self, tokens):
        return kvstore.prefix_keys(self.ns.salt, tokens, self.T)

    def _pages(self, a, m):
        """Token positions of chunks [a, m), one flat list."""
        return range(a * self.T, m * self.T)

    def _load(self, keys, a, m, pipelined):
        """Queue the loads of chunks [a, m) (keys[a:m]) into the slab on the
        load stream: per layer with the layer events (pipelined), or all
        at once with the last layer's event. Returns (chunks found as a
        prefix, their tiers, timing events)."""
        e = self.eng
        lay = e.layout(self.T)
        t0 = torch.cuda.Event(enable_timing=True)
        t1 = torch.cuda.Event(enable_timing=True)
        t0.record(e.load)
        ks = keys[a:m]
        pages = self._pages(a, m)
        if pipelined:
            op = self.client.get_paged_layers(self.ns, lay, ks, pages, stream=e.load)
            try:
                res = op.found
                for layer in range(self.L):
                    op.load(layer, layer + 1, e.events[layer])
            finally:
                op.end()
        else:
            res = self.client.get_paged(self.ns, lay, ks, pages, stream=e.load)
            with torch.cuda.stream(e.load):
                for ev in e.events:
                    ev.record(e.load)
        t1.record(e.load)
        n = 0
        tiers = []
        for status, tier in res:    # a prefix: stop at the first miss
            if status != 0:
                break
            n += 1
            tiers.append(tier)
        return n, tiers, (t0, t1)

    def store(self, tokens, first_chunk=0):
        """Put the full chunks of tokens from chunk first_chunk on, their KV
        gathered straight out of the slab (LAYOUT_HF) on the side stream
        after the work queued so far; the daemon commits them in stream
        order. Returns how many were queued."""
        if not self.use_store:
            return 0
        keys = self._keys(tokens)
        if first_chunk >= len(keys):
            return 0
        e = self.eng
        e.side.wait_stream(torch.cuda.current_stream(self.device))
        items = []
        for c in range(first_chunk, len(keys)):
            items.append((keys[c], range(c * self.T, (c + 1) * self.T),
                          keys[c - 1] if c else None, c * self.T))
        st = self.client.put_paged(self.ns, e.layout(self.T), items, flags=self.put_flags,
                                   stream=e.side)
        return sum(1 for s in st if s == 0)

    def flush(self):
        """Wait until the stored chunks are committed."""
        if self.use_store:
            self.eng.side.synchronize()
            self.client.gpu_flush()

    def load_only(self, tokens):
        """Load the longest cached whole-chunk prefix of tokens into the slab
        (whole, no forward pass) and wait; returns (tokens loaded, tiers).
        For checks: kv(n) then shows what was loaded."""
        e = self.eng
        e.ensure(len(tokens))
        torch.cuda.current_stream(self.device).wait_stream(e.side)
        e.load.wait_stream(e.side)
        keys = self._keys(tokens)[: (len(tokens) - 1) // self.T]
        if not keys:
            return 0, []
        leading, _ = self.client.lookup(self.ns, keys)
        if not leading:
            return 0, []
        n, tiers, _ = self._load(keys, 0, leading, False)
        e.load.synchronize()
        return n * self.T, tiers

    def kv(self, ntok):
        """Copies of the slab's first ntok tokens: (K, V), each [L, H, ntok, D]."""
        s = self.eng.slab
        torch.cuda.synchronize(self.device)
        return s[:, 0, 0, :, :ntok].clone(), s[:, 1, 0, :, :ntok].clone()

    # ---- generation ---------------------------------------------------------

    def _suffix(self, ids, cache, n, N, cap, waits, r):
        """The forward of tokens [n, N) after n cached ones: a graph replay
        when it can, else eager. Returns the last position's logits."""
        e = self.eng
        main = torch.cuda.current_stream(self.device)
        g = e.suffix_graph(N - n, cap, waits) if self.graphs else None
        if g is None and waits and self.graphs:
            # No event waits in graphs here: the graph after a whole load.
            waits = False
            g = e.suffix_graph(N - n, cap, False)
        if not waits:
            main.wait_event(e.events[-1])
        if self.graphs:
            if g is not None:
                graph, sids, spos, smask, slogits, ar = g
                sids.copy_(ids[:, n:N])
                torch.arange(n, N, device=self.device, out=spos)
                torch.le(ar[None, :], spos[:, None], out=smask[0, 0])
                graph.replay()
                for layer in cache.layers:
                    layer.set_length(N)
                r.graph = True
                return slogits[0, -1]
        e.waiting = waits
        try:
            out = e.forward(ids[:, n:N], cache, torch.arange(n, N, device=self.device))
        finally:
            e.waiting = False
        return out.logits[0, -1]

    @torch.inference_mode()
    def generate(self, input_ids, max_new_tokens=64, store=True, split_at=0, load=None):
        """Greedy generation for one sequence (input_ids: [1, n] or a list).
        Plans the cached prefix (load, compute or both), runs the rest,
        stores the prompt's new full chunks after the first token, and
        decodes. Returns a GenerateResult. split_at (without the store):
        compute the first split_at tokens, then the rest as a hit of that
        many cached tokens would: the reference a hit must equal bit for
        bit. load overrides the adapter's load mode for this call."""
        if not torch.is_tensor(input_ids):
            input_ids = torch.tensor([list(input_ids)], device=self.device)
        ids = input_ids.to(self.device)
        tokens = ids[0].tolist()
        N = len(tokens)
        e = self.eng
        mode = load or self.load_mode
        r = GenerateResult()
        r.prompt_tokens = N
        cap = _round_up(N + max_new_tokens, e.GRAN)
        e.ensure(cap)
        main = torch.cuda.current_stream(self.device)
        # The slab is this request's: the previous one's stores read it first.
        main.wait_stream(e.side)
        e.load.wait_stream(e.side)
        cache = e.cache(cap)
        pipelined = mode != "whole" and e.pipelinable
        torch.cuda.synchronize(self.device)
        c0 = torch.cuda.Event(enable_timing=True)
        c1 = torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()

        n = 0           # tokens before the suffix (cached: loaded or computed)
        k = 0           # of them, computed
        loaded = 0
        timing = None
        keys = []
        if self.use_store:
            keys = self._keys(tokens)[: (N - 1) // self.T]
            m = 0
            tiers = []
            if keys:
                m, tiers = self.client.lookup(self.ns, keys)
                tiers = tiers[:m]
            if m:
                if mode == "compute":
                    a, kind = m, PLAN_COMPUTED
                elif mode in ("whole", "pipelined"):
                    a, kind = 0, PLAN_LOADED
                else:
                    # The daemon's averages only for tiers this adapter has
                    # not timed itself (SSD): no STATS round trip on a hit
                    # from GPU memory or the host.
                    bw = (self.bandwidths() if any(t not in self.bw for t in tiers)
                          else dict(self.bw))
                    a, _, kind = self.planner.plan(tiers, bw, e.prefill_rate)
                if a < m and any(t in _BELOW for t in tiers[a:]):
                    # The daemon starts reading them now, while we compute.
                    self.client.prefetch(self.ns, keys[a:m])
                elif a == m and any(t in _BELOW for t in tiers):
                    # Recomputed: bring them up for the next request (and let
                    # the daemon measure its SSD or the cluster), off this
                    # one's path.
                    self.client.prefetch(self.ns, keys)
                if self.graphs:     # captured before anything of this request is written
                    e.suffix_graph(N - m * self.T, cap, pipelined and a < m)
                k = a * self.T
                c0.record(main)
                if k:
                    e.prefill(ids, cache, 0, k, self.C)
                c1.record(main)
                if a < m:
                    got, r.tiers, timing = self._load(keys, a, m, pipelined)
                    loaded = got * self.T
                    if got < m - a:         # a chunk went missing: compute from there
                        main.wait_event(e.events[-1])
                        for layer in cache.layers:
                            layer.set_length(k + loaded)
                        e.prefill(ids, cache, k + loaded, m * self.T, self.C)
                        k2 = m * self.T - (k + loaded)
                        r.computed_prefix += k2
                    r.load_path = "pipelined" if pipelined else "whole"
                n = m * self.T
                for layer in cache.layers:
                    layer.set_length(n)
                r.plan = _PLAN_NAMES[kind]
                r.computed_prefix += k
                r.cached_tokens = loaded
        else:
            n = min(split_at, N - 1)
            if self.graphs and n:
                e.suffix_graph(N - n, cap, False)
            c0.record(main)
            if n:
                e.prefill(ids, cache, 0, n, self.C)
            c1.record(main)
            k = n
        if n:
            logits = self._suffix(ids, cache, n, N, cap, pipelined and loaded > 0, r)
        else:
            c0.record(main)
            out = e.prefill(ids, cache, 0, N, self.C)
            c1.record(main)
            k = N
            logits = out.logits[0, -1]
        logits = logits.float()
        nxt = int(torch.argmax(logits))
        r.ttft_s = time.perf_counter() - t0     # argmax read on the host: synced
        r.first_logits = logits.cpu()
        r.tokens.append(nxt)
        if k:
            e.note_prefill(k, c0.elapsed_time(c1) / 1e3)
        if timing is not None:
            r.load_s = timing[0].elapsed_time(timing[1]) / 1e3
            kinds = set(r.tiers)
            # A sample of the link from one tier to this GPU (an SSD or
            # remote load's time holds the daemon's reads, which it measures
            # itself).
            if loaded and r.load_s > 0 and len(kinds) == 1 and \
                    not kinds & set(_BELOW):
                t = kinds.pop()
                nbytes = loaded // self.T * self.chunk_bytes
                self.bw[t] = _ewma(self.bw.get(t, 0.0), nbytes / r.load_s)
                self._report("report_bw", t, nbytes, r.load_s)
        if self.use_store and r.plan != "none":
            self._report("report_plan", {"loaded": PLAN_LOADED, "computed": PLAN_COMPUTED,
                                         "both": PLAN_BOTH}[r.plan], loaded,
                         r.computed_prefix)
        self._stored_chunks = n // self.T
        if store and self.use_store:
            self.store(tokens, first_chunk=n // self.T)
            self._stored_chunks = N // self.T
        cur = N
        ones = torch.ones((1, 1, 1, cap), dtype=torch.bool, device=self.device)
        for _ in range(max_new_tokens - 1):
            # An explicit mask: SDPA's masked kernel, the one the suffix
            # forward uses. Without one a one-token query takes the unmasked
            # kernels, whose tokens differed run to run on the H100 (the
            # eager split reference against itself, issue 12).
            step = torch.tensor([[nxt]], device=self.device)
            out = e.forward(step, cache, torch.tensor([cur], device=self.device),
                            ones[..., :cur + 1])
            nxt = int(torch.argmax(out.logits[0, -1]))
            r.tokens.append(nxt)
            cur += 1
        self.last_cache = cache
        self.last_tokens = tokens + r.tokens[:-1]   # the tokens cache holds
        return r

    def store_conversation(self):
        """After generate(): store the full chunks the reply completed (the
        prompt's were stored already), so the next turn finds them."""
        if not self.use_store or self.last_cache is None:
            return 0
        n = self.store(self.last_tokens, first_chunk=self._stored_chunks)
        self._stored_chunks = len(self.last_tokens) // self.T
        return n

    # ---- H2O scores ---------------------------------------------------------------

    @torch.inference_mode()
    def report_scores(self, attentions, tokens=None):
        """Send each cached chunk's share of attention mass to the store's
        H2O policy. attentions: per decode step sampled, the model's output
        attentions (a tuple of [1, heads, q, k] per layer, eager attention).
        Returns the per-chunk scores sent."""
        tokens = tokens if tokens is not None else self.last_tokens
        keys = self._keys(tokens)
        if not self.use_store or not keys or not attentions:
            return []
        mass = torch.zeros(len(keys), dtype=torch.float64)
        total = 0.0
        for step in attentions:
            for layer in step:
                a = layer[0, :, -1, : len(keys) * self.T].float()   # last query
                per = a.reshape(a.shape[0], len(keys), self.T).sum(dim=(0, 2))
                mass += per.double().cpu()
                total += float(layer[0, :, -1].float().sum())
        if total <= 0:
            return []
        scores = [min(1.0, max(0.0, float(m) / total)) for m in mass]
        self.client.score(self.ns, keys, scores)
        return scores
