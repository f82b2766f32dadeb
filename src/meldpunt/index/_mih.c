/*
 * Multi-index hashing for 256-bit PDQ hashes: the hot loops of meldpunt.index.pdq.
 *
 * A hash is four uint64 words, word 0 holding the most significant bits (the first hex digits).
 * The 256 bits are cut into m chunks of at most 32 bits. Table i lists, for every value of chunk
 * i, the slots whose chunk i has that value (counting-sorted: bucket starts + slot ids).
 *
 * Exactness: give chunk i a budget of u_i "units" with sum(u_i) >= radius + 1. If a hash is
 * within the radius, at least one chunk i differs from the query in at most u_i - 1 bits
 * (otherwise the distance would be at least sum(u_i) > radius). Probing, in every table, all
 * chunk values within u_i - 1 bits of the query's chunk therefore finds every hash within the
 * radius. A hash found in table i is reported only if no earlier table j could have found it
 * (chunk distance j >= u_j), so each is reported once, without a set.
 *
 * Compact storage, so that ten million hashes fit in under 100 bytes each with wide, selective
 * chunks: slot ids take 3 bytes while there are fewer than 2^24 slots (4 otherwise); a bucket's
 * start is a 4-byte base per 64 buckets plus a 2-byte offset within the block (4-byte starts when
 * one block would hold 65,536 slots or more, which only heavily duplicated data does).
 *
 * Every function takes plain buffers (numpy arrays) and releases the GIL while it works, so
 * Python threads can search several parts of a batch on several cores.
 *
 * Tables may come from a file (a memory-mapped snapshot that could be damaged, or changed on disk
 * after it was checked), so the search loops trust no value read from them: a bucket start past
 * the end or before the previous one, or a slot id past the last hash, stops the search and it
 * answers -1 ("damaged") instead of reading outside the buffers. check() finds the same problems
 * in one pass when a snapshot is loaded.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHUNKS 64
#define BLOCK_LOG2 6

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

/* ---- layout and tables ----------------------------------------------------------------------- */

typedef struct {
    int m;
    int width[MAX_CHUNKS];
    int start[MAX_CHUNKS];
    Py_ssize_t base_at[MAX_CHUNKS]; /* where table i's block bases begin */
    Py_ssize_t rel_at[MAX_CHUNKS];  /* where table i's bucket starts begin */
    Py_ssize_t base_size, rel_size;
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
    Py_ssize_t base = 0, rel = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        long w = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (w < 1 || w > 30) {
            Py_DECREF(seq);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "chunk widths are 1..30 bits");
            return -1;
        }
        layout->width[i] = (int)w;
        layout->start[i] = bit;
        layout->base_at[i] = base;
        layout->rel_at[i] = rel;
        bit += (int)w;
        base += (((Py_ssize_t)1 << w) >> BLOCK_LOG2) + 2;
        rel += ((Py_ssize_t)1 << w) + 1;
    }
    Py_DECREF(seq);
    if (bit != 256) {
        PyErr_SetString(PyExc_ValueError, "chunk widths must add up to 256 bits");
        return -1;
    }
    layout->m = (int)m;
    layout->base_size = base;
    layout->rel_size = rel;
    return 0;
}

typedef struct {
    Layout layout;
    Py_ssize_t n;
    const uint64_t *h;
    const uint8_t *live;
    const uint32_t *base;
    const void *rel;
    int rel_bytes;
    const uint8_t *ids;
    int id_bytes;
} Tables;

static inline uint32_t bucket_start(const Tables *T, int t, uint32_t key) {
    if (T->rel_bytes == 2) {
        const uint16_t *rel = (const uint16_t *)T->rel + T->layout.rel_at[t];
        return T->base[T->layout.base_at[t] + (key >> BLOCK_LOG2)] + rel[key];
    }
    return ((const uint32_t *)T->rel + T->layout.rel_at[t])[key];
}

static inline const void *bucket_start_address(const Tables *T, int t, uint32_t key) {
    if (T->rel_bytes == 2) return (const uint16_t *)T->rel + T->layout.rel_at[t] + key;
    return (const uint32_t *)T->rel + T->layout.rel_at[t] + key;
}

