#!/usr/bin/env python3
"""Checks the include layering of core/ and that methods are chosen through the method table.

1. core/ is layered (ARCHITECTURE.md): common < formats, tt, metrics < model < methods < pipeline.
   A file may include only its own folder or folders of a lower layer; core/methods/<name>/ may
   include core/methods/ itself (the Codec interface) and lower layers, never another method's
   folder, the method table, or core/pipeline.
2. No two folders (anywhere under core/, server/, client/) include each other, directly or
   through others: the folder graph is acyclic.
3. No method is named by a string literal outside core/methods/: "tt-token", "saten", "svd" do not
   appear in core/ (outside methods/), server/ or client/ sources.

Exit 0 when all hold; otherwise one line per violation and exit 1.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYER = {"common": 0, "formats": 1, "tt": 1, "metrics": 1, "model": 2, "methods": 3, "pipeline": 4}
METHOD_LITERALS = ['"tt-token"', '"saten"', '"svd"']
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(top):
    for d, _, files in os.walk(os.path.join(ROOT, top)):
        for f in files:
            if f.endswith((".h", ".cpp")):
                yield os.path.join(d, f)


def folder_of_include(inc, roots):
    """The repo-relative folder an include path resolves to (first matching include root), or None."""
    for r in roots:
        p = os.path.join(ROOT, r, inc)
        if os.path.exists(p):
            return os.path.relpath(os.path.dirname(p), ROOT)
    return None


def core_key(folder):
    """('methods', 'tt_token') for core/methods/tt_token; ('model', None) for core/model."""
    parts = folder.split(os.sep)
    if parts[0] != "core" or len(parts) < 2:
        return None
    return parts[1], (parts[2] if len(parts) > 2 else None)


def main():
    errors = []
    edges = {}
    include_roots = {"core": ["core"], "server": ["server", "core"], "client": ["client", "core"]}
    for top, roots in include_roots.items():
        for path in sources(top):
            rel = os.path.relpath(path, ROOT)
            here = os.path.dirname(rel)
            text = open(path, encoding="utf-8").read()
            for inc in INCLUDE.findall(text):
                there = folder_of_include(inc, roots)
                if there is None or there == here:
                    continue
                edges.setdefault(here, set()).add(there)
                a, b = core_key(here), core_key(there)
                if a is None or b is None:
                    continue
                if a[0] not in LAYER or b[0] not in LAYER:
                    errors.append(f"{rel}: includes {inc} from a folder outside the layer table")
                    continue
                if LAYER[b[0]] > LAYER[a[0]]:
                    errors.append(f"{rel}: {here} (layer {a[0]}) includes {inc} from a higher layer ({b[0]})")
                elif LAYER[b[0]] == LAYER[a[0]] and a[0] != b[0]:
                    errors.append(f"{rel}: {here} includes {inc} from its sibling layer {b[0]}")
                elif a[0] == "methods" and a[1] is not None:
                    if b[1] is not None and b[1] != a[1]:
                        errors.append(f"{rel}: method {a[1]} includes {inc} of method {b[1]}")
                    if b == ("methods", None) and os.path.basename(inc).startswith("method_table"):
                        errors.append(f"{rel}: method {a[1]} includes the method table ({inc})")
            if top == "core" and rel.startswith(os.path.join("core", "methods") + os.sep):
                continue
            for lit in METHOD_LITERALS:
                for n, line in enumerate(text.splitlines(), 1):
                    code = line.split("//", 1)[0]
                    if lit in code:
                        errors.append(f"{rel}:{n}: method name {lit} as a literal (use the method table)")
    # Folder cycles.
    state = {}

    def visit(n, stack):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                cyc = stack[stack.index(m):] + [m]
                errors.append("folders include each other: " + " -> ".join(cyc))
            elif m not in state:
                visit(m, stack)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n, [])
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} layering violation(s)")
        return 1
    print(f"layering ok: {sum(len(v) for v in edges.values())} folder edges, no cycles, no method literals")
    return 0


if __name__ == "__main__":
    sys.exit(main())
