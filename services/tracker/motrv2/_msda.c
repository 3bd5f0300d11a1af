/*
 * Multi-scale deformable attention sampling for inference on the CPU (MOTRv2's encoder and decoder).
 *
 * Why C: the pure-PyTorch path (layers._deformable_sampling) calls grid_sample on a (heads x channels, H, W)
 * layout and then stacks every sampled value before weighting them; on a CPU that is about half of a frame's
 * time. Here the value map is read as (pixels, heads, channels), so each bilinear corner is one contiguous
 * run of channels, and each sample is weighted and accumulated at once. The arithmetic is grid_sample's
 * (align_corners=False, zero padding: x = loc_x * W - 0.5, corners outside the map contribute nothing);
 * only the order of the additions differs, so results agree to float32 rounding (the tracking parity test
 * runs through this kernel). Gradients are not computed: training keeps the PyTorch path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* sample(value f32[N*H*D], shapes i64[L*2], starts i64[L], loc f32[Q*H*L*P*2], attn f32[Q*H*L*P],
 *        out f32[Q*H*D], heads, channels, levels, points) */
static PyObject *sample(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer value = {0}, shapes = {0}, starts = {0}, loc = {0}, attn = {0}, out = {0};
    Py_ssize_t H, D, L, P;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*w*nnnn", &value, &shapes, &starts, &loc, &attn, &out, &H, &D, &L, &P))
        return NULL;
    const float *v = value.buf, *lc = loc.buf, *aw = attn.buf;
    const int64_t *sh = shapes.buf, *st = starts.buf;
    float *o = out.buf;
    Py_ssize_t Q = out.len / (Py_ssize_t)sizeof(float) / (H * D);
    Py_BEGIN_ALLOW_THREADS
    memset(o, 0, (size_t)out.len);
    for (Py_ssize_t q = 0; q < Q; q++) {
        for (Py_ssize_t h = 0; h < H; h++) {
            float *acc = o + (q * H + h) * D;
            for (Py_ssize_t l = 0; l < L; l++) {
                const int64_t hl = sh[2 * l], wl = sh[2 * l + 1];
                const float *base = v + st[l] * H * D + h * D;
                for (Py_ssize_t p = 0; p < P; p++) {
                    Py_ssize_t k = ((q * H + h) * L + l) * P + p;
                    float a = aw[k];
                    float x = lc[2 * k] * (float)wl - 0.5f, y = lc[2 * k + 1] * (float)hl - 0.5f;
                    float xf = floorf(x), yf = floorf(y);
                    int64_t x0 = (int64_t)xf, y0 = (int64_t)yf;
                    float dx = x - xf, dy = y - yf;
                    float wts[4] = {(1 - dx) * (1 - dy), dx * (1 - dy), (1 - dx) * dy, dx * dy};
                    int64_t xs[4] = {x0, x0 + 1, x0, x0 + 1}, ys[4] = {y0, y0, y0 + 1, y0 + 1};
                    for (int c4 = 0; c4 < 4; c4++) {
                        if (xs[c4] < 0 || ys[c4] < 0 || xs[c4] >= wl || ys[c4] >= hl)
                            continue;
                        const float *px = base + (ys[c4] * wl + xs[c4]) * H * D;
                        float f = a * wts[c4];
                        for (Py_ssize_t c = 0; c < D; c++)
                            acc[c] += f * px[c];
                    }
                }
            }
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&value);
    PyBuffer_Release(&shapes);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&loc);
    PyBuffer_Release(&attn);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"sample", sample, METH_VARARGS, "Multi-scale deformable attention sampling (forward, float32)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_msda", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__msda(void) { return PyModule_Create(&module); }
