"""The sipp helpers themselves (tests/pbx/sipp.py): what they generate, without a PBX."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from tests.pbx import sipp

pytestmark = pytest.mark.pbx  # needs sip-tester's DTMF pcaps


def _pcaps(steps: str) -> list[Path]:
    return [Path(p) for p in re.findall(r'play_pcap_audio="([^"]+)"', steps)]


def test_dtmf_presses_are_distinct_rtp_events_that_only_move_forward() -> None:
    # The same digit twice in a row is the case Asterisk used to drop as a duplicate.
    pcaps = _pcaps(sipp.dtmf("3#3")) + _pcaps(sipp.dtmf("3"))
    assert len(pcaps) == 4 and len(set(pcaps)) == 4
    events = [sipp.rtp_events(p) for p in pcaps]
    assert all(events)
    seqs = [seq for press in events for seq, _ts in press]
    assert seqs == sorted(seqs)  # the end packet is sent three times, same number (RFC 4733)
    for earlier, later in itertools.pairwise(events):
        assert max(s for s, _ in earlier) < min(s for s, _ in later)
    firsts = [press[0][1] for press in events]  # each press a new event timestamp
    assert firsts == sorted(firsts) and len(set(firsts)) == len(firsts)
    for press in events:  # within a press (one event, repeated) the timestamp is constant
        assert len({ts for _seq, ts in press}) == 1
    # The originals (what sipp ships) repeat numbers: the reason for the copies.
    shipped = sipp.rtp_events(sipp.DTMF_PCAPS / "dtmf_2833_3.pcap")
    assert [e[0] for e in shipped] != [e[0] for e in events[0]]


def test_dtmf_refuses_a_digit_it_cannot_send() -> None:
    with pytest.raises(ValueError, match="no DTMF pcap"):
        sipp.dtmf("A")
