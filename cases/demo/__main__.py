"""Seed the configured database with the 宁川市 demo data.

    python -m cases.demo --password <demo password> [--today 2026-11-27] [--seed 12345]

The database is migrated first; seeding refuses a database that already has departments.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from cases.db import make_engine, make_session_factory, session_scope
from cases.demo.seed import DemoDataError, seed_demo
from cases.migrate import upgrade
from hotline.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cases.demo", description=__doc__)
    parser.add_argument("--password", required=True, help="password of every demo user")
    parser.add_argument("--today", type=dt.date.fromisoformat, default=None,
                        help="last day of the history + 1 (default: today in the city's zone)")
    parser.add_argument("--seed", type=int, default=12345, help="random seed")
    parser.add_argument("--no-kb", action="store_true", help="do not import the KB articles")
    args = parser.parse_args(argv)
    settings = Settings()
    today = args.today or dt.datetime.now(settings.tz).date()
    engine = make_engine(settings)
    upgrade(engine)
    started = time.monotonic()
    try:
        with session_scope(make_session_factory(engine)) as session:
            counts = seed_demo(session, today=today, rng_seed=args.seed,
                               demo_password=args.password, import_kb=not args.no_kb,
                               tz=settings.tz)
    except DemoDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    summary = ", ".join(f"{k}={v}" for k, v in counts.items())
    print(f"seeded in {time.monotonic() - started:.1f}s: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
