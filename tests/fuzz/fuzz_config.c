/* Fuzz target: the coordinator's config file parser (coordinator/config.c). Any bytes: no
 * crash, no read past the text; a file that parses leaves every number within its setting's
 * bounds (spot-checked on a few settings). */
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  config_quiet = 1;
  static config c;
  config_defaults(&c);
  /* an exact-size copy, so that ASan catches a read past the end */
  char *text = malloc(size ? size : 1);
  if (!text) return 0;
  memcpy(text, data, size);
  if (config_parse_text(&c, text, size, "fuzz.conf")) {
    if (c.e.cohort < 2 || c.e.cohort > 1048576 || c.workers < 1 || c.workers > 64 || !(c.budget >= 1e-6) ||
        c.e.phase_ms < 1 || c.listen[sizeof c.listen - 1] || c.state_dir[sizeof c.state_dir - 1])
      abort(); /* a value past its bounds, or a string without its terminator */
  }
  free(text);
  return 0;
}
