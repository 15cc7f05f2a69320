/* Compiled fast paths of `auxpretrain corrupt` (wrapped by auxpretrain/data/speedups.py).
 *
 * ChunkTable: whitespace-separated chunks of a text -> running chunk ids (first seen, first
 *   numbered), as `map(defaultdict.__getitem__, text.split())` numbers them, without making a
 *   Python string per chunk: only chunks seen for the first time become strings; given each
 *   chunk's word ids (set_words), a batch's word ids and sentence lengths (words).
 * WordTexts + format_pairs: the JSON lines of a batch of good/bad pairs, each word's escaped
 *   UTF-8 text copied into one bytes object, the same bytes as the pure-Python path in
 *   auxpretrain/data/pairs.py; it runs without the GIL (a thread writes while another corrupts).
 * quick_slices: PunktSplitter._quick_slices (auxpretrain/data/punkt.py), the same scan in C,
 *   calling back into Python only where the splitter's memos hold no decision.
 *
 * All have pure-Python equivalents; tests compare the two on the same input. The module uses
 * only the Python C API (no NumPy headers): arrays come in and go out as buffers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define ABI_VERSION 2

/* ------------------------------------------------------------------------------------------ */
/* ChunkTable                                                                                   */

typedef struct {
    uint64_t hash;
    size_t offset;   /* into the arena, in bytes */
    Py_ssize_t length; /* code points */
    int wide;        /* 0: one byte a code point (all < 256); 1: four bytes a code point */
} Entry;

typedef struct {
    PyObject_HEAD
    uint8_t *arena;
    size_t arena_len, arena_cap;
    Entry *entries;
    Py_ssize_t count, entries_cap;
    int32_t *slots; /* entry index or -1 */
    size_t mask;    /* slots - 1 (a power of two) */
    /* the word ids of the first `known` chunks (set_words): chunk c's are words[start[c]:][:size[c]] */
    int64_t *run_start;
    int32_t *run_size;
    Py_ssize_t known, runs_cap;
    int32_t *words;
    size_t words_len, words_cap;
} ChunkTable;

static void free_table(ChunkTable *self) {
    PyMem_Free(self->arena);
    PyMem_Free(self->entries);
    PyMem_Free(self->slots);
    PyMem_Free(self->run_start);
    PyMem_Free(self->run_size);
    PyMem_Free(self->words);
    self->arena = NULL;
    self->entries = NULL;
    self->slots = NULL;
    self->run_start = NULL;
    self->run_size = NULL;
    self->words = NULL;
}

static void ChunkTable_dealloc(ChunkTable *self) {
    free_table(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int ChunkTable_init(ChunkTable *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":ChunkTable", kwlist))
        return -1;
    if (self->slots) {
        PyErr_SetString(PyExc_TypeError, "ChunkTable: already initialised");
        return -1;
    }
    self->known = self->runs_cap = 0;
    self->words_len = self->words_cap = 0;
    self->arena_cap = 1 << 16;
    self->arena_len = 0;
    self->arena = PyMem_Malloc(self->arena_cap);
    self->entries_cap = 1 << 12;
    self->count = 0;
    self->entries = PyMem_Malloc(sizeof(Entry) * self->entries_cap);
    self->mask = (1 << 13) - 1;
    self->slots = PyMem_Malloc(sizeof(int32_t) * (self->mask + 1));
    if (!self->arena || !self->entries || !self->slots) {
        PyErr_NoMemory();
        return -1;
    }
    memset(self->slots, 0xff, sizeof(int32_t) * (self->mask + 1));
    return 0;
}

static Py_ssize_t ChunkTable_len(ChunkTable *self) { return self->count; }

static int grow_slots(ChunkTable *self) {
    size_t size = (self->mask + 1) * 2;
    int32_t *slots = PyMem_Malloc(sizeof(int32_t) * size);
    if (!slots) {
        PyErr_NoMemory();
        return -1;
    }
    memset(slots, 0xff, sizeof(int32_t) * size);
    size_t mask = size - 1;
    for (Py_ssize_t i = 0; i < self->count; i++) {
        size_t s = self->entries[i].hash & mask;
        while (slots[s] >= 0)
            s = (s + 1) & mask;
        slots[s] = (int32_t)i;
    }
    PyMem_Free(self->slots);
    self->slots = slots;
    self->mask = mask;
    return 0;
}

/* The chunk text[start:stop] is entry `e`? */
/* key[0:length] (code points of type KEY) equals text[0:length] (of type TEXT)? */
#define SAME(KEY, TEXT)                                                                           \
    do {                                                                                         \
        const KEY *a = (const KEY *)key;                                                         \
        const TEXT *b = (const TEXT *)data + start;                                              \
        for (Py_ssize_t k = 0; k < length; k++)                                                  \
            if ((Py_UCS4)a[k] != (Py_UCS4)b[k])                                                  \
                return 0;                                                                        \
        return 1;                                                                                \
    } while (0)

