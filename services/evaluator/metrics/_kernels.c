/*
 * The per-frame work of TrackEval's HOTA, CLEAR and Identity in one compiled pass.
 *
 * Why C: TrackEval solves an assignment per frame and adds per-frame sums in a fixed order;
 * both are sequential, so numpy can only batch them with padding and Python loops (see
 * sequence.py), which stays several times slower than the 20x target. Here every frame is
 * visited once, IoUs above zero are kept sparse, and each floating-point value is produced
 * by the same IEEE operations, in the same order, as TrackEval's numpy code:
 *   - IoU exactly as `_calculate_box_ious` (x2 = x + w first, areas from the corners);
 *   - row sums of a frame's IoU matrix with numpy's pairwise summation (`pairwise_sum`),
 *     column sums and per-frame match sums strictly in order;
 *   - assignments with the algorithm of scipy's `linear_sum_assignment` (shortest augmenting
 *     path, Crouse 2016, including its tie-breaking), so ties resolve as TrackEval's do.
 * Build with -ffp-contract=off: a fused multiply-add would change the last bit.
 * Python (compiled.py) lays the data out and turns the returned counts into metrics.
 * `framewise` does the same for the group's greedy per-frame matching (framewise.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EPS DBL_EPSILON

/* numpy's pairwise sum of a contiguous float64 row (what `array.sum(axis=-1)` computes). */
static double pairwise_sum(const double *a, Py_ssize_t n)
{
    if (n < 8) {
        double res = 0.0;
        for (Py_ssize_t i = 0; i < n; i++)
            res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        Py_ssize_t i;
        for (int k = 0; k < 8; k++)
            r[k] = a[k];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int k = 0; k < 8; k++)
                r[k] += a[i + k];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            res += a[i];
        return res;
    }
    Py_ssize_t half = n / 2;
    half -= half % 8;
    return pairwise_sum(a, half) + pairwise_sum(a + half, n - half);
}

/* ---- rectangular assignment, the algorithm scipy's linear_sum_assignment runs ---- */

typedef struct {
    double *cost, *u, *v, *shortest;
    Py_ssize_t *path, *col4row, *row4col, *remaining;
    char *in_rows, *in_cols;
} Solver;

static void solver_free(Solver *s)
{
    free(s->cost); free(s->u); free(s->v); free(s->shortest);
    free(s->path); free(s->col4row); free(s->row4col); free(s->remaining);
    free(s->in_rows); free(s->in_cols);
    memset(s, 0, sizeof(*s));
}

static int solver_init(Solver *s, Py_ssize_t rows, Py_ssize_t cols)
{
    /* the solver may transpose, so both sides get room for the larger count */
    Py_ssize_t side = rows > cols ? rows : cols;
    if (side < 1)
        side = 1;
    memset(s, 0, sizeof(*s));
    s->cost = malloc(sizeof(double) * (size_t)(rows > 0 ? rows : 1) * (size_t)(cols > 0 ? cols : 1));
    s->u = malloc(sizeof(double) * side);
    s->v = malloc(sizeof(double) * side);
    s->shortest = malloc(sizeof(double) * side);
    s->path = malloc(sizeof(Py_ssize_t) * side);
    s->col4row = malloc(sizeof(Py_ssize_t) * side);
    s->row4col = malloc(sizeof(Py_ssize_t) * side);
    s->remaining = malloc(sizeof(Py_ssize_t) * side);
    s->in_rows = malloc(side);
    s->in_cols = malloc(side);
    if (!s->cost || !s->u || !s->v || !s->shortest || !s->path || !s->col4row || !s->row4col ||
        !s->remaining || !s->in_rows || !s->in_cols) {
        solver_free(s);
        return -1;
    }
    return 0;
}

/* Shortest augmenting path from free row `i`; returns the sink column or -1 (infeasible). */
static Py_ssize_t augment(Solver *s, Py_ssize_t nr, Py_ssize_t nc, const double *cost, Py_ssize_t i,
                          double *min_out)
{
    double min_val = 0.0;
    Py_ssize_t left = nc, sink = -1;
    for (Py_ssize_t k = 0; k < nc; k++)
        s->remaining[k] = nc - k - 1; /* reversed: a constant matrix gives the identity */
    memset(s->in_rows, 0, nr);
    memset(s->in_cols, 0, nc);
    for (Py_ssize_t k = 0; k < nc; k++)
        s->shortest[k] = INFINITY;
    while (sink == -1) {
        Py_ssize_t index = -1;
        double lowest = INFINITY;
        s->in_rows[i] = 1;
        for (Py_ssize_t k = 0; k < left; k++) {
            Py_ssize_t j = s->remaining[k];
            double r = min_val + cost[i * nc + j] - s->u[i] - s->v[j];
            if (r < s->shortest[j]) {
                s->path[j] = i;
                s->shortest[j] = r;
            }
            /* among equal costs prefer a free column (a sink) */
            if (s->shortest[j] < lowest || (s->shortest[j] == lowest && s->row4col[j] == -1)) {
                lowest = s->shortest[j];
                index = k;
            }
        }
        min_val = lowest;
        if (min_val == INFINITY)
            return -1;
        Py_ssize_t j = s->remaining[index];
        if (s->row4col[j] == -1)
            sink = j;
        else
            i = s->row4col[j];
        s->in_cols[j] = 1;
        s->remaining[index] = s->remaining[--left];
    }
    *min_out = min_val;
    return sink;
}

/*
 * Minimise `cost` (nr x nc, row-major; the caller's buffer is not modified). Writes, for every
 * original row, its column or -1 into `match` (length nr). Returns 0, or -1 if infeasible.
 */
