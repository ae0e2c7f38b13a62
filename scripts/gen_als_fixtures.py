#!/usr/bin/python3
"""Gold fixtures for WMF by implicit ALS (models/wmf, kernels/als.h).

Needs the `implicit` package (0.7.x, CPU build from PyPI) next to Debian's numpy/scipy:

    /usr/bin/python3 -m venv --system-site-packages /tmp/implicitvenv
    /tmp/implicitvenv/bin/pip install "implicit==0.7.*"
    /tmp/implicitvenv/bin/python scripts/gen_als_fixtures.py [--out tests/fixtures]

Writes tests/fixtures/als_gold.safetensors (every key is described in tests/fixtures/README.md,
section "als_gold.safetensors"):

  step.*      one ALS iteration (user half-step, then item half-step) from stored U0, V0,
              computed here in float64 with NumPy: the exact solve of the normal equations
              (what a Cholesky solver gives) and 3 steps of warm-started conjugate gradient
              (the algorithm of implicit's CG solver), plus the normalized loss;
  implicit.*  implicit's AlternatingLeastSquares (native CPU code, one thread) started from the
              same U0, V0: its training loss after each of 15 iterations, CG and Cholesky.

Conventions shared with our code and with implicit 0.7: the sparse matrix holds the confidence
c_ui of each observed (user, item) pair itself (implicit does not add 1; alpha is left at 1),
the preference is p_ui = 1 there, and every unobserved pair has c = 1, p = 0.

The script cross-checks its NumPy references against implicit's own routines (one CG
half-step, one Cholesky half-step, calculate_loss) and stops if they disagree. Deterministic:
re-running gives byte-identical files.
"""

import argparse
import os
import sys

# implicit warns (and slows down) when OpenBLAS runs its own threads inside its loops.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

USERS, ITEMS, FACTORS = 60, 40, 8
DENSITY = 0.15
REG = 0.05
CG_STEPS = 3
ITERATIONS = 15


def make_inputs(seed=20261127):
    """Random confidence matrix (every row and column non-empty) and initial factors."""
    rng = np.random.default_rng(seed)
    mask = rng.random((USERS, ITEMS)) < DENSITY
    for u in range(USERS):
        if not mask[u].any():
            mask[u, rng.integers(ITEMS)] = True
    for i in range(ITEMS):
        if not mask[:, i].any():
            mask[rng.integers(USERS), i] = True
    scores = rng.integers(1, 11, size=(USERS, ITEMS))
    # c = 1 + 0.5 * score: multiples of 0.5 in [1.5, 6], exact in float32.
    dense = np.where(mask, 1.0 + 0.5 * scores, 0.0).astype(np.float32)
    C = sp.csr_matrix(dense)
    C.sort_indices()
    U0 = (rng.random((USERS, FACTORS)) * 0.01).astype(np.float32)
    V0 = (rng.random((ITEMS, FACTORS)) * 0.01).astype(np.float32)
    return C, U0, V0


def row(C, u):
    b, e = C.indptr[u], C.indptr[u + 1]
    return C.indices[b:e], C.data[b:e].astype(np.float64)


def half_step_exact(C, X, Y, reg):
    """x_u = (Y^T C_u Y + reg I)^-1 Y^T C_u p_u for every row u, in float64; empty rows -> 0."""
    X = X.astype(np.float64).copy()
    Y = Y.astype(np.float64)
    f = Y.shape[1]
    YtY = Y.T @ Y
    for u in range(C.shape[0]):
        idx, c = row(C, u)
        if len(idx) == 0:
            X[u] = 0
            continue
        Yu = Y[idx]
        A = YtY + reg * np.eye(f) + (Yu.T * (c - 1.0)) @ Yu
        b = Yu.T @ c
        X[u] = np.linalg.solve(A, b)
    return X


def half_step_cg(C, X, Y, reg, steps):
    """Warm-started CG on the same systems, as implicit's CG solver runs it (float64)."""
    X = X.astype(np.float64).copy()
    Y = Y.astype(np.float64)
    f = Y.shape[1]
    G = Y.T @ Y + reg * np.eye(f)
    for u in range(C.shape[0]):
        idx, c = row(C, u)
        if len(idx) == 0:
            X[u] = 0
            continue
        Yu = Y[idx]
        x = X[u].copy()
        r = Yu.T @ (c - (c - 1.0) * (Yu @ x)) - G @ x
        p = r.copy()
        rsold = r @ r
        if rsold < 1e-20:
            continue
        for _ in range(steps):
            Ap = G @ p + Yu.T @ ((c - 1.0) * (Yu @ p))
            alpha = rsold / (p @ Ap)
            x += alpha * p
            r -= alpha * Ap
            rsnew = r @ r
            if rsnew < 1e-20:
                break
            p = r + (rsnew / rsold) * p
            rsold = rsnew
        X[u] = x
    return X


