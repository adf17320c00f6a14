#!/usr/bin/env python3
"""The results table of scripts/load-test.sh: one row per `loadgen run` JSON summary.

    load-test-table.py RESULTS_DIR                  print the Markdown table
    load-test-table.py RESULTS_DIR --into FILE      replace the part of FILE between
                                                    <!-- load-test:begin --> and
                                                    <!-- load-test:end --> with it
"""
import json
import pathlib
import sys

MODES = {"embedded": "1 node, SQLite + files", "node1": "1 node, PostgreSQL + Garage",
         "node2": "2 nodes, PostgreSQL + Garage",
         "pg1": "1 node, PostgreSQL + files", "pg2": "2 nodes, PostgreSQL + shared files"}


def rows(results):
    out = []
    for p in sorted(results.glob("*.json")):
        s = json.loads(p.read_text())
        mode = p.name.split("-")[0]
        v = s.get("verification") or {}
        cpu = s.get("hub_cpu_secs_per_gb")
        out.append((list(MODES).index(mode) if mode in MODES else 9, s["devices"], "| " + " | ".join([
            MODES.get(mode, mode),
            f'{s["devices"]} ({s["facilities"]} fac.)',
            f'{s["packages_ok"]} x {s["images"] // max(s["packages_ok"], 1)} img, '
            f'{s["mean_object_bytes"] / 1e3:.0f} kB',
            str(s["concurrency"]),
            f'{s["packages_per_sec"]:.1f}',
            f'{s["images_per_sec"]:.0f}',
            f'{s["mb_per_sec"]:.1f}',
            f'{s["package_latency"]["p50_ms"]:.0f} / {s["package_latency"]["p99_ms"]:.0f}',
            f'{s["put_object_latency"]["p50_ms"]:.0f} / {s["put_object_latency"]["p99_ms"]:.0f}',
            f'{s["put_manifest_latency"]["p50_ms"]:.0f} / {s["put_manifest_latency"]["p99_ms"]:.0f}',
            f"{cpu:.1f}" if cpu is not None else "–",
            f'{s["store_cpu_secs"] / (s["bytes_sent"] / 1e9):.1f}'
            if s.get("store_cpu_secs") is not None and s["bytes_sent"] else "–",
            f'{s["error_count"]}' + (" (" + ", ".join(f"{k}: {n}" for k, n in s["errors"].items()) + ")"
                                     if s["errors"] else ""),
            "yes" if v.get("ok") else "NO",
        ]) + " |"))
    out.sort()
    head = ("| hub | devices | packages (images each, object size) | at once | packages/s | "
            "images/s | MB/s | package p50 / p99 ms | object PUT p50 / p99 ms | "
            "manifest PUT p50 / p99 ms | hub CPU s/GB | store CPU s/GB | errors | all listed once |\n"
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    return head + "\n" + "\n".join(r for _, _, r in out) + "\n"


def main():
    results = pathlib.Path(sys.argv[1])
    table = rows(results)
    if len(sys.argv) == 4 and sys.argv[2] == "--into":
        doc = pathlib.Path(sys.argv[3])
        text = doc.read_text()
        begin, end = "<!-- load-test:begin -->", "<!-- load-test:end -->"
        a, b = text.index(begin) + len(begin), text.index(end)
        doc.write_text(text[:a] + "\n" + table + text[b:])
    else:
        sys.stdout.write(table)


main()