static int same_chunk(const ChunkTable *self, const Entry *e, int kind, const void *data,
                      Py_ssize_t start, Py_ssize_t length) {
    const uint8_t *key = self->arena + e->offset;
    if (!e->wide) {
        if (kind == PyUnicode_1BYTE_KIND)
            return memcmp(key, (const uint8_t *)data + start, length) == 0;
        if (kind == PyUnicode_2BYTE_KIND)
            SAME(Py_UCS1, Py_UCS2);
        SAME(Py_UCS1, Py_UCS4);
    }
    if (kind == PyUnicode_2BYTE_KIND)
        SAME(Py_UCS4, Py_UCS2);
    SAME(Py_UCS4, Py_UCS4); /* (a wide key is never compared with one-byte text: chunk_id checks wide) */
}

/* Whitespace as str.split() sees it (Py_UNICODE_ISSPACE), with a table for ASCII. */
static unsigned char ascii_space[128];

static inline int is_space(Py_UCS4 c) {
    return c < 128 ? ascii_space[c] : Py_UNICODE_ISSPACE(c);
}

/* The id of a chunk of `length` code points at text[start:] with `hash` and widest code point
   `widest`; a new id (the chunk appended to `fresh` as a str) if it was never seen. */
static int64_t chunk_id(ChunkTable *self, PyObject *text, int kind, const void *data,
                        Py_ssize_t start, Py_ssize_t length, uint64_t hash, Py_UCS4 widest,
                        PyObject *fresh) {
    hash ^= hash >> 33; /* MurmurHash3's finalizer: every bit of the hash reaches the low bits */
    hash *= 0xff51afd7ed558ccdULL;
    hash ^= hash >> 33;
    int wide = widest > 255;
    size_t s = hash & self->mask;
    for (;;) {
        int32_t i = self->slots[s];
        if (i < 0)
            break;
        const Entry *e = &self->entries[i];
        if (e->hash == hash && e->length == length && e->wide == wide &&
            same_chunk(self, e, kind, data, start, length))
            return i;
        s = (s + 1) & self->mask;
    }
    if (self->count >= INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "ChunkTable: too many chunks");
        return -1;
    }
    /* a new chunk: its code points into the arena, an entry, a slot, a str for the caller */
    size_t bytes = (size_t)length * (wide ? 4 : 1);
    if (self->arena_len + bytes + 4 > self->arena_cap) {
        size_t cap = self->arena_cap;
        while (self->arena_len + bytes + 4 > cap)
            cap *= 2;
        uint8_t *arena = PyMem_Realloc(self->arena, cap);
        if (!arena) {
            PyErr_NoMemory();
            return -1;
        }
        self->arena = arena;
        self->arena_cap = cap;
    }
    size_t offset = self->arena_len;
    if (wide) {
        offset = (offset + 3) & ~(size_t)3; /* aligned code points */
        Py_UCS4 *out = (Py_UCS4 *)(self->arena + offset);
        for (Py_ssize_t k = 0; k < length; k++)
            out[k] = PyUnicode_READ(kind, data, start + k);
    } else if (kind == PyUnicode_1BYTE_KIND) {
        memcpy(self->arena + offset, (const uint8_t *)data + start, length);
    } else {
        for (Py_ssize_t k = 0; k < length; k++)
            self->arena[offset + k] = (uint8_t)PyUnicode_READ(kind, data, start + k);
    }
    self->arena_len = offset + bytes;
    if (self->count == self->entries_cap) {
        Entry *entries = PyMem_Realloc(self->entries, sizeof(Entry) * self->entries_cap * 2);
        if (!entries) {
            PyErr_NoMemory();
            return -1;
        }
        self->entries = entries;
        self->entries_cap *= 2;
    }
    Entry *e = &self->entries[self->count];
    e->hash = hash;
    e->offset = offset;
    e->length = length;
    e->wide = wide;
    self->slots[s] = (int32_t)self->count;
    int64_t id = self->count++;
    if ((size_t)self->count * 2 > self->mask + 1 && grow_slots(self) < 0)
        return -1;
    PyObject *chunk = PyUnicode_Substring(text, start, start + length);
    if (!chunk || PyList_Append(fresh, chunk) < 0) {
        Py_XDECREF(chunk);
        return -1;
    }
    Py_DECREF(chunk);
    return id;
}

/* The chunk ids of a text whose code points are CHAR (one loop per string kind). */
#define SCAN_CHUNKS(NAME, CHAR)                                                                   \
    static Py_ssize_t NAME(ChunkTable *self, PyObject *text, int kind, const CHAR *p,           \
                           Py_ssize_t n, int64_t *out, PyObject *fresh) {                        \
        Py_ssize_t chunks = 0, i = 0;                                                            \
        while (i < n) {                                                                          \
            while (i < n && is_space(p[i]))                                                      \
                i++;                                                                             \
            if (i >= n)                                                                          \
                break;                                                                           \
            Py_ssize_t start = i;                                                                \
            uint64_t hash = 1469598103934665603ULL;                                              \
            Py_UCS4 widest = 0;                                                                  \
            while (i < n && !is_space(p[i])) {                                                   \
                widest = p[i] > widest ? p[i] : widest;                                          \
                hash = (hash ^ p[i]) * 1099511628211ULL;                                         \
                i++;                                                                             \
            }                                                                                    \
            int64_t id = chunk_id(self, text, kind, p, start, i - start, hash, widest, fresh);   \
            if (id < 0)                                                                          \
                return -1;                                                                       \
            out[chunks++] = id;                                                                  \
        }                                                                                        \
        return chunks;                                                                           \
    }

