"""Rendering: masks highlighted, skip reasons printed verbatim (no emoji markup)."""

from rich.console import Console

from maskpt.show import print_skips


def test_skip_reasons_print_verbatim():
    console = Console(record=True, width=200)
    print_skips(
        console,
        {"skipped_documents": {"missing_field:id": 2, "x:smile:": 1}, "skipped_segments": {}},
    )
    text = console.export_text()
    assert "missing_field:id: 2" in text and "x:smile:: 1" in text
