"""kvstore.hf: reuse cached KV in a Hugging Face transformers model.

For Llama-family decoder models (GQA included): before a prefill, find the
longest cached prefix of the input in whole chunks, load those chunks into
the model's cache object straight on the GPU, run the forward pass on the
remaining tokens only, and store the new full chunks afterwards on a side
CUDA stream, off the next token's path.

    import kvstore, kvstore.hf
    client = kvstore.Client()
    lm = kvstore.hf.CachedLM(model, client)          # model on a CUDA device
    out = lm.generate(input_ids, max_new_tokens=64)   # greedy
    out.tokens, out.cached_tokens, out.ttft_s

The store's chunk layout is layer-major, [layers][K, V][tokens][kv_heads]
[head_dim] (docs/gpu.md); transformers keeps [batch, kv_heads, tokens,
head_dim] per layer, so a load is one contiguous copy of the chunks into a
GPU buffer (kvc_get_gpu: from HBM device to device, from DRAM at the PCIe
link) and one permute on the GPU.

The namespace names the model, a fingerprint of its weights, the dtype and
the chunk size, so a different model (or the same one with other weights)
never reads another's KV. RoPE is applied before K is cached, so a chunk's
K is only valid at its positions: prefix keys (kvstore.prefix_keys) encode
exactly that.

Scores for H2O: CachedLM.report_scores() sends, for the chunks of the last
prompt, each chunk's share of the attention mass of a few decode steps
(needs attn_implementation="eager" for the probabilities); optional.

PyTorch and transformers are needed here (not by the kvstore package).
"""

import hashlib
import time

import torch

import kvstore

__all__ = ["CachedLM", "GenerateResult", "namespace_name"]


