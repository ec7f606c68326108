"""The table of docs/partitions.md from the verdicts bench/partitions.sh leaves in OUT_DIR."""
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "runs/partitions")
print("| campaign | seed | verdict | claim | evidence | messages | lost | duplicated | faults started / scheduled (of them partitions) | longest stall of acknowledged sends |")
print("|---|---|---|---|---|---|---|---|---|---|")
for verdict_file in sorted(out.glob("*/verdict.json")):
    v = json.loads(verdict_file.read_text())
    name, seed = verdict_file.parent.name.rsplit("-s", 1)
    c, e = v["counts"], v["evidence"]
    claim = "holds" if v["claim_holds"] else "VIOLATED"
    stall = e.get("longest_stall_acked") or {}
    stall_s = (stall.get("to", 0) - stall.get("from", 0)) / 1e9 if stall else 0.0
    parts = e.get("faults", {}).get("partition", 0)
    print(
        f"| {name} | {seed} | {v['verdict']} | {v['claim']} {claim} | {e['grade']} | {c['messages']:,} | "
        f"{c['lost']:,} | {c['duplicated']:,} | {e['faults_started']} / {e['faults_scheduled']} ({parts}) | {stall_s:.1f} s |"
    )
