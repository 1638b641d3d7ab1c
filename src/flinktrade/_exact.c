/* flinktrade._exact: the exact window sums of flinktrade.indicators in fixed-width integers.
 *
 * ``Sums(n, squares)`` is the kernel of ``indicators.ExactWindow`` (``squares``) and
 * ``ExactSum``: the last ``n`` floats pushed, each kept as the integer ``x * 2**shift`` (``shift``
 * the largest binary exponent any value pushed so far needed, as the Python kernel ``_PySums``
 * keeps it), with their exact sum and sum of squares. The integers are 128 bits (a value at most
 * VALUE_BITS), the sum of squares 256, so a push is a few machine instructions instead of ten
 * Python integer operations. ``total``, ``mean`` and ``variance`` divide the exact sums and round
 * once, to nearest even: the very floats Python's int / int true division gives, which is what
 * ``_PySums`` computes (pinned bit for bit by tests/unit/test_exact_kernel.py).
 *
 * What does not fit is never approximated: ``push`` and ``rebuild`` return False, with the state
 * unchanged, when a value would need more than VALUE_BITS (a float far from the others in
 * magnitude, a non-finite value, a window longer than MAX_N), and ``ExactWindow`` continues with
 * the Python kernel, built from this one's exact state. A quotient whose float would be subnormal
 * or overflow is computed with Python integers, as the Python kernel does.
 *
 * Built by ``flinktrade.accel`` (``make setup``) beside the mypyc build, used only while it
 * matches this source. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef __int128 i128;
typedef unsigned __int128 u128;

#define VALUE_BITS 100 /* |value| < 2**100: n * 2**100 < 2**127 and n * 2**200 < 2**256 */
#define MAX_N 16384    /* 2**14 values at most (MAX_PERIOD is 10,000) */

typedef struct {
    uint64_t w[4]; /* little-endian limbs, unsigned */
} u256;

/* -- 256-bit unsigned arithmetic ------------------------------------------------------------- */

static inline int bits64(uint64_t x) { return x ? 64 - __builtin_clzll(x) : 0; }

static inline int bits128(u128 x) {
    uint64_t hi = (uint64_t)(x >> 64);
    return hi ? 64 + bits64(hi) : bits64((uint64_t)x);
}

static int bits256(const u256 *a) {
    for (int i = 3; i >= 0; i--)
        if (a->w[i]) return 64 * i + bits64(a->w[i]);
    return 0;
}

static u256 from128(u128 a) {
    u256 r = {{(uint64_t)a, (uint64_t)(a >> 64), 0, 0}};
    return r;
}

static u256 mul128(u128 a, u128 b) { /* a * b, both < 2**128 */
    uint64_t a0 = (uint64_t)a, a1 = (uint64_t)(a >> 64);
    uint64_t b0 = (uint64_t)b, b1 = (uint64_t)(b >> 64);
    u128 p00 = (u128)a0 * b0, p01 = (u128)a0 * b1, p10 = (u128)a1 * b0, p11 = (u128)a1 * b1;
    u256 r;
    r.w[0] = (uint64_t)p00;
    u128 mid = (p00 >> 64) + (uint64_t)p01 + (uint64_t)p10;
    r.w[1] = (uint64_t)mid;
    u128 high = (mid >> 64) + (p01 >> 64) + (p10 >> 64) + (uint64_t)p11;
    r.w[2] = (uint64_t)high;
    r.w[3] = (uint64_t)((high >> 64) + (p11 >> 64));
    return r;
}

static void add256(u256 *a, const u256 *b) {
    u128 carry = 0;
    for (int i = 0; i < 4; i++) {
        carry += (u128)a->w[i] + b->w[i];
        a->w[i] = (uint64_t)carry;
        carry >>= 64;
    }
}

static void sub256(u256 *a, const u256 *b) { /* a >= b */
    uint64_t borrow = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t bi = b->w[i] + borrow;
        uint64_t over = (bi < borrow) || (a->w[i] < bi);
        a->w[i] -= bi;
        borrow = over;
    }
}

static void shl256(u256 *a, int k) { /* the result fits: the caller checked */
    if (k <= 0) return;
    int limbs = k / 64, rest = k % 64;
    for (int i = 3; i >= 0; i--) {
        uint64_t v = 0;
        int from = i - limbs;
        if (from >= 0) {
            v = a->w[from] << rest;
            if (rest && from >= 1) v |= a->w[from - 1] >> (64 - rest);
        }
        a->w[i] = v;
    }
}

