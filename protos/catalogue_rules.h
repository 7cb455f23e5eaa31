/* Internal to the catalogue code: the availability sets and the block list in the wire form
 * (catalogue_rules.c; see catalogue.proto fields 11 and 12). */
#ifndef FEDREC_CATALOGUE_RULES_H
#define FEDREC_CATALOGUE_RULES_H

#include "catalogue.h"
#include "fedrec/v1/catalogue.pb-c.h"

/* Points m's availability and blocked fields at c's (canonical: nothing when c has none).
 * *avail is malloc'ed scaffolding for the caller to free with rules_wire_free after packing. */
fedrec_status fedrec__catalogue_rules_wire(const fedrec_catalogue *c, Fedrec__V1__Catalogue *m, fedrec_error *err);
void fedrec__catalogue_rules_wire_free(Fedrec__V1__Catalogue *m);
/* Checks a decoded message's availability and blocked fields against its n items. */
fedrec_status fedrec__catalogue_rules_check(const Fedrec__V1__Catalogue *m, fedrec_error *err);
/* Copies a checked message's rules into c. */
fedrec_status fedrec__catalogue_rules_build(fedrec_catalogue *c, const Fedrec__V1__Catalogue *m, fedrec_error *err);
/* Frees c's rules. */
void fedrec__catalogue_rules_clear(fedrec_catalogue *c);

#endif
