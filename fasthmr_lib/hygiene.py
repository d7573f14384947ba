"""Notebook hygiene check: clean stored notebooks, one literal-only ``parameters`` cell, no def/class.

Run as ``python -m fasthmr_lib.hygiene notebooks`` (part of the README's test command).
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

_DEF_RE = re.compile(r"^\s*(async\s+def|def|class)\s", re.M)


def check_notebook(path: Path) -> list[str]:
    """Return the hygiene problems of one ``.ipynb`` file (empty list when clean)."""
    try:
        nb = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        return [f"{path}: not a readable notebook JSON file ({e})"]
    problems: list[str] = []
    cells = nb.get("cells", [])
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(params) != 1:
        problems.append(f"{path}: expected exactly one cell tagged 'parameters', found {len(params)}")
    ids = [c.get("id") for c in cells]
    if (nb.get("nbformat", 4), nb.get("nbformat_minor", 0)) >= (4, 5):  # cell ids exist since nbformat 4.5
        missing = [i for i, x in enumerate(ids) if not x]
        if missing:
            problems.append(f"{path}: cells {missing} have no 'id' (nbformat 4.5); add unique ids")
        dup = sorted({x for x in ids if x and ids.count(x) > 1})
        if dup:
            problems.append(f"{path}: cell ids {dup} are used more than once")
    for i, c in enumerate(cells):
        src = "".join(c.get("source", []))
        if c.get("cell_type") != "code":
            continue
        if c.get("outputs") or c.get("execution_count") is not None:
            problems.append(f"{path}: cell {i} is stored with outputs/execution count; clear them")
        if _DEF_RE.search(src):
            problems.append(f"{path}: cell {i} defines a function or class; move it into fasthmr_lib/")
    for c in params:
        src = "".join(c.get("source", []))
        try:
            tree = ast.parse(src)
        except SyntaxError as e:
            problems.append(f"{path}: parameters cell is not valid Python ({e})")
            continue
        for node in tree.body:
            if not isinstance(node, ast.Assign | ast.AnnAssign):
                problems.append(f"{path}: parameters cell line {node.lineno} is not an assignment")
                continue
            try:
                ast.literal_eval(node.value)
            except ValueError:
                problems.append(f"{path}: parameters cell line {node.lineno} assigns a non-literal value")
    return problems


def check_dir(directory: Path) -> list[str]:
    """Check every notebook under ``directory``; error when there is none to check."""
    nbs = sorted(Path(directory).glob("*.ipynb"))
    if not nbs:
        return [f"{directory}: no notebooks found (expected notebooks/*.ipynb)"]
    return [p for nb in nbs for p in check_notebook(nb)]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0] if args else "notebooks")
    problems = check_dir(directory)
    for p in problems:
        print(p, file=sys.stderr)
    n = len(list(directory.glob("*.ipynb")))
    print(f"notebook hygiene: {n} notebooks, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
