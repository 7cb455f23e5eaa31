/* The recommendation model: matrix factorisation for implicit feedback with a content head.
 *
 *   item vector  v_i = H c_i + e_i      H: (d, p) head over the frozen content embedding c_i,
 *                                       e_i: free embedding, present for a subset of items
 *   score        s_ui = u . v_i         u: the user's vector, solved on the user's device
 *
 * Per-user objective (iALS, Rendle et al. 2022 "Revisiting the performance of iALS"):
 *   L_u = sum_{i in S_u} w_ui (1 - u.v_i)^2 + alpha0 sum_{all i} (u.v_i)^2 + lambda_u |u|^2
 * with frequency-scaled regularisation lambda_u = reg * (|S_u| + alpha0 * n_items). */
#ifndef FEDREC_MODEL_H
#define FEDREC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/data.h"
#include "fedrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fedrec_model {
  int32_t n_items, d, p;
  float *H;            /* (d, p) row-major, or NULL when the model has no head */
  float *E;            /* (n_free, d), or NULL when n_free == 0 */
  int32_t n_free;
  int32_t *free_items; /* (n_free) item index of each row of E */
  int32_t *free_row;   /* (n_items) row of E for each item, or -1 */
  const float *C;      /* (n_items, p) content, borrowed; may be NULL when H is NULL */
  /* private popularity (docs/MODEL.md): the items' noisy user counts from count rounds, or
   * NULL. When present, every item vector gets one more coordinate, the item's popularity
   * max(0, pop_i) / max_j pop_j, whose weight each user's solve chooses like any other: the
   * model falls back to popularity where the factors carry no signal, and the factors learn
   * what popularity does not explain. It is not a gradient-trained parameter. */
  float *pop;
  /* multimodal content (docs/MODEL.md "Multimodal content"): 0, or the head's column blocks,
   * one per modality of the catalogue (names and dimensions, in order, adding up to p): the
   * head is sum_m H_m c_i^m, and the blob names them so that a device checks they are its
   * catalogue's */
  int32_t n_modalities;
  fedrec_modality modalities[FEDREC_MAX_MODALITIES];
} fedrec_model;

/* Allocates a model. With a head (use_head and C != NULL), H ~ N(0, init_std^2 / p);
 * E rows ~ N(0, init_std^2) for the n_free items listed in free_items (any order). */
fedrec_status fedrec_model_init(fedrec_model *m, int32_t n_items, int32_t d, const float *C,
                                int32_t p, int use_head, const int32_t *free_items,
                                int32_t n_free, uint64_t seed, float init_std,
                                fedrec_error *err);
void fedrec_model_free(fedrec_model *m);
/* A catalogue grew to n_items (its items keep their indices; C is the new content, borrowed):
 * the new items get the head's H c_i. The n_add items in add_free (old or new, none with a
 * free embedding yet) get one, zero at first (their vectors do not move), as rows appended to
 * E in that order: the parameters grow by n_add d, inserted before the head's in
 * fedrec_model_get_params' order. Everything is checked first: an error changes nothing. */
fedrec_status fedrec_model_grow(fedrec_model *m, int32_t n_items, const float *C, const int32_t *add_free, int32_t n_add,
                                fedrec_error *err);
/* Names the head's column blocks after ds's modalities (none: nothing); their dimensions must
 * add up to the head's p. */
fedrec_status fedrec_model_set_modalities(fedrec_model *m, const fedrec_dataset *ds, fedrec_error *err);
/* FEDREC_ERR_PARSE unless m's head and ds's content have the same modalities (names and
 * dimensions, in order; or neither has any). A model without a head fits any catalogue. */
fedrec_status fedrec_model_check_modalities(const fedrec_model *m, const fedrec_dataset *ds, fedrec_error *err);
/* A modality added to the catalogue later (ds: the new catalogue, its modalities m's followed
 * by new ones; C its content): the head grows a block of zero columns for each new one, so
 * no item vector moves and the other blocks keep what they learnt; training then fills them.
 * Parameters keep fedrec_model_get_params' order: H's rows get longer (old (r, j) at r p + j
 * moves to r p' + j). Everything is checked first: an error changes nothing. */
