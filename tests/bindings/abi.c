/* Prints the layout of the client API's structs (size and field offsets), for the Python
 * binding's test: its ctypes mirrors must agree with the compiler's layout on this machine. */
#include <stddef.h>
#include <stdio.h>

#include "fedrec/client.h"

#define F(type, field) printf("%s.%s %zu\n", #type, #field, offsetof(type, field))
int main(void) {
  printf("fedrec_client_config %zu\nfedrec_sync_outcome %zu\nfedrec_explanation %zu\nfedrec_error %zu\n",
         sizeof(fedrec_client_config), sizeof(fedrec_sync_outcome), sizeof(fedrec_explanation), sizeof(fedrec_error));
  F(fedrec_client_config, insecure), F(fedrec_client_config, max_catalogue_mb), F(fedrec_client_config, authority_key);
  F(fedrec_client_config, call_timeout_ms), F(fedrec_client_config, must_exist), F(fedrec_client_config, region);
  F(fedrec_sync_outcome, round), F(fedrec_sync_outcome, retry_after_ms), F(fedrec_sync_outcome, resumed_at);
  F(fedrec_sync_outcome, detail), F(fedrec_explanation, by), F(fedrec_explanation, similar), F(fedrec_explanation, rest);
  F(fedrec_explanation, n_similar);
  return 0;
}
