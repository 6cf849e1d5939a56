#!/usr/bin/python3
"""Checks Prometheus text exposition (format 0.0.4) with a parser that is not ours.

Usage: check_prometheus.py [URL | FILE] < text
Reads the text from URL (http://, https://, file://; with `Authorization: Bearer $MICRO_TOKEN`
when MICRO_TOKEN is set), from FILE (a path), or else from stdin, parses it with prometheus_client (Debian: python3-prometheus-client), prints
each family as `name type samples`, and exits 1 with the reason on stderr when the text does
not parse or breaks a rule that parser lets through:
  - every sample belongs to a family declared with # TYPE (the parser makes strays "untyped");
  - a family is declared once, its samples contiguous;
  - no two samples share name and labels;
  - histogram buckets are cumulative and the +Inf bucket equals _count.
"""
import math
import os
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def read_text(argv):
    if len(argv) < 2:
        return sys.stdin.read()
    if "://" not in argv[1]:
        with open(argv[1], encoding="utf-8") as f:
            return f.read()
    request = urllib.request.Request(argv[1])
    token = os.environ.get("MICRO_TOKEN")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode("utf-8")


def declared_families(text):
    """The names of # TYPE lines, in order, failing on one declared twice."""
    names = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "#" and parts[1] == "TYPE":
            if parts[2] in names:
                raise ValueError("family %s is declared twice" % parts[2])
            names.append(parts[2])
    return names


def check_histogram(family):
    series = {}
    for sample in family.samples:
        labels = {k: v for k, v in sample.labels.items() if k != "le"}
        key = tuple(sorted(labels.items()))
        entry = series.setdefault(key, {"buckets": [], "count": None})
        if sample.name.endswith("_bucket"):
            entry["buckets"].append((float(sample.labels["le"]), sample.value))
        elif sample.name.endswith("_count"):
            entry["count"] = sample.value
    for key, entry in series.items():
        buckets = entry["buckets"]
        if not buckets or not math.isinf(buckets[-1][0]):
            raise ValueError("%s%s has no +Inf bucket last" % (family.name, dict(key)))
        for (le_a, a), (le_b, b) in zip(buckets, buckets[1:]):
            if le_b <= le_a or b < a:
                raise ValueError("%s%s buckets are not cumulative" % (family.name, dict(key)))
        if entry["count"] != buckets[-1][1]:
            raise ValueError("%s%s: _count %s != +Inf bucket %s" %
                             (family.name, dict(key), entry["count"], buckets[-1][1]))


def check(text):
    declared = declared_families(text)
    families = list(text_string_to_metric_families(text))
    seen_families = set()
    seen_samples = set()
    for family in families:
        if family.type in ("untyped", "unknown") and family.name not in declared:
            raise ValueError("sample %s is outside its family (or has no # TYPE)" % family.name)
        # The parser starts a family at each change of name: one seen twice was split.
        if family.name in seen_families:
            raise ValueError("the samples of %s are not contiguous" % family.name)
        seen_families.add(family.name)
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            if key in seen_samples:
                raise ValueError("duplicate sample %s%s" % (sample.name, sample.labels))
            seen_samples.add(key)
        if family.type == "histogram":
            check_histogram(family)
    return families


def main(argv):
    try:
        families = check(read_text(argv))
    except Exception as e:  # the parser raises ValueError and friends; urllib its own errors
        print("invalid exposition: %s" % e, file=sys.stderr)
        return 1
    for family in families:
        print("%s %s %d" % (family.name, family.type, len(family.samples)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
