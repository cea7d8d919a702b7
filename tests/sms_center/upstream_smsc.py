#!/usr/bin/env python3
"""Upstream peer SMSC simulator (SMPP v3.4 server) for the Jasmin test stack.

Jasmin's SMPP client connector binds to it. For every submit_sm it:
  * logs the message (JSON line in --log, and in memory for the control API),
  * answers submit_sm_resp with a fresh hex message id, or with
    ESME_RSUBMITFAIL (0x45) when destination_addr starts with --reject-prefix,
  * if registered_delivery asks for a receipt (or --always-dlr), sends a
    deliver_sm receipt after --dlr-delay-ms:
      stat:DELIVRD err:000             normally
      stat:UNDELIV err:001             when destination starts with --fail-prefix
    (short_message "id:.. sub:001 dlvrd:001 submit date:.. done date:.. stat:.. err:.. text:..",
     plus receipted_message_id and message_state TLVs, esm_class 0x04).

Control API (HTTP, loopback):
  GET  /status                         -> bound sessions, counters
  GET  /messages                       -> every submit_sm received since start/reset
  GET|POST /mo?src=..&dst=..&text=..[&coding=8]
                                       -> inject an MO deliver_sm towards Jasmin
  GET|POST /reset                      -> clear the in-memory message list and counters

Only the Python standard library is used.
"""
import argparse
import asyncio
import datetime
import itertools
import json
import os
import random
import struct
import sys
import time
import urllib.parse

# command ids
BIND_RECEIVER, BIND_TRANSMITTER, QUERY_SM, SUBMIT_SM, DELIVER_SM, UNBIND = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
BIND_TRANSCEIVER, ENQUIRE_LINK, GENERIC_NACK = 0x09, 0x15, 0x80000000
RESP = 0x80000000
NAMES = {0x01: 'bind_receiver', 0x02: 'bind_transmitter', 0x03: 'query_sm', 0x04: 'submit_sm',
         0x05: 'deliver_sm', 0x06: 'unbind', 0x09: 'bind_transceiver', 0x15: 'enquire_link'}
# statuses
ESME_ROK, ESME_RINVCMDID, ESME_RINVBNDSTS, ESME_RALYBND = 0x00, 0x03, 0x04, 0x05
ESME_RBINDFAIL, ESME_RINVPASWD, ESME_RSUBMITFAIL = 0x0D, 0x0E, 0x45
# TLV tags
TLV_RECEIPTED_MESSAGE_ID, TLV_MESSAGE_STATE, TLV_MESSAGE_PAYLOAD = 0x001E, 0x0427, 0x0424
MSG_STATE = {'DELIVRD': 2, 'EXPIRED': 3, 'DELETED': 4, 'UNDELIV': 5, 'ACCEPTD': 6, 'UNKNOWN': 7, 'REJECTD': 8}


def now_iso():
    return datetime.datetime.now().isoformat(timespec='milliseconds')


def cstr(b, off):
    end = b.index(b'\x00', off)
    return b[off:end].decode('latin-1'), end + 1


def enc_cstr(s):
    return (s or '').encode('latin-1') + b'\x00'


def decode_text(raw, data_coding, esm_class):
    udh = b''
    if esm_class & 0x40 and raw:
        udhl = raw[0]
        udh, raw = raw[:udhl + 1], raw[udhl + 1:]
    try:
        if data_coding == 8:
            text = raw.decode('utf-16-be')
        elif data_coding in (0, 1, 3):
            text = raw.decode('latin-1')
        else:
            text = None
    except UnicodeDecodeError:
        text = None
    return text, udh


def parse_sm(body):
    """Parse a submit_sm / deliver_sm body (identical layouts)."""
    p = {}
    off = 0
    p['service_type'], off = cstr(body, off)
    p['source_addr_ton'], p['source_addr_npi'] = body[off], body[off + 1]
    off += 2
    p['source_addr'], off = cstr(body, off)
    p['dest_addr_ton'], p['dest_addr_npi'] = body[off], body[off + 1]
    off += 2
    p['destination_addr'], off = cstr(body, off)
    p['esm_class'], p['protocol_id'], p['priority_flag'] = body[off], body[off + 1], body[off + 2]
    off += 3
    p['schedule_delivery_time'], off = cstr(body, off)
    p['validity_period'], off = cstr(body, off)
    (p['registered_delivery'], p['replace_if_present_flag'], p['data_coding'],
     p['sm_default_msg_id'], sm_length) = body[off:off + 5]
    off += 5
    p['short_message'] = body[off:off + sm_length]
    off += sm_length
    tlvs = {}
    while off + 4 <= len(body):
        tag, length = struct.unpack('>HH', body[off:off + 4])
        tlvs[tag] = body[off + 4:off + 4 + length]
        off += 4 + length
    p['tlvs'] = tlvs
    return p


