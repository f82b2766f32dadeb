/*
 * Multi-index hashing for 256-bit PDQ hashes: the hot loops of meldpunt.index.pdq.
 *
 * A hash is four uint64 words, word 0 holding the most significant bits (the first hex digits).
 * The 256 bits are cut into m chunks of at most 32 bits. Table i maps every value of chunk i to
 * the slots whose chunk i has that value (counting-sorted: offsets + slot ids).
 *
 * Exactness: give chunk i a budget of u_i "units" with sum(u_i) >= radius + 1. If a hash is
 * within the radius, at least one chunk i differs from the query in at most u_i - 1 bits
 * (otherwise the distance would be at least sum(u_i) > radius). Probing, in every table, all
 * chunk values within u_i - 1 bits of the query's chunk therefore finds every hash within the
 * radius. A hash found in table i is reported only if no earlier table j could have found it
 * (chunk distance j >= u_j), so each is reported once, without a set.
 *
 * Every function takes plain buffers (numpy arrays) and releases the GIL while it works, so
 * Python threads can search several parts of a batch on several cores.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHUNKS 64

static inline uint32_t get_bits(const uint64_t *h, int start, int width) {
    int word = start >> 6, off = start & 63;
    uint64_t v;
    if (off + width <= 64) {
        v = h[word] >> (64 - off - width);
    } else {
        int low_bits = off + width - 64;
        v = (h[word] << low_bits) | (h[word + 1] >> (64 - low_bits));
    }
    return (uint32_t)(v & ((width >= 32) ? 0xffffffffULL : ((1ULL << width) - 1ULL)));
}

static inline int distance256(const uint64_t *a, const uint64_t *b) {
    return __builtin_popcountll(a[0] ^ b[0]) + __builtin_popcountll(a[1] ^ b[1]) +
           __builtin_popcountll(a[2] ^ b[2]) + __builtin_popcountll(a[3] ^ b[3]);
}

typedef struct {
    int m;
    int width[MAX_CHUNKS];
    int start[MAX_CHUNKS];
    Py_ssize_t table_base[MAX_CHUNKS]; /* where table i's offsets begin */
} Layout;

static int parse_layout(PyObject *widths, Layout *layout) {
    PyObject *seq = PySequence_Fast(widths, "widths must be a sequence of ints");
    if (!seq) return -1;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(seq);
    if (m < 1 || m > MAX_CHUNKS) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "between 1 and 64 chunks");
        return -1;
    }
    int bit = 0;
    Py_ssize_t base = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        long w = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (w < 1 || w > 32) {
            Py_DECREF(seq);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "chunk widths are 1..32 bits");
            return -1;
        }
        layout->width[i] = (int)w;
        layout->start[i] = bit;
        layout->table_base[i] = base;
        bit += (int)w;
        base += ((Py_ssize_t)1 << w) + 1;
    }
    Py_DECREF(seq);
    if (bit != 256) {
        PyErr_SetString(PyExc_ValueError, "chunk widths must add up to 256 bits");
        return -1;
    }
    layout->m = (int)m;
    return 0;
}

static Py_ssize_t layout_offsets_size(const Layout *layout) {
    int last = layout->m - 1;
    return layout->table_base[last] + ((Py_ssize_t)1 << layout->width[last]) + 1;
}

