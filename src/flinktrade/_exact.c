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
 * ``bar_prices_ok(open, high, low, close)`` is the job's fast path of ``pipeline.due``'s bar
 * check: True only for four prices in the text the job's bars carry (six decimals, at most 12
 * digits before the point, none zero) that make a consistent bar, for which that check's price
 * rules and order need not run; anything else gets the full check in Python.
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

/* a // d in place, the remainder returned (d > 0); the limbs above the highest set one are 0 and
 * stay 0, so the division starts there */
static uint64_t divmod256(u256 *a, uint64_t d) {
    u128 rem = 0;
    int top = 3;
    while (top > 0 && a->w[top] == 0) top--;
    for (int i = top; i >= 0; i--) {
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
    uint64_t rem = d == 1 ? 0 : divmod256(&num, d); /* a total divides by 1 */
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

/* Whether x can join the window exactly (1), with its ratio and the shift the window would have
 * then; 0 if it does not fit (a value over VALUE_BITS, a non-finite one), nothing changed. */
static int sums_fits(Sums *self, double x, i128 *num, Py_ssize_t *exp, Py_ssize_t *shift_out) {
    if (!isfinite(x)) return 0;
    if (!ratio(x, num, exp)) return 0;
    Py_ssize_t shift = *exp > self->shift ? *exp : self->shift, more = shift - self->shift;
    if (bits128(mag128(*num)) + (shift - *exp) > VALUE_BITS) return 0;
    if (more) { /* every value kept must still fit after the rescale (zeros always do) */
        int widest = 0;
        for (Py_ssize_t j = 0; j < self->count; j++) {
            int b = bits128(mag128(self->v[slot(self, j)]));
            if (b > widest) widest = b;
        }
        if (widest && widest + more > VALUE_BITS) return 0;
    }
    *shift_out = shift;
    return 1;
}

/* Push x, which sums_fits accepted (num, exp, shift its answers): 1, or -1 with MemoryError. */
static int sums_push_fitting(Sums *self, double x, i128 num, Py_ssize_t exp, Py_ssize_t shift) {
    Py_ssize_t more = shift - self->shift;
    if (self->count < self->n && self->count == self->cap && !grow(self)) {
        PyErr_NoMemory();
        return -1;
    }
    if (more) {
        int widest = 0;
        for (Py_ssize_t j = 0; j < self->count; j++) {
            int b = bits128(mag128(self->v[slot(self, j)]));
            if (b > widest) widest = b;
        }
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
    return 1;
}

static PyObject *Sums_push(Sums *self, PyObject *arg) {
    if (!PyFloat_CheckExact(arg)) Py_RETURN_FALSE;
    double x = PyFloat_AS_DOUBLE(arg);
    i128 num;
    Py_ssize_t exp, shift;
    if (!sums_fits(self, x, &num, &exp, &shift)) Py_RETURN_FALSE;
    if (sums_push_fitting(self, x, num, exp, shift) < 0) return NULL;
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

/* The total, mean and variance in C doubles: 1 and *out, or 0 when the float would be subnormal
 * or too large, or the window is empty (the methods below divide Python integers then). */
static int fast_total(Sums *self, double *out) {
    u256 num = from128(mag128(self->s1));
    if (!round_quotient(num, 1, self->shift, out)) return 0;
    if (self->s1 < 0) *out = -*out;
    return 1;
}

static int fast_mean(Sums *self, double *out) {
    u256 num = from128(mag128(self->s1));
    if (!self->count || !round_quotient(num, (uint64_t)self->count, self->shift, out)) return 0;
    if (self->s1 < 0) *out = -*out;
    return 1;
}

static u256 variance_numerator(Sums *self) { /* n * s2 - s1 * s1: < 2**228, never negative */
    u256 num = mul256_64(&self->s2, (uint64_t)self->count);
    u128 m = mag128(self->s1);
    u256 sq = mul128(m, m);
    sub256(&num, &sq);
    return num;
}

static int fast_variance(Sums *self, double *out) {
    uint64_t n = (uint64_t)self->count;
    return n && round_quotient(variance_numerator(self), n * n, 2 * self->shift, out);
}

static PyObject *Sums_total(Sums *self, PyObject *unused) {
    double out;
    if (fast_total(self, &out)) return PyFloat_FromDouble(out);
    return py_quotient(long_from_i128(self->s1), PyLong_FromLong(1), self->shift);
}

static PyObject *Sums_mean(Sums *self, PyObject *unused) {
    double out;
    if (fast_mean(self, &out)) return PyFloat_FromDouble(out);
    return py_quotient(long_from_i128(self->s1), PyLong_FromSsize_t(self->count), self->shift);
}

static PyObject *Sums_variance(Sums *self, PyObject *unused) {
    if (!self->squares) {
        PyErr_SetString(PyExc_TypeError, "a window of sums only has no variance");
        return NULL;
    }
    double out;
    if (fast_variance(self, &out)) return PyFloat_FromDouble(out);
    uint64_t n = (uint64_t)self->count;
    u256 num = variance_numerator(self);
    return py_quotient(long_from_u256(&num), PyLong_FromUnsignedLongLong(n * n), 2 * self->shift);
}

/* a double as little-endian bytes hold it (indicators.pack's form), and back: the same swap */
static inline double little_endian(double d) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    u = __builtin_bswap64(u);
    memcpy(&d, &u, sizeof u);
#endif
    return d;
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

static PyObject *floats_tuple(const double *a, Py_ssize_t n) { /* (a[0], ..., a[n-1]) */
    PyObject *t = PyTuple_New(n);
    if (t == NULL) return NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *f = PyFloat_FromDouble(a[k]);
        if (f == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, k, f);
    }
    return t;
}

static PyObject *pair(PyObject *a, PyObject *b) { /* (a, b), both references stolen */
    PyObject *t = a == NULL || b == NULL ? NULL : PyTuple_New(2);
    if (t == NULL) {
        Py_XDECREF(a);
        Py_XDECREF(b);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, a);
    PyTuple_SET_ITEM(t, 1, b);
    return t;
}

/* (shift, the floats oldest first as IEEE 754 binary64, little-endian: indicators.pack's form) */
static PyObject *Sums_snap(Sums *self, PyObject *unused) {
    PyObject *xs = PyBytes_FromStringAndSize(NULL, self->count * (Py_ssize_t)sizeof(double));
    if (xs == NULL) return NULL;
    char *out = PyBytes_AS_STRING(xs);
    for (Py_ssize_t j = 0; j < self->count; j++) {
        double d = self->x[slot(self, j)];
        d = little_endian(d);
        memcpy(out + j * (Py_ssize_t)sizeof(double), &d, sizeof d);
    }
    return pair(PyLong_FromSsize_t(self->shift), xs);
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

/* -- the flat indicator state ------------------------------------------------------------------
 *
 * ``FlatEngine(calcs, close_window, blank, layout, fingerprint, names)`` is ``IndicatorEngine``'s
 * computation over a state of C numbers: one ``FlatState`` per symbol holds the bar counter, the
 * last bar's figures, the ring of the last closes, every calculator's accumulators and its exact
 * windows (``Sums``, above, their integers and floats inside the same block), in one allocation,
 * instead of a dozen Python objects and a float object per close. ``advance`` does what the
 * calculators' ``step`` methods do, in their order of operations (the same IEEE operations on
 * the same doubles, ``log`` and ``sqrt`` from the same libm: the same floats), and returns the
 * same dict. ``snap`` gives ``IndicatorEngine.snapshot``'s tuple, value for value; ``restore``
 * reads one back. Whatever this code does not take exactly (a window value too wide for the fixed
 * integers, an argument that is not a float, a snapshot in an older form) it refuses with None
 * and no change, and ``IndicatorEngine`` goes on in Python from the same numbers (``py``). */

enum { K_SMA, K_EMA, K_RSI, K_BB, K_MACD, K_ATR, K_VWAP, K_VOL, K_VZ };

typedef struct {
    PyObject *name; /* the output's name (a key of blank) */
    int what;       /* bb: -1 lower, 0 middle, 1 upper; macd: 0 line, 1 signal, 2 hist */
    double k;       /* bb: the band's multiple of the sd */
} FlatOut;

typedef struct {
    int kind;
    Py_ssize_t n, fast, slow, sig;
    double k1, k2, k3; /* ema: k1; macd: fk, sk, mk */
    Py_ssize_t acc;    /* first accumulator */
    Py_ssize_t win;    /* first window */
    PyObject *key;     /* the single output's name (not bb, macd) */
    Py_ssize_t nout;
    FlatOut *outs;
} FlatCalc;

typedef struct {
    PyObject_HEAD
    Py_ssize_t ncalc, nacc, nwin, close_window;
    FlatCalc *calcs;
    Py_ssize_t *win_n;
    int *win_sq;
    size_t off_closes, off_acc, off_win, block_size;
    size_t *off_v, *off_x;
    PyObject *blank, *layout, *fingerprint, *names;
} FlatEngine;

typedef struct {
    PyObject_HEAD
    FlatEngine *engine;
    PyObject *py; /* the same state as a Python IndicatorState once this one gave up, or NULL */
    long long i;
    int has_prev, has_lr;
    double prev_close, close, high, low, volume, price, log_return;
    Py_ssize_t ncl, chead; /* closes kept, index of the oldest */
    char *block;
} FlatState;

static PyTypeObject FlatEngineType, FlatStateType;

#define ALIGN16(x) (((x) + 15) & ~(size_t)15)

static inline double *st_closes(FlatState *s) { return (double *)(s->block + s->engine->off_closes); }
static inline double *st_acc(FlatState *s) { return (double *)(s->block + s->engine->off_acc); }
static inline Sums *st_win(FlatState *s) { return (Sums *)(s->block + s->engine->off_win); }

static void point_windows(FlatState *s) { /* the windows' arrays are in the block */
    FlatEngine *e = s->engine;
    Sums *w = st_win(s);
    for (Py_ssize_t j = 0; j < e->nwin; j++) {
        w[j].v = (i128 *)(s->block + e->off_v[j]);
        w[j].x = (double *)(s->block + e->off_x[j]);
    }
}

static char *fresh_block(FlatEngine *e) {
    char *block = PyMem_Malloc(e->block_size);
    if (block == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memset(block, 0, e->block_size);
    Sums *w = (Sums *)(block + e->off_win);
    for (Py_ssize_t j = 0; j < e->nwin; j++) {
        w[j].n = e->win_n[j];
        w[j].squares = e->win_sq[j];
        w[j].cap = e->win_n[j];
        w[j].v = (i128 *)(block + e->off_v[j]);
        w[j].x = (double *)(block + e->off_x[j]);
    }
    return block;
}

static void reset_figures(FlatState *s) {
    s->i = 0;
    s->has_prev = s->has_lr = 0;
    s->prev_close = s->close = s->high = s->low = s->volume = s->price = s->log_return = 0.0;
    s->ncl = s->chead = 0;
}

static FlatState *new_state(FlatEngine *e) {
    FlatState *s = PyObject_New(FlatState, &FlatStateType);
    if (s == NULL) return NULL;
    s->py = NULL;
    s->block = fresh_block(e);
    if (s->block == NULL) {
        s->engine = NULL;
        Py_DECREF(s);
        return NULL;
    }
    Py_INCREF(e);
    s->engine = e;
    reset_figures(s);
    return s;
}

static void FlatState_dealloc(FlatState *s) {
    PyMem_Free(s->block);
    Py_XDECREF(s->engine);
    Py_XDECREF(s->py);
    PyObject_Free(s);
}

/* a window's quotient as a double: the fast path, else the method's Python float (0, or -1 with
 * an error set) */
static int slow_quotient(PyObject *(*method)(Sums *, PyObject *), Sums *w, double *out) {
    PyObject *f = method(w, NULL);
    if (f == NULL) return -1;
    *out = PyFloat_AsDouble(f);
    Py_DECREF(f);
    return 0;
}

static int win_total(Sums *w, double *out) {
    return fast_total(w, out) ? 0 : slow_quotient(Sums_total, w, out);
}

static int win_mean(Sums *w, double *out) {
    return fast_mean(w, out) ? 0 : slow_quotient(Sums_mean, w, out);
}

static int win_variance(Sums *w, double *out) {
    return fast_variance(w, out) ? 0 : slow_quotient(Sums_variance, w, out);
}

/* -- the engine ------------------------------------------------------------------------------ */

static void FlatEngine_dealloc(FlatEngine *e) {
    if (e->calcs != NULL) {
        for (Py_ssize_t c = 0; c < e->ncalc; c++) {
            Py_XDECREF(e->calcs[c].key);
            for (Py_ssize_t o = 0; o < e->calcs[c].nout; o++) Py_XDECREF(e->calcs[c].outs[o].name);
            PyMem_Free(e->calcs[c].outs);
        }
    }
    PyMem_Free(e->calcs);
    PyMem_Free(e->win_n);
    PyMem_Free(e->win_sq);
    PyMem_Free(e->off_v);
    PyMem_Free(e->off_x);
    Py_XDECREF(e->blank);
    Py_XDECREF(e->layout);
    Py_XDECREF(e->fingerprint);
    Py_XDECREF(e->names);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static int spec_error(const char *what) {
    PyErr_Format(PyExc_ValueError, "FlatEngine: bad calculator spec (%s)", what);
    return -1;
}

/* one calculator from its spec: (kind, n, key) for most, ("bb", n, ((name, band, k), ...)),
 * ("macd", fast, slow, signal, ((name, "macd" | "signal" | "hist"), ...)) */
static int parse_calc(FlatEngine *e, FlatCalc *c, PyObject *spec) {
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) < 3) return spec_error("not a tuple");
    PyObject *kind = PyTuple_GET_ITEM(spec, 0);
    if (!PyUnicode_Check(kind)) return spec_error("kind");
    static const char *kinds[] = {"sma", "ema", "rsi", "bb", "macd", "atr", "vwap", "volatility",
                                  "volume_z"};
    c->kind = -1;
    for (int k = 0; k < 9; k++)
        if (PyUnicode_CompareWithASCIIString(kind, kinds[k]) == 0) c->kind = k;
    if (c->kind < 0) return spec_error("unknown kind");
    c->n = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, 1));
    if (c->n == -1 && PyErr_Occurred()) return -1;
    if (c->n < 1 || c->n > MAX_N) return spec_error("period");
    c->acc = e->nacc;
    c->win = e->nwin;
    int wins = 0, squares = 1;
    if (c->kind == K_MACD) {
        if (PyTuple_GET_SIZE(spec) != 5) return spec_error("macd");
        c->fast = c->n;
        c->slow = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, 2));
        c->sig = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, 3));
        if (PyErr_Occurred()) return -1;
        if (c->slow <= c->fast || c->sig < 1) return spec_error("macd periods");
        c->k1 = 2.0 / (double)(c->fast + 1);
        c->k2 = 2.0 / (double)(c->slow + 1);
        c->k3 = 2.0 / (double)(c->sig + 1);
        PyObject *lines = PyTuple_GET_ITEM(spec, 4);
        if (!PyTuple_Check(lines)) return spec_error("macd lines");
        c->nout = PyTuple_GET_SIZE(lines);
        c->outs = PyMem_Calloc(c->nout ? c->nout : 1, sizeof(FlatOut));
        if (c->outs == NULL) return PyErr_NoMemory(), -1;
        for (Py_ssize_t o = 0; o < c->nout; o++) {
            PyObject *line = PyTuple_GET_ITEM(lines, o);
            if (!PyTuple_Check(line) || PyTuple_GET_SIZE(line) != 2) return spec_error("macd line");
            PyObject *name = PyTuple_GET_ITEM(line, 0), *what = PyTuple_GET_ITEM(line, 1);
            if (!PyUnicode_Check(name) || !PyUnicode_Check(what)) return spec_error("macd line");
            c->outs[o].what = PyUnicode_CompareWithASCIIString(what, "macd") == 0     ? 0
                              : PyUnicode_CompareWithASCIIString(what, "signal") == 0 ? 1
                                                                                       : 2;
            Py_INCREF(name);
            c->outs[o].name = name;
        }
        e->nacc += 6;
    } else if (c->kind == K_BB) {
        PyObject *bands = PyTuple_GET_ITEM(spec, 2);
        if (PyTuple_GET_SIZE(spec) != 3 || !PyTuple_Check(bands)) return spec_error("bands");
        c->nout = PyTuple_GET_SIZE(bands);
        c->outs = PyMem_Calloc(c->nout ? c->nout : 1, sizeof(FlatOut));
        if (c->outs == NULL) return PyErr_NoMemory(), -1;
        for (Py_ssize_t o = 0; o < c->nout; o++) {
            PyObject *band = PyTuple_GET_ITEM(bands, o);
            if (!PyTuple_Check(band) || PyTuple_GET_SIZE(band) != 3) return spec_error("band");
            PyObject *name = PyTuple_GET_ITEM(band, 0);
            if (!PyUnicode_Check(name)) return spec_error("band name");
            long which = PyLong_AsLong(PyTuple_GET_ITEM(band, 1));
            double k = PyFloat_AsDouble(PyTuple_GET_ITEM(band, 2));
            if (PyErr_Occurred()) return -1;
            c->outs[o].what = which > 0 ? 1 : which < 0 ? -1 : 0;
            c->outs[o].k = k;
            Py_INCREF(name);
            c->outs[o].name = name;
        }
        e->nacc += 1;
        wins = 1;
    } else {
        if (PyTuple_GET_SIZE(spec) != 3 || !PyUnicode_Check(PyTuple_GET_ITEM(spec, 2)))
            return spec_error("key");
        c->key = PyTuple_GET_ITEM(spec, 2);
        Py_INCREF(c->key);
        switch (c->kind) {
        case K_SMA: e->nacc += 1; break;
        case K_EMA:
            c->k1 = 2.0 / (double)(c->n + 1);
            e->nacc += 2;
            break;
        case K_RSI: case K_ATR: e->nacc += 2; break;
        case K_VWAP: wins = 2, squares = 0; break;
        default: wins = 1; /* volatility, volume_z */
        }
    }
    for (int w = 0; w < wins; w++) {
        Py_ssize_t j = e->nwin++;
        Py_ssize_t *win_n = PyMem_Realloc(e->win_n, (size_t)e->nwin * sizeof(Py_ssize_t));
        if (win_n == NULL) return PyErr_NoMemory(), -1;
        e->win_n = win_n;
        int *win_sq = PyMem_Realloc(e->win_sq, (size_t)e->nwin * sizeof(int));
        if (win_sq == NULL) return PyErr_NoMemory(), -1;
        e->win_sq = win_sq;
        e->win_n[j] = c->n;
        e->win_sq[j] = squares;
    }
    return 0;
}