fedrec_status fedrec_model_add_modalities(fedrec_model *m, const fedrec_dataset *ds, fedrec_error *err);

/* Number of trainable parameters (d*p + n_free*d). */
int64_t fedrec_model_params(const fedrec_model *m);
/* Width of the item vectors and of a user's vector: d, plus 1 with popularity. */
int32_t fedrec_model_vdim(const fedrec_model *m);
/* Gives the model a popularity vector of zeros (no change if it has one). */
fedrec_status fedrec_model_add_popularity(fedrec_model *m, fedrec_error *err);

/* The spectral round (docs/MODEL.md): item vectors for the M most popular items from the noisy
 * sum of the devices' co-occurrence matrices over them (private PCA, "Analyze Gauss", Dwork,
 * Talwar, Thakurta, Zhang 2014).
 * The M items with the largest popularity, in that order (ties: lower index first); the model
 * must have popularity. Device and coordinator both derive the list from the published model. */
fedrec_status fedrec_model_top_popular(int32_t *out, const fedrec_model *m, int32_t M, fedrec_error *err);
/* The most items a spectral round may cover (8.4 million numbers per update): the engine refuses
 * more, and a device refuses a round that asks for more. */
#define FEDREC_MAX_SPECTRAL_ITEMS 4096
/* Length of a co-occurrence update over M items: the upper triangle, M (M + 1) / 2. */
int64_t fedrec_gram_dim(int32_t M);
/* A device's update: with S its history's items among top (each once, others ignored) and
 * x = 1_S / sqrt(|S|), the upper triangle of x x^T row by row (entry (a, b), a <= b, at
 * a M - a (a - 1) / 2 + b - a): every entry 1/|S|, L2 norm at most 1; zeros when S is empty. */
fedrec_status fedrec_gram_update(float *x, const int32_t *top, int32_t M, int32_t n_items, const int32_t *items, int32_t n,
                                 fedrec_error *err);
/* The coordinator's side: sum (the packed upper triangle of the noisy co-occurrence sum, each
 * entry with noise of std noise_std) to V (M x d, row a for top[a]): the d leading eigenvectors,
 * each scaled by sqrt(eigenvalue - 2 noise_std sqrt(M)), the noise matrix's spectral edge;
 * directions below the edge are zero (rank: how many are not). */
fedrec_status fedrec_spectral_embed(float *V, const float *sum, int32_t M, int32_t d, double noise_std, int32_t *rank,
                                    fedrec_error *err);

/* The wire and storage form of a model (what the coordinator signs and clients download),
 * little-endian: "FRMD", format 1, the model version (64 bits), n_items, d, p (0: no head),
 * n_free, then the free items' indices, H (d x p) and E (n_free x d) as IEEE floats. A model
 * with popularity is format 2: a flags word (bit 0: popularity) follows n_free, and the
 * n_items popularity floats follow E. Flags bit 1 (modalities): after the flags word, their count
 * M (1 to 8) and M records of (dimension, 32-byte NUL-padded name), the head's blocks in order.
 * The content embeddings are not included: they are public and every device has the catalogue. */
size_t fedrec_model_encoded_size(const fedrec_model *m);
void fedrec_model_encode(uint8_t *out, const fedrec_model *m, uint64_t version);
/* The encoded size the header of b (n bytes) implies, with its n_items and p (0: no head), or 0
 * when the header is not one fedrec_model_decode could accept (magic, format, flags, ranges):
 * what a downloader checks before trusting a claimed size. */
uint64_t fedrec_model_implied_size(const uint8_t *b, size_t n, uint32_t *n_items, uint32_t *p);
/* Checks every field (sizes against the length exactly, indices, finite values) before
 * allocating; C (n_items x expect_p) is borrowed for a model with a head. */
