#!/usr/bin/env python3
"""Checks the include layering of core/ and that methods are chosen through the method table.

1. core/ is layered (ARCHITECTURE.md): common < formats, tt, metrics < model < methods < pipeline.
   A file may include only its own folder or folders of a lower layer; core/methods/<name>/ may
   include core/methods/ itself (the Codec interface) and lower layers, never another method's
   folder (except a composite method, COMPOSITES, which includes the methods it builds on), the
   method table, or core/pipeline.
2. No two folders (anywhere under core/, server/, client/) include each other, directly or
   through others: the folder graph is acyclic. core/methods/ counts as two nodes: the interface
   (codec.h, included by every method) and the table (method_table.*, which includes every method).
3. No method is named by a string literal outside core/methods/: "tt-token", "saten", "svd" do not
   appear in core/ (outside methods/), server/ or client/ sources.

Exit 0 when all hold; otherwise one line per violation and exit 1.
"""
import os
import re
import sys

import shutil
import tempfile

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


def node(folder, filename):
    """Graph node of a file: its folder, except that core/methods/ holds two: the interface every
    method includes (codec.h) and the table that includes every method (method_table.*)."""
    if folder == os.path.join("core", "methods"):
        return folder + (":table" if os.path.basename(filename).startswith("method_table") else ":interface")
    return folder


# Methods made of other methods (core/methods/correction: a block-quantized base plus a factor).
COMPOSITES = {"correction"}


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
                if there is None:
                    continue
                a_node, b_node = node(here, rel), node(there, inc)
                if a_node != b_node:
                    edges.setdefault(a_node, set()).add(b_node)
                if there == here:
                    continue
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
                    if b[1] is not None and b[1] != a[1] and a[1] not in COMPOSITES:
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


def self_test():
    """The checker on a small tree with one violation of each kind: it must report every one."""
    global ROOT
    real = ROOT
    ROOT = tempfile.mkdtemp()
    try:
        files = {
            "core/common/a.h": '#include "model/m.h"\n',                      # up a layer
            "core/model/m.h": "",
            "core/formats/f.h": '#include "tt/t.h"\n',                         # sibling layer
            "core/tt/t.h": "",
            "core/methods/codec.h": "",
            "core/methods/method_table.h": '#include "methods/x/x.h"\n',
            "core/methods/x/x.h": '#include "methods/y/y.h"\n#include "methods/method_table.h"\n',
            "core/methods/y/y.h": "",
            "server/p/p.h": '#include "q/q.h"\n',                              # folder cycle
            "server/q/q.h": '#include "p/p.h"\n',
            "client/c.cpp": 'const char* m = "saten";\n',                     # method literal
        }
        for rel, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(ROOT, rel)), exist_ok=True)
            open(os.path.join(ROOT, rel), "w").write(text)
        import io, contextlib
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = main()
        text = out.getvalue()
        want = ["higher layer", "sibling layer", "of method y", "includes the method table",
                "folders include each other: server/p", "method name \"saten\""]
        missing = [w for w in want if w not in text]
        if rc != 1 or missing:
            print(text + "self-test FAILED: missing " + repr(missing))
            return 1
        print("self-test ok: every planted violation reported")
        return 0
    finally:
        shutil.rmtree(ROOT)
        ROOT = real


if __name__ == "__main__":
    sys.exit(self_test() if sys.argv[1:] == ["--self-test"] else main())
