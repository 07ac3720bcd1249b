#!/usr/bin/env python3
"""Write the hand-made seeds of fuzz_net_ctrl and fuzz_net_pass (valid requests of each
kind, plus a few of the hostile ones) into tests/fuzz/corpus/. Run from the repo root:
    python3 tests/fuzz/mkseeds_net.py
The input layouts are described at the top of tests/fuzz/fuzz_net_ctrl.c and
tests/fuzz/fuzz_net_pass.c."""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def csum16(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4_tcp(payload=b"hello, world", src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02"):
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 5 << 4, 0x18, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum16(ip)) + ip[12:]
    eth = b"\x00\x16\x3e\x00\x00\x02" + b"\x00\x16\x3e\x00\x00\x01" + b"\x08\x00"
    return eth + ip + tcp


def ipv6_udp(payload=b"datagram"):
    udp = struct.pack("!HHHH", 5353, 5353, 8 + len(payload), 0) + payload
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 64, b"\xfe\x80" + b"\0" * 13 + b"\x01",
                     b"\xfe\x80" + b"\0" * 13 + b"\x02")
    eth = b"\x33\x33\x00\x00\x00\xfb" + b"\x00\x16\x3e\x00\x00\x01" + b"\x86\xdd"
    return eth + ip + udp


# ---- fuzz_net_ctrl: [0] nr_queues-1, [1..2] valid refs, [3..4] page bytes, page, requests

def ctrl_req(rid, rtype, d0=0, d1=0, d2=0):
    return struct.pack("<HHIII", rid, rtype, d0, d1, d2)


def ctrl_input(nq, valid, page, reqs):
    return bytes([nq - 1]) + struct.pack("<HH", valid, len(page)) + page + b"".join(reqs)


SET_ALG, GET_FLAGS, SET_FLAGS, SET_KEY, GET_MSIZE, SET_MSIZE, SET_MAP = 7, 1, 2, 3, 4, 5, 6
TOEPLITZ = 1
ALL_TYPES = 0xF

key = bytes(range(0x6d, 0x6d + 40))
put("fuzz_net_ctrl", "key-and-flags", ctrl_input(4, 0x0006, key + ipv4_tcp(), [
    ctrl_req(1, SET_ALG, TOEPLITZ), ctrl_req(2, GET_FLAGS), ctrl_req(3, SET_FLAGS, ALL_TYPES),
    ctrl_req(4, SET_KEY, 1, 40), ctrl_req(5, SET_KEY, 2, 16), ctrl_req(6, GET_MSIZE)]))
mapping = b"".join(struct.pack("<I", i % 4) for i in range(128))
put("fuzz_net_ctrl", "mapping", ctrl_input(4, 0x0002, mapping, [
    ctrl_req(1, SET_ALG, TOEPLITZ), ctrl_req(2, SET_FLAGS, 0x3), ctrl_req(3, GET_MSIZE),
    ctrl_req(4, SET_MSIZE, 128), ctrl_req(5, SET_MAP, 1, 64, 0), ctrl_req(6, SET_MAP, 1, 64, 64),
    ctrl_req(7, SET_MSIZE, 8), ctrl_req(8, SET_MAP, 1, 8, 0)]))
frame = ipv4_tcp()
put("fuzz_net_ctrl", "hash-a-frame", ctrl_input(2, 0x0002, frame, [
    ctrl_req(1, SET_ALG, TOEPLITZ), ctrl_req(2, SET_FLAGS, ALL_TYPES), ctrl_req(3, SET_KEY, 1, 40),
    ctrl_req(4, SET_MSIZE, 4), ctrl_req(5, SET_MAP, 1, 0, 4)]))
put("fuzz_net_ctrl", "refused", ctrl_input(2, 0x0000, b"\xff" * 64, [
    ctrl_req(1, GET_FLAGS), ctrl_req(2, SET_FLAGS, 1), ctrl_req(3, SET_ALG, 9),
    ctrl_req(4, SET_KEY, 1, 41), ctrl_req(5, SET_KEY, 1, 8), ctrl_req(6, SET_KEY, 0, 4097),
    ctrl_req(7, SET_MSIZE, 129), ctrl_req(8, SET_MAP, 1, 1, 0xFFFFFFFF), ctrl_req(9, 8),
    ctrl_req(10, 0)]))

# ---- fuzz_net_pass

