import time, numpy as np
from explorer.maps.clusters import _hdbscan
rng = np.random.default_rng(0)
n=1_000_000
c = rng.normal(size=(40,2))*12
lab = rng.integers(0,40,n)
X = (c[lab] + rng.normal(size=(n,2))*rng.uniform(0.3,1.5,40)[lab,None]).astype(np.float64)
for seed in (0,1,0):
    idx = np.sort(np.random.default_rng(seed).choice(n, 10000, replace=False))
    Y = np.ascontiguousarray(X[idx])
    t=time.perf_counter(); l=_hdbscan(Y, 100, 10); print(seed, time.perf_counter()-t, l.max()+1)
    t=time.perf_counter(); l=_hdbscan(Y.astype(np.float32), 100, 10); print(seed, 'f32', time.perf_counter()-t, l.max()+1)
