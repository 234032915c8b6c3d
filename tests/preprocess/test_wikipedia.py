import bz2

import pytest

from maskpt.core.records import Document, Skip
from preprocess.wikipedia import DumpError, clean_wikitext, read_wikipedia_dump

NS = "http://www.mediawiki.org/xml/export-0.10/"


def page(pid, title, text, ns=0, redirect=None):
    red = f'<redirect title="{redirect}" />' if redirect else ""
    return (
        f"<page><title>{title}</title><ns>{ns}</ns><id>{pid}</id>{red}"
        f'<revision><id>1</id><text xml:space="preserve">{text}</text></revision></page>'
    )


ARTICLE = (
    "{{Infobox person|name=Ada}}'''Ada Lovelace''' was a [[mathematician|mathematician]] "
    "born in [[London]].&lt;ref&gt;A source.&lt;/ref&gt; She wrote notes.\n"
    "[[File:Ada.jpg|thumb|A portrait]]\n"
    "== Early life ==\nShe was born in 1815.\n"
    '{| class="wikitable"\n|-\n| cell || other\n|}\n'
    "== References ==\n* A book\n"
    "[[Category:Mathematicians]]\n[[de:Ada Lovelace]]"
)


def dump(pages):
    return f'<mediawiki xmlns="{NS}"><siteinfo><sitename>W</sitename></siteinfo>{"".join(pages)}</mediawiki>'


def test_clean_wikitext_fixture():
    text = clean_wikitext(ARTICLE.replace("&lt;", "<").replace("&gt;", ">"))
    assert text == (
        "Ada Lovelace was a mathematician born in London. She wrote notes.\n\n"
        "Early life\n\nShe was born in 1815."
    )


def test_reader_fixture_every_page_accounted(tmp_path):
    p = tmp_path / "d.xml.bz2"
    pages = [
        page(1, "Ada Lovelace", ARTICLE),
        page(2, "Lovelace", "#REDIRECT [[Ada Lovelace]]", redirect="Ada Lovelace"),
        page(3, "Talk:Ada", "chat", ns=1),
        page(4, "Only markup", "{{stub}}[[Category:X]]"),
        page(5, "Empty", ""),
    ]
    p.write_bytes(bz2.compress(dump(pages).encode()))
    out = list(read_wikipedia_dump(p))
    assert len(out) == 5
    assert [d.id for d in out if isinstance(d, Document)] == ["1"]
    assert [s.reason for s in out if isinstance(s, Skip)] == [
        "redirect",
        "non_article_namespace",
        "only_markup",
        "empty_text",
    ]


def test_multistream_bz2(tmp_path):
    p = tmp_path / "multi.xml.bz2"
    xml = dump([page(1, "A", "Alpha text."), page(2, "B", "Beta text.")])
    cut = xml.index("<page>", xml.index("<page>") + 1)
    p.write_bytes(bz2.compress(xml[:cut].encode()) + bz2.compress(xml[cut:].encode()))
    assert [d.text for d in read_wikipedia_dump(p)] == ["Alpha text.", "Beta text."]


def test_truncated_bz2_is_a_clear_error(tmp_path):
    p = tmp_path / "t.xml.bz2"
    data = bz2.compress(dump([page(i, f"T{i}", "Some text. " * 50) for i in range(50)]).encode())
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DumpError, match="t.xml.bz2"):
        list(read_wikipedia_dump(p))


def test_malformed_xml_names_file_and_line(tmp_path):
    p = tmp_path / "bad.xml"
    p.write_text(dump([page(1, "A", "ok")]).replace("</page>", "</pag>\n"))
    with pytest.raises(DumpError, match=r"bad.xml: malformed XML at line \d+"):
        list(read_wikipedia_dump(p))


def test_real_dump_sample(shared_data):
    path = shared_data / "wikipedia" / "enwiki-sample-pages-articles.xml.bz2"
    out = list(read_wikipedia_dump(path))
    docs = [d for d in out if isinstance(d, Document)]
    skips = [s for s in out if isinstance(s, Skip)]
    assert len(out) == 206  # every page is a document or a counted skip
    assert len(docs) > 100
    assert {s.reason for s in skips} <= {"redirect", "non_article_namespace", "only_markup"}
    for d in docs:
        assert "{{" not in d.text and "[[" not in d.text and "<ref" not in d.text
        assert "Category:" not in d.text and "thumb|" not in d.text
    assert docs[0].title == "Anarchism" and docs[0].text.startswith(
        "Anarchism is a political philosophy"
    )
