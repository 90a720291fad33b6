#!/usr/bin/env python3
"""Print criterion's median (µs) per benchmark from target/criterion/*/new/estimates.json."""
import json, pathlib, sys
root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
rows = []
for est in sorted(root.glob("**/new/estimates.json")):
    bench = json.loads((est.parent / "benchmark.json").read_text())
    e = json.loads(est.read_text())
    rows.append((bench["full_id"], e["median"]["point_estimate"] / 1000,
                 e["median"]["confidence_interval"]["lower_bound"] / 1000,
                 e["median"]["confidence_interval"]["upper_bound"] / 1000))
print("benchmark\tmedian_us\tci95_low\tci95_high")
for r in sorted(set(rows)):
    print(f"{r[0]}\t{r[1]:.1f}\t{r[2]:.1f}\t{r[3]:.1f}")
