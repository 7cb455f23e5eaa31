/* Runs a libFuzzer target without libFuzzer (gcc builds, sanitizer builds): every seed in
 * the corpus directories given, then a fixed number of deterministic random mutations of
 * them (byte flips, inserts, deletes, truncations, splices). Usage:
 *   fuzz_x [-runs=N] DIR...     exits non-zero only if the target crashes (sanitizers). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/data.h"
#include "fedrec/rng.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SEEDS 256

int main(int argc, char **argv) {
  char *seeds[MAX_SEEDS];
  int64_t lens[MAX_SEEDS];
  int n = 0;
  long runs = 20000;
  for (int a = 1; a < argc; a++) {
    if (!strncmp(argv[a], "-runs=", 6)) {
      runs = atol(argv[a] + 6);
      continue;
    }
    DIR *d = opendir(argv[a]);
    if (!d) {
      fprintf(stderr, "cannot open corpus directory %s\n", argv[a]);
      return 2;
    }
    for (struct dirent *e; (e = readdir(d)) && n < MAX_SEEDS;) {
      if (e->d_name[0] == '.') continue;
      char path[8192];
      snprintf(path, sizeof path, "%s/%s", argv[a], e->d_name);
      fedrec_error err;
      if (fedrec_read_file(path, &seeds[n], &lens[n], &err) == FEDREC_OK) n++;
    }
    closedir(d);
  }
  if (n == 0) {
    fprintf(stderr, "no seeds\n");
    return 2;
  }
  for (int s = 0; s < n; s++) LLVMFuzzerTestOneInput((const uint8_t *)seeds[s], (size_t)lens[s]);
  fedrec_rng r;
  fedrec_rng_seed(&r, 1234, 0);
  uint8_t *buf = malloc(1 << 16);
  for (long it = 0; it < runs; it++) {
    int s = (int)fedrec_rng_below(&r, (uint64_t)n);
    size_t len = (size_t)lens[s] < (1 << 15) ? (size_t)lens[s] : (1 << 15);
    memcpy(buf, seeds[s], len);
    int edits = 1 + (int)fedrec_rng_below(&r, 4);
    for (int k = 0; k < edits; k++) {
      size_t pos = len ? (size_t)fedrec_rng_below(&r, len) : 0;
      switch (fedrec_rng_below(&r, 5)) {
      case 0: if (len) buf[pos] ^= (uint8_t)(1u << fedrec_rng_below(&r, 8)); break;
      case 1: if (len) buf[pos] = (uint8_t)"\0\n\r\t,|\"'(-9e.:"[fedrec_rng_below(&r, 15)]; break;
      case 2: if (len < (1 << 16) - 1) { memmove(buf + pos + 1, buf + pos, len - pos); buf[pos] = (uint8_t)fedrec_rng_u64(&r); len++; } break;
      case 3: if (len) { memmove(buf + pos, buf + pos + 1, len - pos - 1); len--; } break;
      default: len = pos; break;
      }
    }
    uint8_t *exact = malloc(len ? len : 1); /* exact-size copy so ASan sees overreads */
    memcpy(exact, buf, len);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
  }
  printf("%d seeds and %ld mutations ran without a crash\n", n, runs);
  free(buf);
  for (int s = 0; s < n; s++) free(seeds[s]);
  return 0;
}
