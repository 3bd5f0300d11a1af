/*
 * Comma-separated plain decimals ("-12.345") to float64, in one pass over the bytes.
 *
 * Why C: MOT files of a long sequence are tens of MB and parsing dominated evaluation time
 * even vectorised (decimal_text.py makes ~20 passes over the bytes with numpy). This is the
 * same rule as that numpy path, one byte at a time: a value with at most 15 digits is
 * mantissa / 10**k with both terms exact in float64, so one IEEE division gives the correctly
 * rounded double, the bits strtod returns. Anything else (exponents, spaces, blank lines, a
 * line with another column count, > 15 digits) makes parse() return -1, and the caller uses
 * the general parser.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static const double POW10[16] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

/* Ends a row: the columns after the parsed ones from `fill` (rows `width` wide). 0, or -1 when full. */
static int end_row(double *out, Py_ssize_t *count, Py_ssize_t capacity, Py_ssize_t ncols, Py_ssize_t width,
                   const double *fill)
{
    if (*count + (width - ncols) > capacity)
        return -1;
    for (Py_ssize_t k = ncols; k < width; k++)
        out[(*count)++] = fill[k];
    return 0;
}

/* Rows parsed into `out` (`width` values each), or -1 when the text is not plain decimals in `ncols` columns. */
static Py_ssize_t parse_table(const unsigned char *s, const unsigned char *end, Py_ssize_t ncols, Py_ssize_t width,
                              const double *fill, double *out, Py_ssize_t capacity)
{
    Py_ssize_t count = 0, column = 0;
    while (s < end) {
        int negative = 0, digits = 0, frac = -1;
        uint64_t mantissa = 0;
        if (*s == '-') {
            negative = 1;
            s++;
        }
        for (; s < end; s++) {
            unsigned c = *s;
            if (c - '0' < 10u) {
                mantissa = mantissa * 10 + (c - '0');
                digits++;
                if (frac >= 0)
                    frac++;
            } else if (c == '.' && frac < 0) {
                frac = 0;
            } else {
                break;
            }
        }
        if (digits == 0 || digits > 15 || count == capacity)
            return -1;
        double value = (double)mantissa;
        if (frac > 0)
            value /= POW10[frac];
        out[count++] = negative ? -value : value;
        column++;
        if (s == end) { /* last line without a newline */
            if (column != ncols || end_row(out, &count, capacity, ncols, width, fill))
                return -1;
            return count / width;
        }
        unsigned c = *s++;
        if (c == ',') {
            if (column >= ncols)
                return -1;
            continue;
        }
        if (c == '\r') {
            if (s == end || *s != '\n')
                return -1;
            s++;
            c = '\n';
        }
        if (c != '\n' || column != ncols || end_row(out, &count, capacity, ncols, width, fill))
            return -1;
        column = 0;
    }
    return count / width;
}

/* parse(data, ncols, out float64 buffer, fill float64 buffer) -> rows parsed, or -1. Rows are as wide as
 * `fill`, whose values past the first `ncols` fill the columns the text does not have. */
static PyObject *parse(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer data = {0}, out = {0}, fill = {0};
    Py_ssize_t ncols, rows;
    if (!PyArg_ParseTuple(args, "y*nw*y*", &data, &ncols, &out, &fill))
        return NULL;
    Py_ssize_t width = fill.len / (Py_ssize_t)sizeof(double);
    if (ncols < 1 || width < ncols) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&out);
        PyBuffer_Release(&fill);
        PyErr_SetString(PyExc_ValueError, "need 1 <= ncols <= len(fill)");
        return NULL;
    }
    const unsigned char *start = data.buf;
    Py_BEGIN_ALLOW_THREADS
    rows = parse_table(start, start + data.len, ncols, width, fill.buf, out.buf,
                       out.len / (Py_ssize_t)sizeof(double));
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    PyBuffer_Release(&out);
    PyBuffer_Release(&fill);
    return PyLong_FromSsize_t(rows);
}

static PyMethodDef methods[] = {
    {"parse", parse, METH_VARARGS, "Parse comma-separated plain decimals into a float64 buffer."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_decimal", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__decimal(void) { return PyModule_Create(&module); }
