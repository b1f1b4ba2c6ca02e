"""kvstore.plan: compute or load, per request (no torch needed).

The transformers adapter (kvstore.integration.hf) plans each request with
it; an engine of its own can too. docs/integration.md, "The planner".
"""

import kvstore

__all__ = ["Planner", "ewma", "EWMA", "PLAN_LOADED", "PLAN_COMPUTED", "PLAN_BOTH"]

PLAN_LOADED = kvstore.PLAN_LOADED
PLAN_COMPUTED = kvstore.PLAN_COMPUTED
PLAN_BOTH = kvstore.PLAN_BOTH

# The weight of a new sample in a moving average: 1/8, as the daemon's
# (and TCP's smoothed round-trip time, RFC 6298): a step in the true value
# shows half-way after 5 samples, and one odd sample moves it by 1/8.
EWMA = 1.0 / 8


def ewma(old, sample):
    """The moving average after sample (old 0: none yet, sample taken as is)."""
    return sample if not old else old + EWMA * (sample - old)


class Planner:
    """Compute or load, per request.

    Given the cached chunks' tiers, each tier's read bandwidth to this GPU
    (bytes/s) and the prefill rate (tokens/s), pick the chunk a at which
    computing stops and loading starts: chunks [0, a) are computed (from
    token 0, in prefill chunks), chunks [a, m) loaded, both at once. The
    time of a split is the longer of the two; a is a multiple of the
    prefill chunk (in store chunks) or m. a == 0 is a plain load, a == m a
    recompute; a load is never chosen when it is slower than computing.
    """

    def __init__(self, chunk_tokens, chunk_bytes, prefill_chunk):
        self.T = chunk_tokens
        self.B = chunk_bytes
        self.step = max(1, prefill_chunk // chunk_tokens)

    def plan(self, tiers, bw, rate):
        """tiers: per cached chunk its tier; bw: tier -> bytes/s (0 or
        missing: unknown); rate: prefill tokens/s (0: unknown). Returns
        (a, estimated seconds, kind)."""
        m = len(tiers)
        if m == 0:
            return 0, 0.0, 0
        per = []        # seconds to load each chunk; None: unknown, so never loaded
        for t in tiers:
            b = bw.get(t, 0.0)
            if b > 0:
                per.append(self.B / b)
            elif t in (kvstore.TIER_HBM, kvstore.TIER_DRAM):
                per.append(0.0)     # GPU memory or the host link: load, and measure
            else:
                per.append(None)
        if rate <= 0:
            # No prefill measured yet: load from GPU memory and the host,
            # compute what sits lower (which the daemon then measures).
            if all(p is not None for p in per) and \
                    not any(t in (kvstore.TIER_SSD, kvstore.TIER_REMOTE) for t in tiers):
                return 0, sum(per), PLAN_LOADED
            return m, float("inf"), PLAN_COMPUTED
        best = None
        cands = sorted(set(list(range(0, m, self.step)) + [m]))
        for a in cands:
            rest = per[a:]
            if any(p is None for p in rest):
                continue
            t = max(a * self.T / rate, sum(rest))
            if best is None or t < best[1] - 1e-9:
                best = (a, t)
        if best is None:
            return m, m * self.T / rate, PLAN_COMPUTED
        a, t = best
        kind = PLAN_LOADED if a == 0 else PLAN_COMPUTED if a == m else PLAN_BOTH
        return a, t, kind