static inline const uint8_t *id_address(const Tables *T, int t, Py_ssize_t j) {
    return T->ids + ((Py_ssize_t)t * T->n + j) * T->id_bytes;
}

static inline uint32_t slot_at(const Tables *T, int t, Py_ssize_t j) {
    uint32_t v;
    memcpy(&v, id_address(T, t, j), 4); /* the ids buffer has 4 bytes of padding */
    return T->id_bytes == 3 ? (v & 0xffffffu) : v;
}

static inline int reported_earlier(const Tables *T, const int32_t *units, int t, const uint64_t *q,
                                   const uint64_t *row) {
    for (int e = 0; e < t; e++) {
        if (units[e] <= 0) continue;
        uint32_t a = get_bits(q, T->layout.start[e], T->layout.width[e]);
        uint32_t b = get_bits(row, T->layout.start[e], T->layout.width[e]);
        if (__builtin_popcount(a ^ b) <= units[e] - 1) return 1;
    }
    return 0;
}

/* Parses (hashes, alive, widths, base, rel, rel_bytes, ids, id_bytes) into T. */
typedef struct {
    Py_buffer hashes, alive, base, rel, ids;
} TableBuffers;

static void release_tables(TableBuffers *b) {
    PyBuffer_Release(&b->hashes);
    PyBuffer_Release(&b->alive);
    PyBuffer_Release(&b->base);
    PyBuffer_Release(&b->rel);
    PyBuffer_Release(&b->ids);
}

static int check_tables(TableBuffers *b, PyObject *widths, int rel_bytes, int id_bytes, Tables *T) {
    if (parse_layout(widths, &T->layout) < 0) return -1;
    T->n = b->hashes.len / 32;
    if ((rel_bytes != 2 && rel_bytes != 4) || (id_bytes != 3 && id_bytes != 4) ||
        (id_bytes == 3 && T->n >= (1 << 24)) || T->n > 0xffffffffLL) {
        PyErr_SetString(PyExc_ValueError, "bad storage widths");
        return -1;
    }
    if (b->hashes.len % 32 || (b->alive.len != 0 && b->alive.len < T->n) ||
        b->base.len < (Py_ssize_t)sizeof(uint32_t) * T->layout.base_size ||
        b->rel.len < rel_bytes * T->layout.rel_size ||
        b->ids.len < (Py_ssize_t)id_bytes * T->n * T->layout.m + 4) {
        PyErr_SetString(PyExc_ValueError, "index buffers do not fit the layout");
        return -1;
    }
    T->h = (const uint64_t *)b->hashes.buf;
    T->live = b->alive.len ? (const uint8_t *)b->alive.buf : NULL;
    T->base = (const uint32_t *)b->base.buf;
    T->rel = b->rel.buf;
    T->rel_bytes = rel_bytes;
    T->ids = (const uint8_t *)b->ids.buf;
    T->id_bytes = id_bytes;
    return 0;
}

/* ---- hits ------------------------------------------------------------------------------------ */

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

static void parse_hits(Py_buffer *q, Py_buffer *s, Py_buffer *d, Hits *hits) {
    Py_ssize_t cap = q->len / 4;
    if (s->len / 4 < cap) cap = s->len / 4;
    if (d->len < cap) cap = d->len;
    hits->query = (int32_t *)q->buf;
    hits->slot = (uint32_t *)s->buf;
    hits->distance = (uint8_t *)d->buf;
    hits->capacity = cap;
    hits->count = 0;
}

/* ---- the arguments of search() and search_batch() ---------------------------------------------- */

typedef struct {
    TableBuffers b;
    Py_buffer units_buf, queries, out_q, out_s, out_d;
    Tables T;
    Hits hits;
    const int32_t *units;
    const uint64_t *qs;
    Py_ssize_t nq;
    int radius;
    PyObject *workspace; /* borrowed; search_batch() only, may be NULL */
} SearchArgs;