SCAN_CHUNKS(scan_ucs1, Py_UCS1)
SCAN_CHUNKS(scan_ucs2, Py_UCS2)
SCAN_CHUNKS(scan_ucs4, Py_UCS4)

PyDoc_STRVAR(lookup_doc,
"lookup(sentences) -> (ids, new) or None: the id of each whitespace-separated chunk of each\n"
"sentence (a list of str; the chunks of str.split()), chunk id 0 between two sentences, as int64\n"
"bytes, and the chunks seen for the first time, in id order. Chunk 0 must be the separator\n"
"'\\x00' (looked up first, as a one-item list); None, and nothing looked up, if a sentence holds it.");

static Py_ssize_t scan(ChunkTable *self, PyObject *text, int64_t *out, PyObject *fresh) {
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    return kind == PyUnicode_1BYTE_KIND ? scan_ucs1(self, text, kind, data, n, out, fresh)
           : kind == PyUnicode_2BYTE_KIND ? scan_ucs2(self, text, kind, data, n, out, fresh)
           : scan_ucs4(self, text, kind, data, n, out, fresh);
}

/* An object made by ChunkTable.__new__ without __init__ has no table. */
static int ready(const ChunkTable *self) {
    if (self->slots)
        return 1;
    PyErr_SetString(PyExc_TypeError, "ChunkTable: not initialised");
    return 0;
}

static PyObject *ChunkTable_lookup(ChunkTable *self, PyObject *args) {
    PyObject *sentences;
    if (!ready(self))
        return NULL;
    if (!PyArg_ParseTuple(args, "O!:lookup", &PyList_Type, &sentences))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(sentences), bound = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *text = PyList_GET_ITEM(sentences, k);
        if (!PyUnicode_Check(text))
            return PyErr_Format(PyExc_TypeError, "lookup: sentence %zd is not a str", k);
        Py_ssize_t n = PyUnicode_GET_LENGTH(text);
        if (self->count && PyUnicode_FindChar(text, 0, 0, n, 1) != -1)
            Py_RETURN_NONE; /* a sentence holds the separator */
        bound += n / 2 + 2; /* its chunks, and the separator after it */
    }
    PyObject *ids = PyBytes_FromStringAndSize(NULL, bound * sizeof(int64_t));
    PyObject *fresh = PyList_New(0);
    if (!ids || !fresh)
        goto fail;
    int64_t *out = (int64_t *)PyBytes_AS_STRING(ids);
    Py_ssize_t chunks = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        if (k)
            out[chunks++] = 0;
        Py_ssize_t found = scan(self, PyList_GET_ITEM(sentences, k), out + chunks, fresh);
        if (found < 0)
            goto fail;
        chunks += found;
    }
    if (_PyBytes_Resize(&ids, chunks * sizeof(int64_t)) < 0) {
        ids = NULL;
        goto fail;
    }
    return Py_BuildValue("(NN)", ids, fresh);
fail:
    Py_XDECREF(ids);
    Py_XDECREF(fresh);
    return NULL;
}

PyDoc_STRVAR(set_words_doc,
"set_words(sizes, ids): the word ids of the next len(sizes) chunks (in id order, after those\n"
"already set): sizes int64, each chunk's number of words; ids int32, their ids one after the other.");

static PyObject *ChunkTable_set_words(ChunkTable *self, PyObject *args) {
    Py_buffer sizes = {0}, ids = {0};
    PyObject *result = NULL;
    if (!ready(self))
        return NULL;
    if (!PyArg_ParseTuple(args, "y*y*:set_words", &sizes, &ids))
        return NULL;
    Py_ssize_t n = sizes.len / (Py_ssize_t)sizeof(int64_t), n_ids = ids.len / (Py_ssize_t)sizeof(int32_t);
    const int64_t *size = sizes.buf;
    int64_t total = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (size[k] < 0 || size[k] > INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "set_words: a negative or huge size");
            goto done;
        }
        total += size[k];
    }
    if (self->known + n > self->count || total != n_ids) {
        PyErr_SetString(PyExc_ValueError, "set_words: more chunks than looked up, or sizes that do not sum to the ids");
        goto done;
    }
    if (self->known + n > self->runs_cap) {
        Py_ssize_t cap = self->runs_cap ? self->runs_cap : 1 << 12;
        while (self->known + n > cap)
            cap *= 2;
        int64_t *starts = PyMem_Realloc(self->run_start, sizeof(int64_t) * cap);
        if (starts)
            self->run_start = starts;
        int32_t *runs = starts ? PyMem_Realloc(self->run_size, sizeof(int32_t) * cap) : NULL;
        if (!runs) {
            PyErr_NoMemory();
            goto done;
        }
        self->run_size = runs;
        self->runs_cap = cap;
    }
    if (self->words_len + (size_t)n_ids > self->words_cap) {
        size_t cap = self->words_cap ? self->words_cap : 1 << 14;
        while (self->words_len + (size_t)n_ids > cap)
            cap *= 2;
        int32_t *words = PyMem_Realloc(self->words, sizeof(int32_t) * cap);
        if (!words) {
            PyErr_NoMemory();
            goto done;
        }
        self->words = words;
        self->words_cap = cap;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        self->run_start[self->known + k] = (int64_t)self->words_len;
        self->run_size[self->known + k] = (int32_t)size[k];
        self->words_len += size[k];
    }
    if (n_ids) /* (an empty buffer may have no address: memcpy must not see it) */
        memcpy(self->words + self->words_len - n_ids, ids.buf, sizeof(int32_t) * n_ids);
    self->known += n;
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&sizes);
    PyBuffer_Release(&ids);
    return result;
}

