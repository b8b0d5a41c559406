#!/usr/bin/env python3
"""Every figure in the docs from a committed artifact (issue 16, item 4).

Two mechanisms, both checked by `make test` (ctest case check_docs):

1. Generated blocks. A table in a doc that comes from an artifact sits between markers

       <!-- generated: KIND ARG... -->
       ...
       <!-- end generated -->

   and this script makes the block again from the artifact and compares. KINDs:

       table PATH N            the N-th markdown table (1-based) of a committed text file,
                               e.g. a plan's output or a study's report.md
       plan N ARG...           the N-th table printed by `splitinfer plan ARG...`, run here on
                               the committed profiles (the planner is arithmetic: it must
                               give the same table again on any machine)
       fuzz PATH               the fuzz campaign table from bench/fuzz/campaign.tsv (the
                               latest campaign of each target)

2. Claims: numbers quoted in prose. docs/claims.tsv lists each with its source, one per line:

       DOC <TAB> TEXT <TAB> SOURCE...

   TEXT is the sentence fragment as it appears in DOC with each number written as {FORMAT}
   (a Python format spec, e.g. {.2f}); each SOURCE gives one number, in order, and the last
   ones (as many as TEXT has placeholders) fill TEXT; earlier ones feed expr: sources:

       json:PATH:SELECTOR      SELECTOR: dot-separated keys; [k=v,k2=v2] picks the one list
                               element with those fields; e.g. [run=ptq_stem_b1_tensor,coder=cabac].top1
       tsv:PATH:KEY=V,...:COL  the one row of a TSV file (header line first) with those fields
       text:PATH:REGEX         group 1 of the first match of REGEX in a committed text file
       cell:PATH:N:KEY=V:COL   a cell of the N-th markdown table of a text file, in the row
                               whose column KEY is V (column names from the header line)
       column:PATH:N:COL:AGG   min, max, sum or absmax (the value farthest from 0, with its sign)
                               over a column of that table; AGG@KEY=VALUE takes only the rows
                               whose column KEY is VALUE
       expr:PYTHON             an arithmetic expression over the previous values v0, v1, ...
                               (ratios, differences: "4.2x" = expr:v0/v1)

   The check formats the values into TEXT and requires the result verbatim in DOC: a number
   edited by hand, or an artifact that changed, fails it.

Usage: scripts/check_docs.py [--bin build/tools/cli/splitinfer] [--fix] [--root DIR]
  --fix rewrites the generated blocks from their artifacts (claims are never rewritten: a
  changed artifact needs a person to re-read the sentence around the number).
Exit 0 when everything matches, 1 with one line per mismatch otherwise.
"""
import argparse
import csv
import json
import os
import re
import shlex
import subprocess
import sys

DOCS = ["README.md", "docs", "bench/README.md"]
BEGIN = re.compile(r"^<!-- generated: (.*?) -->\s*$")
END = "<!-- end generated -->"


class CheckError(Exception):
    pass


def markdown_tables(text):
    """The markdown tables of a text, each as its list of lines (consecutive '|' lines)."""
    tables, cur = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            cur.append(line.rstrip())
        elif cur:
            tables.append(cur)
            cur = []
    if cur:
        tables.append(cur)
    return tables


def nth_table(text, n, what):
    tables = markdown_tables(text)
    if not 1 <= n <= len(tables):
        raise CheckError(f"{what} has {len(tables)} table(s), not a table {n}")
    return tables[n - 1]


def read(root, path):
    full = os.path.join(root, path)
    if not os.path.isfile(full):
        raise CheckError(f"artifact {path} is not in the repository")
    with open(full, encoding="utf-8") as f:
        return f.read()


