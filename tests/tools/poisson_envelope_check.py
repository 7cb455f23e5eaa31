#!/usr/bin/env python3
"""Exact-arithmetic check of the Poisson rejection sampler in core/noise.c (lambda >= 8).

Mirrors the sampler's parameters (s, W) and its coins with Python fractions, and checks that
every coin is a probability (at most 1) and that proposal(y) * acceptance(y) / r(y) is the same
constant for every y, where r(y) = P(m + y) / P(m). That is what makes the output exactly
Poisson(lambda). Usage: tests/tools/poisson_envelope_check.py [num/den ...]
"""
import math
import sys
from fractions import Fraction as F


def params(num, den):
    m = num // den
    r = 0
    while (r + 1) ** 2 * den <= 2 * num:  # isqrt_ratio(2 num, den)
        r += 1
    s = max(2, r)
    need = -(-(num * s) // (den * (s - 1)))
    wpos = need - m - 1 if need > m + 1 else 0
    low = (num * (s - 1)) // (den * s)
    wneg = m - low if m > low else 0
    return m, s, max(wpos, wneg)


def check(num, den):
    lam = F(num, den)
    m, s, W = params(num, den)
    rho = F(s - 1, s)
    reach = 8 * math.isqrt(num // den) + W + 8
    consts = set()
    for neg in (0, 1):
        for g in range(1 if neg else 0, (m + 1) if neg else reach):
            if neg and g > reach:
                break
            factor = (lambda i: F((m - i) * den, num)) if neg else (lambda i: F(num, den * (m + i + 1)))
            coins = [factor(i) for i in range(min(g, W))] + [rho] * (W - min(g, W))
            coins += [factor(i) / rho for i in range(W, g)]
            assert all(0 <= c <= 1 for c in coins), (num, den, neg, g)
            acc = math.prod(coins, start=F(1))
            r = math.prod((factor(i) for i in range(g)), start=F(1))
            consts.add(rho ** g * acc / r)
    assert len(consts) == 1, (num, den, len(consts))
    print(f"lambda {float(lam):g}: s {s}, W {W}: every coin <= 1, proposal x acceptance = "
          f"{float(consts.pop()):.6f} x P(m+y)/P(m) for every y checked")


if __name__ == "__main__":
    cases = [a.split("/") for a in sys.argv[1:]] or [("16", "2"), ("101", "2"), ("1000", "3"), ("2469", "2"), ("77777", "10")]
    for n, d in cases:
        check(int(n), int(d))