def build_sm(source_addr, destination_addr, short_message, esm_class=0, data_coding=0,
             source_ton=1, source_npi=1, dest_ton=1, dest_npi=1, tlvs=()):
    body = (enc_cstr('') + bytes([source_ton, source_npi]) + enc_cstr(source_addr)
            + bytes([dest_ton, dest_npi]) + enc_cstr(destination_addr)
            + bytes([esm_class, 0, 0]) + enc_cstr('') + enc_cstr('')
            + bytes([0, 0, data_coding, 0, len(short_message)]) + short_message)
    for tag, value in tlvs:
        body += struct.pack('>HH', tag, len(value)) + value
    return body


class Session:
    ids = itertools.count(1)

    def __init__(self, sim, reader, writer):
        self.sim, self.reader, self.writer = sim, reader, writer
        self.sid = next(Session.ids)
        self.peer = writer.get_extra_info('peername')
        self.bound = None          # 'transceiver' | 'transmitter' | 'receiver'
        self.system_id = None
        self.seq = itertools.count(1)
        self.pending = {}          # seq -> Future for our outgoing requests

    def log(self, msg):
        self.sim.log('[s%d %s] %s' % (self.sid, self.system_id or '-', msg))

    def send(self, command_id, status, seq, body=b''):
        self.writer.write(struct.pack('>IIII', 16 + len(body), command_id, status, seq) + body)

    async def request(self, command_id, body, timeout=30):
        seq = next(self.seq)
        fut = asyncio.get_running_loop().create_future()
        self.pending[seq] = fut
        self.send(command_id, 0, seq, body)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.pending.pop(seq, None)

    async def run(self):
        self.log('connection from %s:%s' % self.peer[:2])
        try:
            while True:
                hdr = await self.reader.readexactly(16)
                length, command_id, status, seq = struct.unpack('>IIII', hdr)
                body = await self.reader.readexactly(length - 16) if length > 16 else b''
                await self.handle(command_id, status, seq, body)
                await self.writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.log('connection closed')
            self.sim.sessions.discard(self)
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError('closed'))
            self.writer.close()

    async def handle(self, command_id, status, seq, body):
        if command_id & RESP:
            fut = self.pending.get(seq)
            if fut and not fut.done():
                fut.set_result((command_id, status, body))
            return
        if command_id in (BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER):
            system_id, off = cstr(body, 0)
            password, off = cstr(body, off)
            kind = {BIND_RECEIVER: 'receiver', BIND_TRANSMITTER: 'transmitter',
                    BIND_TRANSCEIVER: 'transceiver'}[command_id]
            if self.bound:
                self.send(command_id | RESP, ESME_RALYBND, seq, enc_cstr(self.sim.args.system_id))
            elif system_id != self.sim.args.username or password != self.sim.args.password:
                self.log('bind_%s refused for %r' % (kind, system_id))
                self.send(command_id | RESP, ESME_RINVPASWD, seq, enc_cstr(self.sim.args.system_id))
            else:
                self.bound, self.system_id = kind, system_id
                self.sim.sessions.add(self)
                self.log('bound as %s' % kind)
                self.send(command_id | RESP, ESME_ROK, seq, enc_cstr(self.sim.args.system_id))
        elif command_id == ENQUIRE_LINK:
            self.send(ENQUIRE_LINK | RESP, ESME_ROK, seq)
        elif command_id == UNBIND:
            self.send(UNBIND | RESP, ESME_ROK, seq)
            self.log('unbind')
            self.bound = None
            self.sim.sessions.discard(self)
        elif command_id == SUBMIT_SM:
            if self.bound not in ('transmitter', 'transceiver'):
                self.send(SUBMIT_SM | RESP, ESME_RINVBNDSTS, seq, enc_cstr(''))
                return
            await self.on_submit(seq, body)
        else:
            self.send(GENERIC_NACK, ESME_RINVCMDID, seq)

    async def on_submit(self, seq, body):
        sim = self.sim
        p = parse_sm(body)
        raw = p['short_message'] or p['tlvs'].get(TLV_MESSAGE_PAYLOAD, b'')
        text, udh = decode_text(raw, p['data_coding'], p['esm_class'])
        dest = p['destination_addr']
        rejected = bool(sim.args.reject_prefix) and dest.startswith(sim.args.reject_prefix)
        failed = bool(sim.args.fail_prefix) and dest.startswith(sim.args.fail_prefix)
        msg_id = None if rejected else '%010x' % random.getrandbits(40)
        sim.counters['submit_sm'] += 1
        rec = {
            'n': sim.counters['submit_sm'], 'ts': now_iso(), 'session': self.sid, 'system_id': self.system_id,
            'message_id': msg_id, 'source_addr': p['source_addr'], 'destination_addr': dest,
            'data_coding': p['data_coding'], 'esm_class': p['esm_class'],
            'registered_delivery': p['registered_delivery'], 'text': text, 'udh_hex': udh.hex(),
            'short_message_hex': raw.hex(),
            'result': 'rejected' if rejected else ('undeliv' if failed else 'delivrd'),
        }
        sim.record(rec)
        if rejected:
            sim.counters['rejected'] += 1
            self.send(SUBMIT_SM | RESP, ESME_RSUBMITFAIL, seq, enc_cstr(''))
            return
        self.send(SUBMIT_SM | RESP, ESME_ROK, seq, enc_cstr(msg_id))
        if (p['registered_delivery'] & 0x03) or sim.args.always_dlr:
            if (p['registered_delivery'] & 0x03) == 2 and not failed and not sim.args.always_dlr:
                return  # receipt on failure only
            asyncio.get_running_loop().create_task(self.send_receipt(msg_id, p, text, failed))

    async def send_receipt(self, msg_id, p, text, failed):
        sim = self.sim
        await asyncio.sleep(sim.args.dlr_delay_ms / 1000.0)
        stat, err, dlvrd = ('UNDELIV', '001', '000') if failed else ('DELIVRD', '000', '001')
        d = datetime.datetime.now().strftime('%y%m%d%H%M')
        sm = ('id:%s sub:001 dlvrd:%s submit date:%s done date:%s stat:%s err:%s text:%s' % (
            msg_id, dlvrd, d, d, stat, err, (text or '')[:20].encode('ascii', 'replace').decode())).encode()
        body = build_sm(p['destination_addr'], p['source_addr'], sm, esm_class=0x04,
                        source_ton=p['dest_addr_ton'], source_npi=p['dest_addr_npi'],
                        dest_ton=p['source_addr_ton'], dest_npi=p['source_addr_npi'],
                        tlvs=[(TLV_RECEIPTED_MESSAGE_ID, enc_cstr(msg_id)),
                              (TLV_MESSAGE_STATE, bytes([MSG_STATE[stat]]))])
        # same session if it can receive (transceiver), else any bound receiver/transceiver
        sess = self if (self in sim.sessions and self.bound == 'transceiver') else sim.pick_receiver()
        if sess is None:
            sim.log('no receiver bound: receipt for %s dropped' % msg_id)
            sim.counters['dlr_dropped'] += 1
            return
        try:
            _, status, _ = await sess.request(DELIVER_SM, body)
            sim.counters['dlr_sent'] += 1
            if status:
                sim.counters['dlr_resp_error'] += 1
                sim.log('deliver_sm (receipt %s) answered with status 0x%02x' % (msg_id, status))
        except Exception as e:  # noqa
            sim.counters['dlr_failed'] += 1
            sim.log('receipt %s failed: %r' % (msg_id, e))