PyDoc_STRVAR(words_doc,
"words(chunks, sentences) -> (ids, lengths): the word ids of the chunks (int64 chunk ids as\n"
"lookup gives them; chunk 0 ends a sentence) one after the other, as int32 bytes, and the number\n"
"of words of each of the `sentences` sentences, as int64 bytes.");

static PyObject *ChunkTable_words(ChunkTable *self, PyObject *args) {
    Py_buffer chunks = {0};
    Py_ssize_t sentences;
    PyObject *ids = NULL, *lengths = NULL;
    if (!ready(self))
        return NULL;
    if (!PyArg_ParseTuple(args, "y*n:words", &chunks, &sentences))
        return NULL;
    Py_ssize_t n = chunks.len / (Py_ssize_t)sizeof(int64_t);
    const int64_t *chunk = chunks.buf;
    int64_t total = 0, breaks = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (chunk[k] < 0 || chunk[k] >= self->known) {
            PyErr_Format(PyExc_ValueError, "words: chunk %lld has no words set", (long long)chunk[k]);
            goto fail;
        }
        total += self->run_size[chunk[k]];
        breaks += chunk[k] == 0;
    }
    if (sentences < 0 || (n && breaks >= sentences)) {
        PyErr_SetString(PyExc_ValueError, "words: more sentence breaks than sentences");
        goto fail;
    }
    ids = PyBytes_FromStringAndSize(NULL, total * sizeof(int32_t));
    lengths = PyBytes_FromStringAndSize(NULL, sentences * sizeof(int64_t));
    if (!ids || !lengths)
        goto fail;
    int32_t *out = (int32_t *)PyBytes_AS_STRING(ids);
    int64_t *length = (int64_t *)PyBytes_AS_STRING(lengths);
    memset(length, 0, sentences * sizeof(int64_t));
    Py_ssize_t sentence = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        int64_t c = chunk[k];
        if (c == 0) {
            sentence++;
            continue;
        }
        int32_t size = self->run_size[c];
        const int32_t *from = self->words + self->run_start[c];
        for (int32_t w = 0; w < size; w++)
            out[w] = from[w];
        out += size;
        length[sentence] += size;
    }
    PyBuffer_Release(&chunks);
    return Py_BuildValue("(NN)", ids, lengths);
fail:
    PyBuffer_Release(&chunks);
    Py_XDECREF(ids);
    Py_XDECREF(lengths);
    return NULL;
}

static PyMethodDef ChunkTable_methods[] = {
    {"lookup", (PyCFunction)ChunkTable_lookup, METH_VARARGS, lookup_doc},
    {"set_words", (PyCFunction)ChunkTable_set_words, METH_VARARGS, set_words_doc},
    {"words", (PyCFunction)ChunkTable_words, METH_VARARGS, words_doc},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods ChunkTable_as_sequence = {.sq_length = (lenfunc)ChunkTable_len};

static PyTypeObject ChunkTableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "auxpretrain.data.cspeedups.ChunkTable",
    .tp_basicsize = sizeof(ChunkTable),
    .tp_dealloc = (destructor)ChunkTable_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ChunkTable(): whitespace-separated chunks -> running ids, first seen first numbered.",
    .tp_methods = ChunkTable_methods,
    .tp_as_sequence = &ChunkTable_as_sequence,
    .tp_init = (initproc)ChunkTable_init,
    .tp_new = PyType_GenericNew,
};

/* ------------------------------------------------------------------------------------------ */
/* WordTexts and format_pairs                                                                   */

typedef struct {
    PyObject_HEAD
    char *utf8;       /* every word's text, one after the other */
    int64_t *offsets; /* word i: utf8[offsets[i]:offsets[i + 1]] */
    Py_ssize_t count;
} WordTexts;

static void WordTexts_dealloc(WordTexts *self) {
    PyMem_Free(self->utf8);
    PyMem_Free(self->offsets);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int WordTexts_init(WordTexts *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"words", NULL};
    PyObject *words;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!:WordTexts", kwlist, &PyList_Type, &words))
        return -1;
    if (self->offsets) { /* format_pairs may be reading it in another thread, without the GIL */
        PyErr_SetString(PyExc_TypeError, "WordTexts: already initialised");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(words);
    self->utf8 = NULL;
    self->count = 0;
    self->offsets = PyMem_Malloc(sizeof(int64_t) * (n + 1));
    if (!self->offsets) {
        PyErr_NoMemory();
        return -1;
    }
    size_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *w = PyList_GET_ITEM(words, i);
        Py_ssize_t size;
        if (!PyUnicode_Check(w)) {
            PyErr_Format(PyExc_TypeError, "WordTexts: word %zd is not a str", i);
            return -1;
        }
        if (!PyUnicode_AsUTF8AndSize(w, &size))
            return -1;
        self->offsets[i] = (int64_t)total;
        total += size;
    }
    self->offsets[n] = (int64_t)total;
    self->utf8 = PyMem_Malloc(total + 1);
    if (!self->utf8) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t size;
        const char *s = PyUnicode_AsUTF8AndSize(PyList_GET_ITEM(words, i), &size);
        memcpy(self->utf8 + self->offsets[i], s, size);
    }
    self->count = n;
    return 0;
}

