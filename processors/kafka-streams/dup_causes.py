#!/usr/bin/env python3
# Usage: python3 processors/kafka-streams/dup_causes.py RUN_DIR/history.jsonl ...
# Splits a Kafka Streams run's sink duplicates by cause, from the history alone: the output id
# ks-<source partition>-<source offset> names the source record it was derived from.
import json, sys, collections
for path in sys.argv[1:]:
    per_up = collections.defaultdict(lambda: collections.defaultdict(set))  # upstream -> output id -> sink positions
    for line in open(path):
        e = json.loads(line)
        if e.get('f') != 'deliver' or e.get('type') != 'ok':
            continue
        for m in e['value']['messages']:
            if m.get('from'):
                per_up[m['from']][m['id']].add(m.get('pos'))
    reprocessed = sum(1 for outs in per_up.values() if any(len(p) > 1 for p in outs.values()))
    source_twice = sum(1 for outs in per_up.values() if len(outs) > 1)
    print(f"{path}: upstream messages {len(per_up)}, reprocessed by Streams (one output id at 2+ sink positions) {reprocessed}, source record twice (2+ output ids) {source_twice}")