CSUM_BLANK, DATA_VALID, MORE_DATA, EXTRA_INFO = 1, 2, 4, 8
EX_GSO, EX_MCAST_ADD, EX_MCAST_DEL, EX_MORE = 1, 2, 3, 1
GSO_TCPV4, GSO_TCPV6 = 1, 2
F_SPLIT, F_SG, F_GSO4, F_GSO6, F_NOCSUM, F_CSUM6, F_MCAST, F_RATE = 1, 2, 4, 8, 16, 32, 64, 128


def txreq(gref, off, flags, rid, size):
    return struct.pack("<IHHHH", gref, off, flags, rid, size)


def txextra(etype, eflags, body):
    return (struct.pack("<BB", etype, eflags) + body).ljust(12, b"\0")


def gso_extra(size, gtype, eflags=0):
    return txextra(EX_GSO, eflags, struct.pack("<HBBH", size, gtype, 0, 0))


def rxreq(rid, gref):
    return struct.pack("<HHI", rid, 0, gref)


def vnet(flags=0, gso_type=0, hdr_len=0, gso_size=0, csum_start=0, csum_offset=0):
    return struct.pack("<BBHHHH", flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


def grants(ro=(), missing=()):
    v = 0
    for r in ro:
        v |= 1 << (2 * r)
    for r in missing:
        v |= 2 << (2 * r)
    return v


def pass_input(flags=0, frames=(), rate=0, gbits=0, tx=(0, 0), rx=(0, 0), txring=b"",
               rxring=b"", rxq=0, notify_rx=0, pages=(), hashblk=None):
    hdr = bytes([flags, (len(frames) & 15) | rate << 4]) + struct.pack("<I", gbits)
    hdr += struct.pack("<HHHHHH", tx[0], tx[1], rx[0], rx[1], len(txring), len(rxring))
    hdr += bytes([rxq, notify_rx | (2 if hashblk else 0)])
    body = (hashblk or b"") + txring + rxring
    for h, data in frames:
        body += struct.pack("<H", len(data)) + h + data
    for p in pages:
        body += p.ljust(4096, b"\0")
    return hdr + body


P1 = ipv4_tcp(b"x" * 100)          # a TCP/IPv4 frame at page 1 offset 0
P2 = ipv6_udp(b"y" * 60)           # a UDP/IPv6 frame at page 2 offset 0
P3 = bytes((i * 7) & 0xFF for i in range(4096))
PAGES = (P1, P2, P3, P3)

put("fuzz_net_pass", "tx-one-slot", pass_input(
    tx=(1, 1), txring=txreq(1, 0, 0, 11, len(P1)), pages=PAGES))
put("fuzz_net_pass", "tx-csum-blank-and-validated", pass_input(
    tx=(2, 2), txring=txreq(1, 0, CSUM_BLANK | DATA_VALID, 1, len(P1)) +
    txreq(2, 0, DATA_VALID, 2, len(P2)), pages=PAGES))
put("fuzz_net_pass", "tx-three-slots", pass_input(
    flags=F_SG, tx=(3, 3), txring=txreq(1, 0, MORE_DATA, 1, len(P1) + 100) +
    txreq(3, 100, MORE_DATA, 2, 60) + txreq(3, 1000, 0, 3, 40), pages=PAGES))
put("fuzz_net_pass", "tx-gso", pass_input(
    flags=F_SG | F_GSO4, tx=(3, 3),
    txring=txreq(1, 0, EXTRA_INFO | CSUM_BLANK | MORE_DATA, 1, len(P1) + 3000) +
    gso_extra(1448, GSO_TCPV4) + txreq(3, 0, 0, 2, 3000), pages=PAGES))
put("fuzz_net_pass", "tx-gso-no-csum-blank", pass_input(
    flags=F_SG | F_GSO4, tx=(2, 2),
    txring=txreq(1, 0, EXTRA_INFO, 1, len(P1)) + gso_extra(1000, GSO_TCPV4), pages=PAGES))
mc = b"\x01\x00\x5e\x00\x00\x01"
put("fuzz_net_pass", "tx-mcast", pass_input(
    flags=F_MCAST, tx=(5, 5),
    txring=txreq(0, 0, EXTRA_INFO, 1, 0) + txextra(EX_MCAST_ADD, 0, mc) +
    txreq(0, 0, EXTRA_INFO, 2, 0) + txextra(EX_MCAST_DEL, 0, mc) + txreq(1, 0, 0, 3, len(P1)),
    pages=PAGES))
put("fuzz_net_pass", "tx-bad-grants-and-drops", pass_input(
    gbits=grants(ro=(14,), missing=(15,)), tx=(4, 4),
    txring=txreq(15, 0, 0, 1, 60) + txreq(14, 0, 0, 2, 60) + txreq(1, 0, 0, 3, 10) +
    txreq(99, 0, 0, 4, 60), pages=PAGES))
put("fuzz_net_pass", "tx-more-after-notify", pass_input(
    tx=(1, 3), txring=txreq(1, 0, 0, 1, len(P1)) + txreq(2, 0, 0, 2, len(P2)) +
    txreq(3, 8, 0, 3, 1500), pages=PAGES))
put("fuzz_net_pass", "tx-rate-limited", pass_input(
    flags=F_RATE, rate=0, tx=(0, 3), txring=txreq(1, 0, 0, 1, len(P1)) +
    txreq(3, 0, 0, 2, 4000) + txreq(3, 0, 0, 3, 4000), pages=PAGES))
put("fuzz_net_pass", "tx-bogus-prod", pass_input(
    tx=(0x8000, 0), txring=txreq(1, 0, 0, 1, len(P1)), pages=PAGES))
put("fuzz_net_pass", "tx-bogus-prod-after-notify", pass_input(
    tx=(1, 0x8000), txring=txreq(1, 0, 0, 1, len(P1)), pages=PAGES))
put("fuzz_net_pass", "tx-slot-crosses-page", pass_input(
    flags=F_SG, tx=(2, 2), txring=txreq(1, 0, MORE_DATA, 1, 300) + txreq(3, 4000, 0, 2, 200),
    pages=PAGES))

RX4 = rxreq(1, 5) + rxreq(2, 6) + rxreq(3, 7) + rxreq(4, 8)
put("fuzz_net_pass", "rx-two-frames", pass_input(
    frames=[(vnet(), ipv4_tcp(b"a" * 30)), (vnet(2), ipv6_udp())], rx=(4, 4), rxring=RX4,
    pages=PAGES))
big = ipv4_tcp(b"z" * 6000)
put("fuzz_net_pass", "rx-gso-sg", pass_input(
    flags=F_SG | F_GSO4, frames=[(vnet(1, 1, 54, 1448, 34, 16), big)], rx=(4, 4), rxring=RX4,
    pages=PAGES))
put("fuzz_net_pass", "rx-csum-in-software", pass_input(
    flags=F_NOCSUM, frames=[(vnet(1, 0, 0, 0, 34, 16), ipv4_tcp(b"c" * 40))], rx=(4, 4),
    rxring=RX4, pages=PAGES))
put("fuzz_net_pass", "rx-buffers-after-notify", pass_input(
    frames=[(vnet(), ipv4_tcp()), (vnet(), ipv6_udp())], rx=(0, 4), rxring=RX4, pages=PAGES))
put("fuzz_net_pass", "rx-readonly-and-missing", pass_input(
    gbits=grants(ro=(14,), missing=(15,)), frames=[(vnet(), ipv4_tcp()), (vnet(), ipv4_tcp())],
    rx=(2, 2), rxring=rxreq(1, 14) + rxreq(2, 15), pages=PAGES))
put("fuzz_net_pass", "rx-mcast-filtered", pass_input(
    flags=F_MCAST, frames=[(vnet(), ipv6_udp()), (vnet(), ipv4_tcp())], rx=(4, 4), rxring=RX4,
    pages=PAGES))
put("fuzz_net_pass", "rx-split-both-ways", pass_input(
    flags=F_SPLIT, frames=[(vnet(), ipv4_tcp())], tx=(1, 2), rx=(0, 2), notify_rx=1,
    txring=txreq(1, 0, 0, 1, len(P1)) + txreq(2, 0, 0, 2, len(P2)), rxring=RX4, pages=PAGES))

# Two queues, frames steered by the Toeplitz hash (all types, an 8-entry mapping).
HASH = bytes([0xF, 8]) + key + bytes([0xAA] * 16)
flows = [(vnet(), ipv4_tcp(b"f%d" % i, src=bytes([10, 0, 0, i]))) for i in range(1, 7)]
put("fuzz_net_pass", "rx-two-queues-steered", pass_input(
    frames=flows + [(vnet(), ipv6_udp())], rx=(8, 8),
    rxring=RX4 + rxreq(5, 9) + rxreq(6, 10) + rxreq(7, 11) + rxreq(8, 12), pages=PAGES,
    hashblk=HASH))
put("fuzz_net_pass", "rx-two-queues-modulo", pass_input(
    flags=F_SPLIT, frames=flows, rx=(0, 8), notify_rx=1,
    rxring=RX4 + rxreq(5, 9) + rxreq(6, 10) + rxreq(7, 11) + rxreq(8, 12), pages=PAGES,
    hashblk=bytes([0x3, 0]) + key + bytes(16)))
