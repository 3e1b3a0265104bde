"""The chart's values table, generated from values.yaml: every leaf setting, its default and the
comment beside or above it. deploy/helm/bucket-storage-support/README.md holds it between markers and a
test checks it is current. Regenerate with:
    python3 tests/deploy/chart_values.py --write
"""

import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "deploy", "helm", "bucket-storage-support")
START, END = "<!-- values:start -->", "<!-- values:end -->"
KEY = re.compile(r"^( *)([A-Za-z][A-Za-z0-9_.-]*):(.*)$")


def split_comment(text):
    """`value  # comment` -> (value, comment); a # inside quotes is not a comment."""
    quote = None
    for i, c in enumerate(text):
        if c in "\"'" and quote in (None, c):
            quote = None if quote else c
        elif c == "#" and quote is None and (i == 0 or text[i - 1] == " "):
            return text[:i].strip(), text[i + 1 :].strip()
    return text.strip(), ""


def leaves(path=os.path.join(CHART, "values.yaml")):
    """(dotted key, default, description) of every leaf of values.yaml, in file order."""
    stack, above, rows = [], [], []
    with open(path) as handle:
        for line in handle:
            stripped = line.strip()
            if not stripped:
                above = []
                continue
            if stripped.startswith("#"):
                above.append(stripped.lstrip("#").strip())
                continue
            match = KEY.match(line.rstrip("\n"))
            if not match:
                above = []
                continue
            indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
            while stack and stack[-1][0] >= indent:
                stack.pop()
            value, comment = split_comment(rest)
            if value == "":
                stack.append((indent, key))
            else:
                # A comment block above a leaf describes it; an example line (`- x`) is not prose.
                prose = [c for c in above if not c.startswith("- ")]
                description = comment or " ".join(prose)
                rows.append((".".join([k for _, k in stack] + [key]), value, description))
            above = []
    return rows


def table():
    lines = ["| Key | Default | Description |", "|---|---|---|"]
    for key, default, description in leaves():
        cell = description.replace("|", "\\|")
        lines.append(f"| `{key}` | `{default}` | {cell} |")
    return "\n".join(lines) + "\n"


def readme_table(readme_path=os.path.join(CHART, "README.md")):
    with open(readme_path) as handle:
        text = handle.read()
    return text.split(START, 1)[1].split(END, 1)[0].lstrip("\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        readme = os.path.join(CHART, "README.md")
        with open(readme) as handle:
            text = handle.read()
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        with open(readme, "w") as handle:
            handle.write(f"{head}{START}\n{table()}{END}{tail}")
    else:
        sys.stdout.write(table())
