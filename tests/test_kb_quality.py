"""Retrieval quality on the labelled set of colloquial utterances (tests/data/kb_queries.jsonl),
reported beside a plain BM25 baseline computed in the same run."""

import json

from bench.kb_eval import evaluate, load_demo_kb, load_queries


def test_labelled_set_is_big_enough_and_colloquial():
    queries = load_queries()
    assert len(queries) >= 40
    traditional = [q for q in queries if any(ch in q["query"] for ch in "麼們這車說駕電話")]
    assert len(traditional) >= 5


def test_recall_beats_plain_bm25(services, session, capsys):
    load_demo_kb(session)
    result = evaluate(session, services.kb_index)
    with capsys.disabled():
        print("\nKB quality:", json.dumps({k: v for k, v in result.items() if k != "ours_misses"}))
    ours, base = result["ours"], result["plain_bm25"]
    assert ours["recall_at_1"] >= 0.80, result["ours_misses"]
    assert ours["recall_at_5"] >= 0.95, result["ours_misses"]
    assert ours["recall_at_1"] >= base["recall_at_1"] + 0.05
    assert ours["recall_at_5"] >= base["recall_at_5"]
