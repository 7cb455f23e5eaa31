#!/usr/bin/env bash
# A coordinator whose new state starts from a model the simulator trained (initial-model):
# refused without the operator's privacy declaration, with an id list that does not fit the
# model, and with a dim setting that conflicts; then model 1 is the simulator's blob byte for
# byte (same catalogue, same order); a restart resumes its own state; and with the ids of
# another order and one unknown item, the rows are matched by id (checked row by row); a model
# with private popularity (format 2) carries it over, byte for byte.
#   tests/e2e/initial_model.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" initial-model
SIM=$B/sim/fedrec-sim
step() { echo "[initial-model] $*" >&2; }
SPEC=synthetic:users=400,items=60,dim=8,seed=9
"$SIM" --dataset "$SPEC" --algorithm central --dim 8 --save-model "$W/m.bin" > "$W/sim.out" 2>&1 || fail "fedrec-sim: $(tail -2 "$W/sim.out")"
[[ $(wc -l < "$W/m.bin.ids") == 60 ]] || fail "--save-model did not write 60 ids next to the model"
COMMON=(--catalogue "$SPEC" --cohort 10 --min-cohort 10 --min-survivors 8 --dropout 0.001 --dishonest 0.001)
refused() { # refused EXPECTED FLAGS...
  local want=$1
  shift
  "$COORD" serve --state-dir "$W/state" --listen 127.0.0.1:0 --insecure 1 "${COMMON[@]}" "$@" > "$W/o" 2>&1 && fail "started with $*"
  grep -q "$want" "$W/o" || fail "expected '$want', got: $(grep -v '^{' "$W/o" | head -3)"
}

step "refused: no privacy declaration, ids that do not fit, a conflicting dim"
refused "needs initial-model-privacy public" --initial-model "$W/m.bin"
head -59 "$W/m.bin.ids" > "$W/short.ids"
refused "short.ids names 59 items, the model .*m.bin has 60 rows" --initial-model "$W/m.bin,$W/short.ids" --initial-model-privacy public
refused "has d = 8, the setting dim 16" --initial-model "$W/m.bin" --initial-model-privacy public --dim 16
printf 'FRMD' > "$W/bad.bin"
refused "initial-model .*bad.bin: model: 4 bytes" --initial-model "$W/bad.bin,$W/m.bin.ids" --initial-model-privacy public

step "a new state starts from the file: model 1 is the simulator's blob"
e2e_serve "${COMMON[@]}" --initial-model "$W/m.bin" --initial-model-privacy public
grep -q '"event": "initial_model", .*"rows": 60, "matched": 60, "dropped": 0, "not_in_model": 0, .*"d": 8, "head": true, "privacy": "public"' \
  "$W/coord.log" || fail "no initial_model line: $(grep initial "$W/coord.log")"
e2e_stop
"$COORD" export-model --state-dir "$W/state" --version 1 --out "$W/v1.bin" > /dev/null 2>&1 || fail "export-model"
cmp -s "$W/m.bin" "$W/v1.bin" || fail "model 1 is not the simulator's model"

step "a restart resumes its own state (the file is not read again)"
e2e_serve "${COMMON[@]}" --initial-model "$W/m.bin" --initial-model-privacy public
[[ $(grep -c '"event": "initial_model"' "$W/coord.log") == 1 ]] || fail "the initial model was read again"
grep -q '"resumed": true' "$W/coord.log" || fail "did not resume"
e2e_stop

step "rows matched by id: the ids reversed, the first one unknown"
{ echo no-such-item; tac "$W/m.bin.ids" | tail -n +2; } > "$W/rev.ids"
rm -rf "$W/state" "$W/coord.log"
"$COORD" init --state-dir "$W/state" > /dev/null 2>&1
e2e_serve "${COMMON[@]}" --initial-model "$W/m.bin,$W/rev.ids" --initial-model-privacy public
grep -q '"event": "initial_model", .*"rows": 60, "matched": 59, "dropped": 1, "not_in_model": 1, "free_embeddings": 59' "$W/coord.log" ||
  fail "matched by id: $(grep initial_model "$W/coord.log")"
e2e_stop
"$COORD" export-model --state-dir "$W/state" --version 1 --out "$W/v1.bin" > /dev/null 2>&1 || fail "export-model"
/usr/bin/python3 - "$W/m.bin" "$W/rev.ids" "$W/m.bin.ids" "$W/v1.bin" <<'PY' || fail "the rows were not matched by id"
import struct, sys
def load(path):
    b = open(path, "rb").read()
    n, d, p, nf = struct.unpack_from("<4I", b, 16)
    free = struct.unpack_from(f"<{nf}I", b, 32)
    o = 32 + 4 * nf
    H = struct.unpack_from(f"<{d * p}f", b, o)
    E = struct.unpack_from(f"<{nf * d}f", b, o + 4 * d * p)
    return n, H, {i: E[r * d:(r + 1) * d] for r, i in enumerate(free)}
src_ids = open(sys.argv[2]).read().split()   # the model's rows, as the reversed list names them
cat_ids = open(sys.argv[3]).read().split()   # the catalogue's order
n, H, E = load(sys.argv[1])
n2, H2, E2 = load(sys.argv[4])
assert n2 == 60 and H2 == H, "head"
where = {name: i for i, name in enumerate(cat_ids)}
for row, name in enumerate(src_ids):
    if name in where:
        assert E2[where[name]] == E[row], name
unnamed = [i for i, name in enumerate(cat_ids) if name not in src_ids]
assert len(unnamed) == 1 and unnamed[0] not in E2, unnamed  # the item no row names: head only
assert len(E2) == 59
print("rows matched by id: 59 free rows and the head equal")
PY

step "a model with private popularity (format 2) starts a state byte for byte"
"$SIM" --dataset "$SPEC" --algorithm fedavg --dim 8 --rounds 2 --cohort 50 --popularity-rounds 1 --noise-multiplier 0.5 \
  --secagg plain --quiet --save-model "$W/p.bin" > "$W/simp.out" 2>&1 || fail "fedrec-sim: $(tail -2 "$W/simp.out")"
[[ $(head -c 8 "$W/p.bin" | od -An -tu4 | awk '{print $2}') == 2 ]] || fail "the simulator's model has no popularity"
rm -rf "$W/state" "$W/coord.log"
"$COORD" init --state-dir "$W/state" > /dev/null 2>&1
e2e_serve "${COMMON[@]}" --initial-model "$W/p.bin" --initial-model-privacy public
e2e_stop
"$COORD" export-model --state-dir "$W/state" --version 1 --out "$W/v1p.bin" > /dev/null 2>&1 || fail "export-model"
/usr/bin/python3 -c 'import sys; a, b = (open(f, "rb").read() for f in sys.argv[1:]); sys.exit(a[:8] + a[16:] != b[:8] + b[16:])' \
  "$W/p.bin" "$W/v1p.bin" || fail "model 1 is not the simulator's model with its popularity (the version aside)"
echo "initial-model: PASS"
