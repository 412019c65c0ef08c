"""KB search latency at 20,000 articles on SQLite and PostgreSQL, beside plain BM25.

Run: .venv/bin/python -m bench.kb_search [--articles N] [--repeat R]

The 167 demo articles are kept (the labelled queries point at them); the rest are generated
by recombining sentences, titles and tags of the demo corpus, so they share its vocabulary
and compete for the same words, as a grown knowledge base would. Latency is measured through
`KbSearchIndex.search(session, q)`, i.e. including the per-search revision check against the
database. The baseline (rank_bm25 over jieba tokens, see bench/kb_eval.py) is timed on the
same queries over the same articles.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
import tracemalloc
from typing import Any

from sqlalchemy import insert

from bench.common import fresh_database, percentile
from bench.kb_eval import KB_FILE, PlainBm25, load_articles, load_queries, recall
from cases.kb_search import KbSearchIndex, analyse_article
from cases.kb_text import shared_analyzer
from cases.models import KbArticle, KbRevision, KbStatus, utcnow

_SENTENCE = re.compile(r"[^。！？]+[。！？]?")


def generate_articles(n: int, seed: int = 20261127) -> list[dict[str, Any]]:
    real = load_articles(KB_FILE)
    rng = random.Random(seed)
    sentences = [s for a in real for s in _SENTENCE.findall(a["answer"]) if len(s) > 8]
    questions = [a["question"] for a in real]
    titles = [a["title"] for a in real]
    tags = sorted({t for a in real for t in a.get("tags", [])})
    out = list(real)
    for i in range(n - len(real)):
        a, b = rng.sample(titles, 2)
        out.append({
            "id": f"gen-{i:06d}",
            "title": f"{a[: len(a) // 2]}{b[len(b) // 2 :]}",
            "question": rng.choice(questions),
            "answer": "".join(rng.sample(sentences, rng.randint(3, 7))),
            "tags": rng.sample(tags, 2),
        })
    return out


def analysed_rows(articles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    analyzer = shared_analyzer()
    now = utcnow()
    rows = []
    for rev, a in enumerate(articles, start=1):
        rows.append({
            "external_id": a["id"], "status": KbStatus.PUBLISHED, "title": a["title"],
            "question": a["question"], "answer": a["answer"], "tags": a.get("tags", []),
            "published_version_no": 1, "revision": rev, "created_at": now, "updated_at": now,
            "search_terms": analyse_article(analyzer, a["title"], a["question"], a["answer"],
                                            a.get("tags", [])),
        })
    return rows


def bench_database(kind: str, rows: list[dict[str, Any]], queries: list[dict[str, str]],
                   repeat: int) -> dict[str, Any]:
    with fresh_database(kind) as services:
        with services.transaction() as session:
            for start in range(0, len(rows), 2000):
                session.execute(insert(KbArticle), rows[start : start + 2000])
            session.query(KbRevision).filter_by(id=1).update({"revision": len(rows)})
        # Memory of a load under tracemalloc (which slows it), then the load time without it.
        tracemalloc.start()
        with services.session_factory() as session:
            measured = KbSearchIndex()
            measured.refresh(session)
            memory_mb = tracemalloc.get_traced_memory()[0] / 1e6
            del measured
        tracemalloc.stop()
        index = KbSearchIndex()
        t0 = time.perf_counter()
        with services.session_factory() as session:
            index.refresh(session)
        load_s = time.perf_counter() - t0
        latencies = []
        with services.session_factory() as session:
            for _ in range(repeat):
                for q in queries:
                    t0 = time.perf_counter()
                    index.search(session, q["query"], 10)
                    latencies.append((time.perf_counter() - t0) * 1000)
            quality = recall(lambda q: [h.id for h in index.search(session, q, 5)], queries)
    return {
        "articles": index.size, "index_load_s": round(load_s, 2),
        "index_memory_mb": round(memory_mb, 1),
        "p50_ms": round(percentile(latencies, 50), 3), "p99_ms": round(percentile(latencies, 99), 3),
        "recall_at_1": round(quality.at1, 3), "recall_at_5": round(quality.at5, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    queries = load_queries()
    articles = generate_articles(args.articles)
    t0 = time.perf_counter()
    rows = analysed_rows(articles)
    print(f"analysed {len(rows)} articles in {time.perf_counter() - t0:.1f} s")
    result: dict[str, Any] = {"bench": "kb_search", "articles": len(rows),
                              "queries": len(queries) * args.repeat}
    for kind in ("sqlite", "postgresql"):
        figures = bench_database(kind, rows, queries, args.repeat)
        result[kind] = figures
        print(f"{kind:10s} p50 {figures['p50_ms']:.2f} ms  p99 {figures['p99_ms']:.2f} ms  "
              f"R@1 {figures['recall_at_1']:.3f}  R@5 {figures['recall_at_5']:.3f}  "
              f"load {figures['index_load_s']} s  {figures['index_memory_mb']} MB")
    baseline = PlainBm25(articles)
    latencies = []
    for _ in range(args.repeat):
        for q in queries:
            t0 = time.perf_counter()
            baseline.search(q["query"], 10)
            latencies.append((time.perf_counter() - t0) * 1000)
    base_quality = recall(lambda q: baseline.search(q, 5), queries)
    result["plain_bm25"] = {
        "p50_ms": round(percentile(latencies, 50), 3), "p99_ms": round(percentile(latencies, 99), 3),
        "recall_at_1": round(base_quality.at1, 3), "recall_at_5": round(base_quality.at5, 3),
    }
    b = result["plain_bm25"]
    print(f"plain BM25 p50 {b['p50_ms']:.2f} ms  p99 {b['p99_ms']:.2f} ms  "
          f"R@1 {b['recall_at_1']:.3f}  R@5 {b['recall_at_5']:.3f}")
    worst_p99 = max(result["sqlite"]["p99_ms"], result["postgresql"]["p99_ms"])
    result["p99_ratio_to_plain_bm25"] = round(worst_p99 / b["p99_ms"], 3)
    result["target_p99_ms"] = 10
    result["meets_target"] = worst_p99 <= 10
    print(json.dumps(result))


if __name__ == "__main__":
    main()
