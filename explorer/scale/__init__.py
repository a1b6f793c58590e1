"""Beyond one machine and beyond memory (Qt-free): sharded, resumable embedding (``shards``),
its launchers on torchrun and Ray Data (``launchers``), and workspaces read out of core
(``out_of_core``: lazy records, a sample-fitted PCA streamed over every row, a block scan)."""
