#!/usr/bin/python3
"""Write the seed corpora of tests/fuzz/corpus/<target>/ (seed-<sha1> files).

Run it after changing a format; it only adds and replaces seed-* files.
Regression inputs (crash-*, found by fuzzing and fixed) are kept as they
are: they are part of the corpus `make test` runs.
"""
import hashlib
import os

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, blobs):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        if old.startswith("seed-"):
            os.unlink(os.path.join(d, old))
    for b in blobs:
        if isinstance(b, str):
            b = b.encode()
        name = "seed-" + hashlib.sha1(b).hexdigest()[:16]
        with open(os.path.join(d, name), "wb") as f:
            f.write(b)


def tokens():
    return [
        "just-a-bare-token\n",
        "# comment\nbare-after-comment\r\n",
        "ops node n0de-secret\nroot admin r00t\nreader read rd rate=5\n"
        "writer write wr rate=0.5 burst=10\n",
        "a admin x  # trailing comment\n\tb\tread\ty\tburst=3 rate=2\n",
        "a admin x\nb read x\n",          # repeated secret
        "a admin x\na read y\n",          # repeated name
        "a read x\n",                     # no admin
        "a admin x rate=1\n",             # limited node credential
        "a admin x\nb root y\n",          # bad role
        "a admin x\nb read y rate=1e3\n",  # bad rate
        "bare\na admin x\n",
        "a admin x\nb read y\x00z\n",
        "",
    ]


def http():
    body = b'{"events":[{"type":"t","id":"a","data":{"k":[1,2.5,null]}}]}'
    return [
        b"GET /v1/streams/s/events?from=3&limit=10&consistency=leader "
        b"HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\n\r\n",
        b"POST /v1/streams/s/events HTTP/1.1\r\nContent-Type: "
        b"application/json\r\nContent-Length: " + str(len(body)).encode() +
        b"\r\n\r\n" + body,
        b"POST /v1/streams/s/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n5\r\nhello\r\n0\r\n\r\n",
        b"PUT /v1/streams/a%20b/checkpoints/c HTTP/1.1\r\nExpect: "
        b"100-continue\r\nContent-Length: 2\r\n\r\n42",
        b"GET /health HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\nConnection: "
        b"close\r\n\r\n",
        b"GET /v1/x?a=%zz&b=+c%41&&=&d HTTP/1.0\r\nX-Request-Id: r-1\r\n\r\n",
        b"DELETE /v1/cluster/members/3 HTTP/1.1\r\nX-Ledger-Forwarded: 2\r\n"
        b"X-Ledger-Node-Auth: Bearer n\r\n\r\n",
        b"CONNECT host:443 HTTP/1.1\r\n\r\n",
        b"GET http://h:1/abs/path?q=1 HTTP/1.1\r\nUpgrade: x\r\n"
        b"Connection: upgrade\r\n\r\nrest",
        b"BREW / HTCPCP/1.0\r\n\r\n",
    ]


def append_values():
    return [
        {"type": "t"},
        {"type": "t", "id": "i", "data": {"a": 1}},
        {"events": [{"type": "a", "id": "1"}, {"type": "b", "id": None,
                                                "data": [1, -2, 3.5, True]}],
         "expected_version": 7},
        {"events": [{"type": "x", "id": "d"}, {"type": "y", "id": "d"}]},
        {"events": []},
        {"events": [{"type": ""}]},
        {"events": [{"type": "é\u2603", "data": "\u0000nul"}]},
        {"type": "t", "data": {"deep": [[[[{"x": None}]]]]}},
        [1, 2, 3],
        "just a string",
        {"events": [{"type": "t"}] * 20, "expected_version": -1},
    ]


def append_json():
    import json
    out = [json.dumps(v) for v in append_values()]
    out += ['{"type":"t","data":1e308}', '{"a":1,"a":2}', '{"type":"t"} x',
            '{"type":"t","data":12345678901234567890}', "[" * 50]
    return out


