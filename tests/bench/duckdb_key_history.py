"""DuckDB: one key's history over the whole topic, on the Parquet copy (the query of
docs/analytics.md) and on the JSON-lines archive objects; best of 5 runs after a first one.

Usage: duckdb_key_history.py PARQUET_ROOT ARCHIVE_FOLDER KEY
"""
import os
import sys
import time

import duckdb

# The docs' blocks, read as the analytics test reads them.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "analytics"))
from duckdb_queries import BLOCK, DOC_ROOT  # noqa: E402

parquet_root, archive_folder, key = sys.argv[1:4]
blocks = dict(BLOCK.findall(open("docs/analytics.md", encoding="utf-8").read()))
setup = blocks["setup"].replace(DOC_ROOT, parquet_root)
parquet_query = blocks["key_history"].replace("'order-7'", f"'{key}'")
jsonl_query = f"""
SELECT "partition", "offset", "timestamp", payload IS NULL AS tombstone, payload
FROM read_json('{archive_folder}/*.txt.zst', format = 'newline_delimited', compression = 'zstd')
WHERE topic = 'orders' AND key = '{key}'
ORDER BY "offset";
"""

con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute(setup)


def best(query):
    rows = con.execute(query).fetchall()
    times = []
    for _ in range(5):
        started = time.perf_counter()
        con.execute(query).fetchall()
        times.append(time.perf_counter() - started)
    return min(times), len(rows)


threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
parquet_s, parquet_rows = best(parquet_query)
jsonl_s, jsonl_rows = best(jsonl_query)
print(f"duckdb {duckdb.__version__} ({threads} threads), key history of {key}:")
print(f"  Parquet copy       {parquet_s * 1000:8.1f} ms  {parquet_rows} rows")
print(f"  JSON-lines archive {jsonl_s * 1000:8.1f} ms  {jsonl_rows} rows  ({jsonl_s / parquet_s:.0f}x slower)")
if parquet_rows != jsonl_rows:
    sys.exit("the two answers differ")
