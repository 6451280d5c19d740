#!/usr/bin/env python3
"""ClickHouse's HTTP interface in front of chdb (today's ClickHouse engine, in-process), for
tests/clickhouse_chdb.rs: dnsward's sink and `dnsward logs --source clickhouse` talk to it as
to a ClickHouse server, so the SQL and the RowBinary bodies they send run unchanged on the
current engine.

    python3 server.py DATA_DIR [LIFETIME_SECS [PORT]]

Binds 127.0.0.1 on PORT (default: a free port) and prints the port on stdout. Exits when stdin closes (the
test ended), after LIFETIME_SECS (default 900) at the latest, or when killed.

What it does with a request, as ClickHouse does: the SQL is the `query` URL parameter with
the body as the insert's data, or else the body; other URL parameters (except user,
password, database, decompress) are settings for that query; `decompress=1` bodies are
ClickHouse's native compressed blocks (LZ4; the CityHash128 checksums are not checked here,
the Rust tests check them); `Content-Encoding: gzip` bodies are gunzipped; results are
TabSeparated unless the SQL says FORMAT; an error is HTTP 500 with the engine's message.
An insert's data is written to a file and inserted with `FROM INFILE` (the only change to
the SQL). Every request is appended to DATA_DIR/queries.jsonl: the SQL, its settings, and
the error if any; every insert body, as received, to DATA_DIR/inserts/NNNNNN.bin (the test
replays them elsewhere).
"""

import gzip
import json
import os
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import chdb
import pyarrow
from chdb import session as chdb_session

DATA = sys.argv[1]
LIFETIME = float(sys.argv[2]) if len(sys.argv) > 2 else 900.0
PORT = int(sys.argv[3]) if len(sys.argv) > 3 else 0
INSERTS = os.path.join(DATA, "inserts")
os.makedirs(INSERTS, exist_ok=True)

SESSION = chdb_session.Session(os.path.join(DATA, "chdb"))
LOCK = threading.Lock()
LZ4 = pyarrow.Codec("lz4_raw")
NOT_SETTINGS = {"query", "user", "password", "database", "decompress"}
counter = [0]


def native_blocks(body):
    """ClickHouse's compressed blocks: checksum (16), method (1), compressed size incl. the
    9-byte header (4), raw size (4), data."""
    out = bytearray()
    i = 0
    while i < len(body):
        if len(body) - i < 25:
            raise ValueError("truncated compressed block header")
        method = body[i + 16]
        csize, rsize = struct.unpack_from("<II", body, i + 17)
        data = body[i + 25 : i + 16 + csize]
        if len(data) != csize - 9:
            raise ValueError("truncated compressed block")
        if method == 0x82:
            out += LZ4.decompress(data, decompressed_size=rsize).to_pybytes()
        elif method == 0x02:
            out += data
        else:
            raise ValueError("compression method 0x%02x" % method)
        i += 16 + csize
    return bytes(out)


def sql_value(v):
    return v if v.lstrip("-").isdigit() else "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def run(sql, settings, data):
    """The answer's bytes; raises with the engine's message."""
    if data is not None:
        path = os.path.join(INSERTS, "%06d.rowbinary" % counter[0])
        with open(path, "wb") as f:
            f.write(data)
        head, sep, fmt = sql.rpartition(" FORMAT ")
        if not sep:
            raise ValueError("an insert with data needs FORMAT: " + sql)
        sql = "%s FROM INFILE '%s' FORMAT %s" % (head, path, fmt)
    for k, v in settings.items():
        SESSION.query("SET %s = %s" % (k, sql_value(v)))
    try:
        res = SESSION.query(sql, "TabSeparated")
    finally:
        for k in settings:
            SESSION.query("SET %s = DEFAULT" % k)
    return res.bytes() if hasattr(res, "bytes") else bytes(str(res), "utf-8")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def handle_one(self, body):
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        raw = body
        entry = {}
        try:
            if params.get("decompress") == "1":
                body = native_blocks(body)
            if "query" in params:
                sql, data = params["query"], (body if body else None)
            else:
                sql, data = body.decode("utf-8"), None
            settings = {k: v for k, v in params.items() if k not in NOT_SETTINGS}
            entry = {"sql": sql, "settings": settings}
            with LOCK:
                if data is not None:
                    counter[0] += 1
                    name = "%06d.bin" % counter[0]
                    with open(os.path.join(INSERTS, name), "wb") as f:
                        f.write(raw)
                    entry["body"] = name
                answer = run(sql, settings, data)
            status = 200
        except Exception as e:  # the engine's message, as ClickHouse's HTTP 500
            answer = ("%s\n" % e).encode("utf-8", "replace")
            entry["error"] = str(e)
            status = 500
        with LOCK, open(os.path.join(DATA, "queries.jsonl"), "a") as f:
            f.write(json.dumps(entry) + "\n")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(answer)))
        self.send_header("X-ClickHouse-Server-Display-Name", "chdb")
        self.end_headers()
        self.wfile.write(answer)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_POST(self):
        self.handle_one(self.body())

    def do_GET(self):
        self.handle_one(b"")


def watch_stdin():
    sys.stdin.read()
    os._exit(0)


def main():
    with LOCK:
        SESSION.query("SET session_timezone = 'UTC'")
    ThreadingHTTPServer.allow_reuse_address = True
    srv = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    srv.daemon_threads = True
    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(srv.server_address[1], flush=True)
    time.sleep(LIFETIME)
    os._exit(0)


if __name__ == "__main__":
    main()