fedrec_status fedrec_model_decode(fedrec_model *m, uint64_t *version, const uint8_t *b, size_t n,
                                  const float *C, int32_t expect_p, fedrec_error *err);
/* The trainable parameters as one vector, [E (n_free x d) | H (d x p)], and back. */
void fedrec_model_get_params(float *x, const fedrec_model *m);
void fedrec_model_set_params(fedrec_model *m, const float *x);

/* V = C H^T + scatter(E): all item vectors, (n_items, vdim). Cold items get the head alone;
 * with popularity, column d holds the item's normalised popularity. */
void fedrec_model_item_vectors(float *V, const fedrec_model *m);

/* G = X^T X, (d, d) full symmetric, for X (n, d). */
void fedrec_gramian(float *G, const float *X, int64_t n, int32_t d);

/* Floats of scratch space fedrec_user_solve needs for a history of up to max_n items. */
size_t fedrec_user_solve_work(int32_t d, int32_t max_n);

/* Solves a user's vector u (d) from their history (items, weights w, n entries):
 *   (alpha0 G + sum_i w_i v_i v_i^T + lambda_u I) u = sum_i w_i v_i
 * with G = V^T V over all n_items item vectors, via Cholesky (LAPACK sposv).
 * Returns FEDREC_ERR_NUMERIC if the system is not positive definite. */
fedrec_status fedrec_user_solve(float *u, const float *V, const float *G, int32_t n_items,
                                int32_t d, const int32_t *items, const float *w, int32_t n,
                                float alpha0, float reg, float *work);

/* Why a user gets the scores they get: the exact decomposition of each score over the history
 * (Hu, Koren, Volinsky 2008, section 5). With A the user's system above, u = A^-1 sum_j w_j v_j,
 * so for any item t
 *   score_t = v_t . u = sum_j w_j (v_t^T A^-1 v_j),
 * and contrib[t * n + j] = w_j v_t^T A^-1 v_j is history entry j's share of target t's score
 * (they add up to the score; one may be negative). Also solves u. work: the floats
 * fedrec_user_explain_work says. */
size_t fedrec_user_explain_work(int32_t d, int32_t max_n);
fedrec_status fedrec_user_explain(float *contrib, float *u, const float *V, const float *G, int32_t n_items, int32_t d,
                                  const int32_t *items, const float *w, int32_t n, float alpha0, float reg,
                                  const int32_t *targets, int32_t nt, float *work);

/* Floats of scratch space fedrec_user_loss_grad needs for up to max_n history items. */
size_t fedrec_user_grad_work(const fedrec_model *m, int32_t max_n);

/* One user's loss L_u and its gradients with respect to E (n_free, d) and H (d, p),
 * overwriting gE and gH (either may be NULL to skip it). V must be the current item
 * vectors (n_items, vdim) and u the user's vector (vdim); the popularity coordinate takes part
 * in the scores but has no gradient. Every item's gradient is a multiple of u: dL/dv_i = gamma_i u with
 *   gamma_i = 2 alpha0 s_i - 2 w_i (1 - s_i) [i in S_u],   s = V u,
 * so dL/de_i = gamma_i u and dL/dH = u (C^T gamma)^T; BLAS does the dense parts. */
void fedrec_user_loss_grad(double *loss, float *gE, float *gH, const fedrec_model *m,
                           const float *V, const float *u, const int32_t *items, const float *w,
                           int32_t n, float alpha0, float reg, float *work);
/* Plain-C reference of the same computation (loops, double accumulators), for tests. */
void fedrec_user_loss_grad_ref(double *loss, float *gE, float *gH, const fedrec_model *m,
                               const float *u, const int32_t *items, const float *w, int32_t n,
                               float alpha0, float reg);

#ifdef __cplusplus
}
#endif
#endif
