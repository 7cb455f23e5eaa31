/* Internal to the catalogue code: the parts of the wire form kept in their own files, the
 * availability sets and the block list (catalogue_rules.c; catalogue.proto fields 11 and 12)
 * and the modalities (catalogue_modalities.c; fields 13 and 14). */
#ifndef FEDREC_CATALOGUE_INTERNAL_H
#define FEDREC_CATALOGUE_INTERNAL_H

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

/* Points m's modality fields at c's (nothing for one unnamed source; the mask only when some
 * item lacks a modality); free with modalities_wire_free after packing. */
fedrec_status fedrec__catalogue_modalities_wire(const fedrec_catalogue *c, Fedrec__V1__Catalogue *m, fedrec_error *err);
void fedrec__catalogue_modalities_wire_free(Fedrec__V1__Catalogue *m);
/* Checks a decoded message's modalities (names, dimensions adding up to dim, mask). */
fedrec_status fedrec__catalogue_modalities_check(const Fedrec__V1__Catalogue *m, fedrec_error *err);
/* Copies them into c (after the content: a masked-out block must be zero). */
fedrec_status fedrec__catalogue_modalities_build(fedrec_catalogue *c, const Fedrec__V1__Catalogue *m, fedrec_error *err);
/* modalities:LIST (lines NAME<TAB>EMB.npy<TAB>IDS.txt, titles<TAB>F, norm<TAB>l2|standard) */
fedrec_status fedrec__catalogue_load_modalities(fedrec_catalogue *c, const char *rest, fedrec_error *err);

#endif
