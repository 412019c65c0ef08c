"""Names shared between the dialplan (`asterisk/extensions.conf.j2`) and the Python side.

The dialplan template is rendered with these constants (see `hotline.asterisk_chroot`), so a
name changed here changes in both places. Nothing here talks to Asterisk.

Call flow (extensions.conf):

    from-citizens,<hotline number>,1
      Set(HOTLINE_CALL_STARTED), push the hang-up handler hotline-unrecorded
      Set(HOTLINE_DIALLED=...) -> AGI(agi://host:port/ivr)
      AGISTATUS == SUCCESS and HOTLINE_QUEUE names a known queue -> Goto(queue-<HOTLINE_QUEUE>,s,1)
      otherwise                                                   -> Goto(queue-<default>,s,1)
    queue-<name>,s,1
      Queue(<name>, c) ; the agent hanging up first continues the caller's channel
      an agent answered and hung up first  -> Goto(hotline-survey,s,1) -> AGI(.../survey)
      nobody answered (queue timeout)     -> goodbye, hang up
    hotline-unrecorded,s,1 (hang-up handler, wherever the call is when it ends)
      HOTLINE_IVR empty (the IVR never ran) -> one line to UNRECORDED_LOG
"""

from __future__ import annotations

import datetime as dt
from typing import Final

# --- contexts --------------------------------------------------------------------------
CONTEXT_CITIZENS: Final = "from-citizens"  # the citizen-side trunk enters here
TRUNK_ENDPOINT: Final = "citizens"  # PJSIP endpoint of the trunk: channels PJSIP/citizens-...
CONTEXT_AGENTS: Final = "agents"  # agent softphones 8001-8020
CONTEXT_SURVEY: Final = "hotline-survey"  # post-call survey (caller side)
CONTEXT_PLAIN: Final = "plain"  # benchmark baseline (Answer, Wait)
# Hang-up handler of every hotline call: writes a line to UNRECORDED_LOG if the IVR never ran.
CONTEXT_UNRECORDED: Final = "hotline-unrecorded"
QUEUE_CONTEXT_PREFIX: Final = "queue-"  # queue-<queue name>, extension "s"
# Calling citizens back (回访), both entered from AMI Originate (hotline.ami.CallOriginator):
# the agent answered, now dial the citizen (extension = the citizen's number) ...
CONTEXT_CALLOUT: Final = "hotline-callout"
# ... or the citizen answered the automated callback: run AGI_CALLBACK (extension "s").
CONTEXT_CALLBACK_IVR: Final = "hotline-callback-ivr"

# --- queues (queues.conf section names) ------------------------------------------------
QUEUE_CONSULTATION: Final = "consultation"  # 咨询
QUEUE_COMPLAINT: Final = "complaint"  # 投诉 / 举报 / 求助
QUEUE_PRIORITY: Final = "priority"  # repeat callers, urgent matters
QUEUES: Final = (QUEUE_CONSULTATION, QUEUE_COMPLAINT, QUEUE_PRIORITY)

# --- AGI scripts (the path part of agi://host:port/<script>) ----------------------------
AGI_IVR: Final = "ivr"
AGI_SURVEY: Final = "survey"
AGI_CALLBACK: Final = "callback"  # the automated IVR callback (agi/callback.py)