static int solve(Solver *s, Py_ssize_t nr, Py_ssize_t nc, const double *cost, Py_ssize_t *match)
{
    for (Py_ssize_t r = 0; r < nr; r++)
        match[r] = -1;
    if (nr == 0 || nc == 0)
        return 0;
    int transpose = nc < nr;
    const double *c = cost;
    if (transpose) {
        for (Py_ssize_t r = 0; r < nr; r++)
            for (Py_ssize_t k = 0; k < nc; k++)
                s->cost[k * nr + r] = cost[r * nc + k];
        c = s->cost;
        Py_ssize_t t = nr;
        nr = nc;
        nc = t;
    }
    for (Py_ssize_t k = 0; k < nr; k++) {
        s->u[k] = 0.0;
        s->col4row[k] = -1;
    }
    for (Py_ssize_t k = 0; k < nc; k++) {
        s->v[k] = 0.0;
        s->path[k] = -1;
        s->row4col[k] = -1;
    }
    for (Py_ssize_t row = 0; row < nr; row++) {
        double min_val;
        Py_ssize_t sink = augment(s, nr, nc, c, row, &min_val);
        if (sink < 0)
            return -1;
        s->u[row] += min_val;
        for (Py_ssize_t i = 0; i < nr; i++)
            if (s->in_rows[i] && i != row)
                s->u[i] += min_val - s->shortest[s->col4row[i]];
        for (Py_ssize_t j = 0; j < nc; j++)
            if (s->in_cols[j])
                s->v[j] -= min_val - s->shortest[j];
        Py_ssize_t j = sink;
        for (;;) {
            Py_ssize_t i = s->path[j];
            s->row4col[j] = i;
            Py_ssize_t previous = s->col4row[i];
            s->col4row[i] = j;
            j = previous;
            if (i == row)
                break;
        }
    }
    if (transpose) /* solved rows are the original columns */
        for (Py_ssize_t k = 0; k < nr; k++)
            match[s->col4row[k]] = k;
    else
        for (Py_ssize_t k = 0; k < nr; k++)
            match[k] = s->col4row[k];
    return 0;
}

/* ---- the sequence pass ---- */

/* A frame's IoUs above zero, in (gt row, tracker column) order. */
typedef struct {
    int32_t *row, *col;
    double *sim;
    Py_ssize_t len, cap;
} Sparse;

static int sparse_push(Sparse *sp, int32_t r, int32_t c, double value)
{
    if (sp->len == sp->cap) {
        Py_ssize_t cap = sp->cap ? sp->cap * 2 : 4096;
        int32_t *row = realloc(sp->row, sizeof(int32_t) * cap);
        if (row) sp->row = row;
        int32_t *col = realloc(sp->col, sizeof(int32_t) * cap);
        if (col) sp->col = col;
        double *sim = realloc(sp->sim, sizeof(double) * cap);
        if (sim) sp->sim = sim;
        if (!row || !col || !sim)
            return -1;
        sp->cap = cap;
    }
    sp->row[sp->len] = r;
    sp->col[sp->len] = c;
    sp->sim[sp->len] = value;
    sp->len++;
    return 0;
}

/* Boxes as TrackEval converts them: x2 = x + w, y2 = y + h, area from the corners. */
typedef struct {
    double *x1, *y1, *x2, *y2, *area;
} Corners;

static int corners(Corners *c, const double *boxes, Py_ssize_t n)
{
    size_t size = sizeof(double) * (size_t)(n > 0 ? n : 1);
    c->x1 = malloc(size); c->y1 = malloc(size); c->x2 = malloc(size); c->y2 = malloc(size);
    c->area = malloc(size);
    if (!c->x1 || !c->y1 || !c->x2 || !c->y2 || !c->area)
        return -1;
    for (Py_ssize_t k = 0; k < n; k++) {
        const double *b = boxes + 4 * k;
        c->x1[k] = b[0];
        c->y1[k] = b[1];
        c->x2[k] = b[0] + b[2];
        c->y2[k] = b[1] + b[3];
        c->area[k] = (c->x2[k] - c->x1[k]) * (c->y2[k] - c->y1[k]);
    }
    return 0;
}

static void corners_free(Corners *c)
{
    free(c->x1); free(c->y1); free(c->x2); free(c->y2); free(c->area);
}

/* np.minimum / np.maximum for non-NaN values (the first operand wins ties, as in numpy) */
static inline double min_np(double a, double b) { return a <= b ? a : b; }
static inline double max_np(double a, double b) { return a >= b ? a : b; }

/* TrackEval's IoU of GT box i and tracker box j, given their overlap in x (`width`). A pair
 * that does not overlap gets an intersection of 0, hence an IoU of 0, whatever the areas. */
static inline double iou_from_width(const Corners *g, Py_ssize_t i, const Corners *p, Py_ssize_t j, double width)
{
    if (!(width > 0.0))
        return 0.0;
    double height = min_np(g->y2[i], p->y2[j]) - max_np(g->y1[i], p->y1[j]);
    if (!(height > 0.0))
        return 0.0;
    double inter = width * height;
    double uni = g->area[i] + p->area[j] - inter;
    if (g->area[i] <= 0.0 + EPS || p->area[j] <= 0.0 + EPS || uni <= 0.0 + EPS)
        inter = 0.0;
    if (uni <= 0.0 + EPS)
        uni = 1.0;
    return inter / uni;
}

static inline double pair_iou(const Corners *g, Py_ssize_t i, const Corners *p, Py_ssize_t j)
{
    return iou_from_width(g, i, p, j, min_np(g->x2[i], p->x2[j]) - max_np(g->x1[i], p->x1[j]));
}

/* hit[j] = 1 where box j's x-range [x1, x2] may overlap (a1, a2): two compares per box, no branch (gcc 12
 * at -O3 does not vectorise it; without the branches it still ran the TrackEval kernel ~10% faster). */
static void may_overlap(const double *restrict x1, const double *restrict x2, Py_ssize_t n, double a1, double a2,
                        unsigned char *restrict hit)
{
    for (Py_ssize_t j = 0; j < n; j++)
        hit[j] = (x2[j] > a1) & (x1[j] < a2);
}

