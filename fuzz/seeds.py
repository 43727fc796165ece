"""Writes seed corpora for the fuzz targets: every conformance query and every query of
the golden LogQL tests (with a few sample lines for the pipeline target)."""
import json, pathlib, subprocess, sys

out = pathlib.Path(sys.argv[1])
root = pathlib.Path(__file__).resolve().parent.parent
queries = set()
cases = root.parent / "shared" / "conformance" / "cases.json.zst"
if cases.exists():
    raw = subprocess.run(["zstd", "-dc", str(cases)], check=True, capture_output=True).stdout
    doc = json.loads(raw)
    for c in doc["cases"] if isinstance(doc, dict) else doc:
        q = c.get("params", {}).get("query")
        if q:
            queries.add(q)
for f in (root / "crates" / "query" / "tests" / "golden").glob("*.test"):
    for line in f.read_text().splitlines():
        if line.startswith("query "):
            queries.add(line.removeprefix("query ").strip())
lines = ['{"level":"error","status":503,"msg":"upstream \\"x\\" failed","dur":"1.5s","size":"2KiB"}',
         'level=info method=GET path=/api status=200 duration=12ms bytes=1.2MB',
         '127.0.0.1 - - [01/Jan/2024:00:00:00 +0000] "GET /index.html HTTP/1.1" 200 512',
         '\x1b[31mred\x1b[0m plain text with ünïcode']
for t, items in (("logql_parse", sorted(queries)),
                 ("logql_pipeline", [f"{q}\n{l}" for q in sorted(queries) for l in lines[:2]] + [f"{q}\n{l}" for q in sorted(queries)[:50] for l in lines[2:]])):
    d = out / f"seed-{t}"
    d.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(items):
        (d / f"{i:05}").write_text(s)
    print(f"{t}: {len(items)} seeds")