def append_msgpack():
    out = [msgpack.packb(v) for v in append_values()]
    out += [b"\xc4\x03abc", msgpack.packb({1: "x"}),
            msgpack.packb({"type": "t", "data": 2 ** 64 - 1}),
            msgpack.packb({"type": "t", "data": float("nan")}),
            msgpack.packb({"type": "t"}) + b"\x00"]
    return out


def entry():
    def pad(b):
        return b + b"\x00" * ((8 - len(b) % 8) % 8)
    ops = [
        [1, "orders", None, [["created", "id-1", '{"n":1}'],
                             ["paid", None, "null"]]],
        [1, "orders", 3, [["x", "y", "[]"]]],
        [2, "orders", "billing", '{"seq":4}'],
        [3, "cluster-abc", [[1, "127.0.0.1:7001", "127.0.0.1:8001"],
                            [2, "127.0.0.1:7002", "127.0.0.1:8002"]]],
        [4, 9, "127.0.0.1:7009", "127.0.0.1:8009"],
        [5, 9],
        [6, 9, "rack-a"],
        [6, 9, ""],
        [7, 3, 1, 30],
    ]
    out = [pad(msgpack.packb([1, 1764700000000, ops]))]
    out += [pad(msgpack.packb([1, -1, [op]])) for op in ops]
    out += [msgpack.packb([1, 0, []]), msgpack.packb([2, 0, []]),
            msgpack.packb([1, 0, [[6, 1]]]) + b"\x01",
            msgpack.packb([1, 0, [[1, "s", None, [["t", None, "x\x00y"]]]]])]
    return out


def events_page():
    """First byte: 0 compact MessagePack page, 1 generic JSON page."""
    import json
    h0 = b"\0" * 32
    h1 = hashlib.sha256(b"a").digest()
    h2 = hashlib.sha256(b"b").digest()
    evs = [[1, "orders", 1, "created", "o-1", 1796282633882, '{"n":1}', h0, h1],
           [2, "orders", 2, "paid", None, -5, "[1,2.5,null]", h1, h2]]
    compact = b"".join(msgpack.packb(e, use_bin_type=True) for e in evs)
    page = {"events": [{"position": e[0], "stream": e[1], "seq": e[2],
                        "type": e[3], "id": e[4], "ts": e[5],
                        "data_text": e[6], "prev_hash": e[7].hex(),
                        "hash": e[8].hex()} for e in evs]}
    return [b"\0" + compact, b"\0" + msgpack.packb(evs[0], use_bin_type=True),
            b"\0", b"\1" + json.dumps(page).encode(), b'\1{"events":[]}']


def snapshot():
    h = hashlib.sha256(b"x").digest()
    base = [1, 42, 7, h, "2295519ee7f1f23b7105d0996684b6cd",
            [[1, "127.0.0.1:7001", "127.0.0.1:8001"],
             [2, "127.0.0.1:7002", "127.0.0.1:8002"]],
            [["orders", "billing", '{"seq":4}']]]
    # Zones (a member's 4th element) and roles targets (the 9th, after a
    # restored_from that is "" for none).
    zoned = base[:5] + [[[1, "127.0.0.1:7001", "127.0.0.1:8001", "rack-a"],
                         [2, "127.0.0.1:7002", "127.0.0.1:8002"]], base[6]]
    return [msgpack.packb(base, use_bin_type=True),
            msgpack.packb(base + ["abcd"], use_bin_type=True),
            msgpack.packb([1, 0, 0, b"\0" * 32, "", [], []],
                          use_bin_type=True),
            msgpack.packb(zoned + ["", [3, 1, 30]], use_bin_type=True)]


if __name__ == "__main__":
    write("tokens", tokens())
    write("http", http())
    write("append_json", append_json())
    write("append_msgpack", append_msgpack())
    write("entry", entry())
    write("events_page", events_page())
    write("snapshot", snapshot())
