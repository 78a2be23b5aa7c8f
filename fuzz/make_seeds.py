#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ (small valid and invalid inputs, each < 64 KiB).

Python standard library only. Artifact seeds come from the CLI (pass --cli build/release/bin/tensorslm;
without it the artifact seeds already in the corpus are kept). Device-report protobuf seeds come
from `protoc --encode` when protoc is installed. Run from the repository root:
    python3 fuzz/make_seeds.py [--cli build/release/bin/tensorslm]
"""
import argparse, gzip, io, json, os, shutil, struct, subprocess, sys, tarfile, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
FIX = os.path.join(ROOT, "tests", "fixtures")


def put(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < 64 << 10, (target, name, len(data))
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def npy(shape, descr="<f4", values=None, version=1, fortran=False, extra=b""):
    es = {"<f4": 4, "<f2": 2, "<f8": 8, "<i4": 4, "|u1": 1}.get(descr, 4)
    n = 1
    for s in shape:
        n *= s
    hdr = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (
        descr, "True" if fortran else "False", "".join("%d," % s for s in shape) if len(shape) != 1 else "%d," % shape[0])
    lenfmt = "<H" if version == 1 else "<I"
    pre = 6 + 2 + struct.calcsize(lenfmt)
    pad = (-(pre + len(hdr) + 1)) % 64
    hdr = hdr + " " * pad + "\n"
    data = struct.pack("<%df" % n, *(values or [0.5 * i for i in range(n)])) if descr == "<f4" else bytes(n * es)
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack(lenfmt, len(hdr)) + hdr.encode() + data + extra


def safetensors(tensors, metadata=None, align=8):
    """tensors: [(name, dtype, shape, bytes)]"""
    h, off, blob = {}, 0, b""
    for name, dt, shape, b in tensors:
        h[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
        blob += b
        off += len(b)
    if metadata is not None:
        h["__metadata__"] = metadata
    t = json.dumps(h).encode()
    t += b" " * ((-len(t)) % align)
    return struct.pack("<Q", len(t)) + t + blob


def f32(n, scale=0.01):
    return struct.pack("<%df" % n, *[((i * 37) % 101 - 50) * scale for i in range(n)])


def tiny_gpt2(vocab=16, d=8, layers=1, positions=8, ff=None):
    ff = ff or 4 * d
    cfg = {"model_type": "gpt2", "vocab_size": vocab, "n_embd": d, "n_layer": layers, "n_head": 2,
           "n_positions": positions, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
           "tie_word_embeddings": True, "eos_token_id": 0, "bos_token_id": 0}
    ts = [("transformer.wte.weight", [vocab, d]), ("transformer.wpe.weight", [positions, d])]
    for l in range(layers):
        p = "transformer.h.%d." % l
        ts += [(p + "ln_1.weight", [d]), (p + "ln_1.bias", [d]), (p + "attn.c_attn.weight", [d, 3 * d]),
               (p + "attn.c_attn.bias", [3 * d]), (p + "attn.c_proj.weight", [d, d]), (p + "attn.c_proj.bias", [d]),
               (p + "ln_2.weight", [d]), (p + "ln_2.bias", [d]), (p + "mlp.c_fc.weight", [d, ff]),
               (p + "mlp.c_fc.bias", [ff]), (p + "mlp.c_proj.weight", [ff, d]), (p + "mlp.c_proj.bias", [d])]
    ts += [("transformer.ln_f.weight", [d]), ("transformer.ln_f.bias", [d])]
    st = safetensors([(n, "F32", s, f32(eval("*".join(map(str, s))))) for n, s in ts], {"format": "pt"})
    return json.dumps(cfg, indent=1), st


def tar_of(files, mode="w", links=()):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode=mode, format=tarfile.GNU_FORMAT) as t:
        for name, data in files:
            if data is None:
                ti = tarfile.TarInfo(name); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; t.addfile(ti)
                continue
            ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644; ti.mtime = 1700000000
            t.addfile(ti, io.BytesIO(data))
        for name, target, kind in links:
            ti = tarfile.TarInfo(name); ti.type = kind; ti.linkname = target; t.addfile(ti)
    return bio.getvalue()


def seeds_npy():
    put("npy", "f32_2x3.npy", npy([2, 3]))
    put("npy", "f32_vec.npy", npy([5]))
    put("npy", "f16_4x2.npy", npy([4, 2], "<f2"))
    put("npy", "f64_3x1.npy", npy([3, 1], "<f8"))
    put("npy", "v2_f32.npy", npy([2, 2], version=2))
    put("npy", "scalar.npy", npy([]))
    put("npy", "fortran.npy", npy([2, 2], fortran=True))
    put("npy", "int32.npy", npy([2, 2], "<i4"))
    put("npy", "trailing.npy", npy([2, 2], extra=b"xyz"))
    put("npy", "truncated.npy", npy([4, 4])[:-7])
    put("npy", "bad_magic.npy", b"\x93NUMPX" + npy([2])[6:])
    put("npy", "huge_shape.npy", npy([1], extra=b"")[:10].replace(b"(1,)", b"(1,)") + b"{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }\n")
    put("npy", "empty.npy", b"")


def seeds_safetensors():
    put("safetensors", "two.safetensors", safetensors([("a", "F32", [2, 3], f32(6)), ("b", "F32", [4], f32(4))], {"format": "pt"}))
    put("safetensors", "f16_bf16.safetensors", safetensors([("h", "F16", [2, 2], bytes(8)), ("b", "BF16", [3], bytes(6))]))
    put("safetensors", "ints.safetensors", safetensors([("i", "I64", [2], bytes(16)), ("u", "U8", [3], bytes(3)), ("x", "F64", [1], bytes(8))]))
    put("safetensors", "empty_header.safetensors", safetensors([]))
    put("safetensors", "scalar.safetensors", safetensors([("s", "F32", [], f32(1))]))
    put("safetensors", "zero.safetensors", safetensors([("z", "F32", [0, 4], b"")]))
    bad = safetensors([("a", "F32", [2], f32(2)), ("b", "F32", [2], f32(2))])
    put("safetensors", "overlap.safetensors", bad.replace(b'"data_offsets": [8, 16]', b'"data_offsets": [4, 12]'))
    put("safetensors", "shape_mismatch.safetensors", safetensors([("a", "F32", [3, 3], f32(4))]))
    put("safetensors", "huge_len.safetensors", struct.pack("<Q", 1 << 60) + b"{}")
    put("safetensors", "truncated.safetensors", safetensors([("a", "F32", [8], f32(8))])[:-5])
    put("safetensors", "not_json.safetensors", struct.pack("<Q", 6) + b"{oops}")
    put("safetensors", "bad_dtype.safetensors", safetensors([("a", "Q7", [2], f32(2))]))
    _, st = tiny_gpt2()
    put("safetensors", "tiny_gpt2.safetensors", st)


def seeds_hf_config():
    for d in ["gpt2-tiny", "opt-tiny", "llama-tiny", "gpt2-man", "llama-man"]:
        put("hf_config", d + ".json", open(os.path.join(FIX, d, "config.json"), "rb").read())
    g = json.load(open(os.path.join(FIX, "gpt2-tiny", "config.json")))
    for name, change in [("layers3", {"n_layer": 3}), ("vocab10", {"vocab_size": 10}), ("act", {"activation_function": "swish2"}),
                         ("heads", {"n_head": 5}), ("neg", {"n_embd": -64}), ("str", {"n_layer": "2"}), ("huge", {"n_embd": 1 << 40}),
                         ("type", {"model_type": "bert"})]:
        c = dict(g); c.update(change)
        put("hf_config", "gpt2_" + name + ".json", json.dumps(c))
    l = json.load(open(os.path.join(FIX, "llama-tiny", "config.json")))
    c = dict(l); c["num_key_value_heads"] = 3
    put("hf_config", "llama_gqa_bad.json", json.dumps(c))
    put("hf_config", "not_object.json", "[1, 2, 3]")
    put("hf_config", "empty_object.json", "{}")


def seeds_tar_ingest():
    cfg, st = tiny_gpt2()
    files = [("model/config.json", cfg.encode()), ("model/model.safetensors", st)]
    put("tar_ingest", "gpt2.tar", tar_of([("model", None)] + files))
    put("tar_ingest", "gpt2.tar.gz", gzip.compress(tar_of([("model", None)] + files), mtime=0))
    put("tar_ingest", "gpt2_flat.tar.gz", gzip.compress(tar_of([("config.json", cfg.encode()), ("model.safetensors", st)]), mtime=0))
    bad_cfg = json.loads(cfg); bad_cfg["n_layer"] = 3
    put("tar_ingest", "gpt2_layers3.tar.gz", gzip.compress(tar_of([("config.json", json.dumps(bad_cfg).encode()), ("model.safetensors", st)]), mtime=0))
    put("tar_ingest", "traversal.tar", tar_of([("../evil.json", b"{}"), ("config.json", cfg.encode())]))
    put("tar_ingest", "symlink.tar", tar_of([("config.json", cfg.encode())], links=[("model.safetensors", "/etc/passwd", tarfile.SYMTYPE)]))
    put("tar_ingest", "hardlink.tar", tar_of([("config.json", cfg.encode())], links=[("model.safetensors", "config.json", tarfile.LNKTYPE)]))
    put("tar_ingest", "no_config.tar", tar_of([("model.safetensors", st)]))
    put("tar_ingest", "zeros_bomb.tar.gz", gzip.compress(tar_of([("config.json", cfg.encode()), ("zeros.bin", bytes(4 << 20))]), 9, mtime=0))
    put("tar_ingest", "truncated.tar.gz", gzip.compress(tar_of(files), mtime=0)[:-40])
    put("tar_ingest", "array.npy", npy([3, 4]))
    put("tar_ingest", "two.safetensors", safetensors([("a", "F32", [2, 3], f32(6))]))
    put("tar_ingest", "matrix.json", "[[1, 2, 3], [4, 5, 6]]")
    put("tar_ingest", "nan.json", "[1, 2, NaN]")


def seeds_job_spec():
    put("job_spec", "tt_token.json", json.dumps({"upload_id": "u_0123456789abcdef", "method": "tt-token", "params": {"ranks": [4, 4], "shape": "auto"}}))
    put("job_spec", "svd.json", json.dumps({"upload_id": "u_0123456789abcdef", "tensor": "wte", "method": "svd", "params": {"rank": 8},
                                            "publish": {"model": "gpt2-small", "tag": "v1"}}))
    put("job_spec", "entries.json", json.dumps({"upload_id": "u_0123456789abcdef", "whole_model": True,
                                                "entries": [{"tensors": "transformer\\.h\\..*\\.weight", "method": "int8"},
                                                            {"tensors": ".*wte.*", "method": "tt-token", "params": {"eps": 0.1}}]}))
    put("job_spec", "plan.json", json.dumps({"upload_id": "u_0123456789abcdef", "whole_model": True,
                                             "plan": {"target_bytes": 100000, "candidates": ["fp16", "int8", "svd rank=4"]}}))
    put("job_spec", "quality.json", json.dumps({"upload_id": "u_0123456789abcdef", "method": "fp16", "quality_gate": {"max_kl": 0.1},
                                                "evaluation": {"sequences": [[1, 2, 3], [4, 5]]}, "replace": True}))
    put("job_spec", "bad_method.json", json.dumps({"upload_id": "u_x", "method": "nope"}))
    put("job_spec", "bad_types.json", json.dumps({"upload_id": 5, "method": ["svd"], "params": "x"}))
    put("job_spec", "not_object.json", "[]")


def seeds_device_report(protoc):
    rep = {"device": {"device_id": "pi-1", "board": "Raspberry Pi 5", "cores": 4, "mem_bytes": "8000000000", "arch": "aarch64"},
           "model": "gpt2-small", "tag": "v1", "artifact_sha256": "ab" * 32}
    put("device_report", "report.json", b"\x01" + json.dumps(rep).encode())
    put("device_report", "minimal.json", b"\x01" + json.dumps({"model": "m"}).encode())
    put("device_report", "wrong_device.json", b"\x01" + json.dumps({"model": "m", "device": {"device_id": "pi-2"}}).encode())
    put("device_report", "unknown_field.json", b"\x01" + json.dumps({"model": "m", "bogus": 1}).encode())
    put("device_report", "not_json.json", b"\x01{model")
    if protoc:
        text = 'device { device_id: "pi-1" board: "Pi 5" cores: 4 mem_bytes: 8000000000 }\nmodel: "gpt2-small"\ntag: "v1"\n'
        try:
            pb = subprocess.run([protoc, "--encode=tensorslm.v1.DeviceReport", "-I", os.path.join(ROOT, "proto"), "report.proto"],
                                input=text.encode(), capture_output=True, check=True).stdout
            put("device_report", "report.pb", b"\x00" + pb)
            put("device_report", "truncated.pb", b"\x00" + pb[:-3])
        except (OSError, subprocess.CalledProcessError) as e:
            print("protoc --encode failed:", e, file=sys.stderr)
    put("device_report", "empty.pb", b"\x00")


def seeds_tokenizer():
    full = json.load(open(os.path.join(FIX, "gpt2-tokenizer", "tokenizer.json"), encoding="utf-8"))
    vocab = {k: v for k, v in full["model"]["vocab"].items() if v < 300}
    merges = []
    for m in full["model"]["merges"]:
        a, b = m.split(" ") if isinstance(m, str) else m
        if a in vocab and b in vocab and (a + b) in vocab:
            merges.append(m)
    mini = dict(full)
    mini["model"] = dict(full["model"]); mini["model"]["vocab"] = vocab; mini["model"]["merges"] = merges
    mini["added_tokens"] = [{"id": 299, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
                             "normalized": False, "special": True}]
    s = json.dumps(mini, ensure_ascii=False)
    put("tokenizer_json", "gpt2_mini.json", s)
    put("tokenizer_json", "gpt2_mini_no_merges.json", json.dumps(dict(mini, model=dict(mini["model"], merges=[]))))
    put("tokenizer_json", "unigram.json", json.dumps({"model": {"type": "Unigram", "vocab": [["a", -1.0]]}}))
    put("tokenizer_json", "bad_vocab.json", json.dumps(dict(mini, model=dict(mini["model"], vocab={"a": -5, "b": 1 << 40}))))
    put("tokenizer_json", "not_json.json", "{\"model\": ")
    for name, text in [("hello.txt", "Hello world, it's a test!"), ("unicode.txt", "na\u00efve caf\u00e9 \u65e5\u672c\u8a9e \U0001F600"),
                       ("special.txt", "a<|endoftext|>b <|endoftext|>"), ("spaces.txt", "  \t\n\n   x  y\r\n"),
                       ("contractions.txt", "I'm we'll they've she'd it's don't 12345 3.14"), ("invalid_utf8.txt", b"ab\xff\xfe\xc3(x"),
                       ("long_word.txt", "a" * 2000)]:
        put("tokenizer_encode", name, text)


def seeds_config_file():
    for f in ["server.json"]:
        put("config_file", f, open(os.path.join(ROOT, "configs", f), "rb").read())
    put("config_file", "tokens.json", json.dumps({"listen": "0.0.0.0:8443", "tls_cert": "/c.pem", "tls_key": "/k.pem",
                                                  "tokens": [{"name": "ci", "sha256": "ab" * 32, "scopes": ["ci"]},
                                                             {"name": "pi", "sha256": "CD" * 32, "scopes": ["device"], "devices": ["pi-*"]}]}))
    put("config_file", "comments.json", "// comment\n{\n  \"workers\": 2, /* block */ \"upload_max_bytes\": 1048576\n}\n")
    put("config_file", "limits.json", json.dumps({"tar_max_extracted_bytes": 1000, "tar_max_ratio": 0.5, "tar_max_members": 0}))
    put("config_file", "bad_types.json", json.dumps({"listen": 8080, "workers": "two", "tokens": {"a": 1}}))
    put("config_file", "bad_listen.json", json.dumps({"listen": "localhost"}))
    put("config_file", "not_object.json", "[1]")


def seeds_http_request():
    reqs = {
        "get_healthz.http": "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "post_job.http": 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{"method":"svd"}\n',
        "chunked_upload.http": "POST /v1/uploads?name=emb&format=npy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "keepalive.http": "GET /v1/jobs/j_0123456789abcdef HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models/gpt2/latest?x=%41+b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "percent_ff.http": "GET /%ff HTTP/1.1\r\nHost: x\r\n\r\n",
        "bad_percent.http": "GET /v1/jobs?state=%g1 HTTP/1.1\r\n\r\n",
        "query_ff.http": "GET /v1/reports?device=%ff&limit=5 HTTP/1.1\r\n\r\n",
        "method_405.http": "PUT /v1/jobs HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "too_large.http": "POST /v1/jobs HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
        "http10.http": "GET /metrics HTTP/1.0\r\n\r\n",
        "report.http": 'POST /v1/devices/pi-1/reports HTTP/1.1\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 13\r\n\r\n{"model":"m"}',
        "garbage.http": "\x00\x01GET\r\n\r\n",
        "long_header.http": "GET / HTTP/1.1\r\nX: " + "a" * 5000 + "\r\n\r\n",
        "dup_length.http": "POST /v1/jobs HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    }
    for k, v in reqs.items():
        put("http_request", k, v)


def seeds_artifact(cli):
    if not cli:
        return
    tmp = tempfile.mkdtemp()
    try:
        emb = os.path.join(tmp, "emb.npy")
        with open(emb, "wb") as f:
            f.write(npy([16, 8], values=[((i * 31) % 17 - 8) * 0.1 for i in range(128)]))
        for method, args in [("tt-token", ["--ranks", "2,2", "--shape", "2,2,2"]), ("svd", ["--param", "rank=2"]), ("fp16", []),
                             ("int8", []), ("saten", [])]:
            out = os.path.join(tmp, method + ".tsm")
            r = subprocess.run([cli, "compress", emb, "--method", method, "--no-baselines", "--threads", "1", "-o", out] + args,
                               capture_output=True)
            if r.returncode == 0 and os.path.getsize(out) < 64 << 10:
                data = open(out, "rb").read()
                put("artifact", method + ".tsm", data)
                if method == "svd":
                    flipped = bytearray(data); flipped[len(data) // 2] ^= 0xFF
                    put("artifact", "svd_flipped.tsm", bytes(flipped))
                    put("artifact", "svd_truncated.tsm", data[:-10])
                    put("artifact", "svd_unhashed.tsm", data[2:-34])  # the pre-hash layout
            else:
                print("compress", method, "failed:", r.stderr.decode()[-300:], file=sys.stderr)
        put("artifact", "npy_not_artifact.tsm", npy([2, 2]))
        put("artifact", "empty.tsm", b"")
    finally:
        shutil.rmtree(tmp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", help="tensorslm CLI, to make the artifact seeds")
    a = ap.parse_args()
    seeds_npy(); seeds_safetensors(); seeds_hf_config(); seeds_tar_ingest(); seeds_job_spec()
    seeds_device_report(shutil.which("protoc")); seeds_tokenizer(); seeds_config_file(); seeds_http_request()
    seeds_artifact(a.cli)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(CORPUS) for f in fs)
    print("corpus: %d bytes" % total)
    assert total < 3 << 20


if __name__ == "__main__":
    main()