static void release_search(SearchArgs *a) {
    release_tables(&a->b);
    PyBuffer_Release(&a->units_buf);
    PyBuffer_Release(&a->queries);
    PyBuffer_Release(&a->out_q);
    PyBuffer_Release(&a->out_s);
    PyBuffer_Release(&a->out_d);
}

/* (hashes, alive, widths, base, rel, rel_bytes, ids, id_bytes, units, queries, radius,
 *  out_query, out_slot, out_distance[, workspace]); on success the caller must call
 *  release_search(). */
static int parse_search(PyObject *args, SearchArgs *a) {
    PyObject *widths;
    int rel_bytes, id_bytes;
    a->workspace = NULL;
    if (!PyArg_ParseTuple(args, "y*y*Oy*y*iy*iy*y*iw*w*w*|O", &a->b.hashes, &a->b.alive, &widths,
                          &a->b.base, &a->b.rel, &rel_bytes, &a->b.ids, &id_bytes, &a->units_buf,
                          &a->queries, &a->radius, &a->out_q, &a->out_s, &a->out_d,
                          &a->workspace))
        return -1;
    if (check_tables(&a->b, widths, rel_bytes, id_bytes, &a->T) < 0) goto fail;
    if (a->units_buf.len != (Py_ssize_t)sizeof(int32_t) * a->T.layout.m) {
        PyErr_SetString(PyExc_ValueError, "one unit count per chunk");
        goto fail;
    }
    parse_hits(&a->out_q, &a->out_s, &a->out_d, &a->hits);
    a->units = (const int32_t *)a->units_buf.buf;
    a->qs = (const uint64_t *)a->queries.buf;
    a->nq = a->queries.len / 32;
    return 0;
fail:
    release_search(a);
    return -1;
}

/* ---- build ----------------------------------------------------------------------------------- */

/* build(hashes, widths, base_out, rel_out, rel_bytes, ids_out, id_bytes) -> True, or False when
 * 2-byte bucket starts overflow (call again with rel_bytes=4). */
static PyObject *mih_build(PyObject *self, PyObject *args) {
    Py_buffer hashes, base_buf, rel_buf, ids_buf;
    PyObject *widths;
    int rel_bytes, id_bytes;
    if (!PyArg_ParseTuple(args, "y*Ow*w*iw*i", &hashes, &widths, &base_buf, &rel_buf, &rel_bytes,
                          &ids_buf, &id_bytes))
        return NULL;
    PyObject *result = NULL;
    uint32_t *counts = NULL;
    Layout layout;
    int overflow = 0;
    if (parse_layout(widths, &layout) < 0) goto done;
    Py_ssize_t n = hashes.len / 32;
    if (hashes.len % 32 || n >= 0xffffffffLL || (rel_bytes != 2 && rel_bytes != 4) ||
        (id_bytes != 3 && id_bytes != 4) || (id_bytes == 3 && n >= (1 << 24))) {
        PyErr_SetString(PyExc_ValueError, "bad hashes or storage widths");
        goto done;
    }
    if (base_buf.len < (Py_ssize_t)sizeof(uint32_t) * layout.base_size ||
        rel_buf.len < rel_bytes * layout.rel_size ||
        ids_buf.len < (Py_ssize_t)id_bytes * n * layout.m + 4) {
        PyErr_SetString(PyExc_ValueError, "output buffers are too small");
        goto done;
    }
    int widest = 0;
    for (int t = 0; t < layout.m; t++) widest = layout.width[t] > widest ? layout.width[t] : widest;
    counts = (uint32_t *)malloc(sizeof(uint32_t) * (((size_t)1 << widest) + 1));
    if (!counts) {
        PyErr_NoMemory();
        goto done;
    }
    const uint64_t *h = (const uint64_t *)hashes.buf;
    uint8_t *ids = (uint8_t *)ids_buf.buf;
    Py_BEGIN_ALLOW_THREADS
    memset(ids + (Py_ssize_t)id_bytes * n * layout.m, 0, 4);
    for (int t = 0; t < layout.m && !overflow; t++) {
        int w = layout.width[t], s = layout.start[t];
        Py_ssize_t buckets = (Py_ssize_t)1 << w;
        memset(counts, 0, sizeof(uint32_t) * (buckets + 1));
        for (Py_ssize_t i = 0; i < n; i++) counts[get_bits(h + 4 * i, s, w) + 1]++;
        for (Py_ssize_t b = 0; b < buckets; b++) counts[b + 1] += counts[b];
        /* bucket starts, compact or not */
        uint32_t *base = (uint32_t *)base_buf.buf + layout.base_at[t];
        for (Py_ssize_t b = 0; b <= buckets; b++) {
            if ((b & ((1 << BLOCK_LOG2) - 1)) == 0) base[b >> BLOCK_LOG2] = counts[b];
            if (rel_bytes == 2) {
                uint32_t rel = counts[b] - base[b >> BLOCK_LOG2];
                if (rel > 0xffff) {
                    overflow = 1;
                    break;
                }
                ((uint16_t *)rel_buf.buf + layout.rel_at[t])[b] = (uint16_t)rel;
            } else {
                ((uint32_t *)rel_buf.buf + layout.rel_at[t])[b] = counts[b];
            }
        }
        base[(buckets >> BLOCK_LOG2) + 1] = counts[buckets];
        if (overflow) break;
        /* slot ids, using counts[key] as a cursor */
        uint8_t *out = ids + (Py_ssize_t)t * n * id_bytes;
        for (Py_ssize_t i = 0; i < n; i++) {
            uint32_t key = get_bits(h + 4 * i, s, w);
            uint32_t slot = (uint32_t)i;
            memcpy(out + (Py_ssize_t)counts[key]++ * id_bytes, &slot, id_bytes); /* little-endian */
        }
    }
    Py_END_ALLOW_THREADS
    result = overflow ? Py_False : Py_True;
    Py_INCREF(result);
done:
    free(counts);
    PyBuffer_Release(&hashes);
    PyBuffer_Release(&base_buf);
    PyBuffer_Release(&rel_buf);
    PyBuffer_Release(&ids_buf);
    return result;
}