def full_loss(C, X, Y, reg):
    """sum over ALL pairs of c (p - x.y)^2 + reg (|X|^2 + |Y|^2), divided by
    sum(c) + users * items - nnz (the sum of all confidences), in float64."""
    X = X.astype(np.float64)
    Y = Y.astype(np.float64)
    P = X @ Y.T
    conf = np.ones(P.shape)
    pref = np.zeros(P.shape)
    coo = C.tocoo()
    conf[coo.row, coo.col] = coo.data
    pref[coo.row, coo.col] = 1.0
    total = (conf * (pref - P) ** 2).sum() + reg * ((X * X).sum() + (Y * Y).sum())
    return total / (C.data.astype(np.float64).sum() + P.size - C.nnz)


def close(a, b, tol, what):
    err = np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
    scale = max(1.0, float(np.max(np.abs(b))))
    if not err <= tol * scale:
        sys.exit("gen_als_fixtures: %s: references disagree (max |diff| %.3g)" % (what, err))
    return err


def cross_check(C, U0, V0):
    """Our NumPy references against implicit's native routines on the same inputs."""
    from implicit.cpu import _als

    X = U0.copy()
    _als.least_squares_cg(C, X, V0, REG, num_threads=1, cg_steps=CG_STEPS)
    e1 = close(X, half_step_cg(C, U0, V0, REG, CG_STEPS), 2e-5, "CG half-step vs implicit")
    X = U0.copy()
    _als.least_squares(C, X, V0, REG, num_threads=1)
    e2 = close(X, half_step_exact(C, U0, V0, REG), 2e-5, "Cholesky half-step vs implicit")
    U1 = half_step_exact(C, U0, V0, REG).astype(np.float32)
    ours = full_loss(C, U1, V0, REG)
    theirs = _als.calculate_loss(C, U1, V0, REG, num_threads=1)
    if not abs(ours - theirs) <= 1e-5 * abs(ours):
        sys.exit("gen_als_fixtures: loss %.9g vs implicit calculate_loss %.9g" % (ours, theirs))
    print("cross-check vs implicit: CG %.2g, Cholesky %.2g, loss %.9g vs %.9g"
          % (e1, e2, ours, theirs))


def implicit_losses(C, U0, V0, use_cg):
    """implicit's own fit from U0, V0 (native code, one thread): loss after each iteration."""
    from implicit.cpu.als import AlternatingLeastSquares

    model = AlternatingLeastSquares(factors=FACTORS, regularization=REG, alpha=1.0,
                                    dtype=np.float32, use_native=True, use_cg=use_cg,
                                    iterations=ITERATIONS, calculate_training_loss=True,
                                    num_threads=1, random_state=0)
    model.cg_steps = CG_STEPS
    # fit() keeps factors that are already set, so both sides start from U0, V0.
    model.user_factors = U0.copy()
    model.item_factors = V0.copy()
    losses = []
    model.fit(C, show_progress=False, callback=lambda it, t, loss: losses.append(loss))
    assert len(losses) == ITERATIONS
    return (np.array(losses, np.float64), model.user_factors.astype(np.float32),
            model.item_factors.astype(np.float32))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    args = ap.parse_args()

    import implicit

    C, U0, V0 = make_inputs()
    cross_check(C, U0, V0)
    Ct = C.T.tocsr()
    Ct.sort_indices()

    t = {
        "indptr": C.indptr.astype(np.int64),
        "indices": C.indices.astype(np.int32),
        "values": C.data.astype(np.float32),
        "U0": U0,
        "V0": V0,
        "step.loss0": np.array(full_loss(C, U0, V0, REG), np.float64),
    }
    for name, solve in (("chol", lambda Cm, X, Y: half_step_exact(Cm, X, Y, REG)),
                        ("cg", lambda Cm, X, Y: half_step_cg(Cm, X, Y, REG, CG_STEPS))):
        U1 = solve(C, U0, V0)
        # The item half-step starts from V0 and uses the new user factors (as float32, which
        # is what our kernels hold between the half-steps).
        V1 = solve(Ct, V0, U1.astype(np.float32))
        t["step.%s.U1" % name] = U1.astype(np.float32)
        t["step.%s.V1" % name] = V1.astype(np.float32)
        t["step.%s.loss1" % name] = np.array(
            full_loss(C, U1.astype(np.float32), V1.astype(np.float32), REG), np.float64)

    for name, use_cg in (("cg", True), ("chol", False)):
        losses, U, V = implicit_losses(C, U0, V0, use_cg)
        t["implicit.%s.loss" % name] = losses
        t["implicit.%s.U" % name] = U
        t["implicit.%s.V" % name] = V
        print("implicit %s: loss after 1 / %d iterations: %.6g / %.6g"
              % (name, ITERATIONS, losses[0], losses[-1]))

    meta = {
        "users": str(USERS), "items": str(ITEMS), "factors": str(FACTORS), "reg": repr(REG),
        "cg_steps": str(CG_STEPS), "iterations": str(ITERATIONS),
        "implicit_version": implicit.__version__,
    }
    path = os.path.join(args.out, "als_gold.safetensors")
    st_io.save(path, t, metadata=meta)
    print("wrote %s (%d tensors, %d bytes)" % (path, len(t), os.path.getsize(path)))


if __name__ == "__main__":
    main()