static PyObject *FlatEngine_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *specs, *blank, *layout, *fingerprint, *names;
    Py_ssize_t close_window;
    if (!PyArg_ParseTuple(args, "O!nO!UUO!", &PyTuple_Type, &specs, &close_window, &PyDict_Type,
                          &blank, &layout, &fingerprint, &PyTuple_Type, &names))
        return NULL;
    if (close_window < 0 || close_window > MAX_N) {
        PyErr_SetString(PyExc_ValueError, "FlatEngine: close window out of range");
        return NULL;
    }
    FlatEngine *e = (FlatEngine *)type->tp_alloc(type, 0);
    if (e == NULL) return NULL;
    e->close_window = close_window;
    Py_INCREF(blank), Py_INCREF(layout), Py_INCREF(fingerprint), Py_INCREF(names);
    e->blank = blank, e->layout = layout, e->fingerprint = fingerprint, e->names = names;
    e->ncalc = PyTuple_GET_SIZE(specs);
    e->calcs = PyMem_Calloc(e->ncalc ? e->ncalc : 1, sizeof(FlatCalc));
    if (e->calcs == NULL) {
        Py_DECREF(e);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t c = 0; c < e->ncalc; c++) {
        if (parse_calc(e, &e->calcs[c], PyTuple_GET_ITEM(specs, c)) < 0) {
            Py_DECREF(e);
            return NULL;
        }
        FlatCalc *calc = &e->calcs[c];
        if ((calc->kind == K_SMA || calc->kind == K_BB) && calc->n > close_window) {
            Py_DECREF(e);
            PyErr_SetString(PyExc_ValueError, "FlatEngine: a close window below a period");
            return NULL;
        }
    }
    /* the block: closes, accumulators, the Sums structs, then each window's integers and floats */
    size_t at = 0;
    e->off_closes = at;
    at = ALIGN16(at + (size_t)close_window * sizeof(double));
    e->off_acc = at;
    at = ALIGN16(at + (size_t)e->nacc * sizeof(double));
    e->off_win = at;
    at = ALIGN16(at + (size_t)e->nwin * sizeof(Sums));
    e->off_v = PyMem_Calloc(e->nwin ? e->nwin : 1, sizeof(size_t));
    e->off_x = PyMem_Calloc(e->nwin ? e->nwin : 1, sizeof(size_t));
    if (e->off_v == NULL || e->off_x == NULL) {
        Py_DECREF(e);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t j = 0; j < e->nwin; j++) {
        e->off_v[j] = at;
        at = ALIGN16(at + (size_t)e->win_n[j] * sizeof(i128));
        e->off_x[j] = at;
        at = ALIGN16(at + (size_t)e->win_n[j] * sizeof(double));
    }
    e->block_size = at ? at : 16;
    return (PyObject *)e;
}

