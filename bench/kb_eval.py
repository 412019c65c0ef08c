"""Knowledge-base retrieval quality: our search against a plain BM25 baseline, same run.

The labelled set is tests/data/kb_queries.jsonl (colloquial utterances -> expected article),
the articles are the demo city's (cases/demo/data/kb_articles.jsonl).

Baseline ("plain BM25"): rank_bm25's BM25Okapi over jieba's default segmentation of
title + question + answer, queried with jieba's segmentation of the raw utterance: no
normalisation, no filler removal, no synonyms, no field weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from cases.kb_import import import_kb_file
from cases.kb_search import KbSearchIndex
from cases.models import Department

ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = ROOT / "cases" / "demo" / "data"
KB_FILE = DEMO_DATA / "kb_articles.jsonl"
QUERIES_FILE = ROOT / "tests" / "data" / "kb_queries.jsonl"


def load_queries() -> list[dict[str, str]]:
    return [json.loads(line) for line in QUERIES_FILE.read_text("utf-8").splitlines() if line]


def load_articles(path: Path = KB_FILE) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def load_demo_kb(session: Session) -> None:
    """Departments (the KB refers to them) and the demo KB, into an empty database."""
    departments = json.loads((DEMO_DATA / "departments.json").read_text("utf-8"))
    session.execute(
        insert(Department), [{"code": d["code"], "name": d["name"]} for d in departments]
    )
    import_kb_file(session, KB_FILE, actor_label="bench")
    session.commit()


class PlainBm25:
    def __init__(self, articles: list[dict[str, Any]]) -> None:
        import jieba
        from rank_bm25 import BM25Okapi

        self._tok = jieba.Tokenizer()
        self.ids = [a["id"] for a in articles]
        corpus = [self._cut(f"{a['title']} {a['question']} {a['answer']}") for a in articles]
        self.bm25 = BM25Okapi(corpus)

    def _cut(self, text: str) -> list[str]:
        return [w for w in self._tok.lcut(text) if w.strip()]

    def search(self, query: str, limit: int = 10) -> list[str]:
        scores = self.bm25.get_scores(self._cut(query))
        order = sorted(range(len(scores)), key=lambda i: -scores[i])[:limit]
        return [self.ids[i] for i in order if scores[i] > 0]


@dataclass
class Recall:
    at1: float
    at5: float
    misses: list[tuple[str, str, list[str]]]  # query, expected, what came back


def recall(search: Any, queries: list[dict[str, str]]) -> Recall:
    hit1 = hit5 = 0
    misses = []
    for q in queries:
        got = search(q["query"])
        if got[:1] == [q["expected"]]:
            hit1 += 1
        if q["expected"] in got[:5]:
            hit5 += 1
        else:
            misses.append((q["query"], q["expected"], got[:5]))
    n = len(queries)
    return Recall(hit1 / n, hit5 / n, misses)


def evaluate(session: Session, index: KbSearchIndex) -> dict[str, Any]:
    queries = load_queries()
    ours = recall(lambda q: [h.id for h in index.search(session, q, 5)], queries)
    baseline_index = PlainBm25(load_articles())
    base = recall(lambda q: baseline_index.search(q, 5), queries)
    return {
        "queries": len(queries),
        "ours": {"recall_at_1": ours.at1, "recall_at_5": ours.at5},
        "plain_bm25": {"recall_at_1": base.at1, "recall_at_5": base.at5},
        "ours_misses": ours.misses,
    }