# --- channel variables -----------------------------------------------------------------
# Set by the IVR AGI before it returns: the queue the caller goes to (one of QUEUES).
# Empty or unknown -> the default queue.
VAR_QUEUE: Final = "HOTLINE_QUEUE"
# Reserved. The IVR does not set it: contact records are written behind the call by the
# FastAGI server's writer (docs/adr/0006-ivr-fastagi.md), so their id is not known during the
# call; the contact is keyed by the channel's uniqueid (agi_uniqueid), which the survey uses.
VAR_CONTACT_ID: Final = "HOTLINE_CONTACT_ID"
# Set by the IVR AGI in its first command (to the call's linkedid): the IVR ran, so the
# IVR records the call; the hang-up handler writes nothing.
VAR_IVR_RAN: Final = "HOTLINE_IVR"
# Set by the dialplan first thing: when the call came in (UTC epoch seconds, milliseconds).
VAR_CALL_STARTED: Final = "HOTLINE_CALL_STARTED"
# Set by the dialplan before the AGI: the number the citizen dialled (e.g. 12345).
VAR_DIALLED: Final = "HOTLINE_DIALLED"
# Set by the dialplan: "1" when the IVR AGI failed and the call went to the default queue.
VAR_AGI_FAILED: Final = "HOTLINE_AGI_FAILED"
# Set by the dialplan once Queue() returns with an answered call: the member interface that
# took it (e.g. PJSIP/8001). Asterisk itself sets MEMBERINTERFACE / MEMBERNAME too.
VAR_AGENT: Final = "HOTLINE_AGENT"
# Optional, set by the IVR AGI: give up waiting in the queue after this many seconds.
VAR_QUEUE_TIMEOUT: Final = "HOTLINE_QUEUE_TIMEOUT"
# Set by the originator on calls it places: the case called back about, and the call's
# reference (returned to the API, reported back with the outcome).
VAR_CASE: Final = "HOTLINE_CASE"
VAR_CALL_REF: Final = "HOTLINE_CALL_REF"
# Asterisk's own variables the Python side reads.
VAR_AGISTATUS: Final = "AGISTATUS"
VAR_QUEUESTATUS: Final = "QUEUESTATUS"
VAR_MEMBERINTERFACE: Final = "MEMBERINTERFACE"

# --- the record of a call the IVR never saw ---------------------------------------------
# Asterisk itself appends one line per such call (FILE()) to this file in its spool
# directory, at hang-up: no FastAGI, no database needed. The AGI server's writer takes the
# file over and journals each line as a contact (agi/spool.py, docs/adr/0006-ivr-fastagi.md).
UNRECORDED_LOG: Final = "hotline-unrecorded.log"

# --- extensions ------------------------------------------------------------------------
EXTEN_PLAIN: Final = "12399"  # Answer, Wait, Hangup: the benchmark baseline
EXTEN_ECHO: Final = "12398"  # echo test, handy with a real softphone

# --- prompts ---------------------------------------------------------------------------
# Generated from asterisk/prompts/catalogue.toml into <sounds>/hotline/zh/<id>.wav; play
# them with Playback / STREAM FILE "hotline/zh/<id>".
PROMPT_DIR: Final = "hotline/zh"


def prompt(prompt_id: str) -> str:
    """The sound file name Asterisk plays for a catalogue prompt id."""
    return f"{PROMPT_DIR}/{prompt_id}"


def say_digits(digits: str) -> list[str]:
    """Prompts reading a string of digits one by one (case numbers, phone numbers)."""
    return [prompt(f"digit_{ch}") for ch in digits if ch.isdigit()]


def say_small_number(n: int) -> list[str]:
    """Prompts for 0 <= n <= 99 read as a quantity (十二, 三十一): months, days, minutes."""
    if not 0 <= n <= 99:
        raise ValueError(f"cannot say {n}: only 0..99")
    if n < 10:
        return [prompt(f"digit_{n}")]
    tens, units = divmod(n, 10)
    out = [] if tens == 1 else [prompt(f"digit_{tens}")]
    out.append(prompt("word_ten"))
    if units:
        out.append(prompt(f"digit_{units}"))
    return out


def say_date(day: dt.date) -> list[str]:
    """Prompts reading a date the Mandarin way: 二零二五年 十二月 三十一日."""
    return [
        *say_digits(f"{day.year:04d}"),
        prompt("word_year"),
        *say_small_number(day.month),
        prompt("word_month"),
        *say_small_number(day.day),
        prompt("word_day"),
    ]


# Case status (cases.state_machine.CaseStatus values) -> prompt id in the catalogue.
CASE_STATUS_PROMPTS: Final = {
    "filed": "case_status_filed",  # 已受理
    "answered_directly": "case_status_answered_directly",  # 已直接答复
    "dispatched": "case_status_dispatched",  # 已派单
    "signed": "case_status_signed",  # 已签收，正在办理
    "extension_requested": "case_status_extension_requested",  # 延期申请中
    "returned": "case_status_returned",  # 已退回，正在重新派单
    "replied": "case_status_replied",  # 已答复
    "under_review": "case_status_under_review",  # 不满意待审核
    "reopened": "case_status_reopened",  # 重新办理中
    "closed": "case_status_closed",  # 已办结
    "merged": "case_status_merged",  # 已合并
}
