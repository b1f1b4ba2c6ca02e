# det_probe.py - where do greedy tokens stop being the same run to run?
#
# Issue 12: ttft.py's split reference (no store) differed from itself in
# its decode steps (first-token logits equal, tokens apart later). This
# probe runs the same prompt (random 8B-shaped Llama, N tokens cached then
# 95 more, 64 greedy tokens) through a plain transformers loop (no mask,
# and with the adapter's explicit 4-D mask) and through the adapter
# without the store, twice each, and prints where tokens and logits first
# differ, with the top-2 gap at that step (a near tie or not).
#
# On the GPU machine, from a gpu bundle (make gpu-bundle):
#   cd gpu-bundle/tests/gpu && KVSTORE_LIB=$PWD/../../libkvc.so python3 det_probe.py
# Environment: SHAPE (8b), N (2048), DET=1 (torch deterministic algorithms);
# try CUBLAS_WORKSPACE_CONFIG=:4096:8 to see whether cuBLAS is the source.
import os
import random
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ttft import hf, build, rand_tokens
import torch
from transformers import DynamicCache

shape = os.environ.get("SHAPE", "8b")
n = int(os.environ.get("N", "2048"))
N = n + 95
NEW = 64
model = build(shape)
rng = random.Random(42)
toks = rand_tokens(rng, N)
ids = torch.tensor([toks], device="cuda")

def plain(mask):
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        for a in range(0, n, 2048):
            model(input_ids=ids[:, a:min(n, a + 2048)], past_key_values=cache, use_cache=True)
        out = model(input_ids=ids[:, n:], past_key_values=cache, use_cache=True, logits_to_keep=1)
        logs = [out.logits[0, -1].float().cpu()]
        nxt = int(logs[-1].argmax()); t = [nxt]; cur = N
        for i in range(NEW - 1):
            kw = {}
            if mask == "2d":
                kw["attention_mask"] = torch.ones((1, cur + 1), dtype=torch.long, device="cuda")
            elif mask == "4d":
                kw["attention_mask"] = torch.ones((1, 1, 1, cur + 1), dtype=torch.bool, device="cuda")
            out = model(input_ids=torch.tensor([[nxt]], device="cuda"), past_key_values=cache,
                        use_cache=True, cache_position=torch.tensor([cur], device="cuda"),
                        logits_to_keep=1, **kw)
            l = out.logits[0, -1].float().cpu(); logs.append(l)
            nxt = int(l.argmax()); t.append(nxt); cur += 1
    return t, logs

def viahf(g):
    lm = hf.CachedLM(model, None, use_store=False, graphs=g)
    e = lm.eng
    logs = []
    orig = type(e).forward
    def fw(ids_, cache, pos, mask=None):
        out = orig(e, ids_, cache, pos, mask)
        if ids_.shape[1] == 1:
            logs.append(out.logits[0, -1].float().cpu())
        return out
    e.forward = fw
    r = lm.generate(toks, max_new_tokens=NEW, store=False, split_at=n)
    del e.forward
    return r.tokens, [r.first_logits] + logs

def compare(name, f, reps=2):
    runs = [f() for _ in range(reps)]
    t0, l0 = runs[0]
    for k, (t, l) in enumerate(runs[1:], 1):
        ft = next((i for i in range(len(t)) if t[i] != t0[i]), None)
        fl = next((i for i in range(min(len(l), len(l0))) if not torch.equal(l[i], l0[i])), None)
        extra = ""
        if fl is not None:
            d = (l[fl] - l0[fl]).abs()
            top = torch.topk(l0[fl], 2).values
            extra = " logits first differ at step %d (max diff %.4g, %d entries differ, top-2 gap %.4g)" % (
                fl, float(d.max()), int((d > 0).sum()), float(top[0] - top[1]))
        print("%-22s run %d vs 0: tokens first differ at %s;%s" % (name, k, ft, extra or " logits identical"), flush=True)

print("probe: %s n=%d torch %s CUBLAS_WORKSPACE_CONFIG=%s det=%s" % (shape, n, torch.__version__,
      os.environ.get("CUBLAS_WORKSPACE_CONFIG"), os.environ.get("DET")), flush=True)
if os.environ.get("DET"):
    torch.use_deterministic_algorithms(True, warn_only=True)
compare("plain nomask", lambda: plain(None))
compare("plain 4d", lambda: plain("4d"))
compare("hf eager", lambda: viahf(False))