typedef struct {
    /* inputs */
    Py_ssize_t T, G, P, A;
    const int64_t *goff, *poff, *gid, *pid;
    const double *alpha;
    Corners gc, pc;
    double threshold;
    /* outputs */
    double *idpot, *tp, *loc, *counts, clear_tp, idsw, motp_sum;
    int64_t *matched, *frags, *pairs;
    /* work */
    double *align; /* HOTA potential matches, then the global alignment score */
    Sparse sp;
    Py_ssize_t *nz_off;
    double *row_buf, *score, *colsum, *rowsum, *frame_loc;
    Py_ssize_t *row_nnz, *row_start, *row_count, *col_count, *match;
    int32_t *cand_row, *cand_col;
    double *cand_val, *cand_sim;
    Py_ssize_t *prev_step, *prev_any, *last_set, n_last;
    Py_ssize_t *parent, *group_start, *group_of, *grouped;
    unsigned char *hit;
    int use_groups;
    Solver solver;
} Work;

/* Pairs with no other candidate in their row or column are exactly what the solver returns. */
static int one_to_one(Work *w, Py_ssize_t ng, Py_ssize_t np_, Py_ssize_t n)
{
    memset(w->row_count, 0, sizeof(Py_ssize_t) * ng);
    memset(w->col_count, 0, sizeof(Py_ssize_t) * np_);
    for (Py_ssize_t k = 0; k < n; k++)
        if (++w->row_count[w->cand_row[k]] > 1 || ++w->col_count[w->cand_col[k]] > 1)
            return 0;
    return 1;
}

/* ---- small competing groups without the solver ---- */

#define COMPONENT_EDGES 16     /* larger groups of competing pairs go to the solver */
#define ENUMERATION_NODES 4096 /* and so do groups with too many matchings to list */

typedef struct {
    const Py_ssize_t *edge; /* candidate indices of one component, in (row, col) order */
    int m;
    long visited;
    uint32_t best_mask;
    double best, second;
} Enumeration;

/* Every matching of the component's edges, keeping the best total and the runner-up. */
static void enumerate_matchings(Work *w, Enumeration *e, int k, uint32_t mask, double total)
{
    if (++e->visited > ENUMERATION_NODES)
        return;
    if (k == e->m) {
        if (total > e->best) {
            e->second = e->best;
            e->best = total;
            e->best_mask = mask;
        } else if (total > e->second) {
            e->second = total;
        }
        return;
    }
    Py_ssize_t c = e->edge[k];
    int32_t r = w->cand_row[c], col = w->cand_col[c];
    if (!w->row_count[r] && !w->col_count[col]) {
        w->row_count[r] = w->col_count[col] = 1;
        enumerate_matchings(w, e, k + 1, mask | (1u << k), total + w->cand_val[c]);
        w->row_count[r] = w->col_count[col] = 0;
    }
    enumerate_matchings(w, e, k + 1, mask, total);
}

static Py_ssize_t find_root(Py_ssize_t *parent, Py_ssize_t x)
{
    while (parent[x] != x)
        x = parent[x] = parent[parent[x]];
    return x;
}

/*
 * The optimum decomposes over connected groups of candidate pairs (every other pair scores 0).
 * A group whose best matching beats every other matching of the group by more than `margin`
 * is the solver's choice too: the solver's floating-point error is many orders of magnitude
 * below the margin. Returns 0 with w->match set, or 1 when some group is too large or has a
 * (near-)tie, where only the solver itself reproduces scipy's tie-breaking.
 */
static int match_by_groups(Work *w, Py_ssize_t ng, Py_ssize_t np_, Py_ssize_t n, double floor)
{
    Py_ssize_t nodes = ng + np_, *parent = w->parent, *start = w->group_start;
    double largest = 1.0;
    for (Py_ssize_t x = 0; x < nodes; x++) {
        parent[x] = x;
        start[x] = 0;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_ssize_t a = find_root(parent, w->cand_row[k]), b = find_root(parent, ng + w->cand_col[k]);
        if (a != b)
            parent[a] = b;
        if (fabs(w->cand_val[k]) > largest)
            largest = fabs(w->cand_val[k]);
    }
    const double margin = 1e-9 * largest * (double)nodes;
    /* bucket the candidates by group, keeping their order */
    for (Py_ssize_t k = 0; k < n; k++)
        start[w->group_of[k] = find_root(parent, w->cand_row[k])]++;
    Py_ssize_t offset = 0;
    for (Py_ssize_t x = 0; x < nodes; x++) {
        Py_ssize_t size = start[x];
        start[x] = offset;
        offset += size;
    }
    for (Py_ssize_t k = 0; k < n; k++)
        w->grouped[start[w->group_of[k]]++] = k; /* start[x] now ends group x */
    memset(w->row_count, 0, sizeof(Py_ssize_t) * ng);
    memset(w->col_count, 0, sizeof(Py_ssize_t) * np_);
    for (Py_ssize_t k = 0, first = 0; k < n; k++) {
        if (k + 1 < n && w->group_of[w->grouped[k + 1]] == w->group_of[w->grouped[k]])
            continue; /* group runs from first to k */
        Enumeration e = {w->grouped + first, (int)(k - first + 1), 0, 0, -INFINITY, -INFINITY};
        first = k + 1;
        if (e.m > COMPONENT_EDGES)
            return 1;
        enumerate_matchings(w, &e, 0, 0, 0.0);
        if (e.visited > ENUMERATION_NODES || !(e.best - e.second > margin))
            return 1;
        for (int b = 0; b < e.m; b++)
            if (e.best_mask & (1u << b) && w->cand_val[e.edge[b]] > floor)
                w->match[w->cand_row[e.edge[b]]] = w->cand_col[e.edge[b]];
    }
    return 0;
}

/* Each row's match among the n candidates (scores in cand_val, every other pair scores 0):
 * what scipy's solver returns on -score, as TrackEval calls it. The solver runs only when the
 * candidates neither form a matching already nor split into small groups with a clear best.
 * Matches scoring `floor` or less are dropped, so every match is a candidate. */
