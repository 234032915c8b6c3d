"""Wikipedia multistream dumps: planning from the index, reading a byte range
of streams, and writing one (from any dump: tests, or a single-stream dump a
user wants to split).

The layout Wikimedia publishes (`enwiki-YYYYMMDD-pages-articles-multistream.xml.bz2`):

    stream 0      the <mediawiki> header and <siteinfo>
    stream 1..n   up to 100 <page> elements each
    (last)        the </mediawiki> footer, in the last page stream or a stream of its own

each stream a complete bz2 stream, concatenated. The index beside it
(`...-multistream-index.txt.bz2`) has one line per page,
`offset:page_id:title`, where offset is the byte position of the stream
holding the page. A byte range from one stream's offset to another's is a
whole number of bz2 streams: a worker decompresses just that range and
parses its pages, so nobody reads the rest of the dump.
"""

from __future__ import annotations

import bz2
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from maskpt.core.records import Skip
from maskpt.core.storage import input_path, open_input
from preprocess.wikipedia import DumpError, RawPage, _local, _page

INDEX_SUFFIX = "-index.txt.bz2"


def index_path(dump: str | Path) -> Path | None:
    """The index beside a `.xml.bz2` dump (`X.xml.bz2` -> `X-index.txt.bz2`), if any."""
    dump = input_path(dump)
    if not dump.name.endswith(".xml.bz2"):
        return None
    candidate = dump.with_name(dump.name[: -len(".xml.bz2")] + INDEX_SUFFIX)
    return candidate if candidate.is_file() else None


def stream_ranges(dump: str | Path, index: str | Path) -> list[tuple[int, int, int]]:
    """(start, end, pages) of every page stream, in order, from the index alone."""
    dump, index = input_path(dump), input_path(index)
    offsets: list[int] = []
    counts: list[int] = []
    try:
        with open_input(index, "bz2") as f:
            for n, line in enumerate(f, 1):
                head = line.split(b":", 1)[0]
                if not head.strip():
                    continue
                try:
                    offset = int(head)
                except ValueError:
                    raise DumpError(
                        f"{index}:{n}: not an index line `offset:page_id:title`"
                    ) from None
                if offsets and offset == offsets[-1]:
                    counts[-1] += 1
                elif offsets and offset < offsets[-1]:
                    raise DumpError(f"{index}:{n}: offset {offset} goes backwards")
                else:
                    offsets.append(offset)
                    counts.append(1)
    except (OSError, EOFError) as exc:
        raise DumpError(f"{index}: unreadable index ({exc})") from exc
    size = dump.stat().st_size
    if offsets and offsets[-1] >= size:
        raise DumpError(f"{index}: offset {offsets[-1]} is past the end of {dump} ({size} bytes)")
    ends = offsets[1:] + [size]
    return [(s, e, c) for s, e, c in zip(offsets, ends, counts, strict=True)]


_FOOTER = re.compile(rb"</mediawiki>\s*$")


def read_range(dump: str | Path, start: int, end: int) -> Iterator[RawPage | Skip]:
    """The pages in bytes [start, end) of a multistream dump (whole streams)."""
    dump = input_path(dump)
    where = f"{dump} bytes {start}-{end}"
    with dump.open("rb") as f:
        f.seek(start)
        data = f.read(end - start)
    try:
        xml = bz2.decompress(data)
    except (OSError, ValueError, EOFError) as exc:
        raise DumpError(
            f"{where}: not whole bz2 streams ({exc}); is the index from this dump?"
        ) from exc
    xml = _FOOTER.sub(b"", xml)
    if start == 0 and b"<page>" in xml:  # a range that holds the header: keep only the pages
        xml = xml[xml.index(b"<page>") :]
    pages = 0
    try:
        for _, elem in ET.iterparse(io.BytesIO(b"<pages>" + xml + b"</pages>"), events=("end",)):
            if _local(elem.tag) == "page":
                pages += 1
                yield _page(elem, dump)
                elem.clear()
    except ET.ParseError as exc:
        raise DumpError(f"{where}: malformed XML after {pages} pages: {exc}") from exc


def write_multistream(src: str | Path, out: str | Path, pages_per_stream: int = 100) -> Path:
    """Rewrite a dump (`.xml` or `.xml.bz2`) as a multistream dump `out`
    (`.xml.bz2`) plus its index, as Wikimedia lays them out; returns the index."""
    src, out = Path(src), Path(out)
    if not out.name.endswith(".xml.bz2"):
        raise ValueError(f"{out}: a multistream dump's name ends with .xml.bz2")
    text = bz2.decompress(src.read_bytes()) if src.suffix == ".bz2" else src.read_bytes()
    first = text.index(b"<page>")
    header, body = text[:first], text[first:]
    pages = re.findall(rb"<page>.*?</page>\s*", body, flags=re.S)
    index_lines = []
    with out.open("wb") as f:
        f.write(bz2.compress(header))
        for k in range(0, len(pages), pages_per_stream):
            offset = f.tell()
            group = pages[k : k + pages_per_stream]
            for p in group:
                pid = re.search(rb"<id>(\d+)</id>", p)
                title = re.search(rb"<title>(.*?)</title>", p, flags=re.S)
                index_lines.append(
                    b"%d:%s:%s\n" % (offset, pid[1] if pid else b"0", title[1] if title else b"")
                )
            f.write(bz2.compress(b"".join(group)))
        f.write(bz2.compress(b"</mediawiki>\n"))
    index = out.with_name(out.name[: -len(".xml.bz2")] + INDEX_SUFFIX)
    index.write_bytes(bz2.compress(b"".join(index_lines)))
    return index
