"""Knowledge-base articles: reading (every signed-in user) and editing (KB editors, admins).

Editing goes through cases.kb (drafts, publish, retire, versions). Publishing or retiring
publishes a `kb_published` / `kb_retired` bus event, so every open agent desk updates without
a reload (agent_ui.ws_desk); every process's search index catches up through the KB revision.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent_ui.auth import CurrentUser, require_roles
from agent_ui.deps import KbIndexDep, ServicesDep, SessionDep
from cases.kb import ArticleContent, KbError, publish, retire, save_draft
from cases.models import KbArticle, KbArticleVersion, KbStatus, Role, User
from hotline.events import make_event

router = APIRouter(prefix="/api/kb/articles", tags=["knowledge base"])

Editor = Annotated[User, Depends(require_roles(Role.KB_EDITOR, Role.ADMIN))]
EDITOR_ROLES = frozenset({Role.KB_EDITOR, Role.ADMIN})


class ArticleDraft(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    title: str = Field(min_length=1, max_length=200)
    question: str = Field(default="", max_length=5000)
    answer: str = Field(min_length=1, max_length=20000)
    tags: list[str] = Field(default_factory=list, max_length=20)


def _version_dict(v: KbArticleVersion) -> dict[str, Any]:
    return {
        "version_no": v.version_no,
        "status": v.status.value,
        "title": v.title,
        "question": v.question,
        "answer": v.answer,
        "tags": list(v.tags or []),
        "created_at": v.created_at.isoformat(),
    }


def _article(session: Session, external_id: str) -> KbArticle:
    article = session.scalar(select(KbArticle).where(KbArticle.external_id == external_id))
    if article is None:
        raise HTTPException(404, f"no article {external_id}")
    return article


def article_dict(article: KbArticle, *, with_versions: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": article.external_id,
        "status": article.status.value,
        "title": article.title,
        "question": article.question,
        "answer": article.answer,
        "tags": list(article.tags or []),
        "department_id": article.department_id,
        "published_version_no": article.published_version_no,
        "updated_at": article.updated_at.isoformat(),
    }
    if with_versions:
        out["versions"] = [_version_dict(v) for v in reversed(article.versions)]
    return out


@router.get("")
def list_articles(
    session: SessionDep,
    _user: Editor,
    q: Annotated[str, Query(max_length=100)] = "",
    status: KbStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[dict[str, Any]]:
    stmt = select(KbArticle).order_by(KbArticle.updated_at.desc()).limit(limit)
    if q.strip():
        stmt = stmt.where(KbArticle.title.contains(q.strip()))
    if status is not None:
        stmt = stmt.where(KbArticle.status == status)
    return [
        {"id": a.external_id, "title": a.title, "status": a.status.value,
         "published_version_no": a.published_version_no, "updated_at": a.updated_at.isoformat()}
        for a in session.scalars(stmt)
    ]


@router.get("/{external_id}")
def get_article(external_id: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Agents read the published text; editors also see every version, drafts included."""
    article = _article(session, external_id)
    editor = user.role in EDITOR_ROLES
    if article.status != KbStatus.PUBLISHED and not editor:
        raise HTTPException(404, f"no article {external_id}")
    return article_dict(article, with_versions=editor)


@router.post("", status_code=201)
def save_article_draft(body: ArticleDraft, session: SessionDep, user: Editor) -> dict[str, Any]:
    """A new draft version (a new article when `external_id` is new or absent)."""
    external_id = body.external_id or f"kb-{secrets.token_hex(5)}"
    existing = session.scalar(select(KbArticle).where(KbArticle.external_id == external_id))
    content = ArticleContent(
        title=body.title, question=body.question, answer=body.answer, tags=list(body.tags),
        department_id=existing.department_id if existing else None,
    )
    version = save_draft(session, content, external_id=external_id, author_id=user.id)
    session.commit()
    return {"id": external_id, "version": _version_dict(version)}


@router.post("/{external_id}/versions/{version_no}/publish")
async def publish_version(
    external_id: str, version_no: int, session: SessionDep, services: ServicesDep,
    index: KbIndexDep, _user: Editor,
) -> dict[str, Any]:
    article = _article(session, external_id)
    version = session.scalar(
        select(KbArticleVersion).where(
            KbArticleVersion.article_id == article.id, KbArticleVersion.version_no == version_no
        )
    )
    if version is None:
        raise HTTPException(404, f"article {external_id} has no version {version_no}")
    try:
        publish(session, version, index.analyzer, department_id=article.department_id,
                valid_from=article.valid_from, valid_to=article.valid_to)
    except KbError:
        session.rollback()
        raise
    session.commit()
    index.refresh(session)
    await services.bus.publish(make_event(
        "kb_published", external_id=external_id, title=article.title, version_no=version_no,
    ))
    return article_dict(article, with_versions=True)


@router.post("/{external_id}/retire")
async def retire_article(
    external_id: str, session: SessionDep, services: ServicesDep, index: KbIndexDep,
    _user: Editor,
) -> dict[str, Any]:
    article = _article(session, external_id)
    if article.status == KbStatus.RETIRED:
        raise KbError("status", "the article is already retired")
    retire(session, article)
    session.commit()
    index.refresh(session)
    await services.bus.publish(make_event(
        "kb_retired", external_id=external_id, title=article.title,
        version_no=article.published_version_no,
    ))
    return article_dict(article, with_versions=True)
