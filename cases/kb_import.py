"""Import knowledge-base articles from JSONL: one article per line, all or nothing.

Line format: {"id": "...", "title": "...", "question": "...", "answer": "...",
"department": "<code or name of an existing department>", "tags": ["..."]}.
``department`` may be omitted (the hotline's own article). Re-importing an id updates it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cases.kb import ArticleContent, publish_content
from cases.kb_text import ChineseAnalyzer, shared_analyzer
from cases.models import Department, KbArticle

MAX_LINE_BYTES = 256 * 1024


class KbImportLine(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    title: str = Field(min_length=1, max_length=200)
    question: str = Field(min_length=1, max_length=5000)
    answer: str = Field(min_length=1, max_length=20000)
    department: str | None = Field(default=None, min_length=1, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=30)

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, tags: list[str]) -> list[str]:
        cleaned = [t.strip() for t in tags]
        for tag in cleaned:
            if not tag or len(tag) > 30:
                raise ValueError("each tag must be 1-30 characters")
        return list(dict.fromkeys(cleaned))


class KbImportError(ValueError):
    """A bad line: names the line and the field. Nothing from the file was imported."""

    def __init__(self, source: str, line_no: int, field: str, message: str) -> None:
        super().__init__(f"{source}:{line_no}: field '{field}': {message}")
        self.line_no = line_no
        self.field = field


@dataclass
class ImportResult:
    imported: int = 0  # new articles
    updated: int = 0  # existing ids whose text changed
    unchanged: int = 0
    ids: list[str] = field(default_factory=list)


def parse_lines(lines: list[str], source: str = "<input>") -> list[tuple[int, KbImportLine]]:
    """(line number, item) for every non-blank line, or KbImportError at the first bad one."""
    parsed: list[tuple[int, KbImportLine]] = []
    seen: dict[str, int] = {}
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if len(raw.encode("utf-8")) > MAX_LINE_BYTES:
            raise KbImportError(source, line_no, "<line>", f"longer than {MAX_LINE_BYTES} bytes")
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise KbImportError(source, line_no, "<line>", f"not valid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise KbImportError(source, line_no, "<line>", "must be a JSON object")
        try:
            item = KbImportLine.model_validate(obj)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "<line>"
            raise KbImportError(source, line_no, loc, err["msg"]) from exc
        if item.id in seen:
            raise KbImportError(
                source, line_no, "id", f"'{item.id}' already appears on line {seen[item.id]}"
            )
        seen[item.id] = line_no
        parsed.append((line_no, item))
    return parsed


def import_kb_lines(
    session: Session,
    lines: list[str],
    *,
    source: str = "<input>",
    actor_label: str = "import",
    analyzer: ChineseAnalyzer | None = None,
) -> ImportResult:
    """Validate every line first, then write. The caller commits (or rolls back)."""
    numbered = parse_lines(lines, source)
    departments = _resolve_departments(session, numbered, source)
    items = [item for _, item in numbered]
    analyzer = analyzer or shared_analyzer()
    result = ImportResult()
    ids = [i.id for i in items]
    existing = set(
        session.scalars(select(KbArticle.external_id).where(KbArticle.external_id.in_(ids)))
    )
    for item in items:
        content = ArticleContent(
            title=item.title,
            question=item.question,
            answer=item.answer,
            tags=item.tags,
            department_id=departments.get(item.department) if item.department else None,
        )
        _article, changed = publish_content(session, content, analyzer, external_id=item.id)
        if not changed:
            result.unchanged += 1
        elif item.id in existing:
            result.updated += 1
        else:
            result.imported += 1
        result.ids.append(item.id)
    session.flush()
    return result


def import_kb_file(
    session: Session,
    path: Path,
    *,
    actor_label: str = "import",
    analyzer: ChineseAnalyzer | None = None,
) -> ImportResult:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise KbImportError(str(path), 0, "<file>", "not UTF-8 text") from exc
    except OSError as exc:
        raise KbImportError(str(path), 0, "<file>", exc.strerror or str(exc)) from exc
    return import_kb_lines(
        session, text.splitlines(), source=str(path), actor_label=actor_label, analyzer=analyzer
    )


def _resolve_departments(
    session: Session, numbered: list[tuple[int, KbImportLine]], source: str
) -> dict[str, int]:
    """Department code or name -> id; KbImportError naming the first unknown one."""
    wanted = {item.department for _, item in numbered if item.department}
    if not wanted:
        return {}
    rows = session.execute(
        select(Department.id, Department.code, Department.name).where(
            or_(Department.code.in_(wanted), Department.name.in_(wanted))
        )
    ).all()
    found: dict[str, int] = {}
    for dep_id, code, name in rows:
        found[code] = dep_id
        found[name] = dep_id
    for line_no, item in numbered:
        if item.department and item.department not in found:
            raise KbImportError(
                source,
                line_no,
                "department",
                f"no department with code or name '{item.department}'",
            )
    return found