static int match_candidates(Work *w, Py_ssize_t ng, Py_ssize_t np_, Py_ssize_t n, double floor)
{
    for (Py_ssize_t i = 0; i < ng; i++)
        w->match[i] = -1;
    if (one_to_one(w, ng, np_, n)) {
        for (Py_ssize_t k = 0; k < n; k++)
            if (w->cand_val[k] > floor)
                w->match[w->cand_row[k]] = w->cand_col[k];
        return 0;
    }
    if (w->use_groups && match_by_groups(w, ng, np_, n, floor) == 0)
        return 0;
    for (Py_ssize_t k = 0; k < ng * np_; k++)
        w->score[k] = -0.0; /* -score_mat of TrackEval's zeros */
    for (Py_ssize_t k = 0; k < n; k++)
        w->score[w->cand_row[k] * np_ + w->cand_col[k]] = -w->cand_val[k];
    if (solve(&w->solver, ng, np_, w->score, w->match))
        return -1;
    for (Py_ssize_t i = 0; i < ng; i++)
        if (w->match[i] >= 0 && !(-w->score[i * np_ + w->match[i]] > floor))
            w->match[i] = -1;
    return 0;
}

static inline void add_candidate(Work *w, Py_ssize_t *n, Py_ssize_t i, Py_ssize_t j, double value, double sim)
{
    w->cand_row[*n] = (int32_t)i;
    w->cand_col[*n] = (int32_t)j;
    w->cand_val[*n] = value;
    w->cand_sim[(*n)++] = sim;
}

/* Pass 1 for frame t: IoUs, HOTA potential matches, Identity counts, CLEAR. */
static int first_pass_frame(Work *w, Py_ssize_t t)
{
    const Py_ssize_t g0 = (Py_ssize_t)w->goff[t], ng = (Py_ssize_t)w->goff[t + 1] - g0;
    const Py_ssize_t p0 = (Py_ssize_t)w->poff[t], np_ = (Py_ssize_t)w->poff[t + 1] - p0;
    const Py_ssize_t P = w->P, first = w->sp.len;
    const double *px1 = w->pc.x1 + p0, *px2 = w->pc.x2 + p0;
    Sparse *sp = &w->sp;
    for (Py_ssize_t j = 0; j < np_; j++)
        w->colsum[j] = 0.0;
    unsigned char *hit = w->hit;
    for (Py_ssize_t i = 0; i < ng; i++) {
        const double ax1 = w->gc.x1[g0 + i], ax2 = w->gc.x2[g0 + i];
        w->row_start[i] = sp->len;
        /* which pairs may overlap in x, for the whole row first (a loop without branches), then the few
         * that do: most pairs do not, and a branch per pair mispredicted often. For finite values
         * min(ax2, px2) - max(ax1, px1) > 0 implies px2 > ax1 and px1 < ax2, so no pair is lost; the
         * width below decides, as before. */
        may_overlap(px1, px2, np_, ax1, ax2, hit);
        for (Py_ssize_t j = 0; j < np_; j++) {
            if (!hit[j])
                continue;
            double width = min_np(ax2, px2[j]) - max_np(ax1, px1[j]);
            double s = iou_from_width(&w->gc, g0 + i, &w->pc, p0 + j, width);
            if (s != 0.0) {
                if (sparse_push(sp, (int32_t)i, (int32_t)j, s))
                    return -1;
                w->colsum[j] += s; /* rows in order, as numpy sums over axis 0 */
            }
        }
        w->row_nnz[i] = sp->len - w->row_start[i];
    }
    /* HOTA potential matches: sim / (column sum + row sum - sim), summed over frames */
    for (Py_ssize_t i = 0; i < ng; i++) {
        const Py_ssize_t start = w->row_start[i], end = start + w->row_nnz[i];
        double total = 0.0;
        if (w->row_nnz[i] <= 2) { /* with at most two non-zero terms any order gives the same bits */
            for (Py_ssize_t k = start; k < end; k++)
                total += sp->sim[k];
        } else { /* numpy's pairwise order over the whole row, zeros included */
            for (Py_ssize_t k = start; k < end; k++)
                w->row_buf[sp->col[k]] = sp->sim[k];
            total = pairwise_sum(w->row_buf, np_);
            for (Py_ssize_t k = start; k < end; k++)
                w->row_buf[sp->col[k]] = 0.0;
        }
        w->rowsum[i] = total;
    }
    for (Py_ssize_t k = first; k < sp->len; k++) {
        double denom = w->colsum[sp->col[k]] + w->rowsum[sp->row[k]] - sp->sim[k];
        if (denom > 0.0 + EPS)
            w->align[w->gid[g0 + sp->row[k]] * P + w->pid[p0 + sp->col[k]]] += sp->sim[k] / denom;
    }
    /* Identity counts pairs with IoU >= threshold; CLEAR's candidates have IoU >= threshold - eps */
    const double clear_min = w->threshold - EPS;
    Py_ssize_t n = 0;
    if (clear_min > 0.0) {
        for (Py_ssize_t k = first; k < sp->len; k++) {
            double s = sp->sim[k];
            if (s >= w->threshold)
                w->idpot[w->gid[g0 + sp->row[k]] * P + w->pid[p0 + sp->col[k]]] += 1.0;
            if (s >= clear_min)
                add_candidate(w, &n, sp->row[k], sp->col[k], s, s);
        }
    } else { /* a threshold at or below eps admits pairs that do not overlap at all */
        for (Py_ssize_t i = 0; i < ng; i++)
            for (Py_ssize_t j = 0; j < np_; j++) {
                double s = pair_iou(&w->gc, g0 + i, &w->pc, p0 + j);
                if (s >= w->threshold)
                    w->idpot[w->gid[g0 + i] * P + w->pid[p0 + j]] += 1.0;
                if (s >= clear_min)
                    add_candidate(w, &n, i, j, s, s);
            }
    }
    /* CLEAR's score: 1000 * (same tracker as in the previous processed frame) + IoU */
    for (Py_ssize_t k = 0; k < n; k++) {
        int same = w->prev_step[w->gid[g0 + w->cand_row[k]]] == w->pid[p0 + w->cand_col[k]];
        w->cand_val[k] = (double)(1000 * same) + w->cand_val[k];
    }
    if (match_candidates(w, ng, np_, n, 0.0 + EPS))
        return -2;
    /* every match reads the previous frame's state before any of it is replaced; candidates
     * are in row order, so the frame's IoU sum adds in TrackEval's order */
    double frame_sum = 0.0;
    Py_ssize_t n_match = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (w->match[w->cand_row[k]] != w->cand_col[k])
            continue;
        Py_ssize_t g = w->gid[g0 + w->cand_row[k]], p = w->pid[p0 + w->cand_col[k]];
        frame_sum += w->cand_sim[k];
        n_match++;
        if (w->prev_any[g] >= 0 && w->prev_any[g] != p)
            w->idsw += 1.0;
        if (w->prev_step[g] < 0)
            w->frags[g]++;
        w->matched[g]++;
        w->pairs[g0 + w->cand_row[k]] = p0 + w->cand_col[k];
    }
    for (Py_ssize_t k = 0; k < w->n_last; k++)
        w->prev_step[w->last_set[k]] = -1;
    w->n_last = 0;
    for (Py_ssize_t i = 0; i < ng; i++) {
        if (w->match[i] < 0)
            continue;
        Py_ssize_t g = w->gid[g0 + i];
        w->prev_step[g] = w->prev_any[g] = w->pid[p0 + w->match[i]];
        w->last_set[w->n_last++] = g;
    }
    w->clear_tp += (double)n_match;
    if (n_match > 0)
        w->motp_sum += frame_sum;
    return 0;
}