static PyObject *FlatEngine_start(FlatEngine *e, PyObject *unused) {
    return (PyObject *)new_state(e);
}

static int put(PyObject *out, PyObject *name, double value) {
    PyObject *f = PyFloat_FromDouble(value);
    if (f == NULL) return -1;
    int rc = PyDict_SetItem(out, name, f);
    Py_DECREF(f);
    return rc;
}

/* TA-Lib's EMA at its j-th input x (from 0): the plain sum of the first n inputs / n, then
 * (x - e) * k + e; 1 once it is defined */
static inline int ema_step(double *sum, double *e, long long j, Py_ssize_t n, double k, double x) {
    if (j < n - 1) {
        *sum += x;
        return 0;
    }
    if (j == n - 1) {
        *sum += x;
        *e = *sum / (double)n;
    } else {
        *e = (x - *e) * k + *e;
    }
    return 1;
}

static inline double close_back(FlatState *s, Py_ssize_t n) { /* closes[-n] */
    Py_ssize_t cap = s->engine->close_window, at = s->chead + s->ncl - n;
    return st_closes(s)[at >= cap ? at - cap : at];
}

/* the state moved to this engine: kept if it was made for the same calculators, else fresh */
static int adopt(FlatEngine *e, FlatState *s) {
    int same = PyUnicode_Compare(e->fingerprint, s->engine->fingerprint);
    if (same == -1 && PyErr_Occurred()) return -1;
    if (same != 0) {
        char *block = fresh_block(e);
        if (block == NULL) return -1;
        PyMem_Free(s->block);
        s->block = block;
        reset_figures(s);
    }
    Py_INCREF(e);
    Py_SETREF(s->engine, e);
    return 0;
}

