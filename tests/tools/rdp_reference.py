#!/usr/bin/env python3
"""Reference RDP values at 60 significant digits (Python's decimal), for the corners where
double-precision sums of terms near 1 lose the small excess: tiny sampling rates with large
noise. test_accountant.c (test_extreme_corners) checks the C accountant against these.

  tests/tools/rdp_reference.py      prints one line per case: mechanism, parameters, RDP
"""
from decimal import Decimal as D, getcontext
from math import comb

getcontext().prec = 60


def gaussian_int(q, z, a):
    """Subsampled Gaussian, integer order a: log(sum_i C(a,i) (1-q)^(a-i) q^i e^((i^2-i)/(2z^2))) / (a-1)."""
    q, z = D(q), D(z)
    s = sum(D(comb(a, i)) * (1 - q) ** (a - i) * q ** i * ((D(i * i - i) / (2 * z * z)).exp()) for i in range(a + 1))
    return s.ln() / (a - 1)


def skellam(a, d2, d1, var):
    a, d2, d1, var = D(a), D(d2), D(d1), D(var)
    t1 = ((2 * a - 1) * d2 * d2 + 6 * d1) / (4 * var * var)
    t2 = 3 * d1 / (2 * var)
    return a * d2 * d2 / (2 * var) + min(t1, t2)


def poisson_subsampled(q, a, eps):
    """Zhu and Wang 2019, Theorem 6 (the bound core/accountant.c uses), integer a >= 2."""
    q = D(q)
    s = (1 - q) ** (a - 1) * (a * q - q + 1)
    s += D(comb(a, 2)) * q ** 2 * (1 - q) ** (a - 2) * eps(2).exp()
    for l in range(3, a + 1):
        s += 3 * D(comb(a, l)) * (1 - q) ** (a - l) * q ** l * ((l - 1) * eps(l)).exp()
    return s.ln() / (a - 1)


if __name__ == "__main__":
    for q, z in ((1e-6, 100.0), (1e-5, 300.0)):
        for a in (2, 8, 32):
            print("gaussian q=%g z=%g a=%d rdp=%.17e" % (q, z, a, gaussian_int(q, z, a)))
    for q, d2, d1, var in ((1e-5, 10.0, 100.0, 1e8),):
        for a in (2, 8, 32):
            print("skellam q=%g d2=%g d1=%g var=%g a=%d rdp=%.17e" % (
                q, d2, d1, var, a, poisson_subsampled(q, a, lambda l: skellam(l, d2, d1, var))))
