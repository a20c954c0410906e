"""Writing one benchmark's section of benchmarks/README.md (shared by the bench_*.py scripts)."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).with_name("README.md")
#: In a section, what follows this line is commentary written by hand: kept when the figures are rewritten.
NOTES = "<!-- notes: kept when the figures above are rewritten -->"


def write_section(section: str, text: str) -> None:
    """Put ``text`` (which starts with the ``section`` heading) in place of that section, or append it."""
    old = README.read_text(encoding="utf-8") if README.exists() else "# civicmap benchmarks\n"
    body = text.strip() + "\n"
    if section not in old:
        README.write_text(old.rstrip() + "\n\n" + body, encoding="utf-8")
        return
    head, rest = old.split(section, 1)
    current, *after = rest.split("\n## ", 1)
    if NOTES in current:
        body += "\n" + NOTES + current.split(NOTES, 1)[1].rstrip() + "\n"
    README.write_text(head + body + ("\n## " + after[0] if after else ""), encoding="utf-8")
