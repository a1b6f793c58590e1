import time, numpy as np, warnings
warnings.simplefilter("ignore")
from sklearn.cluster import HDBSCAN
from scipy.spatial import cKDTree
rng = np.random.default_rng(0)
n=1_000_000
c = rng.normal(size=(40,2))*12
lab = rng.integers(0,40,n)
X = (c[lab] + rng.normal(size=(n,2))*rng.uniform(0.3,1.5,40)[lab,None]).astype(np.float64)
idx = np.sort(rng.choice(n, 10000, replace=False))
t=time.perf_counter(); l=HDBSCAN(min_cluster_size=100, min_samples=10).fit(X[idx]).labels_; print("hdb", time.perf_counter()-t)
t=time.perf_counter(); tree=cKDTree(X[idx]); _,nn=tree.query(X, k=1, workers=-1); print("kd", time.perf_counter()-t)
t=time.perf_counter(); o=np.argsort(nn, kind="stable"); print("argsort", time.perf_counter()-t)
s = lab.astype(str).astype(object)
t=time.perf_counter(); u=np.unique(s.astype(str), return_inverse=True); print("unique str", time.perf_counter()-t)
t=time.perf_counter(); u=np.unique(s, return_inverse=True); print("unique obj", time.perf_counter()-t)