/* Pass 2 for frame t: HOTA's matching on alignment * IoU, counted at every alpha. A pair's
 * count goes to row (alphas passed - 1) of `counts`; run() turns those into per-alpha counts. */
static int second_pass_frame(Work *w, Py_ssize_t t)
{
    const Py_ssize_t g0 = (Py_ssize_t)w->goff[t], ng = (Py_ssize_t)w->goff[t + 1] - g0;
    const Py_ssize_t p0 = (Py_ssize_t)w->poff[t], np_ = (Py_ssize_t)w->poff[t + 1] - p0;
    const Py_ssize_t P = w->P, GP = w->G * w->P, A = w->A;
    const Sparse *sp = &w->sp;
    Py_ssize_t n = 0;
    /* every pair with IoU > 0 has alignment > 0, so only zero-IoU pairs score 0: they can be
     * matched but pass no alpha */
    for (Py_ssize_t k = w->nz_off[t]; k < w->nz_off[t + 1]; k++) {
        double score = w->align[w->gid[g0 + sp->row[k]] * P + w->pid[p0 + sp->col[k]]] * sp->sim[k];
        if (score > 0.0)
            add_candidate(w, &n, sp->row[k], sp->col[k], score, sp->sim[k]);
    }
    if (match_candidates(w, ng, np_, n, 0.0))
        return -2;
    for (Py_ssize_t a = 0; a < A; a++)
        w->frame_loc[a] = 0.0;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (w->match[w->cand_row[k]] != w->cand_col[k])
            continue;
        const double s = w->cand_sim[k];
        Py_ssize_t passed = 0;
        while (passed < A && s >= w->alpha[passed] - EPS) {
            w->tp[passed] += 1.0;
            w->frame_loc[passed] += s; /* Python's sum over the frame's matches, in row order */
            passed++;
        }
        if (passed > 0)
            w->counts[(passed - 1) * GP + w->gid[g0 + w->cand_row[k]] * P + w->pid[p0 + w->cand_col[k]]] += 1.0;
    }
    for (Py_ssize_t a = 0; a < A; a++)
        w->loc[a] += w->frame_loc[a];
    return 0;
}

static void work_free(Work *w)
{
    free(w->sp.row); free(w->sp.col); free(w->sp.sim); free(w->nz_off);
    free(w->row_buf); free(w->score); free(w->colsum); free(w->rowsum); free(w->frame_loc);
    free(w->row_nnz); free(w->row_start); free(w->row_count); free(w->col_count); free(w->match);
    free(w->cand_row); free(w->cand_col); free(w->cand_val); free(w->cand_sim);
    free(w->prev_step); free(w->prev_any); free(w->last_set);
    free(w->parent); free(w->group_start); free(w->group_of); free(w->grouped); free(w->hit);
    corners_free(&w->gc);
    corners_free(&w->pc);
    solver_free(&w->solver);
}