def _layers_kv(cache, layer):
    """The (keys, values) tensors of one layer of a transformers cache."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return layers[layer].keys, layers[layer].values
    return cache.key_cache[layer], cache.value_cache[layer]


def _new_cache(model):
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config)
    except TypeError:
        return DynamicCache()


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


class GenerateResult:
    """What CachedLM.generate() returns."""

    def __init__(self):
        self.tokens = []          # generated token ids
        self.first_logits = None  # logits of the first generated token (float32, CPU)
        self.cached_tokens = 0    # prompt tokens loaded from the store
        self.prompt_tokens = 0
        self.ttft_s = 0.0         # prompt in -> first token's logits on the host
        self.load_s = 0.0         # the loads' time on the GPU (copies and cache building),
                                  # which overlaps the forward pass's launches
        self.tiers = []           # tier of each loaded chunk


class CachedLM:
    """A causal LM (transformers, Llama family) with its prefill KV in kvstore.

    client: a kvstore.Client; chunk_tokens: tokens per chunk; store_hbm: put
    new chunks into the daemon's HBM tier when it has one (else DRAM);
    use_store: False runs the same code without the store (the baseline).
    """

    def __init__(self, model, client, chunk_tokens=256, store_hbm=False, use_store=True,
                 namespace=None):
        cfg = model.config
        self.model = model
        self.client = client
        self.T = chunk_tokens
        self.use_store = use_store
        self.put_flags = kvstore.PUT_HBM if store_hbm else 0
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.L = cfg.num_hidden_layers
        self.H = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        self.D = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.es = torch.tensor([], dtype=self.dtype).element_size()
        self.chunk_bytes = self.L * 2 * self.T * self.H * self.D * self.es
        self.ns = None
        if use_store:
            self.ns = client.namespace(namespace or namespace_name(model, chunk_tokens),
                                       hidden=cfg.hidden_size)
            # Page-lock the whole DRAM mapping in the background now, so no
            # request pays a slab's registration.
            client.gpu_open(self.device.index if self.device.index is not None else -1,
                            kvstore.GPU_REGISTER_ALL)
        self.side = torch.cuda.Stream(device=self.device)
        self.last_cache = None
        self.last_tokens = []
        self._keep_arg = True
        self._stored_chunks = 0     # chunks of last_tokens already stored

    # ---- loading and storing chunks ------------------------------------

    def _keys(self, tokens):
        return kvstore.prefix_keys(self.ns.salt, tokens, self.T)

    def load(self, tokens):
        """Load the longest cached whole-chunk prefix of tokens (always
        leaving at least one token to compute). Returns (cache, n_tokens,
        tiers)."""
        cache = _new_cache(self.model)
        if not self.use_store:
            return cache, 0, []
        keys = self._keys(tokens)[: (len(tokens) - 1) // self.T]
        if not keys:
            return cache, 0, []
        leading, _ = self.client.lookup(self.ns, keys)
        if leading == 0:
            return cache, 0, []
        keys = keys[:leading]
        buf = torch.empty(leading * self.chunk_bytes, dtype=torch.uint8, device=self.device)
        stream = torch.cuda.current_stream(self.device)
        ptrs = [buf.data_ptr() + i * self.chunk_bytes for i in range(leading)]
        res = self.client.get_gpu(self.ns, keys, ptrs, [self.chunk_bytes] * leading,
                                  stream=stream.cuda_stream)
        n = 0
        tiers = []
        for status, nbytes, tier in res:     # a prefix: stop at the first miss
            if status != 0 or nbytes != self.chunk_bytes:
                break
            n += 1
            tiers.append(tier)
        if n == 0:
            return cache, 0, []
        # [n, L, 2, T, H, D] -> per layer [1, H, n*T, D]
        kv = buf[: n * self.chunk_bytes].view(self.dtype).view(n, self.L, 2, self.T, self.H,
                                                                self.D)
        kv = kv.permute(1, 2, 4, 0, 3, 5).reshape(self.L, 2, self.H, n * self.T, self.D)
        for layer in range(self.L):
            cache.update(kv[layer, 0].unsqueeze(0).contiguous(),
                         kv[layer, 1].unsqueeze(0).contiguous(), layer)
        return cache, n * self.T, tiers

    def store(self, tokens, cache, first_chunk=0):
        """Put the full chunks of tokens from chunk first_chunk on, their KV
        taken from cache, asynchronously: a side stream gathers them into
        the chunk layout after the work queued so far and libkvc copies them
        out; the daemon commits each once its copy is done. Returns how many
        were queued."""
        if not self.use_store:
            return 0
        keys = self._keys(tokens)
        if first_chunk >= len(keys):
            return 0
        n = len(keys) - first_chunk
        main = torch.cuda.current_stream(self.device)
        self.side.wait_stream(main)
        with torch.cuda.stream(self.side):
            buf = torch.empty(n * self.chunk_bytes, dtype=torch.uint8, device=self.device)
            out = buf.view(self.dtype).view(n, self.L, 2, self.T, self.H, self.D)
            lo, hi = first_chunk * self.T, len(keys) * self.T
            for layer in range(self.L):
                k, v = _layers_kv(cache, layer)
                k.record_stream(self.side)
                v.record_stream(self.side)
                # [1, H, t, D] -> [n, T, H, D]
                out[:, layer, 0] = k[0, :, lo:hi].reshape(self.H, n, self.T, self.D).permute(
                    1, 2, 0, 3)
                out[:, layer, 1] = v[0, :, lo:hi].reshape(self.H, n, self.T, self.D).permute(
                    1, 2, 0, 3)
            items = []
            for i in range(n):
                c = first_chunk + i
                items.append((keys[c], buf.data_ptr() + i * self.chunk_bytes, self.chunk_bytes,
                              keys[c - 1] if c else None, self.T, c * self.T))
            st = self.client.put_gpu(self.ns, items, flags=self.put_flags,
                                     stream=self.side.cuda_stream)
        return sum(1 for s in st if s == 0)

    def flush(self):
        """Wait until the stored chunks are committed."""
        if self.use_store:
            self.side.synchronize()
            self.client.gpu_flush()

    # ---- generation ---------------------------------------------------------

    def _forward(self, ids, cache, pos):
        """One forward pass; logits of the last position only where the
        model takes logits_to_keep (the same for the baseline)."""
        kw = dict(input_ids=ids, past_key_values=cache, use_cache=True, cache_position=pos)
        if self._keep_arg:
            try:
                return self.model(logits_to_keep=1, **kw)
            except TypeError:
                self._keep_arg = False
        return self.model(**kw)

    @torch.inference_mode()
    def generate(self, input_ids, max_new_tokens=64, store=True, split_at=0):
        """Greedy generation for one sequence (input_ids: [1, n] or a list).
        Loads the cached prefix, prefills the rest, stores the prompt's new
        full chunks after the first token, and decodes. Returns a
        GenerateResult. split_at (without the store): prefill the first
        split_at tokens, then the rest, as a load of that prefix would (the
        reference the store's results must equal bit for bit)."""
        if not torch.is_tensor(input_ids):
            input_ids = torch.tensor([list(input_ids)], device=self.device)
        input_ids = input_ids.to(self.device)
        tokens = input_ids[0].tolist()
        r = GenerateResult()
        r.prompt_tokens = len(tokens)
        torch.cuda.synchronize(self.device)
        stream = torch.cuda.current_stream(self.device)
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
        t0 = time.perf_counter()
        ev[0].record(stream)
        # No host wait after the load: its copies run while the forward
        # pass's kernels are being launched, queued behind them in order.
        cache, n, r.tiers = self.load(tokens)
        ev[1].record(stream)
        if split_at and not self.use_store:
            n = split_at
            self._forward(input_ids[:, :n], cache, torch.arange(0, n, device=self.device))
        r.cached_tokens = n if self.use_store else 0
        pos = torch.arange(n, len(tokens), device=self.device)
        out = self._forward(input_ids[:, n:], cache, pos)
        cache = out.past_key_values
        logits = out.logits[0, -1].float()
        nxt = int(torch.argmax(logits))
        r.ttft_s = time.perf_counter() - t0     # argmax read on the host: synced
        r.load_s = ev[0].elapsed_time(ev[1]) / 1e3
        r.first_logits = logits.cpu()
        r.tokens.append(nxt)
        self._stored_chunks = n // self.T
        if store and self.use_store:
            self.store(tokens, cache, first_chunk=n // self.T)
            self._stored_chunks = len(tokens) // self.T
        cur = len(tokens)
        for _ in range(max_new_tokens - 1):
            ids = torch.tensor([[nxt]], device=self.device)
            out = self._forward(ids, cache, torch.tensor([cur], device=self.device))
            cache = out.past_key_values
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
        n = self.store(self.last_tokens, self.last_cache, first_chunk=self._stored_chunks)
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
