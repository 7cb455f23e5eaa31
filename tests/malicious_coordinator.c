/* Compiled only into tests/malicious_coordinator (-DFEDREC_MALICIOUS), never into
 * fedrec-coordinator: what an operator who runs the coordinator could do to the messages it
 * relays, to read one device's update. FEDREC_MALICIOUS in the environment picks the attack:
 *   downgrade        round info says passive variant, with no certificates
 *   forge-cert       member 0's certificate replaced by one the coordinator signed itself
 *   substitute-keys  member 0's advertised keys replaced by the coordinator's own in every
 *                    other member's key list (so that it could open the shares sent to "0")
 *   equivocate       member 0 is shown, at unmasking, a survivor list without one survivor
 *                    (so that it reveals that survivor's mask key while others reveal its
 *                    self-mask seed: both together unmask its input)
 *   shrink           member 0 is shown, at unmasking, a survivor list of itself alone (fewer
 *                    inputs than the round's noise was planned for) */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fedrec/enrol.h"
#include "server.h"

static const char *attack(void) {
  const char *m = getenv("FEDREC_MALICIOUS");
  return m ? m : "";
}

void malicious_round_info(fedrec_round_info *info, const fedrec_identity *own) {
  static uint8_t forged[FEDREC_CERT_BYTES * 64];
  if (!strcmp(attack(), "downgrade")) {
    info->secagg.active = 0;
    info->certs = NULL;
    info->certs_len = 0;
  } else if (!strcmp(attack(), "forge-cert") && info->certs && info->certs_len <= sizeof forged) {
    memcpy(forged, info->certs, info->certs_len);
    uint8_t pk[32];
    randombytes_buf(pk, sizeof pk);
    uint64_t id = 0;
    for (int i = 0; i < 8; i++) id |= (uint64_t)forged[4 + i] << (8 * i);
    fedrec_cert_issue(forged, id, pk, own); /* signed, but by the coordinator's key */
    info->certs = forged;
  }
}

void malicious_phase_input(fedrec_engine *e, uint64_t client, uint64_t round, fedrec_phase phase, uint8_t **out, size_t *len) {
  fedrec_round_info info;
  uint32_t retry;
  fedrec_error err;
  if (fedrec_engine_round_info(e, client, round, 0, &info, &retry, &err) || retry) return;
  fedrec_sa_msg m;
  if (fedrec_sa_decode(&m, *out, *len, info.secagg.n, info.secagg.dim, &err)) return;
  size_t n = 0;
  if (phase == FEDREC_PHASE_SHARES && !strcmp(attack(), "substitute-keys") && info.cohort_index != 0) {
    for (uint32_t a = 0; a < m.u.keylist.count; a++)
      if (m.u.keylist.keys[a].id == 0) {
        randombytes_buf(m.u.keylist.keys[a].c_pk, sizeof m.u.keylist.keys[a].c_pk);
        randombytes_buf(m.u.keylist.keys[a].s_pk, sizeof m.u.keylist.keys[a].s_pk);
      }
    n = fedrec_sa_encode_keylist(*out, *len, &m.u.keylist);
  } else if (phase == FEDREC_PHASE_UNMASK && !strcmp(attack(), "equivocate") && info.cohort_index == 0 &&
             m.u.survivors.count > 1) {
    m.u.survivors.count--; /* the last survivor (not 0: the list is sorted) is "dropped" for member 0 */
    n = fedrec_sa_encode_survivors(*out, *len, &m.u.survivors);
    *len = n;
  } else if (phase == FEDREC_PHASE_UNMASK && !strcmp(attack(), "shrink") && info.cohort_index == 0 && m.u.survivors.count > 1) {
    m.u.survivors.count = 1, m.u.survivors.nsigs = 1;
    n = fedrec_sa_encode_survivors(*out, *len, &m.u.survivors);
    *len = n;
  }
  (void)n;
  fedrec_sa_msg_free(&m);
}