static Py_ssize_t WordTexts_len(WordTexts *self) { return self->count; }

static PySequenceMethods WordTexts_as_sequence = {.sq_length = (lenfunc)WordTexts_len};

static PyTypeObject WordTextsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "auxpretrain.data.cspeedups.WordTexts",
    .tp_basicsize = sizeof(WordTexts),
    .tp_dealloc = (destructor)WordTexts_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "WordTexts(words): the UTF-8 text of each word (a list of str), kept for format_pairs.",
    .tp_as_sequence = &WordTexts_as_sequence,
    .tp_init = (initproc)WordTexts_init,
    .tp_new = PyType_GenericNew,
};

/* The decimal text of v into out (at least 21 bytes); its length. */
static size_t put_int(char *out, int64_t v) {
    char digits[24];
    size_t n = 0;
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0)
        out[len++] = '-';
    while (n)
        out[len++] = digits[--n];
    return len;
}

/* Bytes of the words ids[start:stop] joined by spaces; -1 for an id out of range (no exception
   set: the caller runs without the GIL). */
static Py_ssize_t words_size(const WordTexts *w, const int32_t *ids, int64_t start, int64_t stop) {
    Py_ssize_t size = stop > start ? stop - start - 1 : 0;
    for (int64_t k = start; k < stop; k++) {
        int32_t id = ids[k];
        if (id < 0 || id >= w->count)
            return -1;
        size += (Py_ssize_t)(w->offsets[id + 1] - w->offsets[id]);
    }
    return size;
}

static char *put_words(char *p, const WordTexts *w, const int32_t *ids, int64_t start, int64_t stop) {
    for (int64_t k = start; k < stop; k++) {
        if (k > start)
            *p++ = ' ';
        size_t n = (size_t)(w->offsets[ids[k] + 1] - w->offsets[ids[k]]);
        memcpy(p, w->utf8 + w->offsets[ids[k]], n);
        p += n;
    }
    return p;
}

#define PUT(p, literal) (memcpy((p), (literal), sizeof(literal) - 1), (p) + sizeof(literal) - 1)

/* the bytes of a line besides its words, op name and positions */
#define LINE_FIXED "{\"good\": \"\", \"bad\": \"\", \"op\": \"\", \"positions\": []}\n"

PyDoc_STRVAR(format_pairs_doc,
"format_pairs(words, good, bad, starts, stops, ops, positions, widths, op_names) -> bytes\n\n"
"One JSON line per row r: {\"good\": \"<words of good[starts[r]:stops[r]]>\", \"bad\": ...,\n"
"\"op\": \"<op_names[ops[r]]>\", \"positions\": [<positions[r, :widths[ops[r]]]>]}, UTF-8.\n"
"words: WordTexts (each word's JSON-escaped text); good, bad: int32 word ids; starts, stops,\n"
"ops: int64 per row; positions: int64 [rows, >= max(widths)]; widths, op_names: tuples per op.");

static PyObject *format_pairs(PyObject *module, PyObject *args) {
    PyObject *words_obj, *widths, *op_names;
    Py_buffer good = {0}, bad = {0}, starts = {0}, stops = {0}, ops = {0}, positions = {0};
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "O!y*y*y*y*y*y*O!O!:format_pairs", &WordTextsType, &words_obj,
                          &good, &bad, &starts, &stops, &ops, &positions,
                          &PyTuple_Type, &widths, &PyTuple_Type, &op_names))
        return NULL;
    const WordTexts *words = (const WordTexts *)words_obj;
    Py_ssize_t n_ops = PyTuple_GET_SIZE(op_names);
    Py_ssize_t rows = starts.len / (Py_ssize_t)sizeof(int64_t);
    Py_ssize_t n_ids = good.len / (Py_ssize_t)sizeof(int32_t);
    int64_t width[8];
    const char *name[8];
    Py_ssize_t name_len[8];
    int64_t max_width = 0;
    if (n_ops > 8 || PyTuple_GET_SIZE(widths) != n_ops) {
        PyErr_SetString(PyExc_ValueError, "format_pairs: one width a name, at most 8 ops");
        goto done;
    }
    for (Py_ssize_t k = 0; k < n_ops; k++) {
        width[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(widths, k));
        name[k] = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(op_names, k), &name_len[k]);
        if ((width[k] == -1 && PyErr_Occurred()) || !name[k])
            goto done;
        max_width = width[k] > max_width ? width[k] : max_width;
    }
    int64_t stride = rows ? positions.len / (Py_ssize_t)sizeof(int64_t) / rows : max_width;
    if (good.len != bad.len || stops.len != starts.len || ops.len != starts.len ||
        positions.len != (Py_ssize_t)(rows * stride * sizeof(int64_t))) {
        PyErr_SetString(PyExc_ValueError, "format_pairs: arrays of mismatched sizes");
        goto done;
    }
    const int64_t *start = starts.buf, *stop = stops.buf, *op = ops.buf, *pos = positions.buf;
    const int32_t *good_ids = good.buf, *bad_ids = bad.buf;
    /* first the size of every line (checking every index), then the bytes, written once; both
       without the GIL (they touch only this call's buffers and the read-only WordTexts) */
    Py_ssize_t total = 0, bad_row = -1;
    int bad_word = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows; r++) {
        if (op[r] < 0 || op[r] >= n_ops || width[op[r]] > stride || start[r] < 0 || stop[r] < start[r] ||
            stop[r] > n_ids) {
            bad_row = r;
            break;
        }
        Py_ssize_t g = words_size(words, good_ids, start[r], stop[r]);
        Py_ssize_t b = words_size(words, bad_ids, start[r], stop[r]);
        if (g < 0 || b < 0) {
            bad_row = r;
            bad_word = 1;
            break;
        }
        char digits[24];
        total += g + b + name_len[op[r]] + sizeof(LINE_FIXED) - 1;
        for (int64_t k = 0; k < width[op[r]]; k++)
            total += (k ? 2 : 0) + (Py_ssize_t)put_int(digits, pos[r * stride + k]);
    }
    Py_END_ALLOW_THREADS
    if (bad_row >= 0) {
        PyErr_Format(PyExc_IndexError, bad_word ? "format_pairs: a word id of row %zd is out of range"
                                                : "format_pairs: row %zd out of range", bad_row);
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, total);
    if (!result)
        goto done;
    char *p = PyBytes_AS_STRING(result);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows; r++) {
        p = PUT(p, "{\"good\": \"");
        p = put_words(p, words, good_ids, start[r], stop[r]);
        p = PUT(p, "\", \"bad\": \"");
        p = put_words(p, words, bad_ids, start[r], stop[r]);
        p = PUT(p, "\", \"op\": \"");
        memcpy(p, name[op[r]], name_len[op[r]]);
        p += name_len[op[r]];
        p = PUT(p, "\", \"positions\": [");
        for (int64_t k = 0; k < width[op[r]]; k++) {
            if (k)
                p = PUT(p, ", ");
            p += put_int(p, pos[r * stride + k]);
        }
        p = PUT(p, "]}\n");
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&good);
    PyBuffer_Release(&bad);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&stops);
    PyBuffer_Release(&ops);
    PyBuffer_Release(&positions);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* quick_slices                                                                                 */

