"""Small, explicit test data (the demo city is tested on its own in test_demo_data)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from cases.models import Category, Citizen, CitizenPhone, Department, Priority, Role, User
from cases.passwords import hash_password

PASSWORD = "correct-horse-battery"


@dataclass
class Org:
    water: Department
    roads: Department
    leak: Category  # critical, 15-minute sign-for
    outage: Category  # urgent
    pothole: Category  # normal
    agent: User
    supervisor: User
    water_staff: User
    roads_staff: User
    kb_editor: User
    admin: User
    citizen: Citizen


def make_org(session: Session) -> Org:
    water = Department(code="D-WATER", name="市自来水公司", short_name="自来水公司")
    roads = Department(code="D-ROADS", name="市住房和城乡建设局", short_name="住建局")
    session.add_all([water, roads])
    session.flush()
    utilities = Category(code="C-UTIL", name="水电气暖")
    city = Category(code="C-CITY", name="城市管理")
    session.add_all([utilities, city])
    session.flush()
    leak = Category(code="C-UTIL-LEAK", name="供水爆管", parent_id=utilities.id,
                    default_department_id=water.id, default_priority=Priority.CRITICAL,
                    sign_limit_minutes=15, handle_limit_working_days=1)
    outage = Category(code="C-UTIL-OUT", name="停水", parent_id=utilities.id,
                      default_department_id=water.id, default_priority=Priority.URGENT,
                      sign_limit_minutes=30, handle_limit_working_days=3)
    pothole = Category(code="C-CITY-ROAD", name="道路破损", parent_id=city.id,
                       default_department_id=roads.id, handle_limit_working_days=5)
    session.add_all([leak, outage, pothole])
    pw = hash_password(PASSWORD)

    def user(name: str, role: Role, dept: Department | None = None, ext: str | None = None
             ) -> User:
        u = User(username=name, display_name=name, password_hash=pw, role=role,
                 department_id=dept.id if dept else None, extension=ext)
        session.add(u)
        return u

    org = Org(
        water=water, roads=roads, leak=leak, outage=outage, pothole=pothole,
        agent=user("agent01", Role.AGENT, ext="8001"),
        supervisor=user("banzhang", Role.SUPERVISOR),
        water_staff=user("dept-water", Role.DEPARTMENT_STAFF, water),
        roads_staff=user("dept-roads", Role.DEPARTMENT_STAFF, roads),
        kb_editor=user("kbeditor", Role.KB_EDITOR),
        admin=user("admin", Role.ADMIN),
        citizen=Citizen(name="王秀英", address="临川市文昌街道幸福小区3栋", tags=["elderly"]),
    )
    org.citizen.phones = [CitizenPhone(number="13800138000", label="手机")]
    session.add(org.citizen)
    session.commit()
    return org
