#!/usr/bin/env python3
"""Function body lengths of C files, as style.md #13 counts them.

    scripts/fnlen.py sync/*.c            n, median, p90, max
    scripts/fnlen.py -v sync/*.c         and the 25 longest functions

The files must be formatted with the committed .clang-format (Linux braces):
a function starts at a line that is exactly "{" after a line ending in ")",
and its body is every line strictly between that "{" and the next line
starting with "}" (blank lines and comments included). Percentiles are
nearest-rank: the ceil(q * n)-th length in increasing order.
"""
import math
import sys


def functions(path):
    """(body lines, path, name) of each function definition in path."""
    out = []
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 1
    while i < len(lines):
        if lines[i] == "{" and lines[i - 1].rstrip().endswith(")"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("}"):
                j += 1
            k = i - 1
            while k > 0 and "(" not in lines[k]:
                k -= 1
            name = lines[k].split("(")[0].split()[-1].lstrip("*")
            out.append((j - i - 1, path, name))
            i = j
        i += 1
    return out


def rank(values, q):
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def main(argv):
    verbose = bool(argv) and argv[0] == "-v"
    found = [f for path in argv[verbose:] for f in functions(path)]
    if not found:
        print("no function found", file=sys.stderr)
        return 1
    n = [f[0] for f in found]
    print(f"n={len(n)} median={rank(n, 0.5)} p90={rank(n, 0.9)} max={max(n)}")
    for length, path, name in sorted(found, reverse=True)[:25] if verbose else []:
        print(f"  {length:4d} {path}:{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
