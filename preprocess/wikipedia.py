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

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mwparserfromhell

from maskpt.core.errors import UserError
from maskpt.core.records import Document, Skip
from maskpt.core.storage import input_path, open_input

DROP_SECTIONS = {
    "see also",
    "references",
    "external links",
    "further reading",
    "notes",
    "bibliography",
    "sources",
    "footnotes",
    "citations",
    "notes and references",
}
DROP_LINK_PREFIXES = ("file:", "image:", "category:", "media:")
_INTERLANG = re.compile(r"^[a-z]{2,3}(-[a-z]+)?:", re.I)


class DumpError(UserError, ValueError):
    """A dump file that cannot be read to the end."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _open(path):
    return open_input(path, "bz2" if path.suffix == ".bz2" else None)


@dataclass(frozen=True)
class RawPage:
    """An article page whose wikitext is not cleaned yet (cleaning is the slow
    part, so the pipeline does it in its workers)."""

    id: str
    title: str
    wikitext: str

    def to_document(self) -> Document | Skip:
        clean = clean_wikitext(self.wikitext)
        if not clean:
            return Skip(
                self.id, "only_markup" if self.wikitext.strip() else "empty_text", self.title
            )
        return Document(id=self.id, text=clean, title=self.title)


def read_wikipedia_dump(path: str | Path) -> Iterator[Document | Skip]:
    """Clean article documents, and a `Skip` for every other page."""
    for item in read_wikipedia_pages(path):
        yield item.to_document() if isinstance(item, RawPage) else item


def read_wikipedia_pages(path: str | Path) -> Iterator[RawPage | Skip]:
    """Article pages with raw wikitext, and a `Skip` for every other page."""
    path = input_path(path)
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


def _page(page, path: Path) -> RawPage | Skip:
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
    return RawPage(id=page_id, title=title, wikitext=text)


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
# what is left of an image link whose [[File:...]] wrapper was parsed away
_IMAGE_LEFTOVER = re.compile(
    r"^.*(?:^|\|)(?:thumb|thumbnail|frame|frameless|upright|left|right|center|\d+px)(?:\||$).*$",
    re.M,
)


def _post(text: str) -> str:
    prev = None
    while prev != text:  # nested templates, innermost first
        prev, text = text, _TEMPLATE.sub("", text)
    text = _MEDIA_LINE.sub("", text)
    text = _IMAGE_LEFTOVER.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    return text.replace("[[", "").replace("]]", "").replace("{{", "").replace("}}", "")


def clean_wikitext(text: str) -> str:
    """Plain text of an article's wikitext (see the module docstring).

    One pass over the top-level nodes: headings open sections (a dropped
    section takes its subsections with it), unwanted nodes are skipped, the
    rest are stripped to text. Skipping instead of `Wikicode.remove` keeps
    this linear in the page size."""
    for pattern, repl in _PRE:
        text = pattern.sub(repl, text)
    code = mwparserfromhell.parse(text)
    paragraphs: list[str] = []
    parts: list[str] = []
    title, drop_level = "", None

    def close_section():
        body = _tidy("".join(parts))
        if title and body:
            paragraphs.append(title)
        if body:
            paragraphs.append(body)
        parts.clear()

    for node in code.nodes:
        if isinstance(node, mwparserfromhell.nodes.Heading):
            if drop_level is None:
                close_section()
            parts.clear()
            if drop_level is not None and node.level > drop_level:
                continue  # a subsection of a dropped section
            title = _tidy(str(node.title.strip_code()))
            drop_level = node.level if title.lower() in DROP_SECTIONS else None
            continue
        if drop_level is not None or _unwanted(node):
            continue
        stripped = node.__strip__(normalize=True, collapse=True, keep_template_params=False)
        if stripped:
            parts.append(str(stripped))
    if drop_level is None:
        close_section()
    return "\n\n".join(paragraphs)


def _tidy(raw: str) -> str:
    raw = _post(raw)
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