typedef struct {
    i128 num;
    Py_ssize_t exp, shift;
} Fit;

/* advance(state, high, low, close, volume, vwap): the values at this bar, as
 * IndicatorEngine.advance; None, with the state unchanged, when it must go on in Python */
static PyObject *FlatEngine_advance(FlatEngine *e, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || Py_TYPE(args[0]) != &FlatStateType) {
        PyErr_SetString(PyExc_TypeError, "advance(state, high, low, close, volume, vwap)");
        return NULL;
    }
    FlatState *s = (FlatState *)args[0];
    if (s->py != NULL) Py_RETURN_NONE;
    for (int a = 1; a < 5; a++)
        if (!PyFloat_CheckExact(args[a])) Py_RETURN_NONE;
    if (args[5] != Py_None && !PyFloat_CheckExact(args[5])) Py_RETURN_NONE;
    if (s->engine != e && adopt(e, s) < 0) return NULL;
    double high = PyFloat_AS_DOUBLE(args[1]), low = PyFloat_AS_DOUBLE(args[2]);
    double close = PyFloat_AS_DOUBLE(args[3]), volume = PyFloat_AS_DOUBLE(args[4]);
    double price = args[5] == Py_None ? close : PyFloat_AS_DOUBLE(args[5]);
    int has_lr = s->has_prev;
    double previous = s->prev_close, lr = has_lr ? log(close / previous) : 0.0;
    long long i = s->i;
    Sums *wins = st_win(s);
    double *acc = st_acc(s);
    /* every window push of this bar first, so that one that does not fit changes nothing */
    Fit fits[e->nwin ? e->nwin : 1];
    for (Py_ssize_t c = 0; c < e->ncalc; c++) {
        FlatCalc *calc = &e->calcs[c];
        Py_ssize_t j = calc->win;
        switch (calc->kind) {
        case K_BB:
            if (!sums_fits(&wins[j], close, &fits[j].num, &fits[j].exp, &fits[j].shift))
                Py_RETURN_NONE;
            break;
        case K_VWAP:
            if (!sums_fits(&wins[j], volume, &fits[j].num, &fits[j].exp, &fits[j].shift) ||
                !sums_fits(&wins[j + 1], price * volume, &fits[j + 1].num, &fits[j + 1].exp,
                           &fits[j + 1].shift))
                Py_RETURN_NONE;
            break;
        case K_VOL:
            if (has_lr && !sums_fits(&wins[j], lr, &fits[j].num, &fits[j].exp, &fits[j].shift))
                Py_RETURN_NONE;
            break;
        case K_VZ:
            if (!sums_fits(&wins[j], volume, &fits[j].num, &fits[j].exp, &fits[j].shift))
                Py_RETURN_NONE;
            break;
        }
    }
    PyObject *out = PyDict_Copy(e->blank);
    if (out == NULL) return NULL;
    s->has_lr = has_lr;
    s->log_return = lr;
    s->close = close, s->high = high, s->low = low, s->volume = volume, s->price = price;
    Py_ssize_t cap = e->close_window;
    if (cap) {
        double *closes = st_closes(s);
        if (s->ncl < cap) {
            Py_ssize_t at = s->chead + s->ncl;
            closes[at >= cap ? at - cap : at] = close;
            s->ncl++;
        } else {
            closes[s->chead] = close;
            s->chead = s->chead + 1 == cap ? 0 : s->chead + 1;
        }
    }
    for (Py_ssize_t c = 0; c < e->ncalc; c++) {
        FlatCalc *calc = &e->calcs[c];
        double *a = acc + calc->acc;
        Py_ssize_t n = calc->n, j = calc->win;
        Sums *w = &wins[j];
        switch (calc->kind) {
        case K_SMA: { /* a: t */
            double total = a[0] + close;
            if (i < n - 1) {
                a[0] = total;
                break;
            }
            a[0] = total - close_back(s, n);
            if (put(out, calc->key, total / (double)n) < 0) goto fail;
            break;
        }
        case K_EMA: /* a: t, e */
            if (!ema_step(&a[0], &a[1], i, n, calc->k1, close)) break;
            if (put(out, calc->key, a[1]) < 0) goto fail;
            break;
        case K_RSI: { /* a: g, l */
            if (!has_lr) break;
            double diff = close - previous, gain = a[0], loss = a[1];
            if (i > n) {
                gain *= (double)(n - 1);
                loss *= (double)(n - 1);
            }
            if (diff < 0)
                loss -= diff;
            else
                gain += diff;
            if (i >= n) {
                gain /= (double)n;
                loss /= (double)n;
                double total = gain + loss;
                if (put(out, calc->key, total != 0.0 ? 100.0 * (gain / total) : 0.0) < 0)
                    goto fail;
            }
            a[0] = gain, a[1] = loss;
            break;
        }
        case K_BB: { /* a: t; window of closes */
            double total = a[0] + close, variance;
            if (sums_push_fitting(w, close, fits[j].num, fits[j].exp, fits[j].shift) < 0)
                goto fail;
            if (i < n - 1) {
                a[0] = total;
                break;
            }
            a[0] = total - close_back(s, n);
            double middle = total / (double)n;
            if (win_variance(w, &variance) < 0) goto fail;
            double sd = sqrt(variance);
            for (Py_ssize_t o = 0; o < calc->nout; o++) {
                FlatOut *band = &calc->outs[o];
                double value = band->what == 0  ? middle
                               : band->what > 0 ? middle + sd * band->k
                                                : middle - sd * band->k;
                if (put(out, band->name, value) < 0) goto fail;
            }
            break;
        }
        case K_MACD: { /* a: fs, f, ss, sv, ms, m */
            Py_ssize_t fast = calc->fast, slow = calc->slow;
            ema_step(&a[2], &a[3], i, slow, calc->k2, close);
            /* TA-Lib seeds the fast EMA on the fast closes that end where the slow EMA starts */
            if (i - (slow - fast) < 0) break;
            ema_step(&a[0], &a[1], i - (slow - fast), fast, calc->k1, close);
            if (i < slow - 1) break;
            double line = a[1] - a[3];
            if (!ema_step(&a[4], &a[5], i - (slow - 1), calc->sig, calc->k3, line)) break;
            double signal = a[5];
            for (Py_ssize_t o = 0; o < calc->nout; o++) {
                FlatOut *l = &calc->outs[o];
                double value = l->what == 0 ? line : l->what == 1 ? signal : line - signal;
                if (put(out, l->name, value) < 0) goto fail;
            }
            break;
        }
        case K_ATR: { /* a: t, a */
            if (!has_lr) break;
            double range = high - low, other = fabs(previous - high);
            if (other > range) range = other;
            other = fabs(previous - low);
            if (other > range) range = other;
            if (i < n) {
                a[0] += range;
                break;
            }
            double atr;
            if (i == n) {
                atr = (a[0] + range) / (double)n;
            } else {
                atr = a[1] * (double)(n - 1);
                atr += range;
                atr /= (double)n;
            }
            a[1] = atr;
            if (put(out, calc->key, atr) < 0) goto fail;
            break;
        }
        case K_VWAP: { /* windows: volumes, price * volume */
            double volumes, pvs;
            if (sums_push_fitting(w, volume, fits[j].num, fits[j].exp, fits[j].shift) < 0 ||
                sums_push_fitting(w + 1, price * volume, fits[j + 1].num, fits[j + 1].exp,
                                  fits[j + 1].shift) < 0)
                goto fail;
            if (i < n - 1) break;
            if (win_total(w, &volumes) < 0) goto fail;
            if (volumes > 0) {
                if (win_total(w + 1, &pvs) < 0) goto fail;
                if (put(out, calc->key, pvs / volumes) < 0) goto fail;
            }
            break;
        }
        case K_VOL: { /* window of log returns */
            double variance;
            if (!has_lr) break;
            if (sums_push_fitting(w, lr, fits[j].num, fits[j].exp, fits[j].shift) < 0) goto fail;
            if (i >= n) {
                if (win_variance(w, &variance) < 0) goto fail;
                if (put(out, calc->key, sqrt(variance)) < 0) goto fail;
            }
            break;
        }
        case K_VZ: { /* window of the volumes before this bar */
            double variance, mean;
            if (i >= n) {
                if (win_variance(w, &variance) < 0) goto fail;
                if (variance > 0) {
                    if (win_mean(w, &mean) < 0) goto fail;
                    if (put(out, calc->key, (volume - mean) / sqrt(variance)) < 0) goto fail;
                }
            }
            if (sums_push_fitting(w, volume, fits[j].num, fits[j].exp, fits[j].shift) < 0)
                goto fail;
            break;
        }
        }
    }
    s->i = i + 1;
    s->prev_close = close;
    s->has_prev = 1;
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *opt_float(int has, double value) {
    if (!has) Py_RETURN_NONE;
    return PyFloat_FromDouble(value);
}

