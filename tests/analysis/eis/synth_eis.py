"""Closed-form impedances for the EIS tests, written out here, independent of labctl.

omega = 2 pi f; Z = Z' + j Z'' (capacitive Z'' < 0).
"""

from __future__ import annotations

import numpy as np

# 60 points, 1 MHz to 0.1 Hz, as a potentiostat sweep at ~8.6 points per decade.
F_60 = np.logspace(6, -1, 60)

BOLTZMANN_EV_PER_K = 8.617333262e-5


def w(f):
    return 2.0 * np.pi * np.asarray(f, dtype=float)


def z_cpe(q, alpha, f):
    """1 / (Q (j omega)^alpha)"""
    return 1.0 / (q * (1j * w(f)) ** alpha)


def z_r_cpe(r, q, alpha, f):
    """R in parallel with a CPE: R / (1 + R Q (j omega)^alpha)."""
    return r / (1.0 + r * q * (1j * w(f)) ** alpha)


def z_r_c(r, c, f):
    return r / (1.0 + 1j * w(f) * r * c)


def z_warburg(a_w, f):
    """Semi-infinite Warburg: A_W (1 - j) / sqrt(omega)."""
    return a_w * (1.0 - 1.0j) / np.sqrt(w(f))


def z_warburg_open(z0, tau, f):
    s = np.sqrt(1j * w(f) * tau)
    return z0 / (s * np.tanh(s))  # coth(s) / s


def z_warburg_short(z0, tau, f):
    s = np.sqrt(1j * w(f) * tau)
    return z0 * np.tanh(s) / s


def z_inductor(l_h, f):
    return 1j * w(f) * l_h


def q_for(r, tau, alpha):
    """CPE Q giving an R||CPE arc its apex at omega = 1/tau: (R Q)^(1/alpha) = tau."""
    return tau**alpha / r


def noisy(z, rel: float, seed: int):
    """Gaussian noise of rel * |Z| on the real and on the imaginary part."""
    rng = np.random.default_rng(seed)
    z = np.asarray(z, dtype=complex)
    return z + rel * np.abs(z) * (rng.normal(size=z.shape) + 1j * rng.normal(size=z.shape))


def chi2_modulus(z_data, z_model) -> float:
    """sum over real and imaginary parts of ((Z_model - Z_data) / |Z_data|)^2."""
    d = (np.asarray(z_model) - np.asarray(z_data)) / np.abs(z_data)
    return float(np.sum(d.real**2) + np.sum(d.imag**2))


# Truths of the three circuits of the brief; alphas deliberately not round numbers.
ONE_ARC = {"R0": 12.0, "R1": 47.0, "CPE1_0": q_for(47.0, 3e-4, 0.87), "CPE1_1": 0.87}
TWO_ARCS = {"R0": 8.5, "R1": 35.0, "CPE1_0": q_for(35.0, 2e-5, 0.91), "CPE1_1": 0.91,
            "R2": 180.0, "CPE2_0": q_for(180.0, 0.05, 0.76), "CPE2_1": 0.76}
ARC_WARBURG = {"R0": 5.0, "R1": 60.0, "CPE1_0": q_for(60.0, 1e-4, 0.88), "CPE1_1": 0.88,
               "W1": 25.0}


def z_one_arc(p, f=F_60):
    return p["R0"] + z_r_cpe(p["R1"], p["CPE1_0"], p["CPE1_1"], f)


def z_two_arcs(p, f=F_60):
    return (p["R0"] + z_r_cpe(p["R1"], p["CPE1_0"], p["CPE1_1"], f)
            + z_r_cpe(p["R2"], p["CPE2_0"], p["CPE2_1"], f))


def z_arc_warburg(p, f=F_60):
    return p["R0"] + z_r_cpe(p["R1"], p["CPE1_0"], p["CPE1_1"], f) + z_warburg(p["W1"], f)


CASES = {
    "R0-p(R1,CPE1)": (ONE_ARC, z_one_arc),
    "R0-p(R1,CPE1)-p(R2,CPE2)": (TWO_ARCS, z_two_arcs),
    "R0-p(R1,CPE1)-W1": (ARC_WARBURG, z_arc_warburg),
}

# LLTO pellets (seed-facts.md): sintering temperature -> (grain, overall) S/cm.
LLTO = {1000: (4.75e-5, 1.06e-7), 1100: (2.96e-4, 2.30e-6), 1200: (3.03e-4, 8.52e-6),
        1300: (3.67e-4, 1.52e-5)}