static PyObject *str_plain, *str_quick_decision, *str_quick, *str_plains, *long_two;

/* NLTK's _NON_WORD characters (punkt._NON_WORD_CHARS) */
static int is_non_word(Py_UCS4 c) {
    switch (c) {
    case ')': case '"': case ';': case '}': case ']': case '*': case ':': case '@': case '\'':
    case '(': case '{': case '[': case 0x2018: case 0x2019: case 0x201c: case 0x201d: case 0xab:
    case 0xbb: case '?': case '!':
        return 1;
    }
    return 0;
}

/* what _BOUNDARY_REALIGNMENT starts with (punkt._CLOSERS) */
static int is_closer(Py_UCS4 c) {
    switch (c) {
    case '"': case '\'': case ')': case ']': case '}': case 0x2018: case 0x2019: case 0x201c:
    case 0x201d: case 0xab: case 0xbb:
        return 1;
    }
    return 0;
}

#define SCAN_FORWARD(TYPE, COND)                                                                  \
    do {                                                                                         \
        const TYPE *p = (const TYPE *)data;                                                      \
        for (; i < n; i++) {                                                                     \
            Py_UCS4 c = p[i];                                                                    \
            if (COND)                                                                            \
                return i;                                                                        \
        }                                                                                        \
        return -1;                                                                               \
    } while (0)

#define IS_END(c) ((c) == '.' || (c) == '?' || (c) == '!')

/* The sentence ends (".?!") of a text, in order: `ends.find(".", i)` of _quick_slices. One-byte
 * text is searched with memchr, each of the three characters' next position kept (the
 * positions asked for only grow). */
typedef struct {
    int kind;
    const void *data;
    Py_ssize_t n;
    Py_ssize_t next[3]; /* one-byte text: the first '.', '?', '!' after the last position asked for
                           (n: none; -1: not searched) */
} Ends;

static const char end_chars[3] = {'.', '?', '!'};

static void ends_init(Ends *e, int kind, const void *data, Py_ssize_t n) {
    e->kind = kind;
    e->data = data;
    e->n = n;
    for (int k = 0; k < 3; k++)
        e->next[k] = -1;
}

/* the first sentence end in text[i:], or -1 */
static Py_ssize_t find_end(Ends *e, Py_ssize_t i) {
    const Py_ssize_t n = e->n;
    const void *data = e->data;
    if (i >= n)
        return -1;
    if (e->kind == PyUnicode_1BYTE_KIND) {
        Py_ssize_t best = n;
        for (int k = 0; k < 3; k++) {
            if (e->next[k] < i) { /* search again from i (the last search ended before it) */
                const Py_UCS1 *p = memchr((const Py_UCS1 *)data + i, end_chars[k], (size_t)(n - i));
                e->next[k] = p ? p - (const Py_UCS1 *)data : n;
            }
            if (e->next[k] < best)
                best = e->next[k];
        }
        return best < n ? best : -1;
    }
    if (e->kind == PyUnicode_2BYTE_KIND)
        SCAN_FORWARD(Py_UCS2, IS_END(c));
    SCAN_FORWARD(Py_UCS4, IS_END(c));
}

