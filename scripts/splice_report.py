#!/usr/bin/env python3
"""Copies a study's generated report into docs/results.md.

    python3 scripts/splice_report.py runs/fmnist_study docs/results.md

Everything in the document from the line that starts with "Machine:" (inside the section
"## The study's report") to the end is replaced by STUDY/report.md from its own "Machine:" line
on, with its "## " headings demoted to "### " and plot paths pointed at docs/results/, where the
SVG plots are copied. The hand-written part above (targets, what was tried) stays as it is.
"""
import os
import shutil
import sys


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    study, doc = sys.argv[1], sys.argv[2]
    report = open(os.path.join(study, "report.md")).read().splitlines()
    text = open(doc).read().splitlines()
    try:
        r0 = next(i for i, l in enumerate(report) if l.startswith("Machine:"))
        section = next(i for i, l in enumerate(text) if l.startswith("## The study's report"))
        d0 = next(i for i in range(section, len(text)) if text[i].startswith("Machine:"))
    except StopIteration:
        print("splice_report: no 'Machine:' line in the report or no study section in the document", file=sys.stderr)
        return 1
    body = []
    for line in report[r0:]:
        if line.startswith("## "):
            line = "#" + line
        body.append(line.replace("(plots/", "(results/"))
    out_dir = os.path.join(os.path.dirname(doc), "results")
    os.makedirs(out_dir, exist_ok=True)
    for name in sorted(os.listdir(os.path.join(study, "plots"))):
        if name.endswith(".svg"):
            shutil.copy(os.path.join(study, "plots", name), os.path.join(out_dir, name))
    with open(doc, "w") as f:
        f.write("\n".join(text[:d0] + body) + "\n")
    print(f"splice_report: {doc}: {len(body)} report lines from {study}/report.md; plots in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