static int work_alloc(Work *w, const double *g_boxes, const double *p_boxes)
{
    Py_ssize_t max_g = 1, max_p = 1, G = w->G > 0 ? w->G : 1;
    for (Py_ssize_t t = 0; t < w->T; t++) {
        if (w->goff[t + 1] - w->goff[t] > max_g) max_g = (Py_ssize_t)(w->goff[t + 1] - w->goff[t]);
        if (w->poff[t + 1] - w->poff[t] > max_p) max_p = (Py_ssize_t)(w->poff[t + 1] - w->poff[t]);
    }
    if (corners(&w->gc, g_boxes, (Py_ssize_t)w->goff[w->T]) || corners(&w->pc, p_boxes, (Py_ssize_t)w->poff[w->T]))
        return -1;
    Py_ssize_t cells = max_g * max_p;
    w->nz_off = calloc((size_t)w->T + 1, sizeof(Py_ssize_t));
    w->row_buf = calloc((size_t)max_p, sizeof(double));
    w->hit = malloc((size_t)max_p);
    w->score = malloc(sizeof(double) * cells);
    w->colsum = malloc(sizeof(double) * max_p);
    w->rowsum = malloc(sizeof(double) * max_g);
    w->frame_loc = malloc(sizeof(double) * (w->A > 0 ? w->A : 1));
    w->row_nnz = malloc(sizeof(Py_ssize_t) * max_g);
    w->row_start = malloc(sizeof(Py_ssize_t) * max_g);
    w->row_count = malloc(sizeof(Py_ssize_t) * max_g);
    w->col_count = malloc(sizeof(Py_ssize_t) * max_p);
    w->match = malloc(sizeof(Py_ssize_t) * max_g);
    w->cand_row = malloc(sizeof(int32_t) * cells);
    w->cand_col = malloc(sizeof(int32_t) * cells);
    w->cand_val = malloc(sizeof(double) * cells);
    w->cand_sim = malloc(sizeof(double) * cells);
    w->prev_step = malloc(sizeof(Py_ssize_t) * G);
    w->prev_any = malloc(sizeof(Py_ssize_t) * G);
    w->last_set = malloc(sizeof(Py_ssize_t) * max_g);
    w->parent = malloc(sizeof(Py_ssize_t) * (max_g + max_p));
    w->group_start = malloc(sizeof(Py_ssize_t) * (max_g + max_p));
    w->group_of = malloc(sizeof(Py_ssize_t) * cells);
    w->grouped = malloc(sizeof(Py_ssize_t) * cells);
    if (!w->hit || !w->parent || !w->group_start || !w->group_of || !w->grouped ||
        !w->nz_off || !w->row_buf || !w->score || !w->colsum || !w->rowsum || !w->frame_loc ||
        !w->row_nnz || !w->row_start || !w->row_count || !w->col_count || !w->match || !w->cand_row ||
        !w->cand_col || !w->cand_val || !w->cand_sim || !w->prev_step || !w->prev_any || !w->last_set ||
        solver_init(&w->solver, max_g, max_p))
        return -1;
    for (Py_ssize_t k = 0; k < G; k++)
        w->prev_step[k] = w->prev_any[k] = -1;
    return 0;
}

static int run(Work *w, const int64_t *g_count, const int64_t *p_count)
{
    for (Py_ssize_t t = 0; t < w->T; t++) {
        if (w->goff[t + 1] > w->goff[t] && w->poff[t + 1] > w->poff[t]) {
            int status = first_pass_frame(w, t);
            if (status)
                return status;
        }
        w->nz_off[t + 1] = w->sp.len; /* frame t's IoUs are sp[nz_off[t], nz_off[t + 1]) */
    }
    /* global alignment: potential / (gt id count + tracker id count - potential) */
    for (Py_ssize_t g = 0; g < w->G; g++)
        for (Py_ssize_t p = 0; p < w->P; p++) {
            double *cell = w->align + g * w->P + p;
            *cell = *cell / ((double)g_count[g] + (double)p_count[p] - *cell);
        }
    for (Py_ssize_t t = 0; t < w->T; t++)
        if (w->goff[t + 1] > w->goff[t] && w->poff[t + 1] > w->poff[t]) {
            int status = second_pass_frame(w, t);
            if (status)
                return status;
        }
    /* a match passing k alphas counts at alphas 0..k-1: suffix sums, in place */
    const Py_ssize_t GP = w->G * w->P;
    for (Py_ssize_t a = w->A - 2; a >= 0; a--)
        for (Py_ssize_t c = 0; c < GP; c++)
            w->counts[a * GP + c] += w->counts[(a + 1) * GP + c];
    return 0;
}

#define N_BUFFERS 18

/*
 * evaluate(T, G, P, threshold, use_groups, gt_offsets, gt_ids, gt_boxes, trk_offsets, trk_ids, trk_boxes,
 *          gt_id_counts, trk_id_counts, alphas,
 *          out id_potential[G*P], hota_tp[A], hota_loc[A], hota_counts[A*G*P],
 *          clear_totals[3], gt_matched[G], gt_frags[G], alignment[G*P], clear_pairs[n_gt]) -> None
 * Rows are grouped by frame (offsets of length T + 1), ids relabelled 0..G-1 / 0..P-1, boxes
 * x, y, w, h; integer arrays are int64, the rest float64, outputs zero-filled by the caller but
 * clear_pairs, filled with -1: CLEAR's matching, the tracker row (by offset) each GT row was matched to
 * (what the error events are read from).
 */
static PyObject *evaluate(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer b[N_BUFFERS];
    memset(b, 0, sizeof(b));
    Work w;
    memset(&w, 0, sizeof(w));
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "nnndpy*y*y*y*y*y*y*y*y*w*w*w*w*w*w*w*w*w*", &w.T, &w.G, &w.P, &w.threshold, &w.use_groups, &b[0],
                          &b[1], &b[2], &b[3], &b[4], &b[5], &b[6], &b[7], &b[8], &b[9], &b[10], &b[11],
                          &b[12], &b[13], &b[14], &b[15], &b[16], &b[17]))
        return NULL;
    w.A = b[8].len / (Py_ssize_t)sizeof(double);
    const Py_ssize_t n_gt = b[1].len / 8, n_trk = b[4].len / 8;
    const Py_ssize_t expected[N_BUFFERS] = {w.T + 1, n_gt, 4 * n_gt, w.T + 1, n_trk, 4 * n_trk, w.G, w.P, w.A,
                                            w.G * w.P, w.A, w.A, w.A * w.G * w.P, 3, w.G, w.G, w.G * w.P, n_gt};
    for (int k = 0; k < N_BUFFERS; k++)
        if (b[k].len != 8 * expected[k]) {
            PyErr_Format(PyExc_ValueError, "evaluate: argument %d holds %zd bytes, expected %zd", k + 6, b[k].len,
                         8 * expected[k]);
            goto done;
        }
    w.goff = b[0].buf; w.gid = b[1].buf; w.poff = b[3].buf; w.pid = b[4].buf; w.alpha = b[8].buf;
    for (Py_ssize_t a = 1; a < w.A; a++)
        if (!(w.alpha[a] >= w.alpha[a - 1])) {
            PyErr_SetString(PyExc_ValueError, "evaluate: alphas must be ascending");
            goto done;
        }
    if (w.goff[w.T] != n_gt || w.poff[w.T] != n_trk) {
        PyErr_SetString(PyExc_ValueError, "evaluate: offsets do not end at the row counts");
        goto done;
    }
    w.idpot = b[9].buf; w.tp = b[10].buf; w.loc = b[11].buf; w.counts = b[12].buf;
    w.matched = b[14].buf; w.frags = b[15].buf; w.align = b[16].buf; w.pairs = b[17].buf;
    if (work_alloc(&w, b[2].buf, b[5].buf)) {
        PyErr_NoMemory();
        goto done;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = run(&w, b[6].buf, b[7].buf);
    Py_END_ALLOW_THREADS
    if (status == -1) {
        PyErr_NoMemory();
        goto done;
    }
    if (status == -2) {
        PyErr_SetString(PyExc_ValueError, "evaluate: an assignment was infeasible (non-finite IoU?)");
        goto done;
    }
    double *totals = b[13].buf;
    totals[0] = w.clear_tp;
    totals[1] = w.idsw;
    totals[2] = w.motp_sum;
    result = Py_None;
    Py_INCREF(result);
done:
    work_free(&w);
    for (int k = 0; k < N_BUFFERS; k++)
        if (b[k].obj)
            PyBuffer_Release(&b[k]);
    return result;
}