/* `text.find(" ", i)` (text of length n) */
static Py_ssize_t find_space(int kind, const void *data, Py_ssize_t i, Py_ssize_t n) {
    if (i >= n)
        return -1;
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *p = memchr((const Py_UCS1 *)data + i, ' ', (size_t)(n - i));
        return p ? p - (const Py_UCS1 *)data : -1;
    }
    if (kind == PyUnicode_2BYTE_KIND)
        SCAN_FORWARD(Py_UCS2, c == ' ');
    SCAN_FORWARD(Py_UCS4, c == ' ');
}

/* `text.rfind(" ", lo, hi)` (0 <= lo, hi <= len(text)) */
static Py_ssize_t rfind_space(int kind, const void *data, Py_ssize_t lo, Py_ssize_t hi) {
#ifdef __GLIBC__ /* memrchr is a GNU extension */
    if (kind == PyUnicode_1BYTE_KIND) {
        if (hi <= lo)
            return -1;
        const Py_UCS1 *p = memrchr((const Py_UCS1 *)data + lo, ' ', (size_t)(hi - lo));
        return p ? p - (const Py_UCS1 *)data : -1;
    }
#endif
    for (Py_ssize_t i = hi - 1; i >= lo; i--)
        if (PyUnicode_READ(kind, data, i) == ' ')
            return i;
    return -1;
}

/* Appends (start, stop) to `out`; -1 on error. */
static int append_slice(PyObject *out, Py_ssize_t start, Py_ssize_t stop) {
    PyObject *pair = PyTuple_New(2), *a, *b;
    if (!pair)
        return -1;
    if (!(a = PyLong_FromSsize_t(start)) || (PyTuple_SET_ITEM(pair, 0, a), !(b = PyLong_FromSsize_t(stop)))) {
        Py_DECREF(pair);
        return -1;
    }
    PyTuple_SET_ITEM(pair, 1, b);
    int r = PyList_Append(out, pair);
    Py_DECREF(pair);
    return r;
}

/* The decision on `context` (new reference): splitter._quick[context] or, where it holds none
 * (dict.get gives None), splitter._quick_decision(context, period); NULL on error. */
static PyObject *quick_decision(PyObject *splitter, PyObject *quick, PyObject *context, Py_ssize_t period) {
    PyObject *decision = PyDict_GetItemWithError(quick, context); /* borrowed */
    if (decision && decision != Py_None) {
        Py_INCREF(decision);
        return decision;
    }
    if (!decision && PyErr_Occurred())
        return NULL;
    PyObject *where = PyLong_FromSsize_t(period);
    if (!where)
        return NULL;
    decision = PyObject_CallMethodObjArgs(splitter, str_quick_decision, context, where, NULL);
    Py_DECREF(where);
    return decision;
}

/* `bool(decision)` into *breaks and, if it is true, `decision == 2` into *two; -1 on error. */
static int decision_value(PyObject *decision, int *breaks, int *two) {
    *two = 0;
    *breaks = PyObject_IsTrue(decision);
    if (*breaks > 0)
        *two = PyObject_RichCompareBool(decision, long_two, Py_EQ);
    return *breaks < 0 || *two < 0 ? -1 : 0;
}

/* PunktSplitter._quick_pending: 1 decided (out, *last_break, *realign updated), 0 cannot tell,
 * -1 error. */
static int quick_pending(PyObject *splitter, PyObject *quick, PyObject *text, Py_ssize_t start,
                         Py_ssize_t stop, Py_ssize_t *last_break, int *realign, PyObject *out) {
    PyObject *context = PyUnicode_Substring(text, start, stop + 2);
    if (!context)
        return -1;
    PyObject *decision = quick_decision(splitter, quick, context, stop - start);
    Py_DECREF(context);
    if (!decision)
        return -1;
    if (decision == Py_None) {
        Py_DECREF(decision);
        return 0;
    }
    int breaks, two;
    int r = decision_value(decision, &breaks, &two);
    Py_DECREF(decision);
    if (r < 0)
        return -1;
    if (breaks) {
        if (append_slice(out, *last_break, stop + 1) < 0)
            return -1;
        *last_break = stop + 1;
        *realign = *realign || two;
    }
    return 1;
}

PyDoc_STRVAR(quick_slices_doc,
             "quick_slices(splitter, text) -> ([(start, end), ...], realign) or None\n\n"
             "PunktSplitter._quick_slices(text) of `splitter` (auxpretrain/data/punkt.py): the same\n"
             "scan, calling splitter._plain and splitter._quick_decision where their memos\n"
             "(splitter._plains, splitter._quick) hold no answer.");

