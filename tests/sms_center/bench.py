#!/usr/bin/env python3
"""Rough throughput measurement of Jasmin's SMPP server on loopback (bounded in count and time).

Binds --binds transceivers as SMPP_USER, keeps --window submit_sm outstanding per bind,
sends --count messages in total (registered_delivery=--rd), then waits for every receipt.
Reports accepted submit_sm/s (submit_sm_resp rate), receipts/s and end-to-end latencies.
Standard library only (asyncio SMPP client; PDU helpers shared with upstream_smsc.py).
"""
import argparse
import asyncio
import os
import struct
import sys
import time
import json
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from upstream_smsc import (BIND_TRANSCEIVER, DELIVER_SM, ENQUIRE_LINK, RESP, SUBMIT_SM, UNBIND,  # noqa: E402
                           TLV_RECEIPTED_MESSAGE_ID, build_sm, cstr, enc_cstr, parse_sm)

E = os.environ.get


class Client:
    def __init__(self, args, stats, idx):
        self.a, self.stats, self.idx = args, stats, idx
        self.seq = 0
        self.pending = {}        # seq -> (future, t_sent)
        self.sent_at = {}        # message_id -> t_sent

    def next_seq(self):
        self.seq += 1
        return self.seq

    def write(self, cid, status, seq, body=b''):
        self.w.write(struct.pack('>IIII', 16 + len(body), cid, status, seq) + body)

    async def request(self, cid, body):
        seq = self.next_seq()
        fut = asyncio.get_running_loop().create_future()
        self.pending[seq] = (fut, time.time())
        self.write(cid, 0, seq, body)
        return await fut

    async def reader_loop(self):
        try:
            while True:
                hdr = await self.r.readexactly(16)
                length, cid, status, seq = struct.unpack('>IIII', hdr)
                body = await self.r.readexactly(length - 16) if length > 16 else b''
                if cid & RESP:
                    item = self.pending.pop(seq, None)
                    if item and not item[0].done():
                        item[0].set_result((status, body, item[1]))
                elif cid == DELIVER_SM:
                    self.write(DELIVER_SM | RESP, 0, seq, b'\x00')
                    p = parse_sm(body)
                    if p['esm_class'] & 0x04:
                        mid = p['tlvs'].get(TLV_RECEIPTED_MESSAGE_ID, b'').rstrip(b'\x00').decode()
                        t = self.sent_at.pop(mid, None)
                        self.stats['receipts'] += 1
                        if t is not None:
                            self.stats['receipt_lat'].append(time.time() - t)
                        self.stats['last_receipt'] = time.time()
                        if b'stat:DELIVRD' not in p['short_message']:
                            self.stats['receipt_not_delivrd'] += 1
                elif cid == ENQUIRE_LINK:
                    self.write(ENQUIRE_LINK | RESP, 0, seq)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def run(self, n_msgs):
        a = self.a
        self.r, self.w = await asyncio.open_connection(a.host, a.port)
        self.rt = asyncio.get_running_loop().create_task(self.reader_loop())
        st, body, _ = await self.request(BIND_TRANSCEIVER, enc_cstr(a.user) + enc_cstr(a.password) + enc_cstr('')
                                         + bytes([0x34, 0, 0]) + enc_cstr(''))
        if st:
            raise SystemExit('bind failed: 0x%02x' % st)
        sem = asyncio.Semaphore(a.window)
        text = ('性能测试 bench %d' % self.idx).encode('utf-16-be')

        async def one(i):
            try:
                dst = '86138%08d' % (self.idx * 10000000 + i)
                body = build_sm('10690000', dst, text, data_coding=8)
                # build_sm leaves registered_delivery=0: patch it (offset from the end of fixed fields)
                body = bytearray(body)
                rd_off = len(body) - len(text) - 5
                body[rd_off] = a.rd
                status, rbody, t_sent = await self.request(SUBMIT_SM, bytes(body))
                now = time.time()
                self.stats['resp_lat'].append(now - t_sent)
                if status == 0:
                    mid, _ = cstr(rbody, 0)
                    self.sent_at[mid] = t_sent
                    self.stats['ok'] += 1
                else:
                    self.stats['err'][status] = self.stats['err'].get(status, 0) + 1
                self.stats['last_resp'] = now
            finally:
                sem.release()

        tasks = []
        for i in range(n_msgs):
            await sem.acquire()
            if a.tps:
                await asyncio.sleep(max(0.0, self.stats['t0'] + (self.stats['submitted'] / a.tps) - time.time()))
            self.stats['submitted'] += 1
            tasks.append(asyncio.get_running_loop().create_task(one(i)))
        await asyncio.gather(*tasks)

    async def close(self):
        try:
            await asyncio.wait_for(self.request(UNBIND, b''), 5)
        except Exception:  # noqa
            pass
        self.w.close()
        self.rt.cancel()


