/* fedrec-sim-mpi: the federated simulation with each round's clients spread over MPI ranks.
 *
 * Rank 0 runs the coordinator's engine and the round loop (fedsim.c). At the start of a round
 * it broadcasts the cohort and the published model; in each phase it sends every rank the
 * messages for its clients (client i lives on rank i % size: its round info, or what the
 * engine holds for it), every rank runs its clients on its own thread pool with the same
 * participant code, and the answers come back to rank 0, which gives them to the engine.
 * Masked inputs do not travel one by one: each rank adds its clients' inputs up mod 2^bits as
 * they are made, MPI_Reduce combines the ranks' sums with the same modular addition
 * (associative and commutative, so the grouping changes nothing), and the engine takes the
 * total through fedrec_engine_submit_sum. It then removes the masks exactly as if every input had come on
 * its own: the model is bit-identical to the one-process run's (tests/e2e/sim_mpi.sh).
 *
 * All ranks run the same binary on machines of one architecture: round info travels as its
 * in-memory struct. Collective calls only, always in the same order on every rank; a rank
 * whose client code fails reports it in its answer and keeps taking part until rank 0 stops. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/internal/sim.h"
#include "fedsim_internal.h"

enum { CMD_ROUND = 1, CMD_PHASE, CMD_STOP };

typedef struct mpi_cmd {
  uint32_t cmd, phase, n, dim, bits, pad;
  uint64_t round, bloblen;
} mpi_cmd;

static int g_rank = -1, g_size = 1;
static uint32_t g_mask; /* the modulus of the current reduction, minus one */
static MPI_Op g_modadd = MPI_OP_NULL;

static void ids(void) {
  if (g_rank < 0) {
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  }
}
int fedsim_mpi_rank(void) { return ids(), g_rank; }
int fedsim_mpi_size(void) { return ids(), g_size; }
int fedsim_mpi_agree(int ok) {
  MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return ok;
}

/* Out of memory for a collective's buffer: the ranks cannot carry on in step. */
static void die(const char *what) {
  fprintf(stderr, "fedrec-sim-mpi rank %d: out of memory for %s\n", g_rank, what);
  MPI_Abort(MPI_COMM_WORLD, 1);
}

/* a + b mod 2^bits, elementwise: how the masked sums of several ranks combine */
static void modadd(void *in, void *inout, int *len, MPI_Datatype *type) {
  (void)type;
  const uint32_t *a = in;
  uint32_t *b = inout;
  for (int k = 0; k < *len; k++) b[k] = (b[k] + a[k]) & g_mask;
}

static void reduce_sum(uint32_t *sum, const mpi_cmd *cmd) {
  if (g_modadd == MPI_OP_NULL) MPI_Op_create(modadd, 1, &g_modadd);
  g_mask = cmd->bits >= 32 ? 0xffffffffu : (1u << cmd->bits) - 1;
  if (g_rank == 0) MPI_Reduce(MPI_IN_PLACE, sum, (int)cmd->dim, MPI_UINT32_T, g_modadd, 0, MPI_COMM_WORLD);
  else MPI_Reduce(sum, NULL, (int)cmd->dim, MPI_UINT32_T, g_modadd, 0, MPI_COMM_WORLD);
}

/* Packed messages, [client index u32][length u32][bytes] one after another. */
typedef struct buf {
  uint8_t *p;
  size_t len, cap;
} buf;

static void put(buf *b, const void *x, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? 2 * b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    if (cap > INT_MAX || !(b->p = realloc(b->p, cap))) die("a phase's messages (over 2 GiB for one rank: use more ranks)");
    b->cap = cap;
  }
  memcpy(b->p + b->len, x, n);
  b->len += n;
}

static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }

static int keys_phase(const sim *m) {
  return m->phase == FEDREC_PHASE_KEYS || (m->c->engine.plain && m->phase == FEDREC_PHASE_MASKED);
}

