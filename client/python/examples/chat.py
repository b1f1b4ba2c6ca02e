#!/usr/bin/env python3
"""chat.py - a multi-turn chat whose earlier turns come back from kvstore.

    make run &                                  # the daemon (or your own)
    PYTHONPATH=client/python KVSTORE_LIB=build/libkvc.so \\
        python3 client/python/examples/chat.py --model /path/to/llama [--socket ...]

Each turn appends the user's message to the conversation, and the adapter
loads every whole chunk of the conversation so far from the store before
the prefill, so only the new message (and the tail of the last chunk) is
computed. It prints the time to first token and how many tokens came from
the store. Needs torch, transformers and a CUDA GPU; the model is any
Llama-family checkpoint with a chat template.
"""

import argparse
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import kvstore
from kvstore.integration import hf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a local path or hub id")
    ap.add_argument("--socket", default=None, help="kvstored's socket (default: $KVSTORE_SOCKET)")
    ap.add_argument("--chunk-tokens", type=int, default=256)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--hbm", action="store_true", help="store new chunks in the HBM tier")
    a = ap.parse_args()

    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.bfloat16,
                                                 device_map="cuda")
    client = kvstore.Client(a.socket)
    lm = hf.CachedLM(model, client, chunk_tokens=a.chunk_tokens, store_hbm=a.hbm)
    print("namespace %s; empty line to quit" % lm.ns.name)
    messages = []
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            break
        if not line:
            break
        messages.append({"role": "user", "content": line})
        ids = tok.apply_chat_template(messages, add_generation_prompt=True)
        if not isinstance(ids, list):
            ids = ids["input_ids"]
        r = lm.generate(ids, max_new_tokens=a.max_new_tokens)
        out = r.tokens
        if tok.eos_token_id in out:
            out = out[: out.index(tok.eos_token_id)]
        text = tok.decode(out, skip_special_tokens=True)
        print("bot> %s" % text)
        print("     [TTFT %.0f ms, %d of %d prompt tokens from the store]" % (
            r.ttft_s * 1e3, r.cached_tokens, r.prompt_tokens), file=sys.stderr)
        messages.append({"role": "assistant", "content": text})
    client.close()


if __name__ == "__main__":
    main()
