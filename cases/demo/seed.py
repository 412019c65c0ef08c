"""Deterministic demo data for the fictional county-level city 宁川市.

``seed_demo`` fills an EMPTY database with departments, categories, users, citizens, a year of
historical cases (with their contacts and complete audit trails), contacts that never became
cases, and finally the knowledge base (through ``cases.kb_import``). Everything derives from
``rng_seed`` and ``today``; the wall clock is never read, so two runs give the same data.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from cases.demo import places as P
from cases.demo import templates as TPL
from cases.models import (
    CallbackTaskStatus,
    Case,
    CaseCallback,
    CaseEvent,
    CaseNumberCounter,
    CaseType,
    Category,
    Channel,
    Citizen,
    CitizenPhone,
    Contact,
    ContactOutcome,
    Department,
    Direction,
    Priority,
    Role,
    Satisfaction,
    User,
)
from cases.passwords import hash_password
from cases.state_machine import CaseAction, CaseStatus

DATA_DIR = Path(__file__).resolve().parent / "data"
DEPARTMENTS_FILE = DATA_DIR / "departments.json"
CATEGORIES_FILE = DATA_DIR / "categories.json"
KB_FILE = DATA_DIR / "kb_articles.jsonl"

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")
S = CaseStatus
A = CaseAction

AGENT_NAMES = [
    "徐琳", "陈晓燕", "王婷", "李静", "张敏", "刘芳", "周雪", "吴倩", "赵丽娟", "孙悦",
    "黄小梅", "胡佳", "朱丹", "郭颖", "何丽", "林慧", "罗晶", "梁燕", "宋玉洁", "唐敏",
]
SUPERVISOR_NAMES = ["曹宇新", "戴红梅"]

TYPE_MIX = {
    CaseType.CONSULTATION: 27,
    CaseType.COMPLAINT: 33,
    CaseType.REPORT: 10,
    CaseType.HELP: 18,
    CaseType.SUGGESTION: 8,
    CaseType.PRAISE: 4,
}
CHANNEL_MIX = {
    Channel.PHONE: 70,
    Channel.WECHAT: 14,
    Channel.WEB: 7,
    Channel.SMS: 4,
    Channel.WEIBO: 2,
    Channel.OPEN311: 3,
}
OPENERS = {
    Channel.PHONE: "来电人反映：",
    Channel.WECHAT: "市民通过“宁川12345”微信公众号反映：",
    Channel.WEB: "网民在12345网上留言反映：",
    Channel.SMS: "市民发送短信反映：",
    Channel.WEIBO: "网民通过“宁川12345”官方微博反映：",
    Channel.OPEN311: "市民通过“城市随手拍”应用反映：",
}
# Local hour -> relative volume of contacts.
HOUR_WEIGHTS = [0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.6, 1.5, 4, 6, 6.5, 5.5,
                3, 3, 5, 5.5, 5, 4, 3, 3, 2.8, 2.2, 1.3, 0.7]
# How often each category is the subject of a case (default 1.0).
CATEGORY_WEIGHTS = {
    "C0101": 3.0, "C0103": 2.0, "C0104": 1.5, "C0201": 3.0, "C0202": 1.5, "C0301": 2.5,
    "C0401": 2.5, "C0601": 1.5, "C0603": 1.5, "C0701": 2.5, "C0702": 2.0, "C0801": 1.5,
    "C0803": 1.5, "C0901": 3.0, "C0902": 1.5, "C1001": 1.5, "C1101": 2.0, "C1201": 2.0,
    "C1202": 2.5, "C1203": 2.0, "C1801": 1.5, "C1503": 0.5, "C1702": 0.4, "C1304": 0.6,
    "C0205": 0.6, "C1802": 0.8,
}
# (first month, last month, factor): seasonal peaks.
SEASONS: dict[str, list[tuple[int, int, float]]] = {
    "C0401": [(6, 8, 2.2)], "C0402": [(6, 8, 2.5)], "C0301": [(6, 8, 1.6)],
    "C1703": [(4, 7, 4.0), (10, 3, 0.2)], "C0903": [(10, 11, 3.0)],
    "C1001": [(5, 8, 3.0)], "C0701": [(12, 2, 3.0)], "C1101": [(9, 12, 1.8)],
    "C0902": [(5, 9, 1.6)], "C0901": [(5, 9, 1.4)], "C1802": [(3, 6, 2.5)],
}
# Departments a case is wrongly sent to first, before being returned (退单).
MISROUTES = ["D060", "D061", "D062", "D063", "D064", "D065", "D018", "D020", "D025", "D040"]

DEPT_MENU = {  # IVR digit and queue by case type
    CaseType.CONSULTATION: ("1", "consultation"),
    CaseType.COMPLAINT: ("2", "complaint"),
    CaseType.REPORT: ("2", "complaint"),
    CaseType.HELP: ("2", "complaint"),
    CaseType.SUGGESTION: ("1", "consultation"),
    CaseType.PRAISE: ("1", "consultation"),
}


class DemoDataError(RuntimeError):
    """The demo data cannot be seeded (e.g. the database is not empty)."""


# ----------------------------------------------------------------------------- helpers


def load_departments() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(DEPARTMENTS_FILE.read_text(encoding="utf-8"))
    return rows


def load_categories() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(CATEGORIES_FILE.read_text(encoding="utf-8"))
    return rows


def _pick(rng: random.Random, weights: Mapping[Any, float]) -> Any:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _is_working_day(day: dt.date) -> bool:
    return day.weekday() < 5


def add_working_days(local: dt.datetime, days: int) -> dt.datetime:
    """`days` working days later (weekends skipped; public holidays ignored in demo data)."""
    out = local
    added = 0
    while added < days:
        out += dt.timedelta(days=1)
        if _is_working_day(out.date()):
            added += 1
    return out


def _into_office_hours(local: dt.datetime, rng: random.Random) -> dt.datetime:
    """The same moment if within working hours, else the next working morning."""
    t = local.time()
    if _is_working_day(local.date()) and dt.time(8, 30) <= t <= dt.time(17, 30):
        return local
    day = local.date()
    if not (_is_working_day(day) and t < dt.time(8, 30)):
        day += dt.timedelta(days=1)
    while not _is_working_day(day):
        day += dt.timedelta(days=1)
    start = dt.datetime.combine(day, dt.time(8, 30), tzinfo=local.tzinfo)
    return start + dt.timedelta(minutes=rng.randint(0, 90))


def _month_factor(code: str, month: int) -> float:
    factor = 1.0
    for first, last, f in SEASONS.get(code, []):
        inside = first <= month <= last if first <= last else (month >= first or month <= last)
        if inside:
            factor *= f
    return factor


# ----------------------------------------------------------------------------- plans


@dataclass
class Loc:
    short: str
    text: str | None
    lat: float | None
    lon: float | None
    town_dept: str | None
    xiaoqu: str
    village: str
    road: str


@dataclass
class Ev:
    at: dt.datetime
    actor_id: int | None
    actor_label: str
    action: str
    from_status: CaseStatus | None
    to_status: CaseStatus
    comment: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class CasePlan:
    filed_at: dt.datetime
    type: CaseType
    category: str
    channel: Channel
    citizen: int | None
    title: str
    description: str
    loc: Loc | None
    priority: Priority
    department: str
    agent: int
    fix: str
    burst: int | None = None
    number: str = ""
    merged_into: int | None = None  # index into the plan list


@dataclass
class CitizenInfo:
    id: int
    name: str | None
    phones: list[str]
    street: str | None
    xiaoqu: str | None
    tags: list[str]


class _Seeder:
    def __init__(
        self, session: Session, today: dt.date, rng_seed: int, demo_password: str, tz: ZoneInfo
    ) -> None:
        self.s = session
        self.today = today
        self.rng = random.Random(rng_seed)
        self.password = demo_password
        self.tz = tz
        # "Now" for the demo: 08:00 on `today`, so yesterday's cases are still open.
        self.now_local = dt.datetime.combine(today, dt.time(8, 0), tzinfo=tz)
        self.now = self.now_local.astimezone(dt.UTC)
        self.epoch = dt.datetime.combine(
            today - dt.timedelta(days=366), dt.time(0, 0), tzinfo=tz
        ).astimezone(dt.UTC)
        self.counts: dict[str, int] = {}
        self.dept_id: dict[str, int] = {}
        self.dept_short: dict[str, str] = {}
        self.cat_id: dict[str, int] = {}
        self.cats: dict[str, dict[str, Any]] = {}
        self.agents: list[tuple[int, str, str]] = []  # id, name, extension
        self.supervisors: list[tuple[int, str]] = []
        self.dept_user: dict[str, tuple[int, str]] = {}
        self.citizens: list[CitizenInfo] = []
        self.used_numbers: set[str] = set()
        self.uniqueid_seq = 0

    # ------------------------------------------------------------------ organisation

    def departments(self) -> None:
        rows = load_departments()
        pending = list(rows)
        while pending:
            level = [r for r in pending if r["parent"] is None or r["parent"] in self.dept_id]
            if not level:
                raise DemoDataError("departments.json: parent cycle or unknown parent code")
            pending = [r for r in pending if r not in level]
            values = [
                {
                    "code": r["code"],
                    "name": r["name"],
                    "short_name": r["short_name"],
                    "parent_id": self.dept_id.get(r["parent"]) if r["parent"] else None,
                    "contact_person": r["contact_person"],
                    "contact_phone": r["contact_phone"],
                    "is_active": True,
                    "created_at": self.epoch,
                    "updated_at": self.epoch,
                }
                for r in level
            ]
            ids = self._insert(Department, values)
            for r, i in zip(level, ids, strict=True):
                self.dept_id[r["code"]] = i
                self.dept_short[r["code"]] = r["short_name"]
        self.counts["departments"] = len(rows)
        self.dept_rows = rows

    def categories(self) -> None:
        rows = load_categories()
        tops = [r for r in rows if r["parent"] is None]
        subs = [r for r in rows if r["parent"] is not None]
        ids = self._insert(Category, [
            {"code": r["code"], "name": r["name"], "parent_id": None,
             "default_department_id": None, "default_priority": Priority.NORMAL,
             "sign_limit_minutes": None, "handle_limit_working_days": None, "keywords": []}
            for r in tops
        ])
        self.cat_id.update({r["code"]: i for r, i in zip(tops, ids, strict=True)})
        values = []
        for r in subs:
            if r["default_department"] not in self.dept_id:
                raise DemoDataError(
                    f"category {r['code']}: unknown department {r['default_department']}"
                )
            values.append({
                "code": r["code"], "name": r["name"], "parent_id": self.cat_id[r["parent"]],
                "default_department_id": self.dept_id[r["default_department"]],
                "default_priority": Priority(r["default_priority"]),
                "sign_limit_minutes": r["sign_limit_minutes"],
                "handle_limit_working_days": r["handle_limit_working_days"],
                "keywords": r["keywords"],
            })
        ids = self._insert(Category, values)
        self.cat_id.update({r["code"]: i for r, i in zip(subs, ids, strict=True)})
        self.cats = {r["code"]: r for r in subs}
        self.counts["categories"] = len(rows)

    def users(self) -> None:
        pw = hash_password(self.password)  # once: argon2 is deliberately slow
        base = {"password_hash": pw, "is_active": True, "failed_logins": 0,
                "created_at": self.epoch, "updated_at": self.epoch}
        rows: list[dict[str, Any]] = [
            {**base, "username": "admin", "display_name": "系统管理员", "role": Role.ADMIN,
             "department_id": self.dept_id["D002"], "extension": None},
            {**base, "username": "kbeditor", "display_name": "知识库管理员", "role": Role.KB_EDITOR,
             "department_id": self.dept_id["D002"], "extension": None},
        ]
        for i, name in enumerate(SUPERVISOR_NAMES, 1):
            rows.append({**base, "username": f"banzhang{i}", "display_name": name,
                         "role": Role.SUPERVISOR, "department_id": self.dept_id["D002"],
                         "extension": None})
        for i, name in enumerate(AGENT_NAMES, 1):
            rows.append({**base, "username": f"agent{i:02d}", "display_name": name,
                         "role": Role.AGENT, "department_id": self.dept_id["D002"],
                         "extension": f"{8000 + i}"})
        for d in self.dept_rows:
            rows.append({**base, "username": f"dept-{d['code'].lower()}",
                         "display_name": f"{d['short_name']}·{d['contact_person']}",
                         "role": Role.DEPARTMENT_STAFF, "department_id": self.dept_id[d["code"]],
                         "extension": None})
        ids = self._insert(User, rows)
        for r, i in zip(rows, ids, strict=True):
            if r["role"] == Role.AGENT:
                self.agents.append((i, r["display_name"], r["extension"]))
            elif r["role"] == Role.SUPERVISOR:
                self.supervisors.append((i, r["display_name"]))
            elif r["role"] == Role.DEPARTMENT_STAFF:
                self.dept_user[r["username"][5:].upper()] = (i, r["display_name"])
        self.counts["users"] = len(rows)

    # ------------------------------------------------------------------ citizens

    def _name(self, elderly: bool = False) -> str:
        rng = self.rng
        surname: str = rng.choice(P.SURNAMES)
        given: str
        if elderly:
            given = rng.choice(P.ELDERLY_GIVEN)
        else:
            given = rng.choice(P.GIVEN_MALE if rng.random() < 0.5 else P.GIVEN_FEMALE)
        return surname + given

    def _mobile(self) -> str:
        rng = self.rng
        prefixes = ["130", "131", "132", "133", "135", "136", "137", "138", "139", "150",
                    "151", "152", "155", "157", "158", "159", "166", "173", "177", "180",
                    "181", "182", "183", "185", "186", "187", "188", "189", "191", "198", "199"]
        while True:
            n = rng.choice(prefixes) + f"{rng.randrange(10**8):08d}"
            if n not in self.used_numbers:
                self.used_numbers.add(n)
                return n

    def _fixed(self) -> str:
        while True:
            n = "0794" + str(self.rng.choice([6, 7, 8])) + f"{self.rng.randrange(10**6):06d}"
            if n not in self.used_numbers:
                self.used_numbers.add(n)
                return n

    def citizens_(self, n: int) -> None:
        rng = self.rng
        street_names = list(P.STREETS)
        town_names = list(P.TOWNS)
        crows: list[dict[str, Any]] = []
        infos: list[CitizenInfo] = []
        for i in range(n):
            elderly = rng.random() < 0.14
            name: str | None = self._name(elderly) if rng.random() > 0.02 else None
            tags: list[str] = []
            note = None
            if elderly:
                tags.append("elderly")
                if rng.random() < 0.3:
                    note = "老人听力不太好，请放慢语速、大声说话。"
            if i % 25 == 7:
                tags.append("repeat_caller")
                note = "多次来电反映同类问题，请耐心解释并核对历史工单。"
            if i in (41, 233, 517):
                tags.append("blocked")
                note = "多次无实际诉求来电辱骂受理员，经班长审核已列入限制呼入名单。"
            street = xiaoqu = None
            address: str | None
            if rng.random() < 0.78:
                street = rng.choice(street_names)
                _, communities, compounds, _ = P.STREETS[street]
                xiaoqu = rng.choice(compounds)
                address = (f"{P.CITY}{street}{rng.choice(communities)}{xiaoqu}"
                           f"{rng.randint(1, 18)}栋{rng.randint(1, 4)}单元"
                           f"{rng.randint(1, 18)}0{rng.randint(1, 4)}室")
            else:
                town = rng.choice(town_names)
                _, villages, _ = P.TOWNS[town]
                address = f"{P.CITY}{town}{rng.choice(villages)}{rng.randint(1, 12)}组"
            if rng.random() < 0.12:
                address = None  # caller did not give an address
            phones = [self._mobile() if rng.random() < 0.9 else self._fixed()]
            extra = rng.choices([0, 1, 2], weights=[70, 22, 8])[0]
            for _ in range(extra):
                phones.append(self._mobile() if rng.random() < 0.6 else self._fixed())
            crows.append({"name": name, "address": address, "tags": tags, "note": note,
                          "created_at": self.epoch, "updated_at": self.epoch})
            infos.append(CitizenInfo(0, name, phones, street, xiaoqu, tags))
        ids = self._insert(Citizen, crows)
        prow: list[dict[str, Any]] = []
        for info, cid in zip(infos, ids, strict=True):
            info.id = cid
            for k, number in enumerate(info.phones):
                label = "手机" if number.startswith("1") else ("座机" if k == 0 else "单位")
                prow.append({"citizen_id": cid, "number": number, "label": label})
        self._insert(CitizenPhone, prow, returning=False)
        self.citizens = infos
        self.citizen_weights = [
            15.0 if "repeat_caller" in c.tags else (0.3 if "blocked" in c.tags else 1.0)
            for c in infos
        ]
        self.counts["citizens"] = len(infos)
        self.counts["citizen_phones"] = len(prow)

    # ------------------------------------------------------------------ places

    def _coords(self, off: tuple[float, float], spread: float) -> tuple[float, float]:
        lat = P.CITY_CENTRE[0] + off[0] + self.rng.gauss(0, spread)
        lon = P.CITY_CENTRE[1] + off[1] + self.rng.gauss(0, spread)
        return round(lat, 6), round(lon, 6)

    def location(self, kind: str, citizen: CitizenInfo | None) -> Loc:
        rng = self.rng
        if kind == "mixed":
            kind = rng.choices(["road", "xiaoqu", "village"], weights=[35, 35, 30])[0]
        if kind in ("none",):
            kind = "road"
        road = rng.choice(P.ROADS)
        if kind == "village":
            town = rng.choice(list(P.TOWNS))
            dept, villages, off = P.TOWNS[town]
            village = rng.choice(villages)
            lat, lon = self._coords(off, 0.01)
            short = f"{town}{village}"
            return Loc(short, f"{P.CITY}{short}{rng.randint(1, 12)}组", lat, lon, dept,
                       "", short, road)
        if citizen is not None and citizen.street and citizen.xiaoqu and rng.random() < 0.7:
            street, xiaoqu = citizen.street, citizen.xiaoqu
        else:
            street = rng.choice(list(P.STREETS))
            xiaoqu = rng.choice(P.STREETS[street][2])
        _, communities, _, off = P.STREETS[street]
        lat, lon = self._coords(off, 0.004)
        village = rng.choice(P.TOWNS[rng.choice(list(P.TOWNS))][1])
        if kind == "xiaoqu":
            text = f"{P.CITY}{street}{rng.choice(communities)}{xiaoqu}{rng.randint(1, 18)}栋"
            return Loc(xiaoqu, text, lat, lon, None, xiaoqu, village, road)
        form = rng.random()
        if form < 0.45:
            other = rng.choice([r for r in P.ROADS if r != road])
            short = f"{road}与{other}交叉口"
        elif form < 0.75:
            short = f"{road}{rng.choice(P.LANDMARKS)}附近"
        else:
            short = f"{road}{rng.randint(1, 300)}号附近"
        return Loc(short, f"{P.CITY}{street}{short}", lat, lon, None, xiaoqu, village, road)

    # ------------------------------------------------------------------ cases

    def _ctx(
        self, loc: Loc, dept: str, filed: dt.datetime, fixed: dict[str, str] | None
    ) -> dict[str, Any]:
        rng = self.rng
        local = filed.astimezone(self.tz)
        earlier = max(local - dt.timedelta(minutes=rng.randint(10, 180)),
                      local.replace(hour=0, minute=0, second=0))
        ctx = {
            "loc": loc.short, "road": loc.road, "xiaoqu": loc.xiaoqu, "village": loc.village,
            "shop": rng.choice(P.SHOPS), "company": rng.choice(P.COMPANIES),
            "pm": rng.choice(P.PROPERTY_COMPANIES), "n": rng.randint(2, 9),
            "dur": rng.choice(TPL.DURATIONS), "when": TPL.when_phrase(earlier.hour),
            "dept": self.dept_short[dept],
        }
        ctx.update(fixed or {})
        return ctx

    def _text_for(
        self, ctype: CaseType, code: str, channel: Channel, loc: Loc, dept: str,
        issue_index: int, filed: dt.datetime, fixed: dict[str, str] | None,
    ) -> tuple[str, str, bool, str]:
        """Title, description, whether the place matters, and the department's reply."""
        rng = self.rng
        t = TPL.TEMPLATES[code]
        ctx = self._ctx(loc, dept, filed, fixed)
        subject = TPL.SUBJECTS[channel.value]
        opener = OPENERS[channel]
        if ctype == CaseType.CONSULTATION:
            ask_f = rng.choice(t["asks"])
            ask = ask_f.format_map(ctx)
            title = f"咨询{ask}"
            if len(title) > 40:
                title = title[:39] + "…"
            desc = f"{subject}咨询：{ask}。{rng.choice(TPL.DEMANDS['consultation'])}"
            fix = (f"{ctx['dept']}已电话联系{subject}，就其咨询的事项作了详细解答，"
                   f"{subject}表示清楚。")
            return title, desc, "{loc}" in ask_f, fix
        if ctype == CaseType.PRAISE:
            title = rng.choice(TPL.PRAISE_TITLES).format_map(ctx)
            detail = rng.choice(TPL.PRAISE_DETAILS).format_map(ctx)
            desc = self._sentence(opener, subject, detail) + TPL.DEMANDS["praise"][0]
            return title, desc, False, "已将市民的表扬转达承办单位，承办单位表示将再接再厉。"
        if ctype == CaseType.SUGGESTION:
            sug_f = rng.choice(t["suggest"])
            text = sug_f.format_map(ctx)
            title = text.split("，")[0]
            desc = f"{opener}{text}。{rng.choice(TPL.DEMANDS['suggestion'])}"
            fix = "已收悉市民建议，将结合工作实际研究采纳，感谢市民对城市建设的关心。"
            return title, desc, "{loc}" in sug_f, fix
        title_f, detail_f = t["issues"][issue_index]
        fixes = t["fixes"]
        fix_f = (fixes[issue_index] if issue_index < len(fixes)
                 else "{dept}已派员到现场核实处理，并已将处理情况告知来电人")
        fix = fix_f.format_map(ctx).replace("来电人", subject)
        title = title_f.format_map(ctx).replace("来电人", subject)
        detail = detail_f.format_map(ctx)
        demand = rng.choice(TPL.DEMANDS[ctype.value]).replace("来电人", subject)
        if channel == Channel.PHONE and rng.random() < 0.3:
            demand += "来电人要求电话回复处理结果。"
        uses_place = "{loc}" in title_f + detail_f
        return title, self._sentence(opener, subject, detail) + demand, uses_place, fix

    @staticmethod
    def _sentence(opener: str, subject: str, detail: str) -> str:
        """'来电人反映：…。' unless the detail already names the citizen as its subject."""
        if detail.startswith("来电人"):
            return subject + detail[3:].replace("来电人", subject) + "。"
        return opener + detail.replace("来电人", subject) + "。"

    def _agent_at(self, local: dt.datetime) -> tuple[int, str, str]:
        h = local.hour
        pool = self.agents[:10] if 8 <= h < 16 else (
            self.agents[10:16] if h >= 16 else self.agents[16:])
        return self.rng.choice(pool)

    def _pick_citizen(self) -> CitizenInfo | None:
        if self.rng.random() < 0.03:
            return None
        return self.rng.choices(self.citizens, weights=self.citizen_weights)[0]

    def _random_time(self, days_back: int) -> dt.datetime:
        day = self.today - dt.timedelta(days=days_back)
        hour = self.rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
        local = dt.datetime.combine(
            day, dt.time(hour, self.rng.randrange(60), self.rng.randrange(60)), tzinfo=self.tz
        )
        return local.astimezone(dt.UTC)

    def _day_weights(self) -> list[float]:
        out = []
        for back in range(1, 366):
            day = self.today - dt.timedelta(days=back)
            w = 1.0 if _is_working_day(day) else 0.65
            w *= 0.8 + 0.4 * (365 - back) / 365  # the hotline grows over the year
            out.append(w)
        return out

    def plan_cases(self, n: int) -> list[CasePlan]:
        rng = self.rng
        plans: list[CasePlan] = []
        day_w = self._day_weights()
        backs = rng.choices(range(1, 366), weights=day_w, k=n)
        for back in backs:
            filed = self._random_time(back)
            month = filed.astimezone(self.tz).month
            ctype = _pick(rng, TYPE_MIX)
            weights: dict[str, float] = {}
            for code, t in TPL.TEMPLATES.items():
                tw = t["types"]
                if ctype == CaseType.PRAISE:
                    share = tw.get("praise", 0.3) / sum(tw.values())
                else:
                    share = tw.get(ctype.value, 0) / sum(tw.values())
                    needs = {"consultation": "asks", "suggestion": "suggest"}.get(
                        ctype.value, "issues")
                    if not t.get(needs):
                        share = 0
                if share:
                    weights[code] = share * CATEGORY_WEIGHTS.get(code, 1.0) * _month_factor(
                        code, month)
            code = _pick(rng, weights)
            plans.append(self._make_plan(filed, ctype, code))
        plans.extend(self._bursts())
        return plans

    def _make_plan(
        self, filed: dt.datetime, ctype: CaseType, code: str, *, citizen: CitizenInfo | None = None,
        loc: Loc | None = None, issue_index: int | None = None, channel: Channel | None = None,
        burst: int | None = None, fixed: dict[str, str] | None = None,
    ) -> CasePlan:
        rng = self.rng
        cat = self.cats[code]
        if citizen is None and burst is None:
            citizen = self._pick_citizen()
        if channel is None:
            channel = _pick(rng, CHANNEL_MIX)
        t = TPL.TEMPLATES[code]
        if issue_index is None:
            issue_index = rng.randrange(len(t["issues"])) if t.get("issues") else 0
        if loc is None:
            kind = TPL.ISSUE_LOC.get((code, issue_index), t.get("loc", "none"))
            loc = self.location(kind, citizen)
        dept = cat["default_department"]
        if loc.town_dept and code in ("C0102", "C0103", "C0107", "C1401", "C1402", "C0903"):
            dept = loc.town_dept  # townships handle these themselves
        title, desc, uses_place, fix = self._text_for(
            ctype, code, channel, loc, dept, issue_index, filed, fixed)
        priority = Priority(cat["default_priority"])
        if ctype in (CaseType.CONSULTATION, CaseType.SUGGESTION, CaseType.PRAISE):
            priority = Priority.NORMAL  # nobody is in danger
        elif priority == Priority.NORMAL and ctype == CaseType.HELP and rng.random() < 0.04:
            priority = Priority.URGENT
        place = loc if uses_place else None
        if place is not None and rng.random() < 0.2:
            place = Loc(place.short, place.text, None, None, place.town_dept, place.xiaoqu,
                        place.village, place.road)
        agent = self._agent_at(filed.astimezone(self.tz))[0]
        return CasePlan(filed, ctype, code, channel, citizen.id if citizen else None,
                        title[:200], desc, place, priority, dept, agent, fix, burst)

    def _bursts(self) -> list[CasePlan]:
        """Clusters of the same problem in one place: what the 舆情 alert must catch."""
        rng = self.rng
        specs = [  # days back, local hour, category, issue, place kind, count, spread hours
            (212, 7, "C0301", 0, "xiaoqu", 18, 3),
            (150, 19, "C0401", 0, "xiaoqu", 14, 2),
            (96, 16, "C1703", 0, "road", 12, 4),
            (61, 11, "C0502", 0, "xiaoqu", 9, 3),
            (33, 22, "C0901", 1, "xiaoqu", 8, 60),
            (9, 9, "C0701", 0, "none", 10, 100),
            (2, 18, "C0303", 0, "road", 7, 2),
        ]
        out: list[CasePlan] = []
        for b, (back, hour, code, issue, kind, count, spread) in enumerate(specs):
            day = self.today - dt.timedelta(days=back)
            start = dt.datetime.combine(day, dt.time(hour, 5), tzinfo=self.tz)
            loc = self.location(kind, None)
            fixed = {"company": rng.choice(P.COMPANIES), "shop": rng.choice(P.SHOPS),
                     "pm": rng.choice(P.PROPERTY_COMPANIES)}
            for _ in range(count):
                at = start + dt.timedelta(minutes=rng.uniform(0, spread * 60))
                citizen = rng.choices(self.citizens, weights=self.citizen_weights)[0]
                ctype = CaseType.HELP if code != "C0901" else CaseType.COMPLAINT
                out.append(self._make_plan(
                    at.astimezone(dt.UTC), ctype, code, citizen=citizen, loc=loc,
                    issue_index=issue, channel=rng.choice([Channel.PHONE] * 4 + [Channel.WECHAT]),
                    burst=b, fixed=fixed,
                ))
        return out

    # ------------------------------------------------------------------ timelines

    def _dept_actor(self, code: str) -> tuple[int, str]:
        return self.dept_user[code]

    def timeline(self, p: CasePlan, head_number: str | None) -> list[Ev]:
        rng = self.rng
        tz = self.tz
        agent_id = p.agent
        agent_name = next(a[1] for a in self.agents if a[0] == agent_id)
        cat = self.cats[p.category]
        evs = [Ev(p.filed_at, agent_id, agent_name, "file", None, S.FILED,
                  data={"channel": p.channel.value})]
        t = p.filed_at
        if head_number is not None:
            at = t + dt.timedelta(minutes=rng.randint(3, 40))
            evs.append(Ev(at, agent_id, agent_name, A.MERGE.value, S.FILED, S.MERGED,
                          comment=f"与工单{head_number}反映的是同一问题，予以合并办理。",
                          data={"merged_into": head_number}))
            return evs
        direct = (p.type == CaseType.CONSULTATION and rng.random() < 0.72) or (
            p.type == CaseType.PRAISE and rng.random() < 0.5)
        if direct:
            at = t + dt.timedelta(seconds=rng.randint(20, 240))
            text = (rng.choice(TPL.DIRECT_ANSWERS) if p.type == CaseType.CONSULTATION
                    else "已记录市民表扬并转达相关单位。")
            evs.append(Ev(at, agent_id, agent_name, A.ANSWER_DIRECTLY.value, S.FILED,
                          S.ANSWERED_DIRECTLY, comment=text))
            return evs
        local = t.astimezone(tz)
        fast = p.priority != Priority.NORMAL
        stuck = self._stuck_fate(p, fast)
        if fast:
            disp = t + dt.timedelta(minutes=rng.randint(2, 12))
        elif 7 <= local.hour < 22:
            disp = t + dt.timedelta(minutes=rng.randint(8, 150))
        else:
            nxt = local if local.hour < 7 else local + dt.timedelta(days=1)
            disp = dt.datetime.combine(nxt.date(), dt.time(8, 0), tzinfo=tz).astimezone(dt.UTC)
            disp += dt.timedelta(minutes=rng.randint(0, 60))
        status = S.FILED
        if stuck == "filed":
            return evs  # recorded, waiting for the dispatcher
        dispatcher = (agent_id, agent_name)
        # Sometimes the first department returns it (退单) and the hotline re-dispatches.
        if stuck in ("returned", "bounced", "coordinated") or (
                not fast and rng.random() < 0.07):
            wrong = rng.choice([d for d in MISROUTES if d != p.department])
            evs.append(self._dispatch(disp, dispatcher, status, wrong))
            back = _into_office_hours(disp.astimezone(tz), rng) + dt.timedelta(
                minutes=rng.randint(20, 300))
            who = self._dept_actor(wrong)
            reason = rng.choice(TPL.RETURN_REASONS).format(other=self.dept_short[p.department])
            evs.append(Ev(back.astimezone(dt.UTC), who[0], who[1], A.RETURN.value,
                          S.DISPATCHED, S.RETURNED, comment=reason,
                          data={"department": wrong}))
            status = S.RETURNED
            if stuck == "returned":
                return evs
            sup = rng.choice(self.supervisors)
            disp = back.astimezone(dt.UTC) + dt.timedelta(minutes=rng.randint(15, 240))
            dispatcher = sup
            if stuck in ("bounced", "coordinated"):
                # 推诿: a second department returns it too, and the case lands on the
                # supervisors' disputed list (return_count 2); some are already settled by
                # coordination (协调), which fixes the responsible department.
                second = rng.choice([d for d in MISROUTES if d not in (p.department, wrong)])
                evs.append(self._dispatch(disp, dispatcher, status, second))
                back2 = disp + dt.timedelta(minutes=rng.randint(30, 600))
                who2 = self._dept_actor(second)
                evs.append(Ev(back2, who2[0], who2[1], A.RETURN.value, S.DISPATCHED,
                              S.RETURNED, comment=rng.choice(TPL.RETURN_REASONS).format(
                                  other=self.dept_short[p.department]),
                              data={"department": second}))
                if stuck == "bounced":
                    return evs
                coordinated = back2 + dt.timedelta(hours=rng.uniform(2, 20))
                evs.append(Ev(coordinated, sup[0], sup[1], A.COORDINATE.value, S.RETURNED,
                              S.DISPATCHED,
                              comment=f"经协调，由{self.dept_short[p.department]}负责办理。",
                              data={"department": p.department,
                                    "department_id": self.dept_id[p.department],
                                    "responsibility_fixed": True}))
                disp = coordinated
                status = S.DISPATCHED
        # A reopened case goes round twice.
        rounds = 2 if stuck == "reopened" or rng.random() < 0.03 else 1
        satisfaction: Satisfaction | None = None
        for rnd in range(rounds):
            if status != S.DISPATCHED:  # already dispatched by coordination
                evs.append(self._dispatch(disp, dispatcher, status, p.department))
            sign = self._sign_time(disp, cat, fast)
            who = self._dept_actor(p.department)
            evs.append(Ev(sign, who[0], who[1], A.SIGN.value, S.DISPATCHED, S.SIGNED))
            if stuck == "signed":
                return evs  # overdue: signed for, never replied
            limit = int(cat["handle_limit_working_days"])
            reply = self._reply_time(sign, limit, fast)
            if stuck == "extension" or (not fast and limit >= 3 and rng.random() < 0.05):
                ask = sign + (reply - sign) * rng.uniform(0.3, 0.7)
                ext_days = rng.choice([3, 5, 10])
                evs.append(Ev(ask, who[0], who[1], A.REQUEST_EXTENSION.value, S.SIGNED,
                              S.EXTENSION_REQUESTED,
                              comment=rng.choice(TPL.EXTENSION_REASONS).format(n=ext_days),
                              data={"days": ext_days}))
                if stuck == "extension":
                    return evs
                sup = rng.choice(self.supervisors)
                decided = ask + dt.timedelta(hours=rng.uniform(1, 20))
                if rng.random() < 0.85:
                    evs.append(Ev(decided, sup[0], sup[1], A.APPROVE_EXTENSION.value,
                                  S.EXTENSION_REQUESTED, S.SIGNED, data={"days": ext_days}))
                    reply = self._reply_time(decided, ext_days, False)
                else:
                    evs.append(Ev(decided, sup[0], sup[1], A.REFUSE_EXTENSION.value,
                                  S.EXTENSION_REQUESTED, S.SIGNED,
                                  comment="理由不充分，请在原时限内办结。"))
                    reply = max(reply, decided + dt.timedelta(hours=rng.uniform(2, 30)))
            evs.append(Ev(reply, who[0], who[1], A.REPLY.value, S.SIGNED, S.REPLIED,
                          comment=p.fix))
            cb_local = (reply + dt.timedelta(hours=rng.uniform(3, 40))).astimezone(tz)
            if cb_local.hour < 9 or cb_local.hour >= 20:
                nxt = cb_local if cb_local.hour < 9 else cb_local + dt.timedelta(days=1)
                cb_local = dt.datetime.combine(nxt.date(), dt.time(9, 0), tzinfo=tz) + \
                    dt.timedelta(minutes=rng.randint(0, 300))
            callback = cb_local.astimezone(dt.UTC)
            caller = self._agent_at(cb_local)
            if rnd < rounds - 1 or stuck == "under_review":
                # The callback finds the citizen dissatisfied (回访不满意); supervisors review
                # it and, here, reopen it (重办) for the department's fault.
                evs.append(Ev(callback, caller[0], caller[1], A.RATE_DISSATISFIED.value,
                              S.REPLIED, S.UNDER_REVIEW, comment="来电人对办理结果不满意。",
                              data={"reached": True,
                                    "satisfaction": Satisfaction.DISSATISFIED.value}))
                if stuck == "under_review":
                    return evs
                sup = rng.choice(self.supervisors)
                reviewed = callback + dt.timedelta(minutes=10)
                evs.append(Ev(reviewed, sup[0], sup[1], A.REOPEN.value,
                              S.UNDER_REVIEW, S.REOPENED,
                              comment=rng.choice(TPL.REOPEN_REASONS),
                              data={"satisfaction": Satisfaction.DISSATISFIED.value}))
                status = S.REOPENED
                if stuck == "reopened":
                    return evs
                dispatcher = sup
                disp = reviewed + dt.timedelta(minutes=rng.randint(20, 600))
                continue
            if rng.random() < 0.85:
                satisfaction = rng.choices(
                    [Satisfaction.SATISFIED, Satisfaction.BASICALLY_SATISFIED,
                     Satisfaction.DISSATISFIED], weights=[80, 16, 4])[0]
            evs.append(Ev(callback, caller[0], caller[1], A.CLOSE.value, S.REPLIED, S.CLOSED,
                          comment="已回访来电人。" if satisfaction else "回访未接通，按规定办结。",
                          data={"satisfaction": satisfaction.value} if satisfaction else {}))
        return evs

    def _stuck_fate(self, p: CasePlan, fast: bool) -> str | None:
        """Some younger cases are left open (overdue, returned, reopened, extension pending)."""
        if fast:
            return None
        age = (self.now - p.filed_at).days
        rng = self.rng
        fates = [  # fate, youngest, oldest (days), probability
            ("filed", 0, 1, 0.15),
            ("returned", 0, 6, 0.10),
            ("reopened", 2, 20, 0.05),
            ("extension", 3, 12, 0.08),
            ("signed", 8, 90, 0.025),
            ("bounced", 0, 10, 0.15),
            ("under_review", 4, 30, 0.06),
            ("coordinated", 10, 200, 0.006),
        ]
        for fate, youngest, oldest, prob in fates:
            if youngest <= age <= oldest and rng.random() < prob:
                return fate
        return None

    def _dispatch(self, at: dt.datetime, actor: tuple[int, str], from_status: CaseStatus,
                  dept: str) -> Ev:
        return Ev(at, actor[0], actor[1], A.DISPATCH.value, from_status, S.DISPATCHED,
                  comment=f"转{self.dept_short[dept]}办理。",
                  data={"department": dept, "department_id": self.dept_id[dept]})

    def _sign_time(self, disp: dt.datetime, cat: dict[str, Any], fast: bool) -> dt.datetime:
        rng = self.rng
        limit = cat["sign_limit_minutes"]
        if fast or limit:
            lim = int(limit or 30)
            late = rng.random() < 0.04
            minutes = rng.uniform(lim * 1.1, lim * 3) if late else rng.uniform(2, lim * 0.95)
            return disp + dt.timedelta(minutes=minutes)
        local = _into_office_hours(disp.astimezone(self.tz), rng)
        return max(local.astimezone(dt.UTC), disp) + dt.timedelta(minutes=rng.randint(5, 200))

    def _reply_time(self, start: dt.datetime, limit: int, fast: bool) -> dt.datetime:
        rng = self.rng
        if fast:
            return start + dt.timedelta(hours=rng.uniform(0.7, 10))
        local = start.astimezone(self.tz)
        if rng.random() < 0.06:  # overdue
            days = limit + rng.randint(1, 4)
        else:
            days = rng.randint(0, max(limit - 1, 0))
        day = add_working_days(local, days)
        at = dt.datetime.combine(
            day.date(), dt.time(rng.randint(9, 17), rng.randrange(60)), tzinfo=self.tz)
        if at <= local:
            at = local + dt.timedelta(hours=rng.uniform(1, 5))
        return at.astimezone(dt.UTC)

    # ------------------------------------------------------------------ contacts

    def _uniqueid(self, at: dt.datetime) -> str:
        self.uniqueid_seq += 1
        return f"{int(at.timestamp())}.{self.uniqueid_seq}"

    def _address_for(self, channel: Channel, citizen: CitizenInfo | None) -> str:
        rng = self.rng
        if channel in (Channel.PHONE, Channel.SMS):
            if citizen is not None:
                return rng.choice(citizen.phones)
            return self._mobile()
        if channel == Channel.WECHAT:
            alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
            return "o" + "".join(rng.choice(alphabet) for _ in range(27))
        if channel == Channel.WEIBO:
            return f"weibo:{rng.randrange(10**9, 10**10)}"
        if channel == Channel.OPEN311:
            return f"open311:{rng.randrange(10**6, 10**7)}"
        if citizen is not None and rng.random() < 0.6:
            return citizen.phones[0]
        return f"web:{rng.randrange(10**7, 10**8)}"

    def _phone_contact(
        self, *, answered: dt.datetime, talk_s: int, citizen: CitizenInfo | None,
        queue: str, digit: str, agent: tuple[int, str, str] | None, outcome: ContactOutcome,
        summary: str | None,
        from_address: str | None = None,
    ) -> dict[str, Any]:
        rng = self.rng
        wait = rng.choice([rng.randint(3, 20), rng.randint(3, 20), rng.randint(15, 120)])
        queued = answered - dt.timedelta(seconds=wait)
        ivr_s = rng.randint(15, 45)
        started = queued - dt.timedelta(seconds=ivr_s)
        if citizen is not None and "repeat_caller" in citizen.tags:
            queue = "priority"
        steps: list[dict[str, Any]] = [
            {"step": "welcome", "at": started.isoformat()},
            {"step": "menu", "digit": digit,
             "at": (started + dt.timedelta(seconds=rng.randint(6, ivr_s - 4))).isoformat()},
            {"step": "queue", "queue": queue, "at": queued.isoformat()},
        ]
        uid = self._uniqueid(started)
        rating = None
        if agent is not None and rng.random() < 0.4:
            rating = rng.choices(
                [Satisfaction.SATISFIED, Satisfaction.BASICALLY_SATISFIED,
                 Satisfaction.DISSATISFIED], weights=[90, 8, 2])[0]
        return {
            "channel": Channel.PHONE, "direction": Direction.INBOUND,
            "citizen_id": citizen.id if citizen else None,
            "from_address": from_address or self._address_for(Channel.PHONE, citizen),
            "to_address": "12345", "started_at": started, "queued_at": queued,
            "answered_at": answered, "ended_at": answered + dt.timedelta(seconds=talk_s),
            "queue": queue, "agent_id": agent[0] if agent else None,
            "agent_extension": agent[2] if agent else None, "ivr_path": steps,
            "outcome": outcome, "outcome_reason": None, "asterisk_uniqueid": uid,
            "asterisk_linkedid": uid, "summary": summary, "survey_rating": rating,
            "case_id": None,
        }

    def case_contact(self, p: CasePlan) -> dict[str, Any]:
        rng = self.rng
        citizen = next((c for c in self._citizen_by_id(p.citizen)), None)
        agent = next(a for a in self.agents if a[0] == p.agent)
        if p.channel == Channel.PHONE:
            talk_before = rng.randint(60, 420)
            answered = p.filed_at - dt.timedelta(seconds=talk_before)
            digit, queue = DEPT_MENU[p.type]
            return self._phone_contact(
                answered=answered, talk_s=talk_before + rng.randint(20, 120), citizen=citizen,
                queue=queue, digit=digit, agent=agent, outcome=ContactOutcome.ANSWERED,
                summary=p.title)
        received = p.filed_at - dt.timedelta(minutes=rng.randint(2, 90))
        return {
            "channel": p.channel, "direction": Direction.INBOUND,
            "citizen_id": p.citizen, "from_address": self._address_for(p.channel, citizen),
            "to_address": "12345", "started_at": received, "queued_at": None,
            "answered_at": p.filed_at, "ended_at": p.filed_at, "queue": None,
            "agent_id": agent[0], "agent_extension": None, "ivr_path": [],
            "outcome": ContactOutcome.CASE_FILED, "outcome_reason": None,
            "asterisk_uniqueid": None, "asterisk_linkedid": None, "summary": p.title,
            "survey_rating": None, "case_id": None,
        }

    def _citizen_by_id(self, cid: int | None) -> list[CitizenInfo]:
        if cid is None:
            return []
        return [self.citizen_index[cid]]

    def extra_contacts(self, n: int) -> list[dict[str, Any]]:
        rng = self.rng
        rows: list[dict[str, Any]] = []
        day_w = self._day_weights()
        asks = [(code, a) for code, t in TPL.TEMPLATES.items() for a in t.get("asks", [])
                if "{" not in a]
        blocked = [c for c in self.citizens if "blocked" in c.tags]
        kinds = {"kb_answer": 45, "abandoned": 21, "self_service": 17, "callback": 6,
                 "blocked": 2, "failed": 1, "text_answer": 8}
        for back in rng.choices(range(1, 366), weights=day_w, k=n):
            at = self._random_time(back)
            local = at.astimezone(self.tz)
            kind = _pick(rng, kinds)
            citizen = (rng.choices(self.citizens, weights=self.citizen_weights)[0]
                       if rng.random() < 0.85 else None)
            if kind == "kb_answer":
                _code, ask = rng.choice(asks)
                rows.append(self._phone_contact(
                    answered=at, talk_s=rng.randint(45, 400), citizen=citizen,
                    queue="consultation", digit="1", agent=self._agent_at(local),
                    outcome=ContactOutcome.ANSWERED,
                    summary=f"咨询{ask}，已按知识库答复，来电人表示清楚。"))
            elif kind == "abandoned":
                row = self._phone_contact(
                    answered=at, talk_s=0, citizen=citizen, queue=rng.choice(
                        ["consultation", "complaint"]), digit=rng.choice(["1", "2"]),
                    agent=None, outcome=ContactOutcome.ABANDONED, summary=None)
                row["ended_at"] = row["answered_at"]
                row["answered_at"] = None
                row["outcome_reason"] = "caller hung up while waiting in the queue"
                rows.append(row)
            elif kind == "self_service":
                rows.append(self._self_service(at, citizen))
            elif kind == "callback":
                row = self._phone_contact(
                    answered=at, talk_s=0, citizen=citizen, queue="complaint", digit="2",
                    agent=None, outcome=ContactOutcome.CALLBACK_REQUESTED, summary=None)
                # Offered while waiting in the queue (`at` is when the caller accepted).
                row["ivr_path"].append({"step": "callback_offer", "accepted": True,
                                        "at": at.isoformat()})
                row["ended_at"] = row["answered_at"] + dt.timedelta(seconds=8)
                row["answered_at"] = None
                rows.append(row)
                back_at = at + dt.timedelta(minutes=rng.randint(5, 90))
                agent = self._agent_at(back_at.astimezone(self.tz))
                rows.append({
                    **row, "direction": Direction.OUTBOUND, "from_address": agent[2],
                    "to_address": row["from_address"], "started_at": back_at,
                    "queued_at": None, "answered_at": back_at + dt.timedelta(seconds=12),
                    "ended_at": back_at + dt.timedelta(seconds=rng.randint(60, 360)),
                    "queue": None, "agent_id": agent[0], "agent_extension": agent[2],
                    "ivr_path": [], "outcome": ContactOutcome.ANSWERED,
                    "asterisk_uniqueid": self._uniqueid(back_at), "survey_rating": None,
                    "summary": "预约回拨：已回电，来电人咨询事项已答复。",
                })
                rows[-1]["asterisk_linkedid"] = rows[-1]["asterisk_uniqueid"]
            elif kind == "blocked" and blocked:
                who = rng.choice(blocked)
                uid = self._uniqueid(at)
                rows.append({
                    "channel": Channel.PHONE, "direction": Direction.INBOUND,
                    "citizen_id": who.id, "from_address": who.phones[0], "to_address": "12345",
                    "started_at": at, "queued_at": None, "answered_at": None,
                    "ended_at": at + dt.timedelta(seconds=15), "queue": None, "agent_id": None,
                    "agent_extension": None,
                    "ivr_path": [{"step": "blocked_notice", "at": at.isoformat()}],
                    "outcome": ContactOutcome.BLOCKED,
                    "outcome_reason": "number on the restricted list",
                    "asterisk_uniqueid": uid, "asterisk_linkedid": uid, "summary": None,
                    "survey_rating": None, "case_id": None,
                })
            elif kind == "text_answer":
                channel = rng.choice([Channel.WECHAT, Channel.WECHAT, Channel.WEB, Channel.SMS])
                _code, ask = rng.choice(asks)
                agent = self._agent_at(local)
                rows.append({
                    "channel": channel, "direction": Direction.INBOUND,
                    "citizen_id": citizen.id if citizen else None,
                    "from_address": self._address_for(channel, citizen), "to_address": "12345",
                    "started_at": at, "queued_at": None,
                    "answered_at": at + dt.timedelta(minutes=rng.randint(1, 50)),
                    "ended_at": at + dt.timedelta(minutes=rng.randint(50, 90)), "queue": None,
                    "agent_id": agent[0], "agent_extension": None, "ivr_path": [],
                    "outcome": ContactOutcome.ANSWERED, "outcome_reason": None,
                    "asterisk_uniqueid": None, "asterisk_linkedid": None,
                    "summary": f"留言咨询{ask}，已按知识库回复。", "survey_rating": None,
                    "case_id": None,
                })
            else:  # failed
                uid = self._uniqueid(at)
                rows.append({
                    "channel": Channel.PHONE, "direction": Direction.INBOUND,
                    "citizen_id": None, "from_address": self._mobile(), "to_address": "12345",
                    "started_at": at, "queued_at": None, "answered_at": None,
                    "ended_at": at + dt.timedelta(seconds=rng.randint(1, 6)), "queue": None,
                    "agent_id": None, "agent_extension": None,
                    "ivr_path": [{"step": "welcome", "at": at.isoformat()}],
                    "outcome": ContactOutcome.FAILED, "outcome_reason": "channel hung up in IVR",
                    "asterisk_uniqueid": uid, "asterisk_linkedid": uid, "summary": None,
                    "survey_rating": None, "case_id": None,
                })
        return rows

    def _self_service(self, at: dt.datetime, citizen: CitizenInfo | None) -> dict[str, Any]:
        rng = self.rng
        uid = self._uniqueid(at)
        progress = rng.random() < 0.65
        steps: list[dict[str, Any]] = [
            {"step": "welcome", "at": at.isoformat()},
            {"step": "menu", "digit": "3" if progress else "4",
             "at": (at + dt.timedelta(seconds=10)).isoformat()},
        ]
        if progress:
            steps.append({"step": "case_progress", "found": rng.random() < 0.9,
                          "at": (at + dt.timedelta(seconds=30)).isoformat()})
        else:
            steps.append({"step": "kb_answer", "topic": rng.choice(
                ["停水停电查询", "市民中心办公时间", "公积金提取", "医保异地备案"]),
                "at": (at + dt.timedelta(seconds=25)).isoformat()})
        return {
            "channel": Channel.PHONE, "direction": Direction.INBOUND,
            "citizen_id": citizen.id if citizen else None,
            "from_address": self._address_for(Channel.PHONE, citizen), "to_address": "12345",
            "started_at": at, "queued_at": None, "answered_at": None,
            "ended_at": at + dt.timedelta(seconds=rng.randint(40, 150)), "queue": None,
            "agent_id": None, "agent_extension": None, "ivr_path": steps,
            "outcome": ContactOutcome.SELF_SERVICE, "outcome_reason": None,
            "asterisk_uniqueid": uid, "asterisk_linkedid": uid, "summary": None,
            "survey_rating": None, "case_id": None,
        }

    # ------------------------------------------------------------------ writing

    def _insert(self, model: Any, rows: list[dict[str, Any]], returning: bool = True) -> list[int]:
        if not rows:
            return []
        # Bulk INSERT ignores unknown keys; refuse them so a model change cannot go unnoticed.
        unknown = set(rows[0]) - set(sa_inspect(model).columns.keys())
        if unknown:
            raise DemoDataError(f"{model.__name__} has no column(s) {sorted(unknown)}")
        if not returning:
            for i in range(0, len(rows), 2000):
                self.s.execute(insert(model), rows[i:i + 2000])
            return []
        ids: list[int] = []
        for i in range(0, len(rows), 1000):
            res = self.s.execute(
                insert(model).returning(model.id, sort_by_parameter_order=True),
                rows[i:i + 1000])
            ids.extend(res.scalars().all())
        return ids

    def cases(self, n_cases: int, n_extra: int) -> None:
        self.citizen_index = {c.id: c for c in self.citizens}
        plans = self.plan_cases(n_cases)
        plans.sort(key=lambda p: p.filed_at)
        seqs: dict[dt.date, int] = {}
        for p in plans:
            day = p.filed_at.astimezone(self.tz).date()
            seqs[day] = seqs.get(day, 0) + 1
            p.number = f"{day:%Y%m%d}-{seqs[day]:05d}"
        # Burst followers reported within a few hours are merged into the first report.
        heads: dict[int, int] = {}
        for i, p in enumerate(plans):
            if p.burst is None:
                continue
            if p.burst not in heads:
                heads[p.burst] = i
            elif (p.filed_at - plans[heads[p.burst]].filed_at) < dt.timedelta(hours=24) and \
                    self.rng.random() < 0.5:
                p.merged_into = heads[p.burst]

        contacts = [self.case_contact(p) for p in plans]
        contact_ids = self._insert(Contact, contacts)
        case_rows: list[dict[str, Any]] = []
        all_events: list[list[Ev]] = []
        for p in plans:
            head = plans[p.merged_into].number if p.merged_into is not None else None
            evs = [e for e in self.timeline(p, head) if e.at <= self.now]
            all_events.append(evs)
            case_rows.append(self._case_row(p, evs))
        case_ids = self._insert(Case, case_rows)
        self.s.execute(update(Contact), [
            {"id": cid, "case_id": kid} for cid, kid in zip(contact_ids, case_ids, strict=True)
        ])
        merges = [{"b_id": case_ids[i], "b_into": case_ids[p.merged_into]}
                  for i, p in enumerate(plans) if p.merged_into is not None]
        if merges:
            # Core UPDATE: these rows are brand new, no optimistic-lock version bump wanted.
            cases_t = cast(Table, Case.__table__)
            self.s.execute(
                update(cases_t).where(cases_t.c.id == bindparam("b_id"))
                .values(merged_into_id=bindparam("b_into")),
                merges,
            )
        ev_rows = [
            {"case_id": kid, "at": e.at, "actor_id": e.actor_id, "actor_label": e.actor_label,
             "action": e.action, "from_status": e.from_status, "to_status": e.to_status,
             "comment": e.comment, "data": e.data}
            for kid, evs in zip(case_ids, all_events, strict=True) for e in evs
        ]
        self._insert(CaseEvent, ev_rows, returning=False)
        callbacks = [row for kid, evs in zip(case_ids, all_events, strict=True)
                     if (row := self._callback_row(kid, evs)) is not None]
        self._insert(CaseCallback, callbacks, returning=False)
        self.counts["case_callbacks"] = len(callbacks)
        self._insert(CaseNumberCounter, [
            {"day": day, "last_seq": seq} for day, seq in sorted(seqs.items())
        ], returning=False)
        extra = self.extra_contacts(n_extra)
        self._insert(Contact, extra, returning=False)
        self.counts["cases"] = len(plans)
        self.counts["case_events"] = len(ev_rows)
        self.counts["contacts"] = len(contacts) + len(extra)
        self.counts["contacts_without_case"] = len(extra)
        self.counts["case_number_days"] = len(seqs)

    def _callback_row(self, case_id: int, evs: list[Ev]) -> dict[str, Any] | None:
        """The 回访 task of a case waiting for its callback (open) or for the supervisors'
        review of a dissatisfied one (done), as cases.lifecycle.reply/record_callback leave
        them. Closed cases' finished tasks are not generated (their trail has the rating)."""
        last = evs[-1]
        if last.to_status not in (S.REPLIED, S.UNDER_REVIEW):
            return None
        replied = next(e.at for e in reversed(evs) if e.action == A.REPLY.value)
        row: dict[str, Any] = {
            "case_id": case_id, "created_at": replied,
            "due_at": add_working_days(replied.astimezone(self.tz), 1).astimezone(dt.UTC),
            "status": CallbackTaskStatus.OPEN, "attempts": 0, "last_attempt_at": None,
            "completed_at": None, "completed_by_id": None, "satisfaction": None, "note": None,
        }
        if last.to_status == S.UNDER_REVIEW:
            row.update(status=CallbackTaskStatus.DONE, attempts=1, last_attempt_at=last.at,
                       completed_at=last.at, completed_by_id=last.actor_id,
                       satisfaction=Satisfaction.DISSATISFIED, note=last.comment)
        return row

    def _case_row(self, p: CasePlan, evs: list[Ev]) -> dict[str, Any]:
        cat = self.cats[p.category]
        last = evs[-1]
        # Coordination (协调) dispatches too: to the department it fixes as responsible.
        dispatches = [e for e in evs if e.action in (A.DISPATCH.value, A.COORDINATE.value)]
        returns = sum(e.action == A.RETURN.value for e in evs)
        fixed = any(e.action == A.COORDINATE.value for e in evs)
        signs = [e for e in evs if e.action == A.SIGN.value]
        replies = [e for e in evs if e.action == A.REPLY.value]
        dept = dispatches[-1].data["department"] if dispatches else p.department
        dispatched_at = dispatches[-1].at if dispatches else None
        sign_by = handle_by = None
        if dispatched_at is not None:
            local = dispatched_at.astimezone(self.tz)
            limit_min = cat["sign_limit_minutes"] or (
                15 if p.priority == Priority.CRITICAL else
                30 if p.priority == Priority.URGENT else None)
            sign_by = (dispatched_at + dt.timedelta(minutes=limit_min) if limit_min
                       else add_working_days(local, 1).astimezone(dt.UTC))
            # The deadline runs from the current assignment (a re-dispatch after 退单 or 重办
            # starts it again), plus any extension approved since.
            days = int(cat["handle_limit_working_days"]) + sum(
                int(e.data.get("days", 0)) for e in evs
                if e.action == A.APPROVE_EXTENSION.value and e.at >= dispatched_at)
            handle_by = add_working_days(local, days).astimezone(dt.UTC)
        closed_at = last.at if last.to_status in (S.CLOSED, S.ANSWERED_DIRECTLY, S.MERGED) \
            else None
        satisfaction = None
        if last.to_status in (S.CLOSED, S.UNDER_REVIEW) and last.data.get("satisfaction"):
            satisfaction = Satisfaction(last.data["satisfaction"])
        reply_text = replies[-1].comment if replies else None
        if last.to_status == S.ANSWERED_DIRECTLY:
            reply_text = last.comment
        loc = p.loc
        return {
            "number": p.number, "type": p.type, "category_id": self.cat_id[p.category],
            "title": p.title, "description": p.description,
            "location_text": loc.text if loc else None,
            "latitude": loc.lat if loc else None, "longitude": loc.lon if loc else None,
            "priority": p.priority, "status": last.to_status,
            "department_id": self.dept_id[dept],
            # Returns happen before signing, so the signer is always the final department.
            "first_signed_department_id": self.dept_id[p.department] if signs else None,
            "sign_by": sign_by, "handle_by": handle_by, "dispatched_at": dispatched_at,
            "signed_at": signs[-1].at if signs else None,
            "replied_at": replies[-1].at if replies else None, "closed_at": closed_at,
            "channel": p.channel, "citizen_id": p.citizen, "filed_by_id": p.agent,
            "merged_into_id": None,
            "answered_directly": last.to_status == S.ANSWERED_DIRECTLY,
            "satisfaction": satisfaction, "reply_text": reply_text, "version": 1,
            # As cases.lifecycle keeps them: every 退单 counts, coordination fixes the
            # department for good.
            "return_count": returns, "responsibility_fixed": fixed,
            "created_at": p.filed_at, "updated_at": last.at,
        }