/* assign(cost float64[rows*cols], rows, cols, out int64[rows]) -> None: the solver alone, for tests */
static PyObject *assign(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer cost = {0}, out = {0};
    Py_ssize_t rows, cols;
    PyObject *result = NULL;
    Solver s;
    memset(&s, 0, sizeof(s));
    Py_ssize_t *match = NULL;
    if (!PyArg_ParseTuple(args, "y*nnw*", &cost, &rows, &cols, &out))
        return NULL;
    if (rows < 0 || cols < 0 || cost.len != 8 * rows * cols || out.len != 8 * rows) {
        PyErr_SetString(PyExc_ValueError, "assign: buffer sizes do not match rows x cols");
        goto done;
    }
    match = malloc(sizeof(Py_ssize_t) * (rows > 0 ? rows : 1));
    if (!match || solver_init(&s, rows, cols)) {
        PyErr_NoMemory();
        goto done;
    }
    if (solve(&s, rows, cols, cost.buf, match)) {
        PyErr_SetString(PyExc_ValueError, "cost matrix is infeasible");
        goto done;
    }
    for (Py_ssize_t r = 0; r < rows; r++)
        ((int64_t *)out.buf)[r] = match[r];
    result = Py_None;
    Py_INCREF(result);
done:
    free(match);
    solver_free(&s);
    PyBuffer_Release(&cost);
    PyBuffer_Release(&out);
    return result;
}


/* ---- the group's framewise block (framewise.py), compiled ----------------------------------------- */

typedef struct {
    double iou;
    Py_ssize_t g, p;
} Pair;

/* descending (iou, g, p): Python's sorted(tuples, reverse=True) in framewise._greedy */
static int pair_desc(const void *a, const void *b)
{
    const Pair *x = a, *y = b;
    if (x->iou != y->iou)
        return x->iou < y->iou ? 1 : -1;
    if (x->g != y->g)
        return x->g < y->g ? 1 : -1;
    return (x->p < y->p) - (x->p > y->p);
}

/* The frame loop of framewise(): 0, -1 when `ious` is too small. Runs without the GIL. */
static int framewise_frames(const int64_t *gbounds, const int64_t *pbounds, const int64_t *gids, const int64_t *pids,
                            const double *G, const double *P, Py_ssize_t frames, double threshold, int64_t *tp,
                            double *ious, Py_ssize_t capacity, Pair *pairs, char *used_g, char *used_p,
                            double *pc, int64_t *prev, int64_t *cur, Py_ssize_t *n_ious, long long *switches)
{
    const int positive = threshold > 0; /* then pairs that do not overlap can be skipped unseen */
    Py_ssize_t n_prev = 0;
    for (Py_ssize_t f = 0; f < frames; f++) {
        Py_ssize_t g0 = gbounds[f], ng = gbounds[f + 1] - g0, p0 = pbounds[f], np_ = pbounds[f + 1] - p0, n = 0;
        /* the frame's prediction corners once (not once per gt row): x1, y1, x2, y2, area */
        double *px1 = pc, *py1 = pc + np_, *px2 = pc + 2 * np_, *py2 = pc + 3 * np_, *parea = pc + 4 * np_;
        for (Py_ssize_t j = 0; j < np_; j++) {
            const double *b = P + 4 * (p0 + j);
            px1[j] = b[0];
            py1[j] = b[1];
            px2[j] = b[0] + b[2];
            py2[j] = b[1] + b[3];
            parea[j] = (px2[j] - px1[j]) * (py2[j] - py1[j]);
        }
        for (Py_ssize_t i = 0; i < ng; i++) {
            const double *g = G + 4 * (g0 + i);
            const double gx1 = g[0], gy1 = g[1], gx2 = g[0] + g[2], gy2 = g[1] + g[3];
            const double area_g = (gx2 - gx1) * (gy2 - gy1);
            for (Py_ssize_t j = 0; j < np_; j++) {
                double dx = (gx2 < px2[j] ? gx2 : px2[j]) - (gx1 > px1[j] ? gx1 : px1[j]);
                if (positive && !(dx > 0))
                    continue; /* no overlap: IoU 0 (or 0/0 -> 0), below any positive threshold */
                double dy = (gy2 < py2[j] ? gy2 : py2[j]) - (gy1 > py1[j] ? gy1 : py1[j]);
                if (positive && !(dy > 0))
                    continue;
                double inter = (dx > 0 ? dx : 0.0) * (dy > 0 ? dy : 0.0);
                double uni = area_g + parea[j] - inter;
                double iou = uni > 0 ? inter / uni : 0.0;
                if (iou >= threshold) {
                    pairs[n].iou = iou;
                    pairs[n].g = i;
                    pairs[n].p = j;
                    n++;
                }
            }
        }
        qsort(pairs, n, sizeof(Pair), pair_desc);
        for (Py_ssize_t i = 0; i < ng; i++)
            used_g[i] = 0;
        for (Py_ssize_t j = 0; j < np_; j++)
            used_p[j] = 0;
        Py_ssize_t n_cur = 0, accepted = 0;
        for (Py_ssize_t k = 0; k < n; k++) {
            if (used_g[pairs[k].g] || used_p[pairs[k].p])
                continue;
            used_g[pairs[k].g] = used_p[pairs[k].p] = 1;
            if (*n_ious >= capacity)
                return -1;
            ious[(*n_ious)++] = pairs[k].iou;
            accepted++;
            int64_t g_id = gids[g0 + pairs[k].g], p_id = pids[p0 + pairs[k].p];
            for (Py_ssize_t m = n_prev - 1; m >= 0; m--) { /* the last entry for an id is the dict's value */
                if (prev[2 * m] == g_id) {
                    if (prev[2 * m + 1] != p_id)
                        (*switches)++;
                    break;
                }
            }
            cur[2 * n_cur] = g_id;
            cur[2 * n_cur + 1] = p_id;
            n_cur++;
        }
        tp[f] = accepted;
        int64_t *swap = prev;
        prev = cur;
        cur = swap;
        n_prev = n_cur;
    }
    return 0;
}