/* the state as IndicatorEngine.snapshot's tuple, value for value */
static PyObject *state_snap(FlatState *s) {
    FlatEngine *e = s->engine;
    PyObject *closes = NULL, *calcs = NULL;
    closes = PyBytes_FromStringAndSize(NULL, s->ncl * (Py_ssize_t)sizeof(double));
    if (closes == NULL) goto fail;
    double *ring = st_closes(s);
    char *packed = PyBytes_AS_STRING(closes);
    for (Py_ssize_t k = 0; k < s->ncl; k++) { /* oldest first, little-endian: indicators.pack */
        Py_ssize_t at = s->chead + k;
        double d = ring[at >= e->close_window ? at - e->close_window : at];
        d = little_endian(d);
        memcpy(packed + k * (Py_ssize_t)sizeof(double), &d, sizeof d);
    }
    calcs = PyTuple_New(e->ncalc);
    if (calcs == NULL) goto fail;
    double *acc = st_acc(s);
    Sums *wins = st_win(s);
    for (Py_ssize_t c = 0; c < e->ncalc; c++) {
        FlatCalc *calc = &e->calcs[c];
        double *a = acc + calc->acc;
        Sums *w = &wins[calc->win];
        PyObject *item = NULL;
        switch (calc->kind) {
        case K_SMA: item = floats_tuple(a, 1); break;
        case K_EMA: case K_RSI: case K_ATR: item = floats_tuple(a, 2); break;
        case K_MACD: item = floats_tuple(a, 6); break;
        case K_BB: item = pair(PyFloat_FromDouble(a[0]), Sums_snap(w, NULL)); break;
        case K_VWAP: item = pair(Sums_snap(w, NULL), Sums_snap(w + 1, NULL)); break;
        default:
            item = PyTuple_New(1);
            if (item != NULL) {
                PyObject *window = Sums_snap(w, NULL);
                if (window == NULL) Py_CLEAR(item);
                else PyTuple_SET_ITEM(item, 0, window);
            }
        }
        if (item == NULL) goto fail;
        PyTuple_SET_ITEM(calcs, c, item);
    }
    PyObject *snap = PyTuple_New(11);
    if (snap == NULL) goto fail;
    double figures[5] = {s->close, s->high, s->low, s->volume, s->price};
    Py_INCREF(e->layout);
    PyTuple_SET_ITEM(snap, 0, e->layout);
    PyObject *items[] = {PyLong_FromLongLong(s->i), opt_float(s->has_prev, s->prev_close),
                         PyFloat_FromDouble(figures[0]), PyFloat_FromDouble(figures[1]),
                         PyFloat_FromDouble(figures[2]), PyFloat_FromDouble(figures[3]),
                         PyFloat_FromDouble(figures[4]), opt_float(s->has_lr, s->log_return)};
    int failed = 0;
    for (int k = 0; k < 8; k++) {
        if (items[k] == NULL) failed = 1;
        else PyTuple_SET_ITEM(snap, 1 + k, items[k]);
    }
    PyTuple_SET_ITEM(snap, 9, closes);
    PyTuple_SET_ITEM(snap, 10, calcs);
    if (failed) { /* the tuple owns what it holds; its empty slots are NULL, which it skips */
        Py_DECREF(snap);
        return NULL;
    }
    return snap;
fail:
    Py_XDECREF(closes);
    Py_XDECREF(calcs);
    return NULL;
}

