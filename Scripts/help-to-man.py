#!/usr/bin/env python3
"""Turns an executable's --help text (stdin) into a section-8 manual page (stdout), so that the
terminal's help and `man` come from one source.

    help-to-man.py NAME VERSION SOURCE DATE < help.txt

The help text is read as paragraphs (separated by blank lines):
- the first paragraph starting "Usage:" or "USAGE:" is the SYNOPSIS, one line a form;
- a paragraph whose first line is a heading ("Verbs:", "OPTIONS:") becomes a subsection with
  the rest of the paragraph kept as written (verb tables, option lists);
- a paragraph of indented lines is kept as written; any other paragraph is filled text.
The NAME line is the first sentence of the first filled paragraph ("OVERVIEW: " dropped).
"""
import re
import sys


def escape(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def preformatted(lines):
    return [".PP", ".RS 4", ".nf"] + [escape(line) for line in lines] + [".fi", ".RE"]


def main() -> None:
    name, version, source, date = sys.argv[1:5]
    paragraphs = [p.splitlines() for p in re.split(r"\n\s*\n", sys.stdin.read().strip("\n")) if p.strip()]
    synopsis, body, summary = [], [], None
    for lines in paragraphs:
        first = lines[0]
        if not synopsis and re.match(r"(?i)usage:", first):
            forms = [re.sub(r"(?i)^usage:\s*", "", line).strip() for line in lines]
            synopsis = [".nf"] + [escape(form) for form in forms if form] + [".fi"]
        elif re.fullmatch(r"[A-Za-z][A-Za-z ]*:", first.strip()) and first == first.lstrip():
            body += [".SS " + escape(first.rstrip(":").strip().capitalize())] + preformatted(lines[1:])
        elif all(line.startswith(" ") for line in lines):
            body += preformatted(lines)
        else:
            text = " ".join(line.strip() for line in lines)
            text = re.sub(r"^OVERVIEW:\s*", "", text)
            if summary is None:
                summary = re.split(r"\.(?:\s|$)|:\s", text, maxsplit=1)[0]
            body += [".PP", escape(text)]
    if summary is None or not synopsis:
        sys.exit(f"help-to-man: the help of {name} has no usage or no description")
    page = [
        f'.TH "{name.upper()}" 8 "{date}" "{source} {version}" "System Administration"',
        ".SH NAME",
        f"{escape(name)} \\- {escape(summary)}",
        ".SH SYNOPSIS",
        *synopsis,
        ".SH DESCRIPTION",
        *body,
    ]
    print("\n".join(page))


if __name__ == "__main__":
    main()
