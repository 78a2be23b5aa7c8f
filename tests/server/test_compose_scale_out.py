#!/usr/bin/env python3
"""docker/compose.yaml: the scale-out profile parses and names what it must.

Checks: a postgres service (image postgres:*), at least two API services (--role api) and two worker
services (--role worker) in the "scale-out" profile, each with a postgresql:// --store without a
password in it (PGPASSWORD from the environment instead), each mounting the same named volume at
its --blob-dir, and that volume declared at top level. The single-process service stays outside
the profile. With PyYAML (python3-yaml) the file is parsed by it (anchors and merge keys resolved);
without it, a small parser for the subset this file uses (block mappings, block and flow
sequences, anchors / `<<: *alias` merges) does it: documented here because a fresh machine may lack
PyYAML. A corrupted copy of the file (tab indentation, a dropped worker) must fail the check:
--self-test plants both.
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
COMPOSE = os.path.join(HERE, "..", "..", "docker", "compose.yaml")


def parse_subset(text):
    """Block mappings/sequences, flow lists (JSON-compatible), scalars, &anchors and <<: *merges."""
    lines = []
    for n, raw in enumerate(text.splitlines(), 1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ValueError(f"line {n}: tab in indentation")
        s = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if s.strip():
            lines.append((len(s) - len(s.lstrip()), s.strip(), n))
    anchors = {}

    def scalar(v, n):
        if v.startswith("*"):
            return anchors[v[1:]]
        if v.startswith("[") or v.startswith("{"):
            # flow collections: quote bare words so the JSON parser takes them
            j = re.sub(r'(?<=[\[{,:])\s*([A-Za-z_][\w.\-]*)\s*(?=[,\]}:])', r'"\1"', v)
            try:
                return json.loads(j)
            except json.JSONDecodeError as e:
                raise ValueError(f"line {n}: bad flow collection: {e}")
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            return v[1:-1]
        return v

    def block(i, indent):
        if lines[i][1].startswith("- "):
            out = []
            while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
                out.append(scalar(lines[i][1][2:].strip(), lines[i][2]))
                i += 1
            return out, i
        out = {}
        while i < len(lines) and lines[i][0] == indent:
            _, s, n = lines[i]
            m = re.match(r'^("[^"]*"|[^:\s][^:]*?):(?:\s+(.*))?$', s)
            if not m:
                raise ValueError(f"line {n}: expected 'key: value', got {s!r}")
            key, val = m.group(1).strip('"'), (m.group(2) or "").strip()
            anchor = None
            if val.startswith("&"):
                anchor, _, val = val[1:].partition(" ")
                val = val.strip()
            i += 1
            if val == "":
                if i < len(lines) and lines[i][0] > indent:
                    child, i = block(i, lines[i][0])
                else:
                    child = None
            else:
                # a flow list continued over several lines
                while val.startswith("[") and not val.endswith("]") and i < len(lines):
                    val += " " + lines[i][1]
                    i += 1
                child = scalar(val, n)
            if anchor:
                anchors[anchor] = child
            if key == "<<":
                for k, v in child.items():
                    out.setdefault(k, v)
            else:
                out[key] = child
        if i < len(lines) and lines[i][0] > indent:
            raise ValueError(f"line {lines[i][2]}: unexpected indentation")
        return out, i

    doc, i = block(0, lines[0][0])
    if i != len(lines):
        raise ValueError(f"line {lines[i][2]}: unexpected dedent")
    return doc


def load(text):
    try:
        import yaml  # noqa: PLC0415
    except ImportError:
        return parse_subset(text), "built-in subset parser (PyYAML absent)"
    return yaml.safe_load(text), "PyYAML"


def arg_after(cmd, flag):
    return cmd[cmd.index(flag) + 1] if flag in cmd and cmd.index(flag) + 1 < len(cmd) else None


def check(doc):
    errs = []
    services = doc.get("services") or {}
    scale = {k: v for k, v in services.items() if "scale-out" in (v.get("profiles") or [])}
    pg = [k for k, v in scale.items() if str(v.get("image", "")).startswith("postgres")]
    if not pg:
        errs.append("no postgres service in the scale-out profile")
    roles = {"api": [], "worker": []}
    volumes = set((doc.get("volumes") or {}).keys())
    for name, svc in scale.items():
        cmd = svc.get("command") or []
        if not isinstance(cmd, list) or "--role" not in cmd:
            continue
        role = arg_after(cmd, "--role")
        roles.setdefault(role, []).append(name)
        store = arg_after(cmd, "--store") or ""
        if not store.startswith("postgresql://"):
            errs.append(f"{name}: --store is not a postgresql:// URI")
        if re.match(r"postgresql://[^/@]*:[^/@]*@", store):
            errs.append(f"{name}: a password in the --store URI (use PGPASSWORD)")
        if "PGPASSWORD" not in (svc.get("environment") or {}):
            errs.append(f"{name}: no PGPASSWORD in its environment")
        blob_dir = arg_after(cmd, "--blob-dir")
        mounts = [str(m) for m in svc.get("volumes") or []]
        shared = [m.split(":")[0] for m in mounts if blob_dir and m.split(":")[1:2] == [blob_dir]]
        if not shared or shared[0] not in volumes:
            errs.append(f"{name}: --blob-dir {blob_dir} is not a named volume declared under volumes")
        svc["_blob_volume"] = shared[0] if shared else None
        if pg and pg[0] not in (svc.get("depends_on") or {}):
            errs.append(f"{name}: does not depend on {pg[0]}")
    if len(roles["api"]) < 2:
        errs.append(f"fewer than two api services: {roles['api']}")
    if len(roles["worker"]) < 2:
        errs.append(f"fewer than two worker services: {roles['worker']}")
    blob_vols = {scale[n]["_blob_volume"] for n in roles["api"] + roles["worker"]}
    if len(blob_vols) != 1:
        errs.append(f"the API and worker services do not share one blob volume: {sorted(map(str, blob_vols))}")
    if "tensorslm" in services and services["tensorslm"].get("profiles"):
        errs.append("the single-process service must stay outside the profiles")
    return errs


def main():
    text = open(COMPOSE).read()
    if "--self-test" in sys.argv:
        bad_tab = text.replace("  api-2:", "\tapi-2:", 1)
        bad_drop = re.sub(r"\n  worker-2:.*?(?=\nvolumes:)", "\n", text, flags=re.S)
        for label, t in (("tab", bad_tab), ("dropped worker", bad_drop)):
            try:
                errs = check(parse_subset(t))
            except (ValueError, KeyError) as e:
                errs = [str(e)]
            print(f"self-test ({label}): {errs[0]}")
            if not errs:
                print(f"self-test: the corrupted file ({label}) passed the check")
                return 1
        print("self-test ok: both corrupted copies are rejected")
    for loader in ("subset", "default"):
        doc, how = (parse_subset(text), "built-in subset parser") if loader == "subset" else load(text)
        errs = check(doc)
        if errs:
            print(f"docker/compose.yaml ({how}):\n  " + "\n  ".join(errs))
            return 1
        print(f"docker/compose.yaml scale-out profile ok ({how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