static PyObject *FlatEngine_snap(FlatEngine *e, PyObject *arg) {
    if (Py_TYPE(arg) != &FlatStateType) {
        PyErr_SetString(PyExc_TypeError, "snap(state): not a FlatState");
        return NULL;
    }
    return state_snap((FlatState *)arg);
}

/* strict readers of restore: 1 and the value, or 0 for anything else (no error set) */
static int exact_float(PyObject *o, double *out) {
    if (!PyFloat_CheckExact(o) || !isfinite(PyFloat_AS_DOUBLE(o))) return 0;
    *out = PyFloat_AS_DOUBLE(o);
    return 1;
}

static int floats_of(PyObject *t, Py_ssize_t size, double *out) {
    if (!PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) != size) return 0;
    for (Py_ssize_t k = 0; k < size; k++)
        if (!exact_float(PyTuple_GET_ITEM(t, k), &out[k])) return 0;
    return 1;
}

/* the finite floats of packed bytes (indicators.pack) into out: 1, else 0 */
static int packed_floats(PyObject *packed, double *out) {
    const char *bytes = PyBytes_AS_STRING(packed);
    for (Py_ssize_t k = 0; k < PyBytes_GET_SIZE(packed) / 8; k++) {
        double x;
        memcpy(&x, bytes + 8 * k, 8);
        x = little_endian(x);
        if (!isfinite(x)) return 0;
        out[k] = x;
    }
    return 1;
}

/* a window from (shift, packed floats): 1, 0 if it is not one this kernel takes exactly */
static int window_of(Sums *w, PyObject *snap) {
    if (!PyTuple_CheckExact(snap) || PyTuple_GET_SIZE(snap) != 2) return 0;
    PyObject *shift_obj = PyTuple_GET_ITEM(snap, 0), *packed = PyTuple_GET_ITEM(snap, 1);
    if (!PyLong_CheckExact(shift_obj) || !PyBytes_CheckExact(packed)) return 0;
    int overflow;
    long long shift = PyLong_AsLongLongAndOverflow(shift_obj, &overflow);
    if (overflow || shift < 0 || shift > 4 * VALUE_BITS) return 0;
    Py_ssize_t size = PyBytes_GET_SIZE(packed);
    if (size % 8 || size / 8 > w->n) return 0;
    Py_ssize_t count = size / 8;
    const char *bytes = PyBytes_AS_STRING(packed);
    w->count = w->head = 0;
    w->s1 = 0;
    memset(&w->s2, 0, sizeof w->s2);
    w->shift = (Py_ssize_t)shift;
    for (Py_ssize_t k = 0; k < count; k++) {
        double x;
        memcpy(&x, bytes + 8 * k, 8);
        x = little_endian(x);
        i128 num;
        Py_ssize_t exp;
        if (!isfinite(x) || !ratio(x, &num, &exp) || exp > w->shift) return 0;
        if (bits128(mag128(num)) + (w->shift - exp) > VALUE_BITS) return 0;
        i128 v = shl128(num, w->shift - exp);
        w->v[k] = v;
        w->x[k] = x;
        add_value(w, v);
    }
    w->count = count;
    return 1;
}

