"""Knowledge-base editing: drafts, publishing and retiring, with versions.

Every change bumps the database-wide KB revision in the same transaction, which is how every
process's search index learns about it (cases.kb_search).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cases.kb_search import analyse_article
from cases.kb_text import ChineseAnalyzer
from cases.models import KbArticle, KbArticleVersion, KbRevision, KbStatus, utcnow


class KbError(ValueError):
    """A knowledge-base operation the data does not allow; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ArticleContent:
    title: str
    question: str
    answer: str
    tags: list[str]
    department_id: int | None = None
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None


def next_revision(session: Session) -> int:
    """Bump and return the KB revision. The row lock serialises concurrent editors."""
    bumped = session.execute(
        update(KbRevision)
        .where(KbRevision.id == 1)
        .values(revision=KbRevision.revision + 1)
        .returning(KbRevision.revision)
    ).scalar_one_or_none()
    if bumped is None:  # a database created without the migration's seed row
        session.add(KbRevision(id=1, revision=1))
        session.flush()
        return 1
    return int(bumped)


def _next_version_no(session: Session, article: KbArticle) -> int:
    if article.id is None:
        return 1
    last = session.scalar(
        select(func.max(KbArticleVersion.version_no)).where(
            KbArticleVersion.article_id == article.id
        )
    )
    return int(last or 0) + 1


def save_draft(
    session: Session,
    content: ArticleContent,
    *,
    external_id: str,
    author_id: int | None = None,
) -> KbArticleVersion:
    """Store a new draft version. The live (published) text does not change until publish."""
    article = session.scalar(select(KbArticle).where(KbArticle.external_id == external_id))
    if article is None:
        article = KbArticle(
            external_id=external_id,
            status=KbStatus.DRAFT,
            title=content.title,
            question=content.question,
            answer=content.answer,
            tags=content.tags,
            department_id=content.department_id,
            revision=next_revision(session),
            search_terms={},
        )
        session.add(article)
        session.flush()
    version = KbArticleVersion(
        article_id=article.id,
        version_no=_next_version_no(session, article),
        status=KbStatus.DRAFT,
        title=content.title,
        question=content.question,
        answer=content.answer,
        tags=content.tags,
        created_by_id=author_id,
    )
    session.add(version)
    session.flush()
    return version


def publish(
    session: Session,
    version: KbArticleVersion,
    analyzer: ChineseAnalyzer,
    *,
    department_id: int | None = None,
    valid_from: dt.date | None = None,
    valid_to: dt.date | None = None,
) -> KbArticle:
    """Make `version` the live text of its article; the previous live version is retired."""
    article = session.get(KbArticle, version.article_id)
    if article is None:
        raise KbError("article", "does not exist")
    if version.status == KbStatus.RETIRED:
        raise KbError("version", "a retired version cannot be published; save a new draft")
    session.execute(
        update(KbArticleVersion)
        .where(
            KbArticleVersion.article_id == article.id,
            KbArticleVersion.status == KbStatus.PUBLISHED,
            KbArticleVersion.id != version.id,
        )
        .values(status=KbStatus.RETIRED)
    )
    version.status = KbStatus.PUBLISHED
    article.status = KbStatus.PUBLISHED
    article.title = version.title
    article.question = version.question
    article.answer = version.answer
    article.tags = list(version.tags)
    article.department_id = department_id
    article.valid_from = valid_from
    article.valid_to = valid_to
    article.published_version_no = version.version_no
    article.search_terms = analyse_article(
        analyzer, version.title, version.question, version.answer, list(version.tags)
    )
    article.updated_at = utcnow()
    article.revision = next_revision(session)
    session.flush()
    return article


def retire(session: Session, article: KbArticle) -> KbArticle:
    """Withdraw an article from search; its versions stay for the record."""
    session.execute(
        update(KbArticleVersion)
        .where(
            KbArticleVersion.article_id == article.id,
            KbArticleVersion.status == KbStatus.PUBLISHED,
        )
        .values(status=KbStatus.RETIRED)
    )
    article.status = KbStatus.RETIRED
    article.revision = next_revision(session)
    session.flush()
    return article


def publish_content(
    session: Session,
    content: ArticleContent,
    analyzer: ChineseAnalyzer,
    *,
    external_id: str,
    author_id: int | None = None,
) -> tuple[KbArticle, bool]:
    """Save and publish in one step (imports). Returns (article, changed); unchanged text of a
    published article creates no new version."""
    article = session.scalar(select(KbArticle).where(KbArticle.external_id == external_id))
    if (
        article is not None
        and article.status == KbStatus.PUBLISHED
        and (
            article.title,
            article.question,
            article.answer,
            list(article.tags),
            article.department_id,
        )
        == (content.title, content.question, content.answer, content.tags, content.department_id)
    ):
        return article, False
    version = save_draft(session, content, external_id=external_id, author_id=author_id)
    return (
        publish(
            session,
            version,
            analyzer,
            department_id=content.department_id,
            valid_from=content.valid_from,
            valid_to=content.valid_to,
        ),
        True,
    )
