"""RFC 4733 DTMF for sipp that a real RTP stack accepts digit after digit.

sipp ships one pcap per digit (/usr/share/sip-tester/dtmf_2833_N.pcap), each with fixed RTP
sequence numbers and timestamps. Played one after another they go backwards or repeat, and
Asterisk's RTP stack drops such events as duplicates or stale: the first digit of a call
arrives, later ones often do not. Here every press gets a copy of the digit's pcap with its
sequence numbers and timestamps moved forward, so within a call they only ever increase.
"""

from __future__ import annotations

import itertools
import struct
import tempfile
from pathlib import Path

from tests.pbx.sipp import DTMF_GAP_MS, DTMF_NAMES, DTMF_PCAPS, pause

_OUT = Path(tempfile.mkdtemp(prefix="dtmf-pcaps-"))
_press = itertools.count(1)
_PCAP_HEADER = 24
_RECORD_HEADER = 16
_RTP_HEADER = 12
_RTP_EVENT = 4


def _shifted_pcap(digit: str, press: int) -> Path:
    name = DTMF_NAMES.get(digit, digit)
    data = bytearray((DTMF_PCAPS / f"dtmf_2833_{name}.pcap").read_bytes())
    seq_base = 1000 + press * 16  # each press: at most 10 packets
    ts_base = 100_000 + press * 8000  # one second of 8 kHz clock per press
    first_seq = first_ts = None
    off = _PCAP_HEADER
    while off < len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        rtp = off + _RECORD_HEADER + incl - _RTP_HEADER - _RTP_EVENT
        seq, ts = struct.unpack_from("!HI", data, rtp + 2)
        first_seq = seq if first_seq is None else first_seq
        first_ts = ts if first_ts is None else first_ts
        struct.pack_into("!HI", data, rtp + 2, (seq - first_seq + seq_base) & 0xFFFF,
                         (ts - first_ts + ts_base) & 0xFFFFFFFF)
        off += _RECORD_HEADER + incl
    out = _OUT / f"dtmf_{press:05d}_{name}.pcap"
    out.write_bytes(bytes(data))
    return out


def dtmf(digits: str, gap_ms: int = DTMF_GAP_MS) -> str:
    """Like tests.pbx.sipp.dtmf, but each digit is a distinct RTP event."""
    out = []
    for d in digits:
        pcap = _shifted_pcap(d, next(_press))
        out.append(
            f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n{pause(gap_ms)}'
        )
    return "\n".join(out)