/* restore(snap): a state from snap(...)'s tuple, or None for any other value (the Python engine
 * reads those: the older forms, another layout, garbage, what the fixed integers cannot hold) */
static PyObject *FlatEngine_restore(FlatEngine *e, PyObject *snap) {
    if (!PyTuple_CheckExact(snap) || PyTuple_GET_SIZE(snap) != 11) Py_RETURN_NONE;
    PyObject *layout = PyTuple_GET_ITEM(snap, 0);
    if (!PyUnicode_CheckExact(layout)) Py_RETURN_NONE;
    int same = PyUnicode_Compare(layout, e->layout);
    if (same == -1 && PyErr_Occurred()) return NULL;
    if (same != 0) Py_RETURN_NONE;
    PyObject *i_obj = PyTuple_GET_ITEM(snap, 1), *prev = PyTuple_GET_ITEM(snap, 2);
    PyObject *lr = PyTuple_GET_ITEM(snap, 8), *closes = PyTuple_GET_ITEM(snap, 9);
    PyObject *calcs = PyTuple_GET_ITEM(snap, 10);
    if (!PyLong_CheckExact(i_obj)) Py_RETURN_NONE;
    int overflow;
    long long i = PyLong_AsLongLongAndOverflow(i_obj, &overflow);
    if (overflow || i < 0) Py_RETURN_NONE;
    /* the closes of a state are its last min(i, close_window) (closes[-n] reads them), packed */
    if (!PyBytes_CheckExact(closes) ||
        PyBytes_GET_SIZE(closes) !=
            (i < e->close_window ? (Py_ssize_t)i : e->close_window) * (Py_ssize_t)sizeof(double))
        Py_RETURN_NONE;
    if (!PyTuple_CheckExact(calcs) || PyTuple_GET_SIZE(calcs) != e->ncalc) Py_RETURN_NONE;
    FlatState *s = new_state(e);
    if (s == NULL) return NULL;
    double figures[5];
    for (int k = 0; k < 5; k++)
        if (!exact_float(PyTuple_GET_ITEM(snap, 3 + k), &figures[k])) goto refuse;
    s->close = figures[0], s->high = figures[1], s->low = figures[2], s->volume = figures[3];
    s->price = figures[4];
    s->i = i;
    s->has_prev = prev != Py_None;
    if (s->has_prev && !exact_float(prev, &s->prev_close)) goto refuse;
    s->has_lr = lr != Py_None;
    if (s->has_lr && !exact_float(lr, &s->log_return)) goto refuse;
    s->ncl = PyBytes_GET_SIZE(closes) / (Py_ssize_t)sizeof(double);
    if (!packed_floats(closes, st_closes(s))) goto refuse;
    double *acc = st_acc(s);
    Sums *wins = st_win(s);
    for (Py_ssize_t c = 0; c < e->ncalc; c++) {
        FlatCalc *calc = &e->calcs[c];
        PyObject *item = PyTuple_GET_ITEM(calcs, c);
        double *a = acc + calc->acc;
        Sums *w = &wins[calc->win];
        if (!PyTuple_CheckExact(item)) goto refuse;
        Py_ssize_t size = PyTuple_GET_SIZE(item);
        switch (calc->kind) {
        case K_SMA: if (!floats_of(item, 1, a)) goto refuse; break;
        case K_EMA: case K_RSI: case K_ATR: if (!floats_of(item, 2, a)) goto refuse; break;
        case K_MACD: if (!floats_of(item, 6, a)) goto refuse; break;
        case K_BB:
            if (size != 2 || !exact_float(PyTuple_GET_ITEM(item, 0), a) ||
                !window_of(w, PyTuple_GET_ITEM(item, 1)))
                goto refuse;
            break;
        case K_VWAP:
            if (size != 2 || !window_of(w, PyTuple_GET_ITEM(item, 0)) ||
                !window_of(w + 1, PyTuple_GET_ITEM(item, 1)))
                goto refuse;
            break;
        default:
            if (size != 1 || !window_of(w, PyTuple_GET_ITEM(item, 0))) goto refuse;
        }
    }
    return (PyObject *)s;
refuse:
    Py_DECREF(s);
    Py_RETURN_NONE;
}

static PyMethodDef FlatEngine_methods[] = {
    {"start", (PyCFunction)FlatEngine_start, METH_NOARGS, "A fresh state (nothing seen yet)."},
    {"advance", (PyCFunction)(void (*)(void))FlatEngine_advance, METH_FASTCALL,
     "advance(state, high, low, close, volume, vwap): the values at this bar, or None (state "
     "unchanged) when the state must go on in Python."},
    {"snap", (PyCFunction)FlatEngine_snap, METH_O, "IndicatorEngine.snapshot's tuple of a state."},
    {"restore", (PyCFunction)FlatEngine_restore, METH_O,
     "A state from snap's tuple, or None for anything else."},
    {NULL}};

static PyTypeObject FlatEngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "flinktrade._exact.FlatEngine",
    .tp_basicsize = sizeof(FlatEngine),
    .tp_dealloc = (destructor)FlatEngine_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "FlatEngine(calcs, close_window, blank, layout, fingerprint, names): "
              "IndicatorEngine's calculators over a flat C state.",
    .tp_methods = FlatEngine_methods,
    .tp_new = FlatEngine_new,
};

/* -- the state as a Python value: copies, pickles, the calculators' view ---------------------- */

/* flinktrade.indicators.<name>(s): the Python side of a state's pickle and calculators' view */
static PyObject *indicators_hook(const char *name, FlatState *s) {
    PyObject *module = PyImport_ImportModule("flinktrade.indicators");
    if (module == NULL) return NULL;
    PyObject *hook = PyObject_GetAttrString(module, name);
    Py_DECREF(module);
    if (hook == NULL) return NULL;
    PyObject *result = PyObject_CallOneArg(hook, (PyObject *)s);
    Py_DECREF(hook);
    return result;
}

