"""Wikipedia `pages-articles` XML dumps -> clean plain-text `Document`s.

Streams the dump (`.xml` or `.xml.bz2`; bz2 multistream dumps are concatenated
bz2 streams, which Python's `bz2` reads in one pass) with `iterparse`, clearing
each page after use, so memory stays flat however large the dump.

Pages in a namespace other than 0 (articles) are skipped as
`non_article_namespace`, redirects as `redirect`, pages whose text is only
markup as `only_markup`. A malformed or truncated file raises `DumpError`
naming the file and, where known, the line, after yielding every page read
before the damage.

Wikitext is parsed with mwparserfromhell: templates, `<ref>`s, tables,
comments, files/images, categories and interlanguage links are removed; links
keep their text; each heading becomes a paragraph break followed by its title
on its own line; the "See also", "References", "External links" and similar
tail sections are dropped.
"""

from __future__ import annotations

import bz2
import contextlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import mwparserfromhell

from maskpt.records import Skip
from preprocess.readers import Document

DROP_SECTIONS = {
    "see also", "references", "external links", "further reading", "notes",
    "bibliography", "sources", "footnotes", "citations", "notes and references",
}  # fmt: skip
DROP_LINK_PREFIXES = ("file:", "image:", "category:", "media:")
_INTERLANG = re.compile(r"^[a-z]{2,3}(-[a-z]+)?:", re.I)


class DumpError(ValueError):
    """A dump file that cannot be read to the end."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _open(path: Path):
    return bz2.open(path, "rb") if path.suffix == ".bz2" else path.open("rb")


def read_wikipedia_dump(path: str | Path) -> Iterator[Document | Skip]:
    path = Path(path)
    pages = 0
    try:
        with _open(path) as f:
            context = ET.iterparse(f, events=("start", "end"))
            root = None
            for event, elem in context:
                if root is None and event == "start":
                    root = elem
                if event != "end" or _local(elem.tag) != "page":
                    continue
                pages += 1
                yield _page(elem, path)
                elem.clear()
                if root is not None:
                    root.clear()  # drop finished pages from the tree
    except ET.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else "?"
        raise DumpError(f"{path}: malformed XML at line {line} after {pages} pages: {exc}") from exc
    except (EOFError, OSError) as exc:
        raise DumpError(
            f"{path}: truncated or corrupt compressed file after {pages} pages: {exc}"
        ) from exc


def _page(page, path: Path) -> Document | Skip:
    fields = {_local(c.tag): c for c in page}
    title = (fields["title"].text or "") if "title" in fields else ""
    page_id = (fields["id"].text or "").strip() if "id" in fields else ""
    if not page_id:
        return Skip(f"{path}:{title}", "missing_field:id", f"{path}: page {title!r} has no <id>")
    ns = (fields["ns"].text or "").strip() if "ns" in fields else "0"
    if ns != "0":
        return Skip(page_id, "non_article_namespace", f"{title} (ns {ns})")
    if "redirect" in fields:
        return Skip(page_id, "redirect", title)
    text = ""
    rev = fields.get("revision")
    if rev is not None:
        for c in rev:
            if _local(c.tag) == "text":
                text = c.text or ""
    if text.lstrip().lower().startswith("#redirect"):
        return Skip(page_id, "redirect", title)
    clean = clean_wikitext(text)
    if not clean:
        return Skip(page_id, "only_markup" if text.strip() else "empty_text", title)
    return Document(id=page_id, text=clean, title=title)


# Regex passes around the parser: where mwparserfromhell cannot parse a stretch
# (unbalanced markup, common in cut or vandalised pages) it keeps it as text,
# so comments and refs are removed before parsing and leftovers after.
_PRE = [
    (re.compile(r"<!--.*?(-->|$)", re.S), ""),
    (re.compile(r"<ref\b[^>]*/>", re.I), ""),
    (re.compile(r"<ref\b[^>]*>.*?</ref\s*>", re.I | re.S), ""),
]
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_MEDIA_LINE = re.compile(r"^.*\[\[(?:file|image|media|category):.*$", re.I | re.M)
_LINK = re.compile(r"\[\[(?:[^|\[\]]*\|)?([^\[\]]*)\]\]")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^<>\n]*>")


def _post(text: str) -> str:
    prev = None
    while prev != text:  # nested templates, innermost first
        prev, text = text, _TEMPLATE.sub("", text)
    text = _MEDIA_LINE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    return text.replace("[[", "").replace("]]", "").replace("{{", "").replace("}}", "")


def clean_wikitext(text: str) -> str:
    """Plain text of an article's wikitext (see the module docstring)."""
    for pattern, repl in _PRE:
        text = pattern.sub(repl, text)
    code = mwparserfromhell.parse(text)
    paragraphs: list[str] = []
    for section in code.get_sections(levels=None, include_lead=True, flat=True):
        headings = section.filter_headings(recursive=False)
        title = headings[0].title.strip_code().strip() if headings else ""
        if title.lower() in DROP_SECTIONS:
            continue
        for h in headings:
            section.remove(h)
        body = _strip(section)
        if title and body:
            paragraphs.append(title)
        if body:
            paragraphs.append(body)
    return "\n\n".join(paragraphs)


def _strip(code) -> str:
    for node in code.filter(recursive=True):
        if _unwanted(node):
            with contextlib.suppress(ValueError):  # already gone with an unwanted parent
                code.remove(node, recursive=True)
    raw = _post(code.strip_code(normalize=True, collapse=True, keep_template_params=False))
    lines = []
    for line in raw.split("\n"):
        line = re.sub(r"[ \t\u00a0]+", " ", line).strip()
        line = re.sub(r"\(\s*[,;]?\s*\)", "", line).replace(" ,", ",").replace(" .", ".")
        if line and not line.startswith(("{|", "|", "!")):
            lines.append(re.sub(r"^[*#:;]+\s*", "", line))
    return "\n".join(line for line in lines if line)


def _unwanted(node) -> bool:
    if isinstance(node, mwparserfromhell.nodes.Template | mwparserfromhell.nodes.Comment):
        return True
    if isinstance(node, mwparserfromhell.nodes.Tag):
        tag = str(node.tag).strip().lower()
        return tag in ("ref", "references", "table", "gallery", "math", "timeline", "imagemap")
    if isinstance(node, mwparserfromhell.nodes.Wikilink):
        target = str(node.title).strip().lower().lstrip(":")
        return target.startswith(DROP_LINK_PREFIXES) or bool(_INTERLANG.match(target))
    return False
