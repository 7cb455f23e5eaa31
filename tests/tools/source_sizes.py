#!/usr/bin/env python3
"""Source sizes: no C file over 600 lines and no function over 80 lines outside tests/,
unless a comment says why: a file whose first comment contains "Over 600 lines because", a
function whose comment just above contains "Over 80 lines because".
Usage: source_sizes.py REPO_DIR [--list]   (--list: every function over 60 lines, longest first)"""
import os
import re
import sys

FILE_LIMIT, FUNC_LIMIT = 600, 80
DIRS = ["core", "crypto", "coordinator", "client", "protos", "sim", "include"]  # tests/ and bench/ are not held to it
START = re.compile(r"^[A-Za-z_][^;()]*\b([A-Za-z_]\w*)\s*\([^;]*$")


def functions(lines):
    """(name, first line, length, comment above) of each top-level function definition."""
    i, n = 0, len(lines)
    while i < n:
        m = START.match(lines[i])
        if m and not lines[i].startswith(("typedef", "struct", "enum", "static const", "#")):
            j = i  # the signature may wrap; the body opens with "{" at the end of a line
            while j < n and not lines[j].rstrip().endswith("{") and not lines[j].rstrip().endswith(";"):
                j += 1
            if j < n and lines[j].rstrip().endswith("{") and "=" not in lines[i].split("(")[0]:
                k = j + 1
                while k < n and not lines[k].startswith("}"):
                    k += 1
                c = i - 1
                comment = []
                while c >= 0 and (lines[c].lstrip().startswith(("/*", "*", "//")) or lines[c].rstrip().endswith("*/")):
                    comment.append(lines[c])
                    c -= 1
                yield m.group(1), i + 1, k - i + 1, "\n".join(comment)
                i = k + 1
                continue
        i += 1


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    listing = "--list" in sys.argv
    bad, long_ones = [], []
    for d in DIRS:
        for dirpath, _, names in os.walk(os.path.join(root, d)):
            for name in sorted(names):
                if not name.endswith((".c", ".h")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                with open(path, encoding="utf-8", errors="replace") as f:
                    lines = f.read().split("\n")
                head = "\n".join(lines[:40])
                if len(lines) > FILE_LIMIT and "Over 600 lines because" not in head:
                    bad.append(f"{rel}: {len(lines)} lines (limit {FILE_LIMIT})")
                for fn, at, length, comment in functions(lines):
                    if length > 60:
                        long_ones.append((length, f"{rel}:{at} {fn}"))
                    if length > FUNC_LIMIT and "Over 80 lines because" not in comment:
                        bad.append(f"{rel}:{at}: function {fn} is {length} lines (limit {FUNC_LIMIT})")
    if listing:
        for length, where in sorted(long_ones, reverse=True):
            print(f"{length:5d} {where}")
    for b in bad:
        print("source_sizes:", b, file=sys.stderr)
    if bad:
        print(f"source_sizes: {len(bad)} over the limits; split them, or say why in a comment "
              "(docs/CONTRIBUTING.md)", file=sys.stderr)
        return 1
    print(f"source_sizes: every file within {FILE_LIMIT} lines and every function within {FUNC_LIMIT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