static u256 mul256_64(const u256 *a, uint64_t m) { /* fits: the caller checked */
    u256 r;
    u128 carry = 0;
    for (int i = 0; i < 4; i++) {
        carry += (u128)a->w[i] * m;
        r.w[i] = (uint64_t)carry;
        carry >>= 64;
    }
    return r;
}

/* a // d in place, the remainder returned (d > 0) */
static uint64_t divmod256(u256 *a, uint64_t d) {
    u128 rem = 0;
    for (int i = 3; i >= 0; i--) {
        u128 cur = (rem << 64) | a->w[i];
        a->w[i] = (uint64_t)(cur / d);
        rem = cur % d;
    }
    return (uint64_t)rem;
}

/* bits [from, from + 64) of a */
static uint64_t bits_at(const u256 *a, int from) {
    int limb = from / 64, rest = from % 64;
    uint64_t v = limb < 4 ? a->w[limb] >> rest : 0;
    if (rest && limb + 1 < 4) v |= a->w[limb + 1] << (64 - rest);
    return v;
}

static int any_below(const u256 *a, int count) { /* any of bits [0, count) set */
    for (int i = 0; i < 4 && count > 0; i++, count -= 64) {
        uint64_t mask = count >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << count) - 1);
        if (a->w[i] & mask) return 1;
    }
    return 0;
}

/* num / d / 2**scale rounded to the nearest float, ties to even (num < 2**248, 0 < d < 2**64,
 * scale >= 0). Returns 0 and leaves *out alone when the result would be subnormal or too large
 * (the caller divides with Python integers then). */
static int round_quotient(u256 num, uint64_t d, Py_ssize_t scale, double *out) {
    int nb = bits256(&num);
    if (nb == 0) {
        *out = 0.0;
        return 1;
    }
    int k = 55 + bits64(d) - nb; /* enough bits that the quotient has at least 55 */
    if (k < 0) k = 0;
    shl256(&num, k); /* nb + k <= 55 + 64 when k > 0 */
    uint64_t rem = divmod256(&num, d);
    int qb = bits256(&num);
    /* the value is q * 2**-(k + scale); its leading bit is 2**lead */
    Py_ssize_t lead = (Py_ssize_t)qb - 1 - k - scale;
    if (lead < -1022 || lead > 1022) return 0;
    uint64_t top = bits_at(&num, qb - 54) & (((uint64_t)1 << 54) - 1); /* 54 leading bits */
    int sticky = rem != 0 || any_below(&num, qb - 54);
    uint64_t mant = top >> 1;
    if ((top & 1) && (sticky || (mant & 1))) mant += 1; /* may become 2**53: still exact */
    *out = ldexp((double)mant, (int)(qb - 53 - k - scale));
    return 1;
}

/* -- Python integers (the slow path and the exports) ----------------------------------------- */

static PyObject *long_from_i128(i128 v) {
    unsigned char bytes[16];
    memcpy(bytes, &v, 16); /* x86-64 and aarch64: little-endian two's complement */
    return _PyLong_FromByteArray(bytes, 16, 1, 1);
}

static PyObject *long_from_u256(const u256 *v) {
    unsigned char bytes[32];
    memcpy(bytes, v->w, 32);
    return _PyLong_FromByteArray(bytes, 32, 1, 0);
}

/* num / (den << shift) with Python integers: what the Python kernel computes */
static PyObject *py_quotient(PyObject *num, PyObject *den, Py_ssize_t shift) {
    PyObject *result = NULL, *bits = NULL, *scaled = NULL;
    if (num == NULL || den == NULL) goto done;
    bits = PyLong_FromSsize_t(shift);
    if (bits == NULL) goto done;
    scaled = PyNumber_Lshift(den, bits);
    if (scaled == NULL) goto done;
    result = PyNumber_TrueDivide(num, scaled);
done:
    Py_XDECREF(num);
    Py_XDECREF(den);
    Py_XDECREF(bits);
    Py_XDECREF(scaled);
    return result;
}

/* -- the kernel ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;     /* the window's length */
    int squares;      /* keep the sum of squares (ExactWindow) or not (ExactSum) */
    Py_ssize_t shift; /* every value is value * 2**shift */
    Py_ssize_t count; /* values in the window */
    Py_ssize_t head;  /* index of the oldest once the window is full (a ring); 0 before */
    Py_ssize_t cap;   /* allocated slots (grows to n) */
    i128 *v;          /* the integers */
    double *x;        /* the floats pushed, as C doubles (a snapshot copies their bytes) */
    i128 s1;
    u256 s2;
} Sums;

