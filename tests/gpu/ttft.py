#!/usr/bin/env python3
"""ttft.py - what a user sees: multi-turn TTFT with and without kvstore.

Llama models built from a configuration with random weights (nothing is
downloaded), bf16, on the GPU: a 1B shape (2048 hidden, 16 layers, 32
heads, 8 KV heads) and an 8B shape (4096 hidden, 32 layers, 32 heads, 8 KV
heads). For each prompt length:

  turn 1: a prompt of N tokens, a greedy reply of 32 tokens; the adapter
          stores the prompt's and the reply's full chunks;
  turn 2: turn 1's prompt and reply plus a new 64-token question; 64
          greedy tokens, without the store (baseline: the whole prefill)
          and with it, the chunks in HBM, in DRAM, and on SSD only.

Reported: TTFT (prompt in to the first token's logits on the host), the
speed-up, whether the 64 tokens are identical to the baseline's, and the
largest difference of the first token's logits. Then two batch workloads:
a shared system prompt across many users, and RAG with the retrieved
documents first in a fixed order: hit ratio (tokens loaded / prompt
tokens) and TTFT saved.

Needs torch and transformers; exits 77 without a GPU or without them.
Environment: KVSTORED (the daemon), KVSTORE_LIB (libkvc.so), OUT (where
ttft.json goes). --quick: the 1B shape at 2K only. --models 1b,8b,
--lengths 2048,8192,32768.
"""

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
for p in (os.path.join(here, "..", "..", "client", "python"), os.path.join(here, "python")):
    if os.path.isdir(os.path.join(p, "kvstore")):
        sys.path.insert(0, os.path.abspath(p))
        break

try:
    import torch
    import transformers  # noqa: F401
except ImportError as e:
    print("skipped: %s" % e)
    sys.exit(77)
if not torch.cuda.is_available():
    print("skipped: no GPU")
    sys.exit(77)

import kvstore  # noqa: E402
from kvstore.integration import hf  # noqa: E402

SHAPES = {
    "1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, intermediate_size=8192),
    "8b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, intermediate_size=14336),
}
VOCAB = 32000
REPLY = 32
QUESTION = 64
NEW = 64


def build(shape, seed=1234):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=VOCAB, max_position_embeddings=65536, rope_theta=500000.0,
                      torch_dtype="bfloat16", **SHAPES[shape])
    cfg._attn_implementation = "sdpa"
    cfg._name_or_path = "llama-%s-random" % shape
    torch.manual_seed(seed)
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(torch.float32)
    model.eval()
    return model


class Daemon:
    def __init__(self, args):
        self.dir = tempfile.mkdtemp(prefix="kvttft.", dir="/var/tmp")
        self.sock = os.path.join(self.dir, "kv.sock")
        self.log = open(os.path.join(self.dir, "kvstored.log"), "w")
        exe = os.environ.get("KVSTORED", "build/kvstored")
        self.p = subprocess.Popen([exe, "--socket", self.sock] + args, stdout=self.log,
                                  stderr=subprocess.STDOUT)
        for _ in range(600):
            try:
                c = kvstore.Client(self.sock)
                c.close()
                return
            except kvstore.KvError:
                time.sleep(0.05)
        raise RuntimeError("kvstored did not start: see %s" % self.log.name)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def rand_tokens(rng, n):
    return [rng.randrange(3, VOCAB) for _ in range(n)]


def demote(client, lm, tokens):
    """Leave tokens' chunks on SSD only: durable first, then drop the copies
    above it. Evicting a chunk takes it out of its fastest tier, so a chunk
    already on SSD alone is left be (evicting it would drop it)."""
    client.flush(kvstore.TIER_DRAM)
    keys = kvstore.prefix_keys(lm.ns.salt, tokens, lm.T)
    _, tiers = client.lookup(lm.ns, keys)
    up = [k for k, t in zip(keys, tiers) if t in (kvstore.TIER_HBM, kvstore.TIER_DRAM)]
    if up:
        client.evict(lm.ns, up)
    _, tiers = client.lookup(lm.ns, keys)
    return sum(1 for t in tiers if t == kvstore.TIER_SSD), len(keys)