/* One rank's clients in one phase. */
typedef struct entry {
  uint32_t i, len;
  const uint8_t *in;
  uint8_t *out;
  size_t outlen;
  int r;
} entry;

typedef struct slice {
  sim *m;
  entry *e;
  uint32_t *tsum; /* masked phase: each pool thread's inputs added up (threads x dim) */
  uint32_t dim;
} slice;

static void slice_step(void *ctx, uint32_t j, int t) {
  slice *sl = ctx;
  sim *m = sl->m;
  entry *x = &sl->e[j];
  fedrec_round_info info;
  int keys = keys_phase(m);
  if (keys) memcpy(&info, x->in, sizeof info);
  x->r = fedsim_client_compute(m, x->i, keys ? &info : NULL, keys ? NULL : x->in, x->len,
                               sl->tsum ? sl->tsum + (size_t)t * sl->dim : NULL, &x->out, &x->outlen);
}

/* Runs this rank's clients on what rank 0 sent them (`in`); the answers go to *reply:
 * [failed u32][reason length u32][reason], then per client that answered [index u32]
 * [bytes sent u32][message length u32][message] (no message in the masked phase: its input
 * is in `sum`). */
static void run_slice(sim *m, const mpi_cmd *cmd, const uint8_t *in, size_t inlen, buf *reply, uint32_t *sum) {
  uint32_t count = 0;
  for (size_t off = 0; off + 8 <= inlen; count++) {
    uint32_t len;
    memcpy(&len, in + off + 4, 4);
    off += 8 + len;
  }
  entry *e = calloc(count + 1, sizeof *e);
  if (!e) die("a phase's clients");
  int threads = m->c->threads < 1 ? 1 : m->c->threads > FEDSIM_MAX_THREADS ? FEDSIM_MAX_THREADS : m->c->threads;
  slice sl = {.m = m, .e = e, .dim = cmd->dim};
  if (sum && !(sl.tsum = calloc((size_t)threads * cmd->dim + 1, sizeof *sl.tsum))) die("the masked sums");
  uint32_t bad = 0;
  size_t off = 0;
  for (uint32_t j = 0; j < count; j++) { /* from rank 0: checked anyway, it is cheap */
    memcpy(&e[j].i, in + off, 4), memcpy(&e[j].len, in + off + 4, 4);
    e[j].in = in + off + 8;
    off += 8 + e[j].len;
    bad += off > inlen || e[j].i >= cmd->n || (int)e[j].i % g_size != g_rank || (keys_phase(m) && e[j].len != sizeof(fedrec_round_info));
  }
  if (bad) {
    fedrec_error err;
    fedrec_error_set(&err, FEDREC_ERR_PARSE, "%u malformed entries from rank 0", bad);
    fedsim_fail(m, "phase", &err);
    count = 0;
  }
  if (!atomic_load(&m->failed)) fedsim_pool(threads, slice_step, &sl, count);
  if (sum) { /* the threads' sums into the rank's */
    uint32_t lim = cmd->bits >= 32 ? 0xffffffffu : (1u << cmd->bits) - 1;
    memset(sum, 0, (size_t)cmd->dim * sizeof *sum);
    for (int t = 0; t < threads; t++)
      for (uint32_t k = 0; k < cmd->dim; k++) sum[k] = (sum[k] + sl.tsum[(size_t)t * cmd->dim + k]) & lim;
    free(sl.tsum);
  }
  int failed = atomic_load(&m->failed);
  put_u32(reply, (uint32_t)failed);
  put_u32(reply, failed ? (uint32_t)strlen(m->why) : 0);
  if (failed) put(reply, m->why, strlen(m->why));
  for (uint32_t j = 0; j < count; j++) {
    if (!failed && e[j].r == 0) {
      put_u32(reply, e[j].i);
      put_u32(reply, (uint32_t)e[j].outlen);
      put_u32(reply, e[j].out ? (uint32_t)e[j].outlen : 0);
      if (e[j].out) put(reply, e[j].out, e[j].outlen);
    }
    free(e[j].out);
  }
  free(e);
}