def seed_demo(
    session: Session,
    *,
    today: dt.date,
    rng_seed: int = 12345,
    demo_password: str,
    import_kb: bool = True,
    n_citizens: int = 650,
    n_cases: int = 2600,
    n_extra_contacts: int = 1500,
    tz: ZoneInfo = DEFAULT_TZ,
) -> dict[str, int]:
    """Fill an empty database with a year of demo data ending the day before `today`.

    The caller commits. Raises DemoDataError if the database already has departments.
    Returns the number of rows written per kind.
    """
    if not demo_password:
        raise DemoDataError("demo_password must not be empty")
    existing = session.scalar(select(func.count()).select_from(Department))
    if existing:
        raise DemoDataError(
            f"the database already has {existing} departments; demo data can only be seeded "
            "into an empty database"
        )
    seeder = _Seeder(session, today, rng_seed, demo_password, tz)
    seeder.departments()
    seeder.categories()
    seeder.users()
    seeder.citizens_(n_citizens)
    seeder.cases(n_cases, n_extra_contacts)
    session.flush()
    if import_kb:
        from cases.kb_import import import_kb_file

        result = import_kb_file(session, KB_FILE, actor_label="seed")
        seeder.counts["kb_articles"] = int(result.imported) + int(result.updated)
    return seeder.counts