def pct(xs, p):
    if not xs:
        return float('nan')
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000


async def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--host', default=E('STACK_HOST', '127.0.0.1'))
    ap.add_argument('--port', type=int, default=int(E('SMPPS_PORT', 2775)))
    ap.add_argument('--user', default=E('SMPP_USER', 'acetest'))
    ap.add_argument('--password', default=E('SMPP_PASS', 'acepass'))
    ap.add_argument('--count', type=int, default=2000, help='total messages (bounded)')
    ap.add_argument('--binds', type=int, default=1)
    ap.add_argument('--window', type=int, default=10, help='outstanding submit_sm per bind')
    ap.add_argument('--rd', type=int, default=1, help='registered_delivery (1 = receipts)')
    ap.add_argument('--tps', type=float, default=0, help='client-side pacing in msg/s per bind (0 = none)')
    ap.add_argument('--timeout', type=float, default=300, help='overall time limit, seconds')
    a = ap.parse_args()
    a.count = min(a.count, 100000)
    stats = {'ok': 0, 'err': {}, 'receipts': 0, 'receipt_not_delivrd': 0, 'submitted': 0,
             'resp_lat': [], 'receipt_lat': [], 't0': time.time(), 'last_resp': 0, 'last_receipt': 0}
    ctl = 'http://%s:%s/status' % (a.host, E('UPSTREAM_CTL_PORT', 2777))

    def upstream_count():
        try:
            with urllib.request.urlopen(ctl, timeout=5) as r:
                return json.loads(r.read())['counters']['submit_sm']
        except OSError:
            return None
    up0 = upstream_count()
    clients = [Client(a, stats, i) for i in range(a.binds)]
    per = [a.count // a.binds + (1 if i < a.count % a.binds else 0) for i in range(a.binds)]
    t0 = stats['t0'] = time.time()
    try:
        await asyncio.wait_for(asyncio.gather(*(c.run(n) for c, n in zip(clients, per))), a.timeout)
    except asyncio.TimeoutError:
        print('time limit reached while submitting')
    t_sub = stats['last_resp'] - t0
    if a.rd:
        deadline = time.time() + max(30.0, a.timeout - (time.time() - t0))
        while stats['receipts'] < stats['ok'] and time.time() < deadline:
            await asyncio.sleep(0.1)
            if stats['last_receipt'] and time.time() - max(stats['last_receipt'], stats['last_resp']) > 30:
                break   # nothing for 30 s
    for c in clients:
        await c.close()
    t_rcpt = (stats['last_receipt'] - t0) if stats['receipts'] else float('nan')
    up1 = upstream_count()
    print('binds=%d window=%d count=%d rd=%d' % (a.binds, a.window, a.count, a.rd))
    if up0 is not None and up1 is not None:
        print('upstream received %d submit_sm for %d accepted (duplicates/missing: %+d)' % (
            up1 - up0, stats['ok'], up1 - up0 - stats['ok']))
    print('submit_sm accepted: %d, errors: %s' % (stats['ok'], {hex(k): v for k, v in stats['err'].items()}))
    print('submit phase: %.2fs -> %.0f submit_sm/s accepted' % (t_sub, stats['ok'] / t_sub if t_sub > 0 else 0))
    print('submit_sm_resp latency ms: p50 %.1f p95 %.1f max %.1f' % (
        pct(stats['resp_lat'], .5), pct(stats['resp_lat'], .95), pct(stats['resp_lat'], 1)))
    if a.rd:
        print('receipts: %d/%d (not DELIVRD: %d), last at %.2fs -> %.0f receipts/s overall' % (
            stats['receipts'], stats['ok'], stats['receipt_not_delivrd'], t_rcpt,
            stats['receipts'] / t_rcpt if t_rcpt > 0 else 0))
        print('submit->receipt latency ms: p50 %.0f p95 %.0f max %.0f' % (
            pct(stats['receipt_lat'], .5), pct(stats['receipt_lat'], .95), pct(stats['receipt_lat'], 1)))


if __name__ == '__main__':
    asyncio.run(main())