static PyObject *quick_slices(PyObject *module, PyObject *args) {
    PyObject *splitter, *text;
    if (!PyArg_ParseTuple(args, "OU:quick_slices", &splitter, &text))
        return NULL;
    const Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    if (n && (Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, 0)) ||
              Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, n - 1))))
        Py_RETURN_NONE; /* (SentenceSplitter strips its texts) */
    PyObject *quick = NULL, *plains = NULL, *out = NULL, *result = NULL;
    if (!(quick = PyObject_GetAttr(splitter, str_quick)) || !(plains = PyObject_GetAttr(splitter, str_plains)))
        goto done;
    if (!PyDict_Check(quick) || !PyDict_Check(plains)) {
        PyErr_SetString(PyExc_TypeError, "quick_slices: splitter._quick and splitter._plains must be dicts");
        goto done;
    }
    if (!(out = PyList_New(0)))
        goto done;
    Py_ssize_t last_break = 0, prev_start = 0, prev_stop = 0;
    int realign = 0, pending = 0, r;
    Ends ends;
    ends_init(&ends, kind, data, n);
    Py_ssize_t stop = find_end(&ends, 0);
    while (stop >= 0) {
        if (stop + 1 >= n) /* nothing after it: not a candidate */
            break;
        const Py_UCS4 after = PyUnicode_READ(kind, data, stop + 1);
        if (after != ' ' && !is_non_word(after)) {
            if (Py_UNICODE_ISSPACE(after))
                goto cannot_tell;
            stop = find_end(&ends, stop + 1); /* not a candidate */
            continue;
        }
        const Py_ssize_t index = rfind_space(kind, data, prev_stop, stop);
        const Py_ssize_t start = index > prev_stop ? index + 1 : prev_start;
        if (pending && prev_stop <= start) { /* NLTK takes the previous candidate */
            if ((r = quick_pending(splitter, quick, text, prev_start, prev_stop, &last_break, &realign, out)) <= 0)
                goto decided;
        }
        prev_start = start;
        prev_stop = stop;
        pending = after != ' ';
        if (pending) {
            stop = find_end(&ends, stop + 1);
            continue;
        }
        PyObject *word = PyUnicode_Substring(text, start, stop + 1);
        if (!word)
            goto done;
        PyObject *known = PyDict_GetItemWithError(plains, word); /* borrowed */
        if (known && known != Py_None)
            Py_INCREF(known);
        else if (!known && PyErr_Occurred())
            known = NULL;
        else
            known = PyObject_CallMethodOneArg(splitter, str_plain, word);
        Py_DECREF(word);
        if (!known)
            goto done;
        int plain = PyObject_IsTrue(known);
        Py_DECREF(known);
        if (plain < 0)
            goto done;
        if (plain && stop + 2 < n && !Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, stop + 2))) {
            if (append_slice(out, last_break, stop + 1) < 0) /* a break whatever the token */
                goto done;
            last_break = stop + 2;
            if (is_closer(PyUnicode_READ(kind, data, stop + 2)))
                realign = 1;
        } else {
            const Py_ssize_t end = find_space(kind, data, stop + 2, n);
            PyObject *context = PyUnicode_Substring(text, start, end >= 0 ? end : n);
            if (!context)
                goto done;
            PyObject *decision = quick_decision(splitter, quick, context, stop - start);
            Py_DECREF(context);
            if (!decision)
                goto done;
            if (decision == Py_None) {
                Py_DECREF(decision);
                goto cannot_tell;
            }
            int breaks, two;
            r = decision_value(decision, &breaks, &two);
            Py_DECREF(decision);
            if (r < 0)
                goto done;
            if (breaks) {
                if (append_slice(out, last_break, stop + 1) < 0)
                    goto done;
                last_break = stop + 2;
                if (two)
                    realign = 1;
            }
        }
        stop = find_end(&ends, stop + 2);
    }
    if (pending && (r = quick_pending(splitter, quick, text, prev_start, prev_stop, &last_break, &realign, out)) <= 0)
        goto decided;
    if (append_slice(out, last_break, n) < 0)
        goto done;
    result = PyTuple_Pack(2, out, realign ? Py_True : Py_False);
    goto done;
decided: /* r: 0 cannot tell, -1 error */
    if (r < 0)
        goto done;
cannot_tell:
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(quick);
    Py_XDECREF(plains);
    Py_XDECREF(out);
    return result;
}

/* ------------------------------------------------------------------------------------------ */

static PyMethodDef module_methods[] = {
    {"format_pairs", format_pairs, METH_VARARGS, format_pairs_doc},
    {"quick_slices", quick_slices, METH_VARARGS, quick_slices_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "auxpretrain.data.cspeedups",
    "Compiled fast paths of auxpretrain corrupt (see auxpretrain/data/speedups.py).", -1, module_methods,
};

PyMODINIT_FUNC PyInit_cspeedups(void) {
    for (int c = 0; c < 128; c++)
        ascii_space[c] = Py_UNICODE_ISSPACE(c) ? 1 : 0;
    if (PyType_Ready(&ChunkTableType) < 0 || PyType_Ready(&WordTextsType) < 0)
        return NULL;
    if ((!str_plain && !(str_plain = PyUnicode_InternFromString("_plain"))) ||
        (!str_quick_decision && !(str_quick_decision = PyUnicode_InternFromString("_quick_decision"))) ||
        (!str_quick && !(str_quick = PyUnicode_InternFromString("_quick"))) ||
        (!str_plains && !(str_plains = PyUnicode_InternFromString("_plains"))) ||
        (!long_two && !(long_two = PyLong_FromLong(2))))
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    Py_INCREF(&ChunkTableType);
    Py_INCREF(&WordTextsType);
    if (PyModule_AddObject(m, "ChunkTable", (PyObject *)&ChunkTableType) < 0 ||
        PyModule_AddObject(m, "WordTexts", (PyObject *)&WordTextsType) < 0 ||
        PyModule_AddIntConstant(m, "ABI_VERSION", ABI_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