/* The collective part of a phase, the same on every rank: rank 0 scatters `out` (one buffer
 * per rank), every rank runs its slice, rank 0 gathers the answers into *all (with their
 * offsets in displs) and, in the masked phase, the ranks' sums into sum. */
static void exchange(sim *m, const mpi_cmd *cmd, buf *out, uint32_t *sum, uint8_t **all, int *counts, int *displs) {
  int mine = 0;
  uint8_t *send = NULL;
  if (g_rank == 0) {
    size_t total = 0;
    for (int r = 0; r < g_size; r++) counts[r] = (int)out[r].len, displs[r] = (int)total, total += out[r].len;
    if (total > INT_MAX) die("a phase's messages (over 2 GiB: use fewer clients per round)");
    if (!(send = malloc(total + 1))) die("a phase's messages");
    for (int r = 0; r < g_size; r++) memcpy(send + displs[r], out[r].p, out[r].len);
  }
  MPI_Scatter(counts, 1, MPI_INT, &mine, 1, MPI_INT, 0, MPI_COMM_WORLD);
  uint8_t *in = malloc((size_t)mine + 1);
  if (!in) die("a phase's messages");
  MPI_Scatterv(send, counts, displs, MPI_BYTE, in, mine, MPI_BYTE, 0, MPI_COMM_WORLD);
  free(send);
  buf reply = {0};
  run_slice(m, cmd, in, (size_t)mine, &reply, sum);
  free(in);
  int rl = (int)reply.len;
  MPI_Gather(&rl, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (g_rank == 0) {
    size_t total = 0;
    for (int r = 0; r < g_size; r++) displs[r] = (int)total, total += (size_t)counts[r];
    if (total > INT_MAX) die("a phase's answers (over 2 GiB: use fewer clients per round)");
    if (!(*all = malloc(total + 1))) die("a phase's answers");
  }
  MPI_Gatherv(reply.p, rl, MPI_BYTE, g_rank == 0 ? *all : NULL, counts, displs, MPI_BYTE, 0, MPI_COMM_WORLD);
  free(reply.p);
  if (sum) reduce_sum(sum, cmd);
}

void fedsim_mpi_round(sim *m, const fedrec_published *pub) {
  if (pub->len > INT_MAX) die("the model (over 2 GiB)");
  mpi_cmd cmd = {.cmd = CMD_ROUND, .n = m->n, .round = m->round, .bloblen = pub->len};
  MPI_Bcast(&cmd, sizeof cmd, MPI_BYTE, 0, MPI_COMM_WORLD);
  MPI_Bcast(m->users, (int)m->n, MPI_UINT32_T, 0, MPI_COMM_WORLD);
  MPI_Bcast((void *)pub->blob, (int)pub->len, MPI_BYTE, 0, MPI_COMM_WORLD);
}

void fedsim_mpi_stop(void) {
  mpi_cmd cmd = {.cmd = CMD_STOP};
  MPI_Bcast(&cmd, sizeof cmd, MPI_BYTE, 0, MPI_COMM_WORLD);
  if (g_modadd != MPI_OP_NULL) MPI_Op_free(&g_modadd);
}

/* Rank 0: what each client gets this phase, into its rank's buffer. */
static void collect_inputs(sim *m, buf *out) {
  fedrec_error err = {0};
  for (uint32_t i = 0; i < m->n && !atomic_load(&m->failed); i++) {
    if (m->silent[i]) continue;
    buf *b = &out[i % (uint32_t)g_size];
    uint32_t retry = 0;
    if (keys_phase(m)) {
      fedrec_round_info info;
      memset(&info, 0, sizeof info);
      if (fedrec_engine_round_info(m->e, m->users[i], m->round, m->now, &info, &retry, &err) || retry) {
        fedsim_fail(m, "round info", &err);
        return;
      }
      if (i == 0) m->secagg_k = info.secagg.k;
      m->sa_dim = info.secagg.dim, m->sa_bits = info.secagg.bits;
      put_u32(b, i), put_u32(b, sizeof info), put(b, &info, sizeof info);
    } else {
      uint8_t *in = NULL;
      size_t inlen = 0;
      if (fedrec_engine_fetch(m->e, m->users[i], m->round, m->phase, m->now, &in, &inlen, &retry, &err) || !in) {
        free(in); /* a client whose neighbours all left can be left out of the round: drop it */
        m->silent[i] = 1;
        continue;
      }
      m->down[i] += inlen;
      put_u32(b, i), put_u32(b, (uint32_t)inlen), put(b, in, inlen);
      free(in);
    }
  }
}

/* Rank 0: the answers to the engine, in rank order; who did not answer goes silent. */
static void apply_answers(sim *m, const mpi_cmd *cmd, const uint8_t *all, const int *counts, const int *displs,
                          const uint32_t *sum) {
  uint8_t *answered = calloc(m->n + 1, 1);
  uint64_t *ids = malloc(((size_t)m->n + 1) * sizeof *ids), bytes = 0;
  if (!answered || !ids) die("a phase's answers");
  uint32_t nid = 0;
  fedrec_error err = {0};
  for (int r = 0; r < g_size; r++) {
    const uint8_t *p = all + displs[r], *end = p + counts[r];
    uint32_t failed, whylen, i, up, len;
    memcpy(&failed, p, 4), memcpy(&whylen, p + 4, 4);
    if (counts[r] < 8 || whylen > (uint32_t)counts[r] - 8) { /* ranks run this binary: a bug, not an attack */
      fedrec_error_set(&err, FEDREC_ERR_PARSE, "rank %d: a malformed answer of %d bytes", r, counts[r]);
      fedsim_fail(m, "fedrec-sim-mpi", &err);
      continue;
    }
    if (failed) {
      fedrec_error_set(&err, FEDREC_ERR_STATE, "rank %d: %.*s", r, (int)whylen, (const char *)p + 8);
      fedsim_fail(m, "fedrec-sim-mpi", &err);
    }
    for (p += 8 + whylen; p + 12 <= end; p += 12 + len) {
      memcpy(&i, p, 4), memcpy(&up, p + 4, 4), memcpy(&len, p + 8, 4);
      if (i >= m->n || len > (size_t)(end - p) - 12 || answered[i]) {
        fedrec_error_set(&err, FEDREC_ERR_PARSE, "rank %d: a malformed answer (member %u)", r, i);
        fedsim_fail(m, "fedrec-sim-mpi", &err);
        break;
      }
      answered[i] = 1;
      m->up[i] += up;
      if (m->phase == FEDREC_PHASE_MASKED) ids[nid++] = m->users[i], bytes += up;
      else if (fedrec_engine_submit(m->e, m->users[i], m->round, m->phase, p + 12, len, m->now, &err)) m->silent[i] = 1;
    }
  }
  if (sum && nid && !atomic_load(&m->failed) &&
      fedrec_engine_submit_sum(m->e, m->round, ids, nid, sum, cmd->dim, bytes, m->now, &err))
    fedsim_fail(m, "the ranks' masked sums", &err);
  for (uint32_t i = 0; i < m->n; i++)
    if (!answered[i]) m->silent[i] = 1;
  free(answered), free(ids);
}

void fedsim_mpi_phase(sim *m) {
  buf *out = calloc((size_t)g_size, sizeof *out);
  int *counts = calloc((size_t)g_size, sizeof *counts), *displs = calloc((size_t)g_size, sizeof *displs);
  if (!out || !counts || !displs) die("the ranks' buffers");
  collect_inputs(m, out);
  if (!atomic_load(&m->failed)) { /* else the caller stops the run, and the ranks with it */
    mpi_cmd cmd = {.cmd = CMD_PHASE, .phase = m->phase, .n = m->n, .dim = m->sa_dim, .bits = m->sa_bits, .round = m->round};
    MPI_Bcast(&cmd, sizeof cmd, MPI_BYTE, 0, MPI_COMM_WORLD);
    uint32_t *sum = NULL;
    if (m->phase == FEDREC_PHASE_MASKED && !(sum = malloc((size_t)cmd.dim * sizeof *sum + 1))) die("the masked sum");
    uint8_t *all = NULL;
    exchange(m, &cmd, out, sum, &all, counts, displs);
    apply_answers(m, &cmd, all, counts, displs, sum);
    free(all), free(sum);
  }
  for (int r = 0; r < g_size; r++) free(out[r].p);
  free(out), free(counts), free(displs);
}

static void free_participants(sim *m) {
  for (uint32_t i = 0; i < m->n; i++) {
    fedrec_participant_free(m->part[i]);
    m->part[i] = NULL;
  }
}

fedrec_status fedsim_mpi_serve(const fedsim_config *c, const fedrec_split *sp, const fedrec_dataset *ds,
                               fedrec_error *err) {
  sim m = {.c = c, .sp = sp, .rows = (uint32_t)sp->train.rows, .mpi_size = g_size,
           .nthreads = c->threads < 1 ? 1 : c->threads};
  fedrec_error e2 = {0};
  if (fedrec_crypto_init()) {
    fedrec_error_set(&e2, FEDREC_ERR_IO, "libsodium failed to initialise");
    fedsim_fail(&m, "rank setup", &e2);
  }
  uint32_t cap = 0;
  uint8_t *blob = NULL;
  int have_model = 0;
  for (;;) {
    mpi_cmd cmd;
    MPI_Bcast(&cmd, sizeof cmd, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (cmd.cmd == CMD_STOP) break;
    if (cmd.cmd == CMD_ROUND) {
      free_participants(&m);
      if (cmd.n > cap) {
        cap = cmd.n;
        free(m.users), free(m.part);
        m.users = malloc((size_t)cap * sizeof *m.users);
        m.part = calloc(cap, sizeof *m.part);
        if (!m.users || !m.part) die("the cohort");
      }
      free(blob);
      if (!(blob = malloc(cmd.bloblen + 1))) die("the model");
      MPI_Bcast(m.users, (int)cmd.n, MPI_UINT32_T, 0, MPI_COMM_WORLD);
      MPI_Bcast(blob, (int)cmd.bloblen, MPI_BYTE, 0, MPI_COMM_WORLD);
      m.n = cmd.n, m.round = cmd.round;
      if (have_model) fedrec_model_free(&m.model);
      have_model = !fedrec_model_decode(&m.model, NULL, blob, cmd.bloblen, ds->content, ds->content_dim, &e2);
      if (!have_model) fedsim_fail(&m, "the published model", &e2);
      else if (fedsim_shared_vectors(&m, &e2)) fedsim_fail(&m, "item vectors", &e2);
      else m.dim = fedrec_model_params(&m.model);
      continue;
    }
    m.phase = (fedrec_phase)cmd.phase;
    uint32_t *sum = NULL;
    if (m.phase == FEDREC_PHASE_MASKED && !(sum = malloc((size_t)cmd.dim * sizeof *sum + 1))) die("the masked sum");
    exchange(&m, &cmd, NULL, sum, NULL, NULL, NULL);
    free(sum);
  }
  free_participants(&m);
  if (have_model) fedrec_model_free(&m.model);
  free(blob), free(m.users), free(m.part), free(m.V), free(m.G);
  if (g_modadd != MPI_OP_NULL) MPI_Op_free(&g_modadd);
  if (atomic_load(&m.failed)) return fedrec_error_set(err, FEDREC_ERR_STATE, "%s", m.why);
  return FEDREC_OK;
}
