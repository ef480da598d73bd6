"""Fail when a function in the given folders is longer than the limit (default 80 lines).

    python tools/function_length.py appflow/engine [--max 80]

A function's length is counted from its `def` line to its last line, docstring and
comments included: what a reader has to hold in mind at once. Nested functions count
towards the function that holds them (they are read with it) and are also checked on
their own.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def long_functions(root: Path, limit: int) -> list[str]:
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - start + 1
                if length > limit:
                    found.append(f"{path}:{node.lineno}: {node.name} is {length} lines")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--max", type=int, default=80)
    args = parser.parse_args()
    found = [line for folder in args.folders for line in long_functions(folder, args.max)]
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} function(s) longer than {args.max} lines", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
