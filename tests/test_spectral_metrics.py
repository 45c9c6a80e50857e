"""Spectral metrics against independent loop implementations and worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from suite.metrics.spectral import d_lambda, ergas, q2n, q_index, qnr, sam, scc


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    ref = rng.random((4, 40, 36)) + 0.5
    pred = ref + 0.1 * rng.standard_normal(ref.shape) + 0.05
    return pred, ref


def test_identical_images_are_perfect(pair: tuple[np.ndarray, np.ndarray]) -> None:
    _, ref = pair
    assert sam(ref, ref) == pytest.approx(0, abs=1e-5)
    assert ergas(ref, ref, 4) == 0
    assert q_index(ref, ref) == pytest.approx(1)
    assert q2n(ref, ref) == pytest.approx(1)
    assert scc(ref, ref) == pytest.approx(1)
    pan = ref.mean(axis=0)
    assert qnr(ref, ref, pan, pan)["qnr"] == pytest.approx(1)


def test_sam_matches_loop(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, ref = pair
    angles = []
    for i in range(ref.shape[1]):
        for j in range(ref.shape[2]):
            a, b = pred[:, i, j], ref[:, i, j]
            dot = sum(x * y for x, y in zip(a, b, strict=True))
            na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
            angles.append(math.degrees(math.acos(min(1.0, dot / (na * nb)))))
    assert sam(pred, ref) == pytest.approx(sum(angles) / len(angles), rel=1e-9)


def test_ergas_matches_loop(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, ref = pair
    total = 0.0
    for k in range(ref.shape[0]):
        mse = float(np.mean((pred[k] - ref[k]) ** 2))
        total += mse / float(np.mean(ref[k])) ** 2
    assert ergas(pred, ref, 4) == pytest.approx(100 / 4 * math.sqrt(total / ref.shape[0]))


def scalar_q(x: np.ndarray, y: np.ndarray) -> float:
    """Wang-Bovik Q of two windows from its definition (unbiased covariances)."""
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(ddof=1), y.var(ddof=1)
    cxy = ((x - mx) * (y - my)).sum() / (x.size - 1)
    return float(4 * cxy * mx * my / ((vx + vy) * (mx**2 + my**2)))


def test_q_matches_window_loop(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, ref = pair
    size = 8
    per_band = []
    for k in range(ref.shape[0]):
        vals = [
            scalar_q(pred[k, i : i + size, j : j + size], ref[k, i : i + size, j : j + size])
            for i in range(ref.shape[1] - size + 1)
            for j in range(ref.shape[2] - size + 1)
        ]
        per_band.append(np.mean(vals))
    assert q_index(pred, ref, size) == pytest.approx(np.mean(per_band), rel=1e-9)
    assert q_index(pred[0], ref[0], None) == pytest.approx(scalar_q(pred[0], ref[0]), rel=1e-9)


def qmul(a: list[float], b: list[float]) -> list[float]:
    """Hamilton product written out."""
    a1, b1, c1, d1 = a
    a2, b2, c2, d2 = b
    return [
        a1 * a2 - b1 * b2 - c1 * c2 - d1 * d2,
        a1 * b2 + b1 * a2 + c1 * d2 - d1 * c2,
        a1 * c2 - b1 * d2 + c1 * a2 + d1 * b2,
        a1 * d2 + b1 * c2 - c1 * b2 + d1 * a2,
    ]


def qconj(a: list[float]) -> list[float]:
    return [a[0], -a[1], -a[2], -a[3]]


def q4_block(ref: np.ndarray, pred: np.ndarray) -> float:
    """Q4 of one (4, n, n) block with quaternion arithmetic, toolbox normalization."""
    n = ref[0].size
    zr, zp = [], []
    for k in range(4):
        m, s = ref[k].mean(), ref[k].std(ddof=1)
        zr.append(((ref[k] - m) / s + 1).ravel())
        zp.append(((pred[k] - m) / s + 1).ravel())
    mr = [float(np.mean(z)) for z in zr]
    mp = [float(np.mean(z)) for z in zp]
    cov = [0.0] * 4
    for i in range(n):
        prod = qmul([zr[k][i] for k in range(4)], qconj([zp[k][i] for k in range(4)]))
        cov = [c + p / (n - 1) for c, p in zip(cov, prod, strict=True)]
    mm = qmul(mr, qconj(mp))
    cov = [c - n / (n - 1) * m for c, m in zip(cov, mm, strict=True)]
    var_r = sum(float(np.sum((z - m) ** 2)) for z, m in zip(zr, mr, strict=True)) / (n - 1)
    var_p = sum(float(np.sum((z - m) ** 2)) for z, m in zip(zp, mp, strict=True)) / (n - 1)
    nr, npred = math.sqrt(sum(v * v for v in mr)), math.sqrt(sum(v * v for v in mp))
    modcov = math.sqrt(sum(c * c for c in cov))
    return 4 * modcov * nr * npred / ((var_r + var_p) * (nr**2 + npred**2))


def test_q4_matches_quaternion_loop() -> None:
    rng = np.random.default_rng(2)
    ref = rng.random((4, 16, 16)) + 1
    pred = 0.8 * ref + 0.2 * rng.random(ref.shape) + np.array([0.1, -0.1, 0.0, 0.2])[:, None, None]
    expected = np.mean(
        [
            q4_block(ref[:, i : i + 8, j : j + 8], pred[:, i : i + 8, j : j + 8])
            for i in (0, 8)
            for j in (0, 8)
        ]
    )
    assert q2n(pred, ref, block_size=8) == pytest.approx(expected, rel=1e-9)


def test_q2n_pads_three_bands_with_zero_band(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, ref = pair
    zero = np.zeros((1, *ref.shape[1:]))
    padded = q2n(np.concatenate([pred[:3], zero]), np.concatenate([ref[:3], zero]), 8)
    assert q2n(pred[:3], ref[:3], 8) == pytest.approx(padded)
    assert 0 < padded < 1


def test_scc_matches_loop_laplacian(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, ref = pair

    def laplace(img: np.ndarray) -> np.ndarray:
        p = np.pad(img, 1, mode="symmetric")
        out = np.zeros_like(img)
        for i in range(img.shape[0]):
            for j in range(img.shape[1]):
                out[i, j] = (
                    p[i, j + 1]
                    + p[i + 2, j + 1]
                    + p[i + 1, j]
                    + p[i + 1, j + 2]
                    - 4 * p[i + 1, j + 1]
                )
        return out

    vals = [
        np.corrcoef(laplace(a).ravel(), laplace(b).ravel())[0, 1]
        for a, b in zip(pred, ref, strict=True)
    ]
    assert scc(pred, ref) == pytest.approx(float(np.mean(vals)), rel=1e-9)


def test_d_lambda_matches_pair_loop(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, ref = pair
    ms = ref[:, ::2, ::2]
    diffs = [
        abs(scalar_q(pred[i], pred[j]) - scalar_q(ms[i], ms[j]))
        for i in range(4)
        for j in range(4)
        if i != j
    ]
    assert d_lambda(pred, ms, block_size=None) == pytest.approx(np.mean(diffs), rel=1e-9)
    out = qnr(pred, ms, pred.mean(0), ms.mean(0), block_size=8)
    assert out["qnr"] == pytest.approx((1 - out["d_lambda"]) * (1 - out["d_s"]))
    assert 0 < out["qnr"] < 1