/* build(hashes, widths, offsets_out, ids_out): counting sort of every chunk. */
static PyObject *mih_build(PyObject *self, PyObject *args) {
    Py_buffer hashes, offsets, ids;
    PyObject *widths;
    if (!PyArg_ParseTuple(args, "y*Ow*w*", &hashes, &widths, &offsets, &ids)) return NULL;
    PyObject *result = NULL;
    Layout layout;
    if (parse_layout(widths, &layout) < 0) goto done;
    Py_ssize_t n = hashes.len / 32;
    if (hashes.len % 32 || n >= 0xffffffffLL) {
        PyErr_SetString(PyExc_ValueError, "hashes must be 32-byte records, fewer than 2**32");
        goto done;
    }
    if (offsets.len < (Py_ssize_t)sizeof(uint32_t) * layout_offsets_size(&layout) ||
        ids.len < (Py_ssize_t)sizeof(uint32_t) * n * layout.m) {
        PyErr_SetString(PyExc_ValueError, "output buffers are too small");
        goto done;
    }
    const uint64_t *h = (const uint64_t *)hashes.buf;
    uint32_t *off_all = (uint32_t *)offsets.buf;
    uint32_t *ids_all = (uint32_t *)ids.buf;
    Py_BEGIN_ALLOW_THREADS
    for (int t = 0; t < layout.m; t++) {
        uint32_t *off = off_all + layout.table_base[t];
        uint32_t *out = ids_all + (Py_ssize_t)t * n;
        Py_ssize_t buckets = (Py_ssize_t)1 << layout.width[t];
        memset(off, 0, sizeof(uint32_t) * (buckets + 1));
        for (Py_ssize_t i = 0; i < n; i++) off[get_bits(h + 4 * i, layout.start[t], layout.width[t]) + 1]++;
        for (Py_ssize_t b = 0; b < buckets; b++) off[b + 1] += off[b];
        /* fill, using off[key] as a cursor, then shift the cursors back into offsets */
        for (Py_ssize_t i = 0; i < n; i++) {
            uint32_t key = get_bits(h + 4 * i, layout.start[t], layout.width[t]);
            out[off[key]++] = (uint32_t)i;
        }
        for (Py_ssize_t b = buckets; b > 0; b--) off[b] = off[b - 1];
        off[0] = 0;
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&hashes);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&ids);
    return result;
}

typedef struct {
    int32_t *query;
    uint32_t *slot;
    uint8_t *distance;
    Py_ssize_t capacity;
    Py_ssize_t count;
} Hits;

static inline void emit(Hits *hits, Py_ssize_t q, uint32_t slot, int d) {
    if (hits->count < hits->capacity) {
        hits->query[hits->count] = (int32_t)q;
        hits->slot[hits->count] = slot;
        hits->distance[hits->count] = (uint8_t)d;
    }
    hits->count++;
}

static int parse_hits(Py_buffer *q, Py_buffer *s, Py_buffer *d, Hits *hits) {
    Py_ssize_t cap = q->len / 4;
    if (s->len / 4 < cap) cap = s->len / 4;
    if (d->len < cap) cap = d->len;
    hits->query = (int32_t *)q->buf;
    hits->slot = (uint32_t *)s->buf;
    hits->distance = (uint8_t *)d->buf;
    hits->capacity = cap;
    hits->count = 0;
    return 0;
}

/*
 * Probing is memory-bound: bucket offsets, slot ids and candidate hashes are scattered over
 * hundreds of megabytes. Keys are therefore handled in blocks, in stages that each only issue
 * prefetches for the next stage, so that many cache misses are in flight at once instead of
 * one after the other.
 */
#define KEY_BLOCK 512
#define CAND_BLOCK 2048

typedef struct {
    const uint64_t *h, *q;
    const Layout *layout;
    const int32_t *units;
    const uint8_t *live;
    const uint32_t *off, *tid;
    uint32_t *keys, *lo, *hi, *cand;
    int nkeys, table, radius;
    Py_ssize_t qi;
    Hits *hits;
} Probe;

static void verify(Probe *p, int ncand) {
    for (int c = 0; c < ncand; c++) {
        uint32_t slot = p->cand[c];
        const uint64_t *row = p->h + 4 * (Py_ssize_t)slot;
        int d = distance256(p->q, row);
        if (d > p->radius) continue;
        if (p->live && !p->live[slot]) continue;
        /* report once: skip it if an earlier table's probes reached it */
        int earlier = 0;
        for (int e = 0; e < p->table && !earlier; e++) {
            if (p->units[e] <= 0) continue;
            uint32_t a = get_bits(p->q, p->layout->start[e], p->layout->width[e]);
            uint32_t b = get_bits(row, p->layout->start[e], p->layout->width[e]);
            if (__builtin_popcount(a ^ b) <= p->units[e] - 1) earlier = 1;
        }
        if (!earlier) emit(p->hits, p->qi, slot, d);
    }
}