/* x = num / 2**exp in lowest terms (float.as_integer_ratio); 0 if num needs over VALUE_BITS */
static int ratio(double x, i128 *num, Py_ssize_t *exp) {
    if (x == 0.0) {
        *num = 0;
        *exp = 0;
        return 1;
    }
    int e;
    double m = frexp(x, &e);
    int64_t mant = (int64_t)ldexp(m, 53); /* exact: |mant| < 2**53 */
    Py_ssize_t e2 = (Py_ssize_t)e - 53;
    uint64_t mag = mant < 0 ? (uint64_t)(-mant) : (uint64_t)mant;
    int tz = __builtin_ctzll(mag);
    mant >>= tz; /* exact: the low bits are zero */
    mag >>= tz;
    e2 += tz;
    if (e2 >= 0) {
        if (bits64(mag) + e2 > VALUE_BITS) return 0;
        *num = (i128)((u128)(i128)mant << e2); /* unsigned: see shl128 */
        *exp = 0;
    } else {
        *num = mant;
        *exp = -e2;
    }
    return 1;
}

/* v * 2**k (fits: the caller checked), as an unsigned shift: a signed one of a negative value is
 * undefined in C */
static inline i128 shl128(i128 v, Py_ssize_t k) { return (i128)((u128)v << k); }

static inline u128 mag128(i128 v) { return v < 0 ? (u128)(-v) : (u128)v; }

static inline Py_ssize_t slot(Sums *self, Py_ssize_t j) { /* j-th oldest */
    Py_ssize_t i = self->head + j;
    return i >= self->cap ? i - self->cap : i;
}

static int grow(Sums *self) {
    Py_ssize_t cap = self->cap < 8 ? 8 : self->cap * 2;
    if (cap > self->n) cap = self->n;
    i128 *v = PyMem_Realloc(self->v, (size_t)cap * sizeof(i128));
    if (v == NULL) return 0;
    self->v = v;
    double *x = PyMem_Realloc(self->x, (size_t)cap * sizeof(double));
    if (x == NULL) return 0;
    self->x = x;
    self->cap = cap;
    return 1;
}

static PyObject *Sums_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    Py_ssize_t n;
    int squares;
    static char *names[] = {"n", "squares", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "np", names, &n, &squares)) return NULL;
    if (n < 1 || n > MAX_N) {
        PyErr_Format(PyExc_ValueError, "window length %zd outside [1, %d]", n, MAX_N);
        return NULL;
    }
    Sums *self = (Sums *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->n = n;
    self->squares = squares;
    return (PyObject *)self;
}

static void clear_floats(Sums *self) { self->count = self->head = 0; }

