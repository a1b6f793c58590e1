import time, numpy as np
t=time.perf_counter()
import sklearn.cluster, scipy.spatial
print("imports", time.perf_counter()-t)
from explorer.maps.clusters import find_clusters, ClusterParams
rng = np.random.default_rng(0)
n=1_000_000
c = rng.normal(size=(40,2))*12
lab = rng.integers(0,40,n)
X = (c[lab] + rng.normal(size=(n,2))*rng.uniform(0.3,1.5,40)[lab,None]).astype(np.float32)
for rep in range(2):
  t=time.perf_counter(); last=t
  for p in find_clusters(X):
    now=time.perf_counter(); print(round(now-last,2), p.message); last=now
  print("total", time.perf_counter()-t)