static void run_keys(Probe *p) {
    /* a software pipeline: bucket offsets for key i + 2D, slot ids for key i + D, candidate
     * hashes for key i; D keeps about as many misses in flight as the core can track */
    enum { D = 12 };
    int n = p->nkeys, ncand = 0;
    for (int i = 0; i < n + 2 * D; i++) {
        if (i < n) __builtin_prefetch(p->off + p->keys[i]);
        int j = i - D;
        if (j >= 0 && j < n) {
            p->lo[j] = p->off[p->keys[j]];
            p->hi[j] = p->off[p->keys[j] + 1];
            if (p->lo[j] < p->hi[j]) __builtin_prefetch(p->tid + p->lo[j]);
        }
        int k = i - 2 * D;
        if (k >= 0) {
            for (uint32_t x = p->lo[k]; x < p->hi[k]; x++) {
                uint32_t slot = p->tid[x];
                __builtin_prefetch(p->h + 4 * (Py_ssize_t)slot);
                p->cand[ncand++] = slot;
                if (ncand == CAND_BLOCK) {
                    verify(p, ncand);
                    ncand = 0;
                }
            }
        }
    }
    verify(p, ncand);
    p->nkeys = 0;
}

/*
 * search(hashes, alive, widths, offsets, ids, units, queries, radius, out_query, out_slot,
 *        out_distance) -> number of hits (when larger than the buffers, call again with room).
 * alive: one byte per slot (0 = removed), or an empty buffer for "all alive".
 */
static PyObject *mih_search(PyObject *self, PyObject *args) {
    Py_buffer hashes, alive, offsets, ids, units_buf, queries, out_q, out_s, out_d;
    PyObject *widths;
    int radius;
    if (!PyArg_ParseTuple(args, "y*y*Oy*y*y*y*iw*w*w*", &hashes, &alive, &widths, &offsets, &ids,
                          &units_buf, &queries, &radius, &out_q, &out_s, &out_d))
        return NULL;
    PyObject *result = NULL;
    Layout layout;
    int32_t *units = (int32_t *)units_buf.buf;
    if (parse_layout(widths, &layout) < 0) goto done;
    Py_ssize_t n = hashes.len / 32, nq = queries.len / 32;
    if (units_buf.len != (Py_ssize_t)sizeof(int32_t) * layout.m) {
        PyErr_SetString(PyExc_ValueError, "one unit count per chunk");
        goto done;
    }
    if (ids.len < (Py_ssize_t)sizeof(uint32_t) * n * layout.m ||
        offsets.len < (Py_ssize_t)sizeof(uint32_t) * layout_offsets_size(&layout) ||
        (alive.len != 0 && alive.len < n)) {
        PyErr_SetString(PyExc_ValueError, "index buffers do not match the hashes");
        goto done;
    }
    Hits hits;
    parse_hits(&out_q, &out_s, &out_d, &hits);
    const uint64_t *h = (const uint64_t *)hashes.buf;
    const uint64_t *qs = (const uint64_t *)queries.buf;
    const uint32_t *off_all = (const uint32_t *)offsets.buf;
    const uint32_t *ids_all = (const uint32_t *)ids.buf;
    const uint8_t *live = alive.len ? (const uint8_t *)alive.buf : NULL;

    Probe probe;
    probe.keys = (uint32_t *)malloc(sizeof(uint32_t) * KEY_BLOCK);
    probe.lo = (uint32_t *)malloc(sizeof(uint32_t) * KEY_BLOCK);
    probe.hi = (uint32_t *)malloc(sizeof(uint32_t) * KEY_BLOCK);
    probe.cand = (uint32_t *)malloc(sizeof(uint32_t) * CAND_BLOCK);
    if (!probe.keys || !probe.lo || !probe.hi || !probe.cand) {
        free(probe.keys); free(probe.lo); free(probe.hi); free(probe.cand);
        PyErr_NoMemory();
        goto done;
    }
    probe.h = h;
    probe.layout = &layout;
    probe.units = units;
    probe.live = live;
    probe.radius = radius;
    probe.hits = &hits;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t qi = 0; qi < nq; qi++) {
        probe.q = qs + 4 * qi;
        probe.qi = qi;
        for (int t = 0; t < layout.m; t++) {
            int flips_max = units[t] - 1;
            if (flips_max < 0) continue;
            int w = layout.width[t];
            if (flips_max > w) flips_max = w;
            probe.table = t;
            probe.off = off_all + layout.table_base[t];
            probe.tid = ids_all + (Py_ssize_t)t * n;
            probe.nkeys = 0;
            uint32_t base = get_bits(probe.q, layout.start[t], w);
            int pos[33];
            for (int k = 0; k <= flips_max; k++) {
                /* every set of k bit positions, in lexicographic order */
                for (int i = 0; i < k; i++) pos[i] = i;
                for (;;) {
                    uint32_t key = base;
                    for (int i = 0; i < k; i++) key ^= 1u << pos[i];
                    probe.keys[probe.nkeys++] = key;
                    if (probe.nkeys == KEY_BLOCK) run_keys(&probe);
                    int i = k - 1;
                    while (i >= 0 && pos[i] == w - k + i) i--;
                    if (i < 0) break;
                    pos[i]++;
                    for (int r = i + 1; r < k; r++) pos[r] = pos[r - 1] + 1;
                }
            }
            run_keys(&probe);
        }
    }
    Py_END_ALLOW_THREADS
    free(probe.keys); free(probe.lo); free(probe.hi); free(probe.cand);
    result = PyLong_FromSsize_t(hits.count);
