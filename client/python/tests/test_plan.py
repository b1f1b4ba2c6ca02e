"""Tests of kvstore.plan, the compute-or-load planner (no daemon, no GPU,
no torch).

Run: PYTHONPATH=client/python python3 -m unittest client/python/tests/test_plan.py -v
"""
import random
import unittest

import kvstore
from kvstore.plan import PLAN_BOTH, PLAN_COMPUTED, PLAN_LOADED, Planner, ewma

HBM, DRAM, SSD = kvstore.TIER_HBM, kvstore.TIER_DRAM, kvstore.TIER_SSD
T = 256                                 # tokens per chunk
B = 32 * 2 * T * 8 * 128 * 2            # bytes per chunk: the 8B shape in bf16 (32 MiB)


def est(a, tiers, bw, rate):
    """The planner's cost of splitting at a, computed here on its own."""
    load = 0.0
    for t in tiers[a:]:
        b = bw.get(t, 0.0)
        if b <= 0 and t == SSD:
            return None
        load += B / b if b > 0 else 0.0
    return max(a * T / rate, load)


class PlannerTest(unittest.TestCase):
    def test_issue_example(self):
        """8K tokens on SSD at 1.6 GB/s, prefill at 32K tokens/s, 2K
        prefill chunks: loading all takes 0.67 s, computing all 0.26 s;
        computing 6K while the last 2K load takes 0.19 s."""
        p = Planner(T, B, 2048)
        a, t, kind = p.plan([SSD] * 32, {SSD: 1.6e9}, 32000.0)
        self.assertEqual((a, kind), (24, PLAN_BOTH))
        self.assertAlmostEqual(t, 24 * T / 32000.0)

    def test_fast_tiers_load(self):
        p = Planner(T, B, 2048)
        for tier, bw in ((DRAM, 50e9), (HBM, 1.5e12)):
            a, _, kind = p.plan([tier] * 32, {tier: bw}, 32000.0)
            self.assertEqual((a, kind), (0, PLAN_LOADED))

    def test_slow_tier_computes(self):
        """A tier so slow that even its last chunk alone costs more than
        computing the whole prefix: recompute."""
        p = Planner(T, B, 2048)
        a, _, kind = p.plan([SSD] * 32, {SSD: 50e6}, 32000.0)
        self.assertEqual((a, kind), (32, PLAN_COMPUTED))

    def test_unknown(self):
        p = Planner(T, B, 2048)
        # Nothing measured: GPU memory and the host are loaded (and so
        # measured), SSD computed (and the daemon measures the prefetch).
        self.assertEqual(p.plan([DRAM] * 8, {}, 0.0)[2], PLAN_LOADED)
        self.assertEqual(p.plan([HBM, DRAM], {}, 0.0)[2], PLAN_LOADED)
        self.assertEqual(p.plan([DRAM] * 8 + [SSD], {}, 0.0)[2], PLAN_COMPUTED)
        # The prefill rate known, the SSD's not: its chunks are never loaded.
        a, _, kind = p.plan([DRAM] * 16 + [SSD] * 16, {DRAM: 50e9}, 32000.0)
        self.assertEqual((a, kind), (32, PLAN_COMPUTED))
        self.assertEqual(p.plan([], {}, 32000.0), (0, 0.0, 0))

    def test_remote(self):
        """The cluster's chunks are planned like the SSD's: computed while
        their bandwidth is unknown (never a load slower than recomputing),
        loaded from the end once the daemon has timed its fetches."""
        REMOTE = kvstore.TIER_REMOTE
        p = Planner(T, B, 2048)
        self.assertEqual(p.plan([DRAM] * 8 + [REMOTE] * 8, {}, 0.0)[2], PLAN_COMPUTED)
        a, _, kind = p.plan([REMOTE] * 32, {DRAM: 50e9}, 32000.0)
        self.assertEqual((a, kind), (32, PLAN_COMPUTED))
        a, _, kind = p.plan([REMOTE] * 32, {REMOTE: 1.6e9}, 32000.0)
        self.assertEqual((a, kind), (24, PLAN_BOTH))

    def test_random(self):
        """On random prefixes, bandwidths and rates: the split is a
        multiple of the prefill chunk (or the end), never costs more than
        computing everything, is the best of the splits allowed, and a plain
        load is chosen only when it beats recomputing."""
        rng = random.Random(12)
        for _ in range(2000):
            step_chunks = rng.choice([1, 2, 4, 8, 16])
            p = Planner(T, B, step_chunks * T)
            m = rng.randrange(1, 160)
            tiers = [rng.choice([HBM, DRAM, SSD, SSD]) for _ in range(m)]
            bw = {}
            for t, lo, hi in ((HBM, 2e11, 3e12), (DRAM, 5e9, 6e10), (SSD, 1e8, 2e10)):
                if rng.random() < 0.9:
                    bw[t] = rng.uniform(lo, hi)
            rate = rng.uniform(2e3, 2e5)
            a, t, kind = p.plan(tiers, bw, rate)
            self.assertTrue(a == m or a % step_chunks == 0, (a, m, step_chunks))
            compute_all = m * T / rate
            self.assertLessEqual(t, compute_all + 1e-9)
            allowed = [x for x in range(0, m, step_chunks)] + [m]
            costs = [c for c in (est(x, tiers, bw, rate) for x in allowed) if c is not None]
            self.assertAlmostEqual(t, min(costs), places=9)
            self.assertAlmostEqual(t, est(a, tiers, bw, rate), places=9)
            if kind == PLAN_LOADED:
                self.assertEqual(a, 0)
                self.assertLessEqual(est(0, tiers, bw, rate), compute_all + 1e-9)
            elif kind == PLAN_COMPUTED:
                self.assertEqual(a, m)
            else:
                self.assertEqual(kind, PLAN_BOTH)
                self.assertTrue(0 < a < m)

    def test_faster_disk_loads_more(self):
        """The faster the SSD, the fewer chunks computed; as fast as HBM, none."""
        p = Planner(T, B, 1024)
        last = None
        for bw in (2e8, 5e8, 1e9, 2e9, 4e9, 8e9, 16e9, 64e9, 1e12):
            a = p.plan([SSD] * 64, {SSD: bw}, 32000.0)[0]
            if last is not None:
                self.assertLessEqual(a, last)
            last = a
        self.assertEqual(last, 0)

    def test_ewma(self):
        self.assertEqual(ewma(0, 8.0), 8.0)
        self.assertEqual(ewma(8.0, 16.0), 9.0)


if __name__ == "__main__":
    unittest.main()