def settle(client, lm, tokens, timeout=60.0):
    """Wait until the prefetch a computed plan issued (its chunks brought up
    into DRAM, off the request's path) has landed: else the next demote
    races it, and the next run finds some chunks in DRAM."""
    keys = kvstore.prefix_keys(lm.ns.salt, tokens, lm.T)[: (len(tokens) - 1) // lm.T]
    t0 = time.time()
    while time.time() - t0 < timeout:
        _, tiers = client.lookup(lm.ns, keys)
        if all(t != kvstore.TIER_SSD for t in tiers):
            return True
        time.sleep(0.01)
    return False


def same(run, ref):
    """Bit-identical: the 64 tokens and the first token's logits (finite:
    NaN equals nothing, not even itself)."""
    return (run.tokens == ref.tokens and bool(torch.isfinite(run.first_logits).all()) and
            bool(torch.equal(run.first_logits, ref.first_logits)))


# Load paths measured per tier: (load mode, CUDA graph for the suffix).
PATHS = {
    "hbm": [("pipelined", True), ("whole", True), ("pipelined", False), ("whole", False)],
    "dram": [("pipelined", True), ("whole", True), ("pipelined", False), ("whole", False)],
    "ssd": [("auto", True), ("auto", False)],
}


def multi_turn(model, client, shape, n, reps, rng, bad):
    turn1 = rand_tokens(rng, n)
    question = rand_tokens(rng, QUESTION)
    base = {g: hf.CachedLM(model, client, use_store=False, graphs=g)
            for g in (True, False)}
    row = {"model": shape, "prompt": n}
    lms = {}
    turn2 = None
    snap = None
    for tier in ("hbm", "dram", "ssd"):
        ns = "ttft/%s/%d/%s/%d" % (shape, n, tier, rng.randrange(1 << 30))
        lms[tier] = {g: hf.CachedLM(model, client, store_hbm=(tier == "hbm"),
                                    namespace=ns, graphs=g) for g in (True, False)}
        lm = lms[tier][True]
        r1 = lm.generate(turn1, max_new_tokens=REPLY)
        lm.store_conversation()
        lm.flush()
        t2 = turn1 + r1.tokens[:-1] + question
        if turn2 is None:
            turn2 = t2
            snap = lm.kv(n)     # turn 1's KV of the prompt, as computed
        elif t2 != turn2:
            bad.append("%s %d: turn 1's reply differs between namespaces" % (shape, n))
    row["prompt_tokens"] = len(turn2)
    # Bytes in, bytes out: the KV loaded back from each tier equals the KV
    # the model computed in turn 1, bit for bit, in every layer.
    for tier in ("hbm", "dram", "ssd"):
        lm = lms[tier][True]
        if tier == "ssd":
            demote(client, lm, turn2)
        got, tiers = lm.load_only(turn2)
        k, v = lm.kv(got)
        exact = got == n and torch.equal(k, snap[0][:, :, :got]) and \
            torch.equal(v, snap[1][:, :, :got])
        row[tier + "_kv_bit_exact"] = bool(exact)
        row[tier + "_kv_tiers"] = sorted(set(tiers))
        if not exact:
            bad.append("%s %d %s: KV loaded (%d tokens) differs from KV computed"
                       % (shape, n, tier, got))
        del k, v
    del snap
    torch.cuda.empty_cache()

    # The baseline: the whole prompt computed (chunked prefill), no store.
    base[False].generate(turn2, max_new_tokens=1, store=False)
    b = [base[False].generate(turn2, max_new_tokens=1, store=False) for _ in range(reps)]
    row["baseline_ttft_ms"] = statistics.median(x.ttft_s for x in b) * 1e3
    # The references: the n cached tokens computed first, then the rest as
    # a hit runs it (graph or eager), twice each: they must agree.
    ref = {}
    for g in (True, False):
        ref[g] = base[g].generate(turn2, max_new_tokens=NEW, store=False, split_at=n)
        again = base[g].generate(turn2, max_new_tokens=NEW, store=False, split_at=n)
        det = same(again, ref[g])
        row["reference_%s_deterministic" % ("graph" if g else "eager")] = det
        if not det:
            bad.append("%s %d: the split reference (%s) differs from itself" %
                       (shape, n, "graph" if g else "eager"))
    row["graph_error"] = lms["dram"][True].eng.graph_error

    for tier in ("hbm", "dram", "ssd"):
        for mode, g in PATHS[tier]:
            lm = lms[tier][g]
            name = "%s_%s_%s" % (tier, mode, "graph" if g else "eager")

            def once(new):
                if tier == "ssd":
                    on_ssd, total = demote(client, lm, turn2)
                    row["ssd_chunks"] = "%d/%d" % (on_ssd, total)
                x = lm.generate(turn2, max_new_tokens=new, store=False, load=mode)
                lm.flush()
                if tier == "ssd" and x.plan == "computed" and \
                        not settle(client, lm, turn2):
                    print("note: %s %d: the prefetch after a computed plan did not land "
                          "in 60 s" % (shape, n), flush=True)
                return x
            once(1)     # warm-up: graph capture for this shape, first-use costs
            runs = [once(1) for _ in range(reps)]
            t = statistics.median(x.ttft_s for x in runs) * 1e3
            full = once(NEW)
            ident = same(full, ref[g])
            if not ident:
                diff = float((full.first_logits - ref[g].first_logits).abs().max())
                bad.append("%s %d %s: not identical to the split reference (same tokens "
                           "%d of %d, max logit diff %.3g)" % (
                               shape, n, name,
                               sum(1 for a, c in zip(full.tokens, ref[g].tokens) if a == c),
                               NEW, diff))
            row[name] = {
                "ttft_ms": t, "speedup": row["baseline_ttft_ms"] / t,
                "load_ms": statistics.median(x.load_s for x in runs) * 1e3,
                "cached": runs[0].cached_tokens, "computed": runs[0].computed_prefix,
                "plan": runs[0].plan, "path": runs[0].load_path, "graph": runs[0].graph,
                "tiers": sorted(set(runs[0].tiers)), "identical": ident,
            }
    return row


def batch(model, client, shape, rng, kind):
    """Shared system prompt (16 users) or RAG (16 requests over 8 docs)."""
    base = hf.CachedLM(model, client, use_store=False)
    lm = hf.CachedLM(model, client,
                     namespace="%s/%s/%d" % (kind, shape, rng.randrange(1 << 30)))
    if kind == "system":
        system = rand_tokens(rng, 2048)
        prompts = [system + rand_tokens(rng, 128) for _ in range(16)]
        hits = [2048]
    else:
        docs = [rand_tokens(rng, 1024) for _ in range(8)]
        prompts = []
        for _ in range(16):
            pick = sorted(rng.sample(range(8), 3))     # a fixed order: by doc id
            prompts.append(sum((docs[i] for i in pick), []) + rand_tokens(rng, 64))
        hits = [1024, 2048, 3072]
    # Warm both paths up with requests of the same shapes in a namespace of
    # their own: the first hit of a process pays one-time costs (CUDA's
    # first use of the mapping, the events, the graph of each suffix
    # length), and so does the first forward of a new shape (cuBLAS and
    # SDPA choices); none is what a request costs once the engine runs.
    warm = hf.CachedLM(model, client, namespace="%s/warm/%d" % (
        kind, rng.randrange(1 << 30)))
    n = len(prompts[0])
    for h in hits:
        dummy = rand_tokens(rng, n)
        warm.generate(dummy[:h] + rand_tokens(rng, 1), max_new_tokens=2)  # stores h tokens
        warm.flush()
        warm.generate(dummy, max_new_tokens=4)
        warm.flush()
        base.generate(dummy, max_new_tokens=4, store=False)
    t_base = t_store = 0.0
    cached = total = 0
    same_tokens = 0
    per = []
    for p in prompts:
        b = base.generate(p, max_new_tokens=4, store=False)
        s = lm.generate(p, max_new_tokens=4)
        lm.flush()
        t_base += b.ttft_s
        t_store += s.ttft_s
        cached += s.cached_tokens
        total += len(p)
        same_tokens += b.tokens == s.tokens
        per.append((round(b.ttft_s * 1e3, 1), round(s.ttft_s * 1e3, 1),
                    round(s.load_s * 1e3, 1), s.cached_tokens))
    return {"model": shape, "workload": kind, "requests": len(prompts),
            "hit_ratio": cached / total, "ttft_base_ms": t_base * 1e3,
            "ttft_store_ms": t_store * 1e3, "saved": 1 - t_store / t_base,
            "same_tokens_as_baseline": "%d/%d" % (same_tokens, len(prompts)),
            "per_request_base_store_load_ms_cached": per}


def fmt(row, tier, mode, g):
    x = row.get("%s_%s_%s" % (tier, mode, "graph" if g else "eager"))
    if not x:
        return "-"
    return "%.1f ms (%.1fx)" % (x["ttft_ms"], x["speedup"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--models", default="8b")
    ap.add_argument("--lengths", default="2048,8192,32768")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-batch", action="store_true")
    a = ap.parse_args()
    if os.environ.get("KV_DETERMINISTIC"):
        torch.use_deterministic_algorithms(True, warn_only=True)
    models = ["1b"] if a.quick else a.models.split(",")
    lengths = [2048] if a.quick else [int(x) for x in a.lengths.split(",")]
    reps = 2 if a.quick else a.reps
    rng = random.Random(42)
    gpu = torch.cuda.get_device_name(0)
    print("ttft: %s, transformers %s, torch %s" % (gpu, transformers.__version__,
                                                   torch.__version__), flush=True)
    ssd = tempfile.mkdtemp(prefix="kvttft-ssd.", dir="/var/tmp")
    d = Daemon(["--dram-bytes", "24G", "--hbm-bytes", "12G", "--gpu", "0",
                "--hbm-promote", "off", "--ssd-dir", ssd, "--ssd-bytes", "40G",
                "--log", "warn"])
    client = kvstore.Client(d.sock)
    client.gpu_open(0, kvstore.GPU_REGISTER_ALL)
    t0 = time.time()
    while True:     # no measurement pays a slab's page-locking
        done, total = client.gpu_registered()
        if done >= total or time.time() - t0 > 60:
            break
        time.sleep(0.1)
    print("dram mapping page-locked: %d of %d bytes in %.1f s" % (done, total,
                                                                  time.time() - t0))
    rows, batches, bad = [], [], []
    try:
        for shape in models:
            model = build(shape)
            warm = hf.CachedLM(model, client, use_store=False)
            warm.generate(rand_tokens(rng, 512), max_new_tokens=2, store=False)
            for n in lengths:
                row = multi_turn(model, client, shape, n, reps if n <= 8192 else
                                 max(1, reps - 1), rng, bad)
                rows.append(row)
                print("figure: ttft %s %d tokens: %s" % (shape, n, json.dumps(row)),
                      flush=True)
            if not a.quick and not a.no_batch:
                for kind in ("system", "rag"):
                    b = batch(model, client, shape, rng, kind)
                    batches.append(b)
                    print("per request (baseline ms, store ms, load ms, cached): %s" %
                          b["per_request_base_store_load_ms_cached"])
                    print("figure: %s %s: %d requests, hit ratio %.3f, TTFT %.0f ms -> %.0f ms "
                          "(%.0f%% saved), same tokens as the baseline %s" % (
                              shape, kind, b["requests"], b["hit_ratio"], b["ttft_base_ms"],
                              b["ttft_store_ms"], 100 * b["saved"],
                              b["same_tokens_as_baseline"]), flush=True)
            del model, warm
            torch.cuda.empty_cache()
        st = client.stats()
        print("daemon: read bandwidth per tier %s; plans loaded/computed/both %s/%s/%s" % (
            {t["name"]: round(t.get("read_bw", 0) / 1e9, 2) for t in st["tiers"]},
            st.get("plans_loaded"), st.get("plans_computed"), st.get("plans_both")))
    finally:
        client.close()
        d.stop()
        shutil.rmtree(ssd, ignore_errors=True)
    print("\nTTFT, turn 2 (speed-up against the baseline in the same run; pipelined "
          "loads and a CUDA graph for the suffix unless named)\n")
    print("| model | prompt | baseline | HBM | DRAM | SSD (planned) | HBM whole | DRAM whole "
          "| HBM eager | DRAM eager | SSD eager | SSD plan | identical |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- "
          "| --- |")
    for r in rows:
        ssd_x = r.get("ssd_auto_graph", {})
        ident = all(v["identical"] for k, v in r.items() if isinstance(v, dict) and
                    "identical" in v)
        print("| %s | %d | %.1f ms | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["model"], r["prompt_tokens"], r["baseline_ttft_ms"],
            fmt(r, "hbm", "pipelined", True), fmt(r, "dram", "pipelined", True),
            fmt(r, "ssd", "auto", True), fmt(r, "hbm", "whole", True),
            fmt(r, "dram", "whole", True), fmt(r, "hbm", "pipelined", False),
            fmt(r, "dram", "pipelined", False), fmt(r, "ssd", "auto", False),
            "%s: %d loaded, %d computed" % (ssd_x.get("plan"), ssd_x.get("cached", 0),
                                            ssd_x.get("computed", 0)),
            "yes" if ident else "NO"))
    out = os.environ.get("OUT", ".")
    with open(os.path.join(out, "ttft.json"), "w") as f:
        json.dump({"gpu": gpu, "multi_turn": rows, "batch": batches, "failures": bad}, f,
                  indent=1)
    for x in bad:
        print("FAIL: %s" % x)
    # Every row identical to its split reference, every KV loaded bit-exact,
    # every reference deterministic: else a failure.
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
