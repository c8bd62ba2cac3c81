#!/usr/bin/python3
"""ann_peers.py: the peers of recd's ANN index on the same vectors.

    bench/ann_peers.py DATA_DIR [--queries N] [--k K] [--seed S] [--json FILE]
                       [--skip-hnsw] [--skip-faiss]

DATA_DIR is what recd-gen wrote (item_embeddings.npy, user_embeddings.npy).
Queries are user vectors drawn the same way as bench_ann (xorshift64 from
the seed), ground truth is the exact inner-product top-k (numpy, in
chunks). Peers, one thread each:
  - hnswlib (space 'ip', M=16, ef_construction=200), ef swept;
  - faiss IndexIVFFlat (inner product, nlist = 2 * sqrt(n) like recd's
    default; trained on 64 points per list, 10 k-means iterations, so
    its single-threaded training finishes on a shared 2-core machine),
    nprobe swept.
Prints recall@k, p50/p99 microseconds per single query, build time and
index memory per item (peak RSS growth while building)."""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def pick_users(n_users, queries, seed):
    # Same sequence as bench_ann.c (xorshift64 seeded by seed * golden + 1).
    m = (1 << 64) - 1
    x = (seed * 0x9E3779B97F4A7C15 + 1) & m
    out = []
    for _ in range(queries):
        x ^= (x << 13) & m
        x ^= x >> 7
        x ^= (x << 17) & m
        out.append(x % n_users)
    return np.array(out, dtype=np.int64)


def exact_topk(items, q, k, chunk=200000):
    best_s = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
    best_i = np.zeros((q.shape[0], k), dtype=np.int64)
    for s in range(0, items.shape[0], chunk):
        sc = q @ items[s:s + chunk].T
        idx = np.argpartition(-sc, k - 1, axis=1)[:, :k] if sc.shape[1] > k else np.tile(np.arange(sc.shape[1]), (q.shape[0], 1))
        cand_s = np.concatenate([best_s, np.take_along_axis(sc, idx, 1)], axis=1)
        cand_i = np.concatenate([best_i, idx + s], axis=1)
        top = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
        best_s = np.take_along_axis(cand_s, top, 1)
        best_i = np.take_along_axis(cand_i, top, 1)
    return best_i


def measure(search, q, truth, k):
    lat = np.empty(q.shape[0])
    hits = 0
    for j in range(q.shape[0]):
        t0 = time.perf_counter_ns()
        ids = search(q[j:j + 1])
        lat[j] = (time.perf_counter_ns() - t0) / 1e3
        hits += len(set(int(i) for i in ids if i >= 0) & set(truth[j].tolist()))
    return hits / (q.shape[0] * k), np.percentile(lat, 50), np.percentile(lat, 99)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json")
    ap.add_argument("--skip-hnsw", action="store_true")
    ap.add_argument("--skip-faiss", action="store_true")
    ap.add_argument("--faiss-lists", type=int, default=0, help="0 = 2 * sqrt(n)")
    a = ap.parse_args()

    items = np.load(os.path.join(a.data, "item_embeddings.npy")).astype(np.float32)
    users = np.load(os.path.join(a.data, "user_embeddings.npy")).astype(np.float32)
    n, dim = items.shape
    q = np.ascontiguousarray(users[pick_users(users.shape[0], a.queries, a.seed)])
    t0 = time.time()
    truth = exact_topk(items, q, a.k)
    print(f"peers: {n} items x {dim} dims, {a.queries} user queries, top-{a.k}, 1 thread "
          f"(exact truth {time.time() - t0:.1f} s)")
    results = []
    fmt = "  {:<22} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10}"
    print(fmt.format("index", "param", "recall", "p50_us", "p99_us", "build_s", "bytes/item"))

    if not a.skip_hnsw:
        import hnswlib
        r0 = rss_mb()
        t0 = time.time()
        h = hnswlib.Index(space="ip", dim=dim)
        h.init_index(max_elements=n, M=16, ef_construction=200, random_seed=1)
        h.set_num_threads(1)
        h.add_items(items, np.arange(n), num_threads=1)
        build = time.time() - t0
        mem = (rss_mb() - r0) * 1e6 / n
        for ef in (100, 150, 200, 300, 400):
            h.set_ef(ef)
            rec, p50, p99 = measure(lambda x: h.knn_query(x, k=a.k, num_threads=1)[0][0], q, truth, a.k)
            print(fmt.format("hnswlib M=16", f"ef={ef}", f"{rec:.4f}", f"{p50:.1f}", f"{p99:.1f}",
                             f"{build:.1f}", f"{mem:.0f}"))
            results.append(dict(index="hnswlib", M=16, ef=ef, recall=rec, p50_us=p50, p99_us=p99,
                                build_s=build, bytes_per_item=mem))
        del h

    if not a.skip_faiss:
        import faiss
        faiss.omp_set_num_threads(1)
        nlist = a.faiss_lists or int(2 * np.sqrt(n) + 0.5)
        r0 = rss_mb()
        t0 = time.time()
        quant = faiss.IndexFlatIP(dim)
        ivf = faiss.IndexIVFFlat(quant, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.niter = 10
        ivf.cp.max_points_per_centroid = 64
        ivf.train(items)
        ivf.add(items)
        build = time.time() - t0
        mem = (rss_mb() - r0) * 1e6 / n
        for nprobe in (32, 64, 96, 128):
            ivf.nprobe = nprobe
            rec, p50, p99 = measure(lambda x: ivf.search(x, a.k)[1][0], q, truth, a.k)
            print(fmt.format(f"faiss IVF-Flat {nlist}", f"np={nprobe}", f"{rec:.4f}", f"{p50:.1f}",
                             f"{p99:.1f}", f"{build:.1f}", f"{mem:.0f}"))
            results.append(dict(index="faiss-ivfflat", nlist=nlist, nprobe=nprobe, recall=rec, p50_us=p50,
                                p99_us=p99, build_s=build, bytes_per_item=mem))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(items=n, dim=dim, queries=a.queries, k=a.k, results=results), f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
