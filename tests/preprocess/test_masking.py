import policies
from maskpt.core.records import Document, Skip
from preprocess.masking import Counts, mask_documents


def test_every_document_written_or_counted(tokenizer, tok_info):
    docs = [
        Document("a", "Ada Lovelace was born in London in 1815."),
        Document("b", ""),
        Skip("f.jsonl:3", "invalid_utf8"),
        Document("c", "   "),
        Document("d", "the small boat. " * 40),
    ]
    counts = Counts()
    out = [
        ex
        for ex, _ in mask_documents(
            docs, tokenizer, policies.create("rand_v1", tok_info), 0, counts, max_length=32
        )
    ]
    assert counts.documents_read == 5
    assert counts.documents_written == 2
    assert counts.documents_read == counts.documents_written + sum(
        counts.skipped_documents.values()
    )
    assert counts.skipped_documents == {"empty_text": 2, "invalid_utf8": 1}
    assert counts.segments_written == len(out) == counts.segments
    assert {ex.doc_id for ex in out} == {"a", "d"}
    assert counts.tokens_written == sum(len(ex.input_ids) for ex in out)
