"""No-fakes gate: production packages must not contain stubs, placeholders or random-data generators.

Fails on: ``NotImplementedError``, TODO/FIXME/XXX markers, functions whose body is only ``pass``
(or only ``...`` outside Protocols and overloads), and random-data generation (``random.*``,
``np.random``, ``faker``). A legitimate case goes into ``.ci/no_fakes_allow.txt`` as
``path: reason`` plus the exact line, reviewed like code.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "features", "models", "risk", "execution", "quality", "flows")
ALLOW_FILE = ROOT / ".ci" / "no_fakes_allow.txt"
TEXT_RULES = [
    (re.compile(r"\bNotImplementedError\b"), "NotImplementedError"),
    (re.compile(r"#.*\b(TODO|FIXME|XXX)\b"), "TODO/FIXME marker"),
    (re.compile(r"\bnp\.random\b|\bnumpy\.random\b"), "numpy random data"),
    (re.compile(r"^\s*(import random|from random import)"), "random module"),
    (re.compile(r"\bfaker\b", re.IGNORECASE), "fake data generator"),
]


def load_allow() -> set[tuple[str, str]]:
    allowed: set[tuple[str, str]] = set()
    if not ALLOW_FILE.exists():
        return allowed
    lines = ALLOW_FILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("file: "):
            path = line.removeprefix("file: ").strip()
            code = lines[i + 1].removeprefix("line: ").strip()
            allowed.add((path, code))
    return allowed


def _only_placeholder(fn: ast.FunctionDef | ast.AsyncFunctionDef, in_protocol: bool) -> bool:
    body = list(fn.body)
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        body = body[1:]  # docstring
    if not body:
        return False  # docstring-only: an interface method documented, e.g. in a Protocol
    if len(body) != 1:
        return False
    stmt = body[0]
    if isinstance(stmt, ast.Pass):
        return True
    is_ellipsis = isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and stmt.value.value is ...
    decorated_overload = any(
        (isinstance(d, ast.Name) and d.id in {"overload", "abstractmethod"})
        or (isinstance(d, ast.Attribute) and d.attr in {"overload", "abstractmethod"})
        for d in fn.decorator_list
    )
    return is_ellipsis and not in_protocol and not decorated_overload


def check_file(path: Path, allowed: set[tuple[str, str]]) -> list[str]:
    rel = path.relative_to(ROOT).as_posix()
    problems: list[str] = []
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    for lineno, line in enumerate(lines, 1):
        for pattern, what in TEXT_RULES:
            if pattern.search(line) and (rel, line.strip()) not in allowed:
                problems.append(f"{rel}:{lineno}: {what}: {line.strip()}")
    tree = ast.parse(source, filename=rel)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            in_protocol = any(
                (isinstance(b, ast.Name) and b.id == "Protocol")
                or (isinstance(b, ast.Attribute) and b.attr == "Protocol")
                for b in node.bases
            )
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _only_placeholder(item, in_protocol):
                    line = lines[item.lineno - 1].strip()
                    if (rel, line) not in allowed:
                        problems.append(f"{rel}:{item.lineno}: body is only a placeholder: {item.name}")
        elif isinstance(node, ast.Module):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _only_placeholder(item, False):
                    line = lines[item.lineno - 1].strip()
                    if (rel, line) not in allowed:
                        problems.append(f"{rel}:{item.lineno}: body is only a placeholder: {item.name}")
    return problems


def main() -> int:
    allowed = load_allow()
    problems: list[str] = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            problems.extend(check_file(path, allowed))
    if problems:
        print("no-fakes gate failed:\n  " + "\n  ".join(problems))
        print(f"\nA legitimate case needs an entry in {ALLOW_FILE.relative_to(ROOT)} with its reason.")
        return 1
    print(f"no-fakes gate: {sum(1 for p in PACKAGES for _ in (ROOT / p).rglob('*.py'))} files clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