static PyObject *FlatState_deepcopy(FlatState *s, PyObject *memo) {
    FlatState *copy = PyObject_New(FlatState, &FlatStateType);
    if (copy == NULL) return NULL;
    copy->py = NULL;
    copy->engine = NULL;
    copy->block = PyMem_Malloc(s->engine->block_size);
    if (copy->block == NULL) {
        Py_DECREF(copy);
        return PyErr_NoMemory();
    }
    memcpy(copy->block, s->block, s->engine->block_size);
    Py_INCREF(s->engine);
    copy->engine = s->engine;
    copy->i = s->i;
    copy->has_prev = s->has_prev, copy->has_lr = s->has_lr;
    copy->prev_close = s->prev_close, copy->close = s->close, copy->high = s->high;
    copy->low = s->low, copy->volume = s->volume, copy->price = s->price;
    copy->log_return = s->log_return;
    copy->ncl = s->ncl, copy->chead = s->chead;
    point_windows(copy);
    if (s->py != NULL) {
        PyObject *module = PyImport_ImportModule("copy");
        if (module == NULL) goto fail;
        copy->py = PyObject_CallMethod(module, "deepcopy", "OO", s->py,
                                       memo == NULL ? Py_None : memo);
        Py_DECREF(module);
        if (copy->py == NULL) goto fail;
    }
    return (PyObject *)copy;
fail:
    Py_DECREF(copy);
    return NULL;
}

static PyObject *FlatState_copy(FlatState *s, PyObject *unused) { return FlatState_deepcopy(s, NULL); }

static PyObject *FlatState_reduce(FlatState *s, PyObject *unused) {
    return indicators_hook("_reduce_flat", s);
}

static PyObject *FlatState_get_calcs(FlatState *s, void *unused) {
    return indicators_hook("_flat_calcs", s);
}

static PyObject *FlatState_get_py(FlatState *s, void *unused) {
    if (s->py == NULL) Py_RETURN_NONE;
    Py_INCREF(s->py);
    return s->py;
}

static int FlatState_set_py(FlatState *s, PyObject *value, void *unused) {
    if (value == NULL || value == Py_None) {
        Py_CLEAR(s->py);
        return 0;
    }
    Py_INCREF(value);
    Py_XSETREF(s->py, value);
    return 0;
}

static PyObject *FlatState_get_names(FlatState *s, void *unused) {
    Py_INCREF(s->engine->names);
    return s->engine->names;
}

static PyMethodDef FlatState_methods[] = {
    {"__deepcopy__", (PyCFunction)FlatState_deepcopy, METH_O, "An independent copy."},
    {"__copy__", (PyCFunction)FlatState_copy, METH_NOARGS, "An independent copy."},
    {"__reduce__", (PyCFunction)FlatState_reduce, METH_NOARGS,
     "Pickled as its indicator set's names and its snapshot."},
    {NULL}};

static PyGetSetDef FlatState_getset[] = {
    {"calcs", (getter)FlatState_get_calcs, NULL,
     "the calculators of the same state in Python (a new copy: changing it changes nothing)", NULL},
    {"py", (getter)FlatState_get_py, (setter)FlatState_set_py,
     "the Python IndicatorState this state goes on as, once it had to (None before)", NULL},
    {"names", (getter)FlatState_get_names, NULL, "the indicator set's names", NULL},
    {NULL}};

static PyTypeObject FlatStateType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "flinktrade._exact.FlatState",
    .tp_basicsize = sizeof(FlatState),
    .tp_dealloc = (destructor)FlatState_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One symbol's indicator state in C numbers (FlatEngine's).",
    .tp_methods = FlatState_methods,
    .tp_getset = FlatState_getset,
};

/* -- a bar's prices in the job's text --------------------------------------------------------- */

/* ``text`` as a price in the job's shape, ``[0-9]{1,12}\.[0-9]{6}`` (``MinuteBars.price``'s, and
 * any DECIMAL(18, 6) written with its six decimals), into ``*unscaled`` (the price * 10**6);
 * 0 for any other text or object. A price of this shape is finite, has six decimals and is at
 * most ``events.MAX_PRICE``; it is at least ``events.MIN_PRICE`` unless it is zero. */
static int shaped_price(PyObject *text, int64_t *unscaled) {
    if (!PyUnicode_Check(text) || PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND) return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (n < 8 || n > 19) return 0; /* 1 to 12 digits, the point, 6 digits */
    const Py_UCS1 *c = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t point = n - 7;
    int64_t value = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i == point) {
            if (c[i] != '.') return 0;
            continue;
        }
        if (c[i] < '0' || c[i] > '9') return 0;
        value = value * 10 + (c[i] - '0');
    }
    *unscaled = value;
    return 1;
}

static PyObject *bar_prices_ok(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "bar_prices_ok(open, high, low, close)");
        return NULL;
    }
    int64_t v[4];
    for (int i = 0; i < 4; i++) {
        if (!shaped_price(args[i], &v[i]) || v[i] == 0) Py_RETURN_FALSE;
    }
    int64_t open = v[0], high = v[1], low = v[2], close = v[3];
    if (low <= open && low <= close && open <= high && close <= high) Py_RETURN_TRUE;
    Py_RETURN_FALSE;
}

static PyMethodDef module_methods[] = {
    {"bar_prices_ok", (PyCFunction)(void (*)(void))bar_prices_ok, METH_FASTCALL,
     "bar_prices_ok(open, high, low, close): True when the four are texts of the job's price shape\n"
     "(1 to 12 digits, a point, 6 digits; ASCII), none zero, and low <= open, close <= high: what\n"
     "pipeline.due's bar check would find nothing wrong with. False for anything else, which the\n"
     "full check then reads."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "flinktrade._exact",
    "The exact window sums of flinktrade.indicators in fixed-width integers, the flat indicator\n"
    "state, and the check of a bar's prices in the job's text.",
    -1, module_methods};

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
    if (PyType_Ready(&FlatEngineType) < 0 || PyType_Ready(&FlatStateType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&FlatEngineType);
    if (PyModule_AddObject(m, "FlatEngine", (PyObject *)&FlatEngineType) < 0) {
        Py_DECREF(&FlatEngineType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&FlatStateType);
    if (PyModule_AddObject(m, "FlatState", (PyObject *)&FlatStateType) < 0) {
        Py_DECREF(&FlatStateType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "VALUE_BITS", VALUE_BITS);
    PyModule_AddIntConstant(m, "MAX_N", MAX_N);
    return m;
}