static void Sums_dealloc(Sums *self) {
    PyMem_Free(self->v);
    PyMem_Free(self->x);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static void add_value(Sums *self, i128 v) {
    self->s1 += v;
    if (self->squares) {
        u128 m = mag128(v);
        u256 sq = mul128(m, m);
        add256(&self->s2, &sq);
    }
}

static void remove_value(Sums *self, i128 v) {
    self->s1 -= v;
    if (self->squares) {
        u128 m = mag128(v);
        u256 sq = mul128(m, m);
        sub256(&self->s2, &sq);
    }
}

static PyObject *Sums_push(Sums *self, PyObject *arg) {
    if (!PyFloat_CheckExact(arg)) Py_RETURN_FALSE;
    double x = PyFloat_AS_DOUBLE(arg);
    if (!isfinite(x)) Py_RETURN_FALSE;
    i128 num;
    Py_ssize_t exp;
    if (!ratio(x, &num, &exp)) Py_RETURN_FALSE;
    Py_ssize_t shift = exp > self->shift ? exp : self->shift, more = shift - self->shift;
    if (bits128(mag128(num)) + (shift - exp) > VALUE_BITS) Py_RETURN_FALSE;
    int widest = 0; /* every value kept must still fit after the rescale (zeros always do) */
    if (more) {
        for (Py_ssize_t j = 0; j < self->count; j++) {
            int b = bits128(mag128(self->v[slot(self, j)]));
            if (b > widest) widest = b;
        }
        if (widest && widest + more > VALUE_BITS) Py_RETURN_FALSE;
    }
    if (self->count < self->n && self->count == self->cap && !grow(self))
        return PyErr_NoMemory();
    if (more) {
        if (widest) { /* else every value and both sums are 0 (and a shift of 128+ is undefined) */
            for (Py_ssize_t j = 0; j < self->count; j++)
                self->v[slot(self, j)] = shl128(self->v[slot(self, j)], more);
            self->s1 = shl128(self->s1, more); /* |s1| < n * 2**VALUE_BITS after the shift */
            shl256(&self->s2, (int)(2 * more));
        }
        self->shift = shift;
    }
    i128 v = shl128(num, shift - exp);
    if (self->count < self->n) {
        self->v[self->count] = v; /* head is 0 until the window is full */
        self->x[self->count] = x;
        self->count++;
    } else {
        remove_value(self, self->v[self->head]);
        self->v[self->head] = v;
        self->x[self->head] = x;
        self->head = self->head + 1 == self->n ? 0 : self->head + 1;
    }
    add_value(self, v);
    Py_RETURN_TRUE;
}

static PyObject *Sums_rebuild(Sums *self, PyObject *args) {
    Py_ssize_t shift;
    PyObject *xs;
    if (!PyArg_ParseTuple(args, "nO!", &shift, &PyList_Type, &xs)) return NULL;
    Py_ssize_t count = PyList_GET_SIZE(xs);
    for (Py_ssize_t j = 0; j < count; j++) { /* first the Python kernel's refusal, in order */
        PyObject *item = PyList_GET_ITEM(xs, j);
        if (!PyFloat_CheckExact(item) || !isfinite(PyFloat_AS_DOUBLE(item))) Py_RETURN_FALSE;
        i128 num;
        Py_ssize_t exp;
        if (!ratio(PyFloat_AS_DOUBLE(item), &num, &exp)) Py_RETURN_FALSE;
        if (exp > shift) {
            PyErr_Format(PyExc_ValueError, "window value %R needs a shift above %zd", item, shift);
            return NULL;
        }
        if (bits128(mag128(num)) + (shift - exp) > VALUE_BITS) Py_RETURN_FALSE;
    }
    if (shift < 0 || count > self->n) Py_RETURN_FALSE;
    clear_floats(self);
    self->s1 = 0;
    memset(&self->s2, 0, sizeof self->s2);
    self->shift = shift;
    while (self->cap < count)
        if (!grow(self)) return PyErr_NoMemory();
    for (Py_ssize_t j = 0; j < count; j++) {
        PyObject *item = PyList_GET_ITEM(xs, j);
        i128 num;
        Py_ssize_t exp;
        ratio(PyFloat_AS_DOUBLE(item), &num, &exp);
        i128 v = shl128(num, shift - exp);
        self->v[j] = v;
        self->x[j] = PyFloat_AS_DOUBLE(item);
        add_value(self, v);
    }
    self->count = count;
    Py_RETURN_TRUE;
}

static PyObject *Sums_total(Sums *self, PyObject *unused) {
    double out;
    u256 num = from128(mag128(self->s1));
    if (round_quotient(num, 1, self->shift, &out))
        return PyFloat_FromDouble(self->s1 < 0 ? -out : out);
    return py_quotient(long_from_i128(self->s1), PyLong_FromLong(1), self->shift);
}

static PyObject *Sums_mean(Sums *self, PyObject *unused) {
    double out;
    u256 num = from128(mag128(self->s1));
    if (self->count && round_quotient(num, (uint64_t)self->count, self->shift, &out))
        return PyFloat_FromDouble(self->s1 < 0 ? -out : out);
    return py_quotient(long_from_i128(self->s1), PyLong_FromSsize_t(self->count), self->shift);
}

static PyObject *Sums_variance(Sums *self, PyObject *unused) {
    if (!self->squares) {
        PyErr_SetString(PyExc_TypeError, "a window of sums only has no variance");
        return NULL;
    }
    uint64_t n = (uint64_t)self->count;
    u256 num = mul256_64(&self->s2, n); /* n * s2 - s1 * s1: < 2**228, never negative */
    u128 m = mag128(self->s1);
    u256 sq = mul128(m, m);
    sub256(&num, &sq);
    double out;
    if (n && round_quotient(num, n * n, 2 * self->shift, &out)) return PyFloat_FromDouble(out);
    return py_quotient(long_from_u256(&num), PyLong_FromUnsignedLongLong(n * n), 2 * self->shift);
}

static PyObject *floats(Sums *self) {
    PyObject *list = PyList_New(self->count);
    if (list == NULL) return NULL;
    for (Py_ssize_t j = 0; j < self->count; j++) {
        PyObject *f = PyFloat_FromDouble(self->x[slot(self, j)]);
        if (f == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, j, f);
    }
    return list;
}

/* (shift, the floats oldest first as IEEE 754 binary64, little-endian: indicators.pack's form) */
static PyObject *Sums_snap(Sums *self, PyObject *unused) {
    PyObject *xs = PyBytes_FromStringAndSize(NULL, self->count * (Py_ssize_t)sizeof(double));
    if (xs == NULL) return NULL;
    char *out = PyBytes_AS_STRING(xs);
    for (Py_ssize_t j = 0; j < self->count; j++) {
        double d = self->x[slot(self, j)];
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        uint64_t u;
        memcpy(&u, &d, sizeof u);
        u = __builtin_bswap64(u);
        memcpy(&d, &u, sizeof u);
#endif
        memcpy(out + j * (Py_ssize_t)sizeof(double), &d, sizeof d);
    }
    return Py_BuildValue("(nN)", self->shift, xs);
}

static PyObject *Sums_get_xs(Sums *self, void *unused) { return floats(self); }

static PyObject *Sums_get_values(Sums *self, void *unused) {
    PyObject *list = PyList_New(self->count);
    if (list == NULL) return NULL;
    for (Py_ssize_t j = 0; j < self->count; j++) {
        PyObject *v = long_from_i128(self->v[slot(self, j)]);
        if (v == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, j, v);
    }
    return list;
}

static PyObject *Sums_get_s1(Sums *self, void *unused) { return long_from_i128(self->s1); }
static PyObject *Sums_get_s2(Sums *self, void *unused) { return long_from_u256(&self->s2); }
static PyObject *Sums_get_shift(Sums *self, void *unused) { return PyLong_FromSsize_t(self->shift); }
static PyObject *Sums_get_n(Sums *self, void *unused) { return PyLong_FromSsize_t(self->n); }
static PyObject *Sums_get_squares(Sums *self, void *unused) { return PyBool_FromLong(self->squares); }
static Py_ssize_t Sums_len(Sums *self) { return self->count; }

static PyMethodDef Sums_methods[] = {
    {"push", (PyCFunction)Sums_push, METH_O,
     "Add a float (the oldest leaves a full window); False, unchanged, if it does not fit."},
    {"rebuild", (PyCFunction)Sums_rebuild, METH_VARARGS,
     "rebuild(shift, xs): the window of the floats xs at shift; False if they do not fit."},
    {"total", (PyCFunction)Sums_total, METH_NOARGS, "The sum, correctly rounded."},
    {"mean", (PyCFunction)Sums_mean, METH_NOARGS, "The mean, correctly rounded."},
    {"variance", (PyCFunction)Sums_variance, METH_NOARGS,
     "The population variance, correctly rounded."},
    {"snap", (PyCFunction)Sums_snap, METH_NOARGS, "(shift, the floats packed as bytes)."},
    {NULL}};

static PyGetSetDef Sums_getset[] = {
    {"xs", (getter)Sums_get_xs, NULL, "the floats, oldest first (a new list)", NULL},
    {"values", (getter)Sums_get_values, NULL, "the integers, oldest first (a new list)", NULL},
    {"s1", (getter)Sums_get_s1, NULL, "the exact sum of the integers", NULL},
    {"s2", (getter)Sums_get_s2, NULL, "the exact sum of their squares (0 without squares)", NULL},
    {"shift", (getter)Sums_get_shift, NULL, "the integers are the floats * 2**shift", NULL},
    {"n", (getter)Sums_get_n, NULL, "the window's length", NULL},
    {"squares", (getter)Sums_get_squares, NULL, "whether the sum of squares is kept", NULL},
    {NULL}};

static PySequenceMethods Sums_as_sequence = {.sq_length = (lenfunc)Sums_len};

static PyTypeObject SumsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "flinktrade._exact.Sums",
    .tp_basicsize = sizeof(Sums),
    .tp_dealloc = (destructor)Sums_dealloc,
    .tp_as_sequence = &Sums_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Sums(n, squares): exact sums of the last n floats, in fixed-width integers.",
    .tp_methods = Sums_methods,
    .tp_getset = Sums_getset,
    .tp_new = Sums_new,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "flinktrade._exact",
    "The exact window sums of flinktrade.indicators in fixed-width integers.", -1, NULL};

PyMODINIT_FUNC PyInit__exact(void) {
    if (PyType_Ready(&SumsType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&SumsType);
    if (PyModule_AddObject(m, "Sums", (PyObject *)&SumsType) < 0) {
        Py_DECREF(&SumsType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "VALUE_BITS", VALUE_BITS);
    PyModule_AddIntConstant(m, "MAX_N", MAX_N);
    return m;
}