def fuzz_table(root, path):
    rows = list(csv.DictReader(read(root, path).splitlines(), delimiter="\t"))
    latest = {}
    for r in rows:  # the file is appended to in time order: the last row of a target wins
        latest[r["target"]] = r
    out = ["| target | date | time | executions | exec/s | coverage (edges) | features | corpus (committed, after) | findings |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for t, r in latest.items():
        out.append(f"| {t}_fuzz | {r['date']} | {r['seconds']} s | {int(r['executions']):,} | {r['exec_per_s']} | "
                   f"{r['coverage']} | {r['features']} | {r['corpus_before']} -> {r['corpus_after']} | {r['findings']} |")
    return out


def generate(root, spec, binary):
    args = shlex.split(spec)
    if not args:
        raise CheckError("empty generator")
    kind, rest = args[0], args[1:]
    if kind == "table" and len(rest) == 2:
        return nth_table(read(root, rest[0]), int(rest[1]), rest[0])
    if kind == "plan" and len(rest) >= 2:
        if not binary or not os.path.isfile(binary):
            raise CheckError(f"`plan` blocks need the splitinfer binary (--bin); {binary!r} is not there")
        p = subprocess.run([binary, "plan"] + rest[1:], cwd=root, capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise CheckError(f"splitinfer plan {' '.join(rest[1:])} failed: {p.stderr.strip()[:300]}")
        return nth_table(p.stdout, int(rest[0]), "the plan's output")
    if kind == "fuzz" and len(rest) == 1:
        return fuzz_table(root, rest[0])
    raise CheckError(f"unknown generator '{spec}' (table PATH N | plan N ARGS | fuzz PATH)")


def check_blocks(root, doc, binary, fix, problems):
    text = read(root, doc)
    lines = text.split("\n")
    out, i, changed, count = [], 0, False, 0
    while i < len(lines):
        m = BEGIN.match(lines[i])
        out.append(lines[i])
        i += 1
        if not m:
            continue
        count += 1
        start = i
        while i < len(lines) and lines[i].strip() != END:
            i += 1
        if i == len(lines):
            problems.append(f"{doc}:{start}: generated block without '{END}'")
            return count
        current = [l.rstrip() for l in lines[start:i]]
        try:
            want = generate(root, m.group(1), binary)
        except CheckError as e:
            problems.append(f"{doc}:{start}: {e}")
            out.extend(lines[start:i])
            continue
        if current != want:
            if fix:
                changed = True
            else:
                for k in range(max(len(current), len(want))):
                    a = current[k] if k < len(current) else "(missing)"
                    b = want[k] if k < len(want) else "(missing)"
                    if a != b:
                        problems.append(f"{doc}:{start + k + 1}: generated block ({m.group(1)}) differs from its "
                                        f"artifact:\n    doc:      {a}\n    artifact: {b}")
                        break
        out.extend(want if fix else lines[start:i])
    if fix and changed:
        with open(os.path.join(root, doc), "w", encoding="utf-8") as f:
            f.write("\n".join(out))
        print(f"check_docs: regenerated blocks in {doc}")
    return count


def select_json(value, selector, what):
    for part in re.findall(r"\[[^\]]*\]|[^.\[\]]+", selector):
        if part.startswith("["):
            want = dict(kv.split("=", 1) for kv in part[1:-1].split(","))
            if not isinstance(value, list):
                raise CheckError(f"{what}: {part} needs a list")
            hits = [e for e in value if isinstance(e, dict) and all(str(e.get(k)) == v for k, v in want.items())]
            if len(hits) != 1:
                raise CheckError(f"{what}: {part} matches {len(hits)} elements, not one")
            value = hits[0]
        else:
            if isinstance(value, list):
                value = value[int(part)]
            elif isinstance(value, dict) and part in value:
                value = value[part]
            else:
                raise CheckError(f"{what}: no key '{part}'")
    return value


def source_value(root, source, previous):
    kind, _, rest = source.partition(":")
    if kind == "json":
        path, _, selector = rest.partition(":")
        return select_json(json.loads(read(root, path)), selector, source)
    if kind == "tsv":
        path, keys, col = rest.split(":", 2)
        want = dict(kv.split("=", 1) for kv in keys.split(","))
        rows = [r for r in csv.DictReader(read(root, path).splitlines(), delimiter="\t")
                if all(r.get(k) == v for k, v in want.items())]
        if len(rows) != 1:
            raise CheckError(f"{source}: {len(rows)} rows match, not one")
        return float(rows[0][col])
    if kind == "text":
        path, _, regex = rest.partition(":")
        m = re.search(regex, read(root, path), re.M)
        if not m:
            raise CheckError(f"{source}: no match in {path}")
        g = m.group(1).replace(",", "")
        return float(g) if re.fullmatch(r"[-+]?[0-9.]+(e[-+]?[0-9]+)?", g) else g
    if kind in ("cell", "column"):
        path, n, a, b = rest.split(":", 3)
        table = nth_table(read(root, path), int(n), path)
        header = [c.strip() for c in table[0].strip("|").split("|")]
        rows = [[c.strip() for c in l.strip("|").split("|")] for l in table[2:]]

        def col(name):
            if name not in header:
                raise CheckError(f"{source}: no column '{name}' in {header}")
            return header.index(name)

        def number(cell):
            # "12,345", "-2.6 %", "4.2x": the number at the start of the cell
            m = re.match(r"\s*([-+]?[0-9][0-9,]*(\.[0-9]+)?)", cell)
            if not m:
                raise CheckError(f"{source}: '{cell}' is not a number")
            return float(m.group(1).replace(",", ""))

        if kind == "cell":
            key, _, value = a.partition("=")
            hits = [r for r in rows if r[col(key)] == value]
            if len(hits) != 1:
                raise CheckError(f"{source}: {len(hits)} rows with {key} = {value}, not one")
            return number(hits[0][col(b)])
        # "AGG@KEY=VALUE": only the rows whose KEY column is VALUE (e.g. absmax@kind=split).
        b, _, where = b.partition("@")
        if where:
            key, _, value = where.partition("=")
            rows = [r for r in rows if r[col(key)] == value]
            if not rows:
                raise CheckError(f"{source}: no row with {key} = {value}")
        values = [number(r[col(a)]) for r in rows]
        aggregates = {"min": min, "max": max, "sum": sum, "absmax": lambda v: max(v, key=abs)}
        if b not in aggregates:
            raise CheckError(f"{source}: aggregate '{b}' is not min, max, sum or absmax")
        return aggregates[b](values)
    if kind == "expr":
        env = {f"v{i}": v for i, v in enumerate(previous)}
        return eval(rest, {"__builtins__": {"abs": abs, "min": min, "max": max, "round": round}}, env)
    raise CheckError(f"unknown source '{source}' (json:, tsv:, text:, cell:, column:, expr:)")


def check_claims(root, path, problems):
    full = os.path.join(root, path)
    if not os.path.isfile(full):
        return 0
    docs = {}
    n = 0
    with open(full, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) < 3:
                problems.append(f"{path}:{lineno}: want DOC<TAB>TEXT<TAB>SOURCE...")
                continue
            doc, template, sources = fields[0], fields[1], fields[2:]
            n += 1
            try:
                values = []
                for s in sources:
                    values.append(source_value(root, s, values))
                specs = re.findall(r"\{([^{}]*)\}", template)
                if len(specs) > len(values):
                    raise CheckError(f"{len(specs)} placeholder(s) for {len(values)} source(s)")
                values = values[len(values) - len(specs):]  # the earlier ones fed expr: sources
                expected = template
                for spec, v in zip(specs, values):
                    expected = expected.replace("{" + spec + "}", format(v, spec.lstrip(":")), 1)
                if doc not in docs:
                    docs[doc] = read(root, doc)
                if expected not in docs[doc]:
                    problems.append(f"{path}:{lineno}: {doc} should say \"{expected}\" (from {', '.join(sources)})")
            except (CheckError, ValueError, KeyError, IndexError, ZeroDivisionError, SyntaxError) as e:
                problems.append(f"{path}:{lineno}: {e}")
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--bin", default="build/tools/cli/splitinfer")
    ap.add_argument("--fix", action="store_true")
    a = ap.parse_args()
    binary = a.bin if os.path.isabs(a.bin) else os.path.join(a.root, a.bin)
    docs = []
    for d in DOCS:
        full = os.path.join(a.root, d)
        if os.path.isdir(full):
            docs += sorted(os.path.join(d, f) for f in os.listdir(full) if f.endswith(".md"))
        elif os.path.isfile(full):
            docs.append(d)
    problems = []
    blocks = sum(check_blocks(a.root, doc, binary, a.fix, problems) for doc in docs)
    claims = check_claims(a.root, "docs/claims.tsv", problems)
    for p in problems:
        print("check_docs: " + p)
    print(f"check_docs: {blocks} generated block(s) in {len(docs)} docs, {claims} claim(s): "
          f"{'all match' if not problems else str(len(problems)) + ' mismatch(es)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