/* ---- probe keys -------------------------------------------------------------------------------- */

/* Calls visit(key) for every key within max_flips bits of base (w-bit keys). */
#define FOR_EACH_KEY(base, w, max_flips, key, body)                                             \
    do {                                                                                          \
        int pos_[33];                                                                             \
        for (int k_ = 0; k_ <= (max_flips); k_++) {                                               \
            for (int i_ = 0; i_ < k_; i_++) pos_[i_] = i_;                                        \
            for (;;) {                                                                            \
                uint32_t key = (base);                                                            \
                for (int i_ = 0; i_ < k_; i_++) key ^= 1u << pos_[i_];                            \
                body;                                                                             \
                int i_ = k_ - 1;                                                                  \
                while (i_ >= 0 && pos_[i_] == (w) - k_ + i_) i_--;                                \
                if (i_ < 0) break;                                                                \
                pos_[i_]++;                                                                       \
                for (int r_ = i_ + 1; r_ < k_; r_++) pos_[r_] = pos_[r_ - 1] + 1;                 \
            }                                                                                     \
        }                                                                                         \
    } while (0)

/* ---- one query at a time: a prefetching pipeline ------------------------------------------------ */

/*
 * Probing is memory-bound: bucket starts, slot ids and candidate hashes are scattered over
 * hundreds of megabytes. Keys are handled in blocks through a software pipeline: bucket starts
 * for key i + 2D, slot ids for key i + D, candidate hashes for key i, so that many cache misses
 * are in flight at once instead of one after the other.
 */
#define KEY_BLOCK 512
#define CAND_BLOCK 2048

typedef struct {
    const Tables *T;
    const int32_t *units;
    const uint64_t *q;
    Py_ssize_t qi;
    int table, radius, nkeys, damaged;
    uint32_t keys[KEY_BLOCK], lo[KEY_BLOCK], hi[KEY_BLOCK], cand[CAND_BLOCK];
    Hits *hits;
} Probe;

