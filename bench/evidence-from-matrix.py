#!/usr/bin/env python3
"""The evidence table of docs/evidence.md from a matrix's results (`ackcheck matrix --out DIR`):
one row per cell of the plain campaigns (variants left out), sorted by campaign and seed, and a
summary line per campaign. Reads DIR/results.jsonl only; runs nothing.

Usage: python3 bench/evidence-from-matrix.py DIR
"""
import json
import sys
from collections import defaultdict


def stall(s):
    return "–" if not s else f"{(s['to'] - s['from']) / 1e9:.1f} s"


def main(directory):
    rows = []
    for line in open(f"{directory}/results.jsonl"):
        r = json.loads(line)
        if r.get("variant") or "evidence" not in r:
            continue
        rows.append(r)
    rows.sort(key=lambda r: (r["campaign"], r["seed"]))
    print("| campaign | seed | verdict | claim | grade | faults started/scheduled | crashes happened/planned "
          "| progress outside faults | longest stall (acks / deliveries) | messages | lost | duplicated | reasons |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    grades = defaultdict(list)
    for r in rows:
        e, c = r["evidence"], r["counts"]
        claim = "holds" if r["claim_holds"] else "VIOLATED"
        share = e.get("progress_share_outside_faults")
        share = "–" if share is None else f"{share * 100:.0f} %"
        reasons = "; ".join(x.replace("|", "/") for x in e.get("reasons", []))
        print(f"| {r['campaign']} | {r['seed']} | {r['verdict']} | {claim} | {e['grade']} "
              f"| {e['faults_started']}/{e['faults_scheduled']} | {e['crashes']}/{e['crashes_scheduled']} "
              f"| {share} | {stall(e.get('longest_stall_acked'))} / {stall(e.get('longest_stall_delivered'))} "
              f"| {c['messages']} | {c['lost']} | {c['duplicated']} | {reasons} |")
        grades[r["campaign"]].append(e["grade"])
    print()
    strong = sorted(k for k, g in grades.items() if len(g) == 3 and all(x == "strong" for x in g))
    print(f"{len(rows)} runs of {len(grades)} campaigns; {sum(g.count('strong') for g in grades.values())} strong. "
          f"Strong on all three seeds: {', '.join(f'`{k}`' for k in strong) or 'none'}.")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "analysis/results")
