/* A minimal app embedding the client library, built against an installed fedrec with
 *   cc app.c $(pkg-config --cflags --libs fedrec-client)
 * (tests/e2e/install_sdk.sh). It does what an app does on first launch: open the store with
 * the coordinator's settings, sync (a new device with no history fetches the signed model),
 * record a few plays, and show recommendations computed on the device.
 * Usage: app STORE TARGET CA_PEM TOKEN_FILE COORDINATOR_KEY_FILE CATALOGUE */
#include <stdio.h>
#include <string.h>

#include <fedrec/client.h>

static int read_line(const char *path, char *out, size_t cap) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  int ok = fgets(out, (int)cap, f) != NULL;
  fclose(f);
  out[strcspn(out, "\r\n")] = 0;
  return ok && out[0];
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: app STORE TARGET CA_PEM TOKEN_FILE COORDINATOR_KEY_FILE CATALOGUE\n");
    return 2;
  }
  char token[256], key[128];
  if (!read_line(argv[4], token, sizeof token) || !read_line(argv[5], key, sizeof key)) {
    fprintf(stderr, "app: cannot read the token or the key\n");
    return 2;
  }
  fedrec_client_config cfg = {.store = argv[1], .target = argv[2], .ca_file = argv[3], .token = token,
                              .coordinator_key = key, .catalogue = argv[6]};
  fedrec_client *c;
  fedrec_error err = {0};
  if (fedrec_client_open(&c, &cfg, &err)) {
    fprintf(stderr, "app: open: %s\n", err.msg);
    return 1;
  }
  fedrec_sync_outcome o;
  if (fedrec_client_sync(c, &o, &err)) {
    fprintf(stderr, "app: sync: %s\n", err.msg);
    fedrec_client_close(c);
    return 1;
  }
  printf("synced: model version %llu\n", (unsigned long long)fedrec_client_model_version(c));
  const char *plays[] = {"i3", "i7", "i11", "i42"};
  for (int i = 0; i < 4; i++)
    if (fedrec_client_record(c, plays[i], 1.0f, &err)) {
      fprintf(stderr, "app: record %s: %s\n", plays[i], err.msg);
      fedrec_client_close(c);
      return 1;
    }
  char items[5][64];
  float scores[5];
  int32_t n = 0;
  if (fedrec_client_recommend(c, 5, items, scores, &n, &err)) {
    fprintf(stderr, "app: recommend: %s\n", err.msg);
    fedrec_client_close(c);
    return 1;
  }
  for (int32_t i = 0; i < n; i++) printf("recommended %s %.4f\n", items[i], scores[i]);
  fedrec_client_close(c);
  return n == 5 ? 0 : 1;
}