class Simulator:
    def __init__(self, args):
        self.args = args
        self.sessions = set()
        self.messages = []
        self.counters = {}
        self.reset()
        self.logf = open(args.log, 'a', buffering=1) if args.log else None
        self.rr = itertools.count()

    def reset(self):
        self.messages.clear()
        self.counters = {k: 0 for k in ('submit_sm', 'rejected', 'dlr_sent', 'dlr_failed', 'dlr_dropped',
                                        'dlr_resp_error', 'mo_sent')}

    def log(self, msg):
        print('%s %s' % (now_iso(), msg), flush=True)

    def record(self, rec):
        self.messages.append(rec)
        if self.logf:
            self.logf.write(json.dumps(rec, ensure_ascii=False) + '\n')
        if not self.args.quiet:
            self.log('submit_sm #%d %s -> %s dc=%d rd=%d id=%s %s text=%r' % (
                rec['n'], rec['source_addr'], rec['destination_addr'], rec['data_coding'],
                rec['registered_delivery'], rec['message_id'], rec['result'], rec['text']))

    def pick_receiver(self):
        rx = [s for s in self.sessions if s.bound in ('receiver', 'transceiver')]
        if not rx:
            return None
        return rx[next(self.rr) % len(rx)]

    async def smpp_conn(self, reader, writer):
        await Session(self, reader, writer).run()

    async def send_mo(self, src, dst, text, coding):
        sess = self.pick_receiver()
        if sess is None:
            return {'sent': False, 'error': 'no receiver/transceiver bound'}
        raw = text.encode('utf-16-be') if coding == 8 else text.encode('latin-1')
        body = build_sm(src, dst, raw, esm_class=0, data_coding=coding)
        _, status, _ = await sess.request(DELIVER_SM, body)
        self.counters['mo_sent'] += 1
        self.log('MO deliver_sm %s -> %s %r: resp status 0x%02x' % (src, dst, text, status))
        return {'sent': True, 'status': status}

    async def http_conn(self, reader, writer):
        try:
            line = (await reader.readline()).decode('latin-1').strip()
            headers = {}
            while True:
                h = (await reader.readline()).decode('latin-1').strip()
                if not h:
                    break
                k, _, v = h.partition(':')
                headers[k.strip().lower()] = v.strip()
            body = b''
            if int(headers.get('content-length', 0) or 0):
                body = await reader.readexactly(int(headers['content-length']))
            method, target, _ = line.split(' ', 2)
            url = urllib.parse.urlsplit(target)
            q = dict(urllib.parse.parse_qsl(url.query))
            if body and headers.get('content-type', '').startswith('application/json'):
                q.update(json.loads(body))
            elif body:
                q.update(dict(urllib.parse.parse_qsl(body.decode())))
            code, out = 200, None
            if url.path == '/status':
                out = {'sessions': [{'id': s.sid, 'system_id': s.system_id, 'bind': s.bound,
                                     'peer': '%s:%s' % s.peer[:2]} for s in self.sessions],
                       'counters': self.counters}
            elif url.path == '/messages':
                out = self.messages
            elif url.path == '/reset':
                self.reset()
                out = {'reset': True}
            elif url.path == '/mo':
                out = await self.send_mo(q.get('src', '8613800000001'), q.get('dst', '10690000'),
                                         q.get('text', 'TD'), int(q.get('coding', 0)))
                code = 200 if out.get('sent') else 409
            else:
                code, out = 404, {'error': 'unknown path'}
            data = json.dumps(out, ensure_ascii=False).encode()
            writer.write(b'HTTP/1.1 %d X\r\nContent-Type: application/json; charset=utf-8\r\n'
                         b'Content-Length: %d\r\nConnection: close\r\n\r\n' % (code, len(data)) + data)
            await writer.drain()
        except Exception as e:  # noqa
            self.log('control API error: %r' % e)
        finally:
            writer.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get
    ap.add_argument('--host', default=env('STACK_HOST', '127.0.0.1'))
    ap.add_argument('--port', type=int, default=int(env('UPSTREAM_PORT', 2776)))
    ap.add_argument('--ctl-port', type=int, default=int(env('UPSTREAM_CTL_PORT', 2777)))
    ap.add_argument('--username', default=env('UPSTREAM_USER', 'jasmin'))
    ap.add_argument('--password', default=env('UPSTREAM_PASS', 'upstrpw'))
    ap.add_argument('--system-id', default='UPSTREAM')
    ap.add_argument('--fail-prefix', default=env('FAIL_PREFIX', '8613900'))
    ap.add_argument('--reject-prefix', default=env('REJECT_PREFIX', '8613901'))
    ap.add_argument('--dlr-delay-ms', type=int, default=int(env('DLR_DELAY_MS', 200)))
    ap.add_argument('--always-dlr', action='store_true', help='send receipts even if registered_delivery=0')
    ap.add_argument('--log', default=env('UPSTREAM_LOG', 'upstream-messages.jsonl'),
                    help='JSON-lines file receiving one line per submit_sm')
    ap.add_argument('--quiet', action='store_true', help='do not print one line per submit_sm')
    args = ap.parse_args()
    sim = Simulator(args)
    smpp = await asyncio.start_server(sim.smpp_conn, args.host, args.port)
    ctl = await asyncio.start_server(sim.http_conn, args.host, args.ctl_port)
    sim.log('upstream SMSC listening on %s:%d (control API on :%d), fail_prefix=%s reject_prefix=%s' % (
        args.host, args.port, args.ctl_port, args.fail_prefix, args.reject_prefix))
    async with smpp, ctl:
        await asyncio.gather(smpp.serve_forever(), ctl.serve_forever())


if __name__ == '__main__':
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