/* framewise(gt_ids int64[G], gt_boxes float64[G*4], pred_ids int64[P], pred_boxes float64[P*4],
 *           gt_bounds int64[F+1], pred_bounds int64[F+1], threshold,
 *           out_tp int64[F], out_ious float64[...]) -> (number of ious, id switches)
 * Rows come grouped by common frame (stable order, as framewise.py walks them). Per frame: the IoU of
 * `_iou_xyxy` with the same operations in the same order (x2 = x + w, area from the corners, union =
 * area_g + area_p - inter), pairs >= threshold taken greedily in descending (iou, gt row, pred row) order,
 * and id switches against the preceding common frame's matches (the last match of a gt id wins). The
 * GIL is released: the evaluator runs this beside the TrackEval kernel. */
static PyObject *framewise(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer gid = {0}, gbox = {0}, pid = {0}, pbox = {0}, gb = {0}, pb = {0}, tp = {0}, ious = {0};
    double threshold;
    PyObject *result = NULL;
    Pair *pairs = NULL;
    char *used_g = NULL, *used_p = NULL;
    double *pc = NULL;
    int64_t *prev = NULL, *cur = NULL; /* (gt id, pred id) pairs of the previous / current frame */
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*dw*w*", &gid, &gbox, &pid, &pbox, &gb, &pb, &threshold, &tp, &ious))
        return NULL;
    Py_ssize_t frames = gb.len / 8 - 1, n_ious = 0;
    long long switches = 0;
    const int64_t *gbounds = gb.buf, *pbounds = pb.buf;
    Py_ssize_t max_g = 1, max_p = 1;
    for (Py_ssize_t f = 0; f < frames; f++) {
        Py_ssize_t ng = gbounds[f + 1] - gbounds[f], np_ = pbounds[f + 1] - pbounds[f];
        if (ng > max_g) max_g = ng;
        if (np_ > max_p) max_p = np_;
    }
    pairs = malloc(sizeof(Pair) * max_g * max_p);
    used_g = malloc(max_g);
    used_p = malloc(max_p);
    pc = malloc(sizeof(double) * 5 * max_p);
    prev = malloc(sizeof(int64_t) * 2 * (max_g < max_p ? max_g : max_p));
    cur = malloc(sizeof(int64_t) * 2 * (max_g < max_p ? max_g : max_p));
    if (!pairs || !used_g || !used_p || !pc || !prev || !cur) {
        PyErr_NoMemory();
        goto done;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = framewise_frames(gbounds, pbounds, gid.buf, pid.buf, gbox.buf, pbox.buf, frames, threshold, tp.buf,
                              ious.buf, ious.len / 8, pairs, used_g, used_p, pc, prev, cur, &n_ious, &switches);
    Py_END_ALLOW_THREADS
    if (status)
        PyErr_SetString(PyExc_ValueError, "framewise: iou buffer too small");
    else
        result = Py_BuildValue("nL", n_ious, switches);
done:
    free(pairs);
    free(used_g);
    free(used_p);
    free(pc);
    free(prev);
    free(cur);
    PyBuffer_Release(&gid);
    PyBuffer_Release(&gbox);
    PyBuffer_Release(&pid);
    PyBuffer_Release(&pbox);
    PyBuffer_Release(&gb);
    PyBuffer_Release(&pb);
    PyBuffer_Release(&tp);
    PyBuffer_Release(&ious);
    return result;
}

/* row_sum(values float64[n]) -> float: numpy's pairwise sum, for tests */
static PyObject *row_sum(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer values = {0};
    if (!PyArg_ParseTuple(args, "y*", &values))
        return NULL;
    double total = pairwise_sum(values.buf, values.len / (Py_ssize_t)sizeof(double));
    PyBuffer_Release(&values);
    return PyFloat_FromDouble(total);
}

static PyMethodDef methods[] = {
    {"evaluate", evaluate, METH_VARARGS, "HOTA, CLEAR and Identity counts of one sequence."},
    {"assign", assign, METH_VARARGS, "Minimum-cost assignment, as scipy's linear_sum_assignment."},
    {"row_sum", row_sum, METH_VARARGS, "numpy's pairwise sum of a float64 buffer."},
    {"framewise", framewise, METH_VARARGS, "The group's greedy framewise matching, frame by frame."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
