import time, numpy as np
t0=time.perf_counter()
from explorer.jobs import drain
from explorer.maps.clusters import find_clusters, ClusterParams, name_clusters, majority_values, cluster_column
rng = np.random.default_rng(0)
n=1_000_000
c = rng.normal(size=(40,2))*12
lab = rng.integers(0,40,n)
X = (c[lab] + rng.normal(size=(n,2))*rng.uniform(0.3,1.5,40)[lab,None]).astype(np.float32)
s = lab.astype(str).astype(object)
t=time.perf_counter(); r = drain(find_clusters(X)); t1=time.perf_counter()
maj = majority_values(r.labels, s, r.n_clusters); t2=time.perf_counter()
col = cluster_column(r.labels, [f"{v} ({s:.0%})" for v,s in maj]); t3=time.perf_counter()
print(t1-t, t2-t1, t3-t2, r.n_clusters, r.info['noise'])
print(maj[:5], col[:3])
