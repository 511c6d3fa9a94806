import numpy as np

def group_costs(mask, perm, g):
    m = mask[perm].reshape(-1, g, mask.shape[1])
    union = m.any(1).sum(1)
    nnz = m.sum((1, 2))
    return union, nnz

def balanced(mask, g):
    K = mask.shape[0]; G = K // g
    order = np.argsort(-mask.sum(1), kind="stable")
    groups = [[] for _ in range(G)]
    for i, k in enumerate(order):
        r, j = divmod(i, G)
        groups[j if r % 2 == 0 else G - 1 - j].append(int(k))
    return np.array([k for grp in groups for k in grp])

def shared(mask, g, slack=1.03, rounds=3):
    K, D = mask.shape; G = K // g
    nnz = mask.sum(1)
    order = np.argsort(-nnz, kind="stable")
    cap = None
    best = None
    for _ in range(rounds):
        U = np.zeros((G, D), bool); cost = np.zeros(G, np.int64); size = np.zeros(G, np.int64)
        groups = [[] for _ in range(G)]
        for k in order:
            mk = mask[k]
            added = (mk & ~U).sum(1)
            new = cost + added + nnz[k]
            ok = size < g
            if cap is not None:
                fit = ok & (new <= cap)
                cand = fit if fit.any() else ok
            else:
                cand = ok
            key = np.where(cand, added * 1_000_000 + new, np.iinfo(np.int64).max)
            if cap is None:
                key = np.where(cand, new * 1_000_000 + added, np.iinfo(np.int64).max)
            j = int(np.argmin(key))
            U[j] |= mk; cost[j] = new[j]; size[j] += 1; groups[j].append(int(k))
        perm = np.array([k for grp in groups for k in grp])
        u, n = group_costs(mask, perm, g)
        c = u + n
        score = (c.max(), u.sum())
        if best is None or score < best[0]:
            best = (score, perm)
        cap = int(c.mean() * slack)
    return best[1]
