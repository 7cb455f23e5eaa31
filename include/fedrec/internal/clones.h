/* Function multi-versioning for the hot loops: on x86-64 an AVX2 (and where it pays, AVX-512)
 * copy is picked at load time on machines that have it; elsewhere (aarch64: NEON is always
 * there, so the one copy is vectorised with it) a single copy. Every copy gives the same
 * results bit for bit (see each use). */
#ifndef FEDREC_INTERNAL_CLONES_H
#define FEDREC_INTERNAL_CLONES_H

#if defined(__x86_64__)
#define FEDREC_CLONES_AVX2 __attribute__((target_clones("avx2", "default")))
#define FEDREC_CLONES_AVX512 __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define FEDREC_CLONES_AVX2
#define FEDREC_CLONES_AVX512
#endif

#endif