done:
    PyBuffer_Release(&hashes);
    PyBuffer_Release(&alive);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&ids);
    PyBuffer_Release(&units_buf);
    PyBuffer_Release(&queries);
    PyBuffer_Release(&out_q);
    PyBuffer_Release(&out_s);
    PyBuffer_Release(&out_d);
    return result;
}

/* scan(hashes, alive, queries, radius, slot_base, out_query, out_slot, out_distance): brute force. */
static PyObject *mih_scan(PyObject *self, PyObject *args) {
    Py_buffer hashes, alive, queries, out_q, out_s, out_d;
    int radius;
    Py_ssize_t slot_base;
    if (!PyArg_ParseTuple(args, "y*y*y*inw*w*w*", &hashes, &alive, &queries, &radius, &slot_base,
                          &out_q, &out_s, &out_d))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = hashes.len / 32, nq = queries.len / 32;
    if (alive.len != 0 && alive.len < n) {
        PyErr_SetString(PyExc_ValueError, "alive must have one byte per hash");
        goto done;
    }
    Hits hits;
    parse_hits(&out_q, &out_s, &out_d, &hits);
    const uint64_t *h = (const uint64_t *)hashes.buf;
    const uint64_t *qs = (const uint64_t *)queries.buf;
    const uint8_t *live = alive.len ? (const uint8_t *)alive.buf : NULL;
    Py_BEGIN_ALLOW_THREADS
    /* blocks of hashes against every query keep the hashes in cache */
    const Py_ssize_t block = 4096;
    for (Py_ssize_t b0 = 0; b0 < n; b0 += block) {
        Py_ssize_t b1 = b0 + block < n ? b0 + block : n;
        for (Py_ssize_t qi = 0; qi < nq; qi++) {
            const uint64_t *q = qs + 4 * qi;
            for (Py_ssize_t i = b0; i < b1; i++) {
                int d = distance256(q, h + 4 * i);
                if (d <= radius && (!live || live[i])) emit(&hits, qi, (uint32_t)(slot_base + i), d);
            }
        }
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(hits.count);
done:
    PyBuffer_Release(&hashes);
    PyBuffer_Release(&alive);
    PyBuffer_Release(&queries);
    PyBuffer_Release(&out_q);
    PyBuffer_Release(&out_s);
    PyBuffer_Release(&out_d);
    return result;
}

static PyMethodDef methods[] = {
    {"build", mih_build, METH_VARARGS, "Counting-sort every chunk of the hashes into tables."},
    {"search", mih_search, METH_VARARGS, "Exact radius search through the chunk tables."},
    {"scan", mih_scan, METH_VARARGS, "Exact radius search by comparing with every hash."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_mih",
                                    "Multi-index hashing for 256-bit hashes.", -1, methods};

PyMODINIT_FUNC PyInit__mih(void) { return PyModule_Create(&module); }
