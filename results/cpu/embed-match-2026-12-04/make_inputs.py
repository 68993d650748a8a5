# The inputs of the 2026-12-04 embed/match timing (docs/results.md, "Embedding and matching"):
# 100,000 candidates = the catalog's 12,491 descriptions (whitespace collapsed to one line), repeated
# with " (copy N)" appended to each repeat; 1,000 queries = the catalog's first 1,000 titles.
# Run from the repository root: python3 results/cpu/embed-match-2026-12-04/make_inputs.py OUT_DIR
import csv
import sys

out_dir = sys.argv[1]
path = "../shared/data/myntra_products/myntra_products_catalog.csv"
rows = list(csv.DictReader(open(path, newline="", encoding="utf-8")))
descriptions = [" ".join(r["Description"].split()) for r in rows]
descriptions = [d for d in descriptions if d]
titles = [" ".join(r["ProductName"].split()) for r in rows if r["ProductName"].strip()]
candidates, copy = [], 0
while len(candidates) < 100_000:
    for d in descriptions[: 100_000 - len(candidates)]:
        candidates.append(d if copy == 0 else f"{d} (copy {copy + 1})")
    copy += 1
open(f"{out_dir}/candidates.txt", "w").write("\n".join(candidates) + "\n")
open(f"{out_dir}/queries.txt", "w").write("\n".join(titles[:1000]) + "\n")
