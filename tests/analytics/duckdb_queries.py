"""Runs the DuckDB blocks of docs/analytics.md over a Parquet copy and prints their rows as JSON.

Usage: duckdb_queries.py DOC ROOT [REPEAT]
  DOC     docs/analytics.md; its `<!-- duckdb: name -->` blocks are run, `setup` first
  ROOT    the Parquet copy's folder, put in place of the docs' example path
  REPEAT  run each query this many times and report its best time (for the benchmark)

With BSS_DUCKDB_S3 set to {"endpoint", "key_id", "key", "region"} (JSON), ROOT may be an s3:// URL:
the httpfs extension is loaded from the duckdb-extension-httpfs wheel (DuckDB's own signed build; no
download), and the credentials are given as a DuckDB secret.

Output: {"<name>": {"columns": [...], "rows": [[...]], "seconds": best time}}. Binary values are
{"hex": "..."}, timestamps epoch milliseconds, dates ISO text, so the Rust test can compare them.
"""
import datetime
import decimal
import json
import os
import re
import sys
import time

import duckdb

DOC_ROOT = "/data/bucket/.bss-parquet"
BLOCK = re.compile(r"<!-- duckdb: (\w+) -->\s*```sql\n(.*?)```", re.S)
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def plain(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"hex": bytes(value).hex()}
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def main():
    doc, root = sys.argv[1], sys.argv[2]
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    blocks = dict(BLOCK.findall(open(doc, encoding="utf-8").read()))
    if "setup" not in blocks:
        sys.exit(f"{doc} has no `<!-- duckdb: setup -->` block")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    s3 = os.environ.get("BSS_DUCKDB_S3")
    if s3:
        import duckdb_extension_httpfs

        s3 = json.loads(s3)
        folder = os.path.join(os.path.dirname(duckdb_extension_httpfs.__file__), "extensions")
        (version,) = os.listdir(folder)
        con.execute(f"LOAD '{folder}/{version}/httpfs.duckdb_extension'")
        endpoint = s3["endpoint"]
        settings = {
            "KEY_ID": s3["key_id"],
            "SECRET": s3["key"],
            "REGION": s3["region"],
            "ENDPOINT": endpoint.split("://", 1)[-1],
            "URL_STYLE": "path",
        }
        quoted = ", ".join(f"{k} '{v.replace(chr(39), chr(39) * 2)}'" for k, v in settings.items())
        use_ssl = str(endpoint.startswith("https")).lower()
        con.execute(f"CREATE SECRET bucket (TYPE s3, {quoted}, USE_SSL {use_ssl})")
    con.execute(blocks.pop("setup").replace(DOC_ROOT, root))
    out = {}
    for name, query in blocks.items():
        best = None
        for _ in range(repeat):
            started = time.perf_counter()
            cursor = con.execute(query)
            rows = cursor.fetchall()
            elapsed = time.perf_counter() - started
            best = elapsed if best is None else min(best, elapsed)
        out[name] = {
            "columns": [d[0] for d in cursor.description],
            "rows": [[plain(v) for v in row] for row in rows],
            "seconds": best,
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