static void verify(Probe *p, int ncand) {
    const Tables *T = p->T;
    for (int c = 0; c < ncand; c++) {
        uint32_t slot = p->cand[c];
        const uint64_t *row = T->h + 4 * (Py_ssize_t)slot;
        int d = distance256(p->q, row);
        if (d > p->radius) continue;
        if (T->live && !T->live[slot]) continue;
        if (!reported_earlier(T, p->units, p->table, p->q, row)) emit(p->hits, p->qi, slot, d);
    }
}

static void run_keys(Probe *p) {
    enum { D = 12 };
    const Tables *T = p->T;
    int t = p->table, n = p->nkeys, ncand = 0;
    for (int i = 0; i < n + 2 * D; i++) {
        if (i < n) __builtin_prefetch(bucket_start_address(T, t, p->keys[i]));
        int j = i - D;
        if (j >= 0 && j < n) {
            p->lo[j] = bucket_start(T, t, p->keys[j]);
            p->hi[j] = bucket_start(T, t, p->keys[j] + 1);
            if (p->hi[j] > T->n || p->lo[j] > p->hi[j]) {
                p->damaged = 1;
                p->lo[j] = p->hi[j] = 0;
            }
            if (p->lo[j] < p->hi[j]) __builtin_prefetch(id_address(T, t, p->lo[j]));
        }
        int k = i - 2 * D;
        if (k >= 0) {
            for (uint32_t x = p->lo[k]; x < p->hi[k]; x++) {
                uint32_t slot = slot_at(T, t, x);
                if (slot >= T->n) {
                    p->damaged = 1;
                    continue;
                }
                __builtin_prefetch(T->h + 4 * (Py_ssize_t)slot);
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
 * search(hashes, alive, widths, base, rel, rel_bytes, ids, id_bytes, units, queries, radius,
 *        out_query, out_slot, out_distance) -> number of hits; when larger than the output
 *        buffers, call again with room; -1 when the tables are damaged. alive: one byte per
 *        slot (0 = removed), or empty.
 */
static PyObject *mih_search(PyObject *self, PyObject *args) {
    SearchArgs a;
    if (parse_search(args, &a) < 0) return NULL;
    Probe *probe = (Probe *)malloc(sizeof(Probe));
    if (!probe) {
        release_search(&a);
        return PyErr_NoMemory();
    }
    const Tables *T = &a.T;
    probe->T = T;
    probe->units = a.units;
    probe->radius = a.radius;
    probe->hits = &a.hits;
    probe->damaged = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t qi = 0; qi < a.nq && !probe->damaged; qi++) {
        probe->q = a.qs + 4 * qi;
        probe->qi = qi;
        for (int t = 0; t < T->layout.m; t++) {
            int flips = a.units[t] - 1, w = T->layout.width[t];
            if (flips < 0) continue;
            if (flips > w) flips = w;
            probe->table = t;
            probe->nkeys = 0;
            uint32_t base = get_bits(probe->q, T->layout.start[t], w);
            FOR_EACH_KEY(base, w, flips, key, {
                probe->keys[probe->nkeys++] = key;
                if (probe->nkeys == KEY_BLOCK) run_keys(probe);
            });
            run_keys(probe);
        }
    }
    Py_END_ALLOW_THREADS
    PyObject *result = PyLong_FromSsize_t(probe->damaged ? -1 : a.hits.count);
    free(probe);
    release_search(&a);
    return result;
}

/* ---- many queries at once: memory accesses sorted instead of scattered -------------------------- */

/*
 * search_batch(...), same arguments and answer as search(): per table, the probe keys of a group
 * of queries are partitioned by their high bits, so bucket starts and slot ids are read one
 * small window at a time, and the candidates found are partitioned by slot, so candidate hashes
 * are compared in one sweep over the hash array.
 */
#define KEY_PART_BITS 10
#define SLOT_PART_LOG2 11
#define GROUP_PROBES (1 << 20)
#define LOOKAHEAD 16

typedef struct {
    uint32_t key, q;
} Pair;

static int partition_pairs(const Pair *in, Pair *out, Py_ssize_t count, int shift,
                           Py_ssize_t parts) {
    Py_ssize_t *cursor = (Py_ssize_t *)calloc(parts + 1, sizeof(Py_ssize_t));
    if (!cursor) return -1;
    for (Py_ssize_t i = 0; i < count; i++) cursor[(in[i].key >> shift) + 1]++;
    for (Py_ssize_t p = 0; p < parts; p++) cursor[p + 1] += cursor[p];
    for (Py_ssize_t i = 0; i < count; i++) out[cursor[in[i].key >> shift]++] = in[i];
    free(cursor);
    return 0;
}

static int grow(Pair **a, Pair **b, Py_ssize_t *capacity, Py_ssize_t needed) {
    if (needed <= *capacity) return 0;
    Py_ssize_t size = needed * 2;
    Pair *x = (Pair *)realloc(*a, sizeof(Pair) * size);
    if (!x) return -1;
    *a = x;
    Pair *y = (Pair *)realloc(*b, sizeof(Pair) * size);
    if (!y) return -1;
    *b = y;
    *capacity = size;
    return 0;
}

/*
 * The sorted loop's scratch buffers, kept between calls in a workspace (a capsule the caller
 * holds, one per thread that searches at a time): fresh tens of megabytes for every call would
 * cost more in page faults than a batch of a thousand queries costs in searching. Buffers that
 * grew past RETAIN_PAIRS for an unusual batch are given back after it, and everything when the
 * capsule goes away, so memory stays flat however many batches run.
 */
#define WORKSPACE_NAME "meldpunt.index._mih.Workspace"
#define RETAIN_PAIRS ((Py_ssize_t)1 << 22)

typedef struct {
    Pair *probes, *probes_sorted, *cands, *cands_sorted;
    Py_ssize_t probe_cap, cand_cap;
    int busy;
} Workspace;

static void workspace_clear(Workspace *ws, Py_ssize_t keep) {
    if (ws->probe_cap > keep) {
        free(ws->probes);
        free(ws->probes_sorted);
        ws->probes = ws->probes_sorted = NULL;
        ws->probe_cap = 0;
    }
    if (ws->cand_cap > keep) {
        free(ws->cands);
        free(ws->cands_sorted);
        ws->cands = ws->cands_sorted = NULL;
        ws->cand_cap = 0;
    }
}

static void workspace_destroy(PyObject *capsule) {
    Workspace *ws = (Workspace *)PyCapsule_GetPointer(capsule, WORKSPACE_NAME);
    if (!ws) return;
    workspace_clear(ws, -1);
    free(ws);
}

static PyObject *mih_workspace(PyObject *self, PyObject *noargs) {
    Workspace *ws = (Workspace *)calloc(1, sizeof(Workspace));
    if (!ws) return PyErr_NoMemory();
    PyObject *capsule = PyCapsule_New(ws, WORKSPACE_NAME, workspace_destroy);
    if (!capsule) free(ws);
    return capsule;
}

/* The workspace of this call (the caller's, or a temporary one freed after the call). */
static Workspace *take_workspace(PyObject *capsule) {
    if (capsule == NULL || capsule == Py_None) {
        Workspace *ws = (Workspace *)calloc(1, sizeof(Workspace));
        if (!ws) PyErr_NoMemory();
        return ws;
    }
    Workspace *ws = (Workspace *)PyCapsule_GetPointer(capsule, WORKSPACE_NAME);
    if (!ws) return NULL;
    if (ws->busy) {
        PyErr_SetString(PyExc_RuntimeError, "a workspace serves one search at a time");
        return NULL;
    }
    ws->busy = 1;
    return ws;
}

static void return_workspace(PyObject *capsule, Workspace *ws) {
    if (capsule == NULL || capsule == Py_None) {
        workspace_clear(ws, -1);
        free(ws);
        return;
    }
    workspace_clear(ws, RETAIN_PAIRS);
    ws->busy = 0;
}

/* search_batch(..., out_distance[, workspace]): see search(). */
static PyObject *mih_search_batch(PyObject *self, PyObject *args) {
    SearchArgs a;
    if (parse_search(args, &a) < 0) return NULL;
    Workspace *ws = take_workspace(a.workspace);
    if (!ws) {
        release_search(&a);
        return NULL;
    }
    int failed = 0, damaged = 0;
    const Tables T = a.T;
    const int32_t *units = a.units;
    const uint64_t *qs = a.qs;
    Py_ssize_t nq = a.nq;
    int radius = a.radius;
    Hits hits = a.hits;
    Py_ssize_t slot_parts = (T.n >> SLOT_PART_LOG2) + 1;

    Py_BEGIN_ALLOW_THREADS
    for (int t = 0; t < T.layout.m && !failed && !damaged; t++) {
        int flips = units[t] - 1, w = T.layout.width[t];
        if (flips < 0) continue;
        if (flips > w) flips = w;
        Py_ssize_t per_query = 0;
        for (int k = 0; k <= flips; k++) {
            Py_ssize_t c = 1;
            for (int i = 0; i < k; i++) c = c * (w - i) / (i + 1);
            per_query += c;
        }
        Py_ssize_t group = GROUP_PROBES / per_query > 0 ? GROUP_PROBES / per_query : 1;
        int shift = w > KEY_PART_BITS ? w - KEY_PART_BITS : 0;
        Py_ssize_t key_parts = ((Py_ssize_t)1 << w) >> shift;
        for (Py_ssize_t g0 = 0; g0 < nq && !failed && !damaged; g0 += group) {
            Py_ssize_t g1 = g0 + group < nq ? g0 + group : nq;
            if (grow(&ws->probes, &ws->probes_sorted, &ws->probe_cap, (g1 - g0) * per_query) < 0) {
                failed = 1;
                break;
            }
            Pair *probes = ws->probes, *probes_sorted = ws->probes_sorted;
            Py_ssize_t np_ = 0;
            for (Py_ssize_t qi = g0; qi < g1; qi++) {
                uint32_t base = get_bits(qs + 4 * qi, T.layout.start[t], w);
                FOR_EACH_KEY(base, w, flips, key, {
                    probes[np_].key = key;
                    probes[np_].q = (uint32_t)qi;
                    np_++;
                });
            }
            if (partition_pairs(probes, probes_sorted, np_, shift, key_parts) < 0) {
                failed = 1;
                break;
            }
            Py_ssize_t nc = 0;
            for (Py_ssize_t i = 0; i < np_; i++) {
                /* within a partition the keys are still scattered: fetch ahead, bucket starts
                 * twice as far as the slot ids they lead to */
                if (i + 2 * LOOKAHEAD < np_) {
                    uint32_t far = probes_sorted[i + 2 * LOOKAHEAD].key;
                    __builtin_prefetch(bucket_start_address(&T, t, far));
                }
                if (i + LOOKAHEAD < np_) {
                    uint32_t ahead = bucket_start(&T, t, probes_sorted[i + LOOKAHEAD].key);
                    __builtin_prefetch(id_address(&T, t, ahead));
                }
                uint32_t lo = bucket_start(&T, t, probes_sorted[i].key);
                uint32_t hi = bucket_start(&T, t, probes_sorted[i].key + 1);
                if (hi > T.n || lo > hi) {
                    damaged = 1;
                    break;
                }
                if (grow(&ws->cands, &ws->cands_sorted, &ws->cand_cap, nc + (hi - lo) + 1) < 0) {
                    failed = 1;
                    break;
                }
                for (uint32_t j = lo; j < hi; j++) {
                    uint32_t slot = slot_at(&T, t, j);
                    if (slot >= T.n) { /* would be read, and partitioned, outside the tables */
                        damaged = 1;
                        break;
                    }
                    ws->cands[nc].key = slot;
                    ws->cands[nc].q = probes_sorted[i].q;
                    nc++;
                }
                if (damaged) break;
            }
            if (failed || damaged) break;
            if (partition_pairs(ws->cands, ws->cands_sorted, nc, SLOT_PART_LOG2, slot_parts) < 0) {
                failed = 1;
                break;
            }
            const Pair *cands_sorted = ws->cands_sorted;
            for (Py_ssize_t c = 0; c < nc; c++) {
                if (c + 2 * LOOKAHEAD < nc)
                    __builtin_prefetch(T.h + 4 * (Py_ssize_t)cands_sorted[c + 2 * LOOKAHEAD].key);
                uint32_t slot = cands_sorted[c].key;
                const uint64_t *row = T.h + 4 * (Py_ssize_t)slot;
                const uint64_t *q = qs + 4 * (Py_ssize_t)cands_sorted[c].q;
                int d = distance256(q, row);
                if (d > radius) continue;
                if (T.live && !T.live[slot]) continue;
                if (!reported_earlier(&T, units, t, q, row)) emit(&hits, cands_sorted[c].q, slot, d);
            }
        }
    }
    Py_END_ALLOW_THREADS
    return_workspace(a.workspace, ws);
    release_search(&a);
    if (failed) return PyErr_NoMemory();
    return PyLong_FromSsize_t(damaged ? -1 : hits.count);
}

/* ---- brute force ------------------------------------------------------------------------------- */

/* scan(hashes, alive, queries, radius, slot_base, out_query, out_slot, out_distance) */
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

/* ---- checking tables read from a file ----------------------------------------------------------- */

/* check(hashes, alive, widths, base, rel, rel_bytes, ids, id_bytes) -> None when every bucket
 * start lies within the slots and follows the one before, and every slot id names a hash; else
 * a sentence saying what is wrong. Buffers of the wrong size raise ValueError. */
static PyObject *mih_check(PyObject *self, PyObject *args) {
    TableBuffers b;
    PyObject *widths;
    int rel_bytes, id_bytes;
    if (!PyArg_ParseTuple(args, "y*y*Oy*y*iy*i", &b.hashes, &b.alive, &widths, &b.base, &b.rel,
                          &rel_bytes, &b.ids, &id_bytes))
        return NULL;
    Tables T;
    if (check_tables(&b, widths, rel_bytes, id_bytes, &T) < 0) {
        release_tables(&b);
        return NULL;
    }
    int bad_table = -1;
    const char *problem = NULL;
    Py_BEGIN_ALLOW_THREADS
    for (int t = 0; t < T.layout.m && !problem; t++) {
        uint32_t keys = (uint32_t)1 << T.layout.width[t];
        const uint32_t *base = T.base + T.layout.base_at[t];
        uint64_t previous = 0;
        for (uint32_t key = 0; key <= keys; key++) {
            uint64_t start;
            if (rel_bytes == 2)
                start = (uint64_t)base[key >> BLOCK_LOG2] +
                        ((const uint16_t *)T.rel + T.layout.rel_at[t])[key];
            else
                start = ((const uint32_t *)T.rel + T.layout.rel_at[t])[key];
            if ((key == 0 && start != 0) || start < previous || start > (uint64_t)T.n ||
                (key == keys && start != (uint64_t)T.n)) {
                problem = "bucket starts out of order or out of range";
                break;
            }
            previous = start;
        }
        for (Py_ssize_t j = 0; j < T.n && !problem; j++)
            if (slot_at(&T, t, j) >= T.n) problem = "a slot id past the last hash";
        if (problem) bad_table = t;
    }
    Py_END_ALLOW_THREADS
    release_tables(&b);
    if (!problem) Py_RETURN_NONE;
    return PyUnicode_FromFormat("table %d: %s", bad_table, problem);
}

static PyMethodDef methods[] = {
    {"build", mih_build, METH_VARARGS, "Counting-sort every chunk of the hashes into tables."},
    {"search", mih_search, METH_VARARGS, "Exact radius search through the chunk tables."},
    {"search_batch", mih_search_batch, METH_VARARGS, "search() for many queries, memory-ordered."},
    {"scan", mih_scan, METH_VARARGS, "Exact radius search by comparing with every hash."},
    {"check", mih_check, METH_VARARGS, "None when the tables are consistent, else the problem."},
    {"workspace", mih_workspace, METH_NOARGS, "Scratch buffers that search_batch() may reuse."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_mih",
                                    "Multi-index hashing for 256-bit hashes.", -1, methods};

PyMODINIT_FUNC PyInit__mih(void) { return PyModule_Create(&module); }
