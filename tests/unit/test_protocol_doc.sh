#!/bin/sh
# test_protocol_doc.sh - docs/protocol.md against the headers it describes.
#
# Issue 11 found protocol.md saying HELLO version 1 when only 2 worked,
# ops from 15 up rejected when 15-17 existed, and checksum_failures always
# 0 when it counted. This checks, from lib/proto.h and lib/errors.h:
# - the HELLO section names the current KV_PROTO_VERSION, and no other;
# - every op of enum kv_op has its row in "Messages at a glance", by number;
# - the header check names KV_OP_MAX, not a stale number;
# - STATS' lengths and offsets are those of proto.h's structs;
# - every code of enum kv_error has its row in the error table, by number;
# - no field is documented as "Always 0".
set -u
cd "$(dirname "$0")/../.."
exec python3 - <<'EOF'
import re, sys

proto = open("lib/proto.h").read()
errors = open("lib/errors.h").read()
doc = open("docs/protocol.md").read()
fails = []

version = int(re.search(r"#define KV_PROTO_VERSION\s+(\d+)", proto).group(1))
hello = doc[doc.index("### HELLO (1)"):doc.index("### NS_REGISTER (2)")]
said = set(int(v) for v in re.findall(r"`KV_PROTO_VERSION` \((\d+)\)", hello))
said |= set(int(v) for v in re.findall(r"`version` ≠ (\d+)", doc))
if said - {version}:
    fails.append("protocol.md names version(s) %s; KV_PROTO_VERSION is %d" %
                 (sorted(said - {version}), version))

enum = proto[proto.index("enum kv_op {"):]
enum = enum[:enum.index("};")]
ops = {name: int(num) for name, num in re.findall(r"KV_OP_(\w+)\s*=\s*(\d+)", enum)}
glance = doc[doc.index("## Messages at a glance"):doc.index("## Errors and the connection")]
for name, num in ops.items():
    if not re.search(r"^\| %d \| %s \|" % (num, name), glance, re.M):
        fails.append("op %s (%d) has no row in 'Messages at a glance'" % (name, num))
op_max = max(ops.values()) + 1
header = doc[doc.index("## The header"):doc.index("## Messages at a glance")]
for n in re.findall(r"≥ (\d+)", header) + re.findall(r"`KV_OP_MAX`, (\d+)", doc):
    if int(n) != op_max:
        fails.append("protocol.md says ops from %s up are refused; KV_OP_MAX is %d" %
                     (n, op_max))

# STATS grows: its row in the table, its section and the tier entries'
# offset follow the struct sizes proto.h asserts.
sizes = {name: int(num) for name, num in
         re.findall(r"sizeof\(struct (kv_wire_\w+)\) == (\d+)", proto)}
g, t = sizes["kv_wire_stats"], sizes["kv_wire_tier_stats"]
if not re.search(r"^\| 9 \| STATS \|.*\| %d \+ %dt \|$" % (g, t), glance, re.M):
    fails.append("the STATS row in 'Messages at a glance' is not %d + %dt" % (g, t))
stats = doc[doc.index("### STATS (9)"):doc.index("### LS (10)")]
if "`%d + %d × count`" % (g, t) not in stats or "from offset %d:" % g not in stats:
    fails.append("the STATS section does not say %d + %d × count, tiers from offset %d" %
                 (g, t, g))

codes = {name: int(num) for name, num in re.findall(r"\b(KV_E\w+)\s*=\s*(\d+)", errors)
         if name != "KV_EBASE"}
table = doc[doc.index("## Error codes"):]
for name, num in codes.items():
    if not re.search(r"^\| %d \| `%s` \|" % (num, name), table, re.M):
        fails.append("error %s (%d) has no row in the error table" % (name, num))

for m in re.finditer(r"^\|.*\| Always 0\b.*$", doc, re.M):
    fails.append("a field documented as always 0: " + m.group(0)[:80])

for f in fails:
    print("not ok - " + f)
print("%d checks failed" % len(fails))
sys.exit(1 if fails else 0)
EOF
