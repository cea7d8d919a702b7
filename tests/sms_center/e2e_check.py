#!/usr/bin/env python3
"""End-to-end check of the SMS test stack through Jasmin's SMPP server (smpplib client).

Proves, against a running stack (./start.sh):
  1. bind_transceiver, submit_sm UCS-2 Chinese text with registered_delivery=1
     -> submit_sm_resp ESME_ROK with a message id -> deliver_sm receipt with that id, stat:DELIVRD
  2. destination with FAIL_PREFIX   -> receipt stat:UNDELIV
  3. destination with REJECT_PREFIX (upstream answers submit_sm_resp ESME_RSUBMITFAIL)
     -> registered_delivery=1: no receipt at all; registered_delivery=2 (failure only): stat:UNDELIV
  4. MO: upstream injects deliver_sm "TD" -> arrives on our bind as deliver_sm (esm_class 0)
  5. throttled user (smpps_throughput quota) -> submit_sm_resp ESME_RTHROTTLED (0x58)
  6. the upstream received every accepted message exactly once, UCS-2 text intact
Prints one PASS/FAIL line per check and a closing "N passed, N failed" line; exit 1 on failure.
"""
import json
import logging
import os
import queue
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid

import smpplib.client
import smpplib.consts as c
import smpplib.smpp

for _name in ('smpplib', 'smpp'):   # quiet "Unhandled SMPP command unbind_resp" at close
    logging.getLogger(_name).setLevel(logging.CRITICAL)

E = os.environ.get
HOST = E('STACK_HOST', '127.0.0.1')
PORT = int(E('SMPPS_PORT', 2775))
CTL = 'http://%s:%s' % (HOST, E('UPSTREAM_CTL_PORT', 2777))
FAIL_PREFIX, REJECT_PREFIX = E('FAIL_PREFIX', '8613900'), E('REJECT_PREFIX', '8613901')
ESME_RTHROTTLED = 0x58
RESULTS = []


def check(name, ok, detail=''):
    RESULTS.append(bool(ok))
    print('%s %s%s' % ('PASS' if ok else 'FAIL', name, (' -- ' + detail) if detail else ''), flush=True)


def ctl(path):
    with urllib.request.urlopen(CTL + path, timeout=10) as r:
        return json.loads(r.read())


def b2s(v):
    return v.decode('latin-1') if isinstance(v, bytes) else ('' if v is None else str(v))


class Smpp:
    """smpplib transceiver with a listener thread; responses/deliveries land in queues."""

    def __init__(self, system_id, password):
        self.cl = smpplib.client.Client(HOST, PORT, allow_unknown_opt_params=True, timeout=30)
        self.resps = {}                # sequence -> submit_sm_resp pdu
        self.resp_cv = threading.Condition()
        self.delivered = queue.Queue()
        self.cl.set_error_pdu_handler(lambda pdu: None)      # keep error resps, don't raise
        self.cl.set_message_sent_handler(self._on_resp)
        self.cl.set_message_received_handler(self._on_deliver)
        self.cl.connect()
        self.cl.bind_transceiver(system_id=system_id, password=password)
        self.t = threading.Thread(target=self._listen, daemon=True)
        self.t.start()

    def _listen(self):
        try:
            self.cl.listen()
        except Exception:  # noqa: closed at the end
            pass

    def _on_resp(self, pdu):
        with self.resp_cv:
            self.resps[pdu.sequence] = pdu
            self.resp_cv.notify_all()

    def _on_deliver(self, pdu):
        self.delivered.put((time.time(), pdu))
        return 0  # deliver_sm_resp ESME_ROK

    def submit(self, dst, text, rd=1, src='10690000'):
        ucs2 = any(ord(ch) > 127 for ch in text)
        pdu = self.cl.send_message(
            source_addr_ton=c.SMPP_TON_INTL, source_addr_npi=c.SMPP_NPI_ISDN, source_addr=src,
            dest_addr_ton=c.SMPP_TON_INTL, dest_addr_npi=c.SMPP_NPI_ISDN, destination_addr=dst,
            short_message=text.encode('utf-16-be') if ucs2 else text.encode('ascii'),
            data_coding=c.SMPP_ENCODING_ISO10646 if ucs2 else c.SMPP_ENCODING_DEFAULT,
            esm_class=c.SMPP_MSGMODE_DEFAULT, registered_delivery=rd)
        return pdu.sequence

    def wait_resp(self, seq, timeout=10):
        deadline = time.time() + timeout
        with self.resp_cv:
            while seq not in self.resps:
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.resp_cv.wait(left)
            return self.resps.pop(seq)

    def wait_deliver(self, pred, timeout=20):
        deadline, keep = time.time() + timeout, []
        try:
            while True:
                left = deadline - time.time()
                if left <= 0:
                    return None
                try:
                    t, pdu = self.delivered.get(timeout=left)
                except queue.Empty:
                    return None
                if pred(pdu):
                    return t, pdu
                keep.append((t, pdu))
        finally:
            for item in keep:
                self.delivered.put(item)

    def close(self):
        try:  # the listener thread reads the unbind_resp
            self.cl.send_pdu(smpplib.smpp.make_pdu('unbind', client=self.cl))
            self.t.join(2)
        except Exception:  # noqa
            pass
        try:
            self.cl.disconnect()
        except Exception:  # noqa
            pass


def receipt_for(msgid):
    def pred(pdu):
        return (pdu.esm_class & 0x04) and (b2s(pdu.receipted_message_id) == msgid
                                           or ('id:%s ' % msgid) in b2s(pdu.short_message))
    return pred


def stat_of(pdu):
    sm = b2s(pdu.short_message)
    return sm.split('stat:')[1].split()[0] if 'stat:' in sm else None


def main():
    token = uuid.uuid4().hex[:8]
    base = ctl('/status')['counters']['submit_sm']
    bound = [s for s in ctl('/status')['sessions'] if s['bind']]
    check('upstream connector bound to the simulator', bound, json.dumps(bound))

    s = Smpp(E('SMPP_USER', 'acetest'), E('SMPP_PASS', 'acepass'))
    check('bind_transceiver as %s' % E('SMPP_USER', 'acetest'), True)
    sent = {}  # text -> expected upstream count

    # 1. UCS-2 Chinese, DELIVRD
    text = '您好，测试短信 %s-ok' % token
    t0 = time.time()
    seq = s.submit('8613800138000', text)
    r = s.wait_resp(seq)
    t_resp = time.time() - t0
    msgid = b2s(r.message_id) if r else ''
    check('submit_sm_resp ESME_ROK with message_id (UCS-2)', r is not None and r.status == 0 and msgid,
          'status=%s message_id=%s in %.0f ms' % (r and r.status, msgid, t_resp * 1000))
    sent[text] = 1
    got = s.wait_deliver(receipt_for(msgid))
    if got:
        t, d = got
        check('deliver_sm receipt stat:DELIVRD for that id', stat_of(d) == 'DELIVRD',
              '%.0f ms after submit; esm_class=0x%02x receipted_message_id=%s message_state=%s '
              'short_message=%r' % ((t - t0) * 1000, d.esm_class, b2s(d.receipted_message_id),
                                    d.message_state, b2s(d.short_message)))
        check('receipt addresses swapped (src=dest of MT)', b2s(d.source_addr) == '8613800138000',
              'source_addr=%s destination_addr=%s' % (b2s(d.source_addr), b2s(d.destination_addr)))
    else:
        check('deliver_sm receipt stat:DELIVRD for that id', False, 'no receipt within 20 s')

    # 2. fail prefix: UNDELIV receipt
    text = '失败号码 %s-undeliv' % token
    seq = s.submit(FAIL_PREFIX + '0001', text)
    r = s.wait_resp(seq)
    msgid2 = b2s(r.message_id) if r else ''
    check('submit_sm_resp ESME_ROK for %s* (failure is async)' % FAIL_PREFIX, r is not None and r.status == 0,
          'status=%s id=%s' % (r and r.status, msgid2))
    sent[text] = 1
    got = s.wait_deliver(receipt_for(msgid2))
    check('deliver_sm receipt stat:UNDELIV for %s*' % FAIL_PREFIX, got and stat_of(got[1]) == 'UNDELIV',
          got and 'short_message=%r message_state=%s' % (b2s(got[1].short_message), got[1].message_state)
          or 'no receipt')

    # 3. reject prefix: upstream submit_sm_resp error
    text = 'reject rd1 %s' % token
    seq = s.submit(REJECT_PREFIX + '0001', text, rd=1)
    r = s.wait_resp(seq)
    msgid3 = b2s(r.message_id) if r else ''
    check('submit_sm_resp ESME_ROK even though upstream will reject', r is not None and r.status == 0,
          'status=%s id=%s' % (r and r.status, msgid3))
    sent[text] = 1
    got = s.wait_deliver(receipt_for(msgid3), timeout=6)
    check('upstream submit error + registered_delivery=1 -> no receipt forwarded', got is None,
          got and 'got %r' % b2s(got[1].short_message) or 'none within 6 s (Jasmin only forwards '
                                                           'submit_sm_resp errors for registered_delivery=2)')
    text = 'reject rd2 %s' % token
    seq = s.submit(REJECT_PREFIX + '0002', text, rd=2)
    r = s.wait_resp(seq)
    msgid4 = b2s(r.message_id) if r else ''
    sent[text] = 1
    got = s.wait_deliver(receipt_for(msgid4), timeout=10)
    check('upstream submit error + registered_delivery=2 -> receipt stat:UNDELIV',
          got and stat_of(got[1]) == 'UNDELIV',
          got and 'short_message=%r' % b2s(got[1].short_message) or 'no receipt')

    # 4. MO "TD" from the upstream
    mo_src = '8613800138000'
    t0 = time.time()
    res = ctl('/mo?src=%s&dst=10690000&text=TD' % mo_src)
    got = s.wait_deliver(lambda p: not (p.esm_class & 0x04) and b2s(p.short_message) == 'TD', timeout=15)
    check('MO deliver_sm "TD" reaches the SMPP user', got,
          got and 'upstream resp=%s, %.0f ms, source_addr=%s destination_addr=%s data_coding=%s' % (
              res, (got[0] - t0) * 1000, b2s(got[1].source_addr), b2s(got[1].destination_addr),
              got[1].data_coding) or 'upstream said %s' % res)
    t0 = time.time()
    ctl('/mo?src=%s&dst=10690000&coding=8&text=%s' % (mo_src, urllib.parse.quote('退订')))
    got = s.wait_deliver(lambda p: not (p.esm_class & 0x04) and p.data_coding == 8, timeout=15)
    check('MO UCS-2 "退订" reaches the SMPP user', got and got[1].short_message.decode('utf-16-be') == '退订',
          got and '%.0f ms' % ((got[0] - t0) * 1000) or 'no deliver_sm')

    # 5. throttling
    ts = Smpp(E('THROTTLED_USER', 'acethrot'), E('THROTTLED_PASS', 'acepass'))
    statuses = []
    for i in range(6):
        seq = ts.submit('8613800138001', 'throttle %s-%d' % (token, i), rd=0)
        r = ts.wait_resp(seq)
        statuses.append(r.status if r else None)
    ok_n = statuses.count(0)
    check('throttled user (smpps_throughput=%s) gets ESME_RTHROTTLED (0x58)' % E('THROTTLED_TPS', '2'),
          ESME_RTHROTTLED in statuses and ok_n >= 1,
          'statuses of 6 back-to-back submits: %s' % ['0x%02x' % x if x is not None else None for x in statuses])
    for i, st in enumerate(statuses):
        if st == 0:
            sent['throttle %s-%d' % (token, i)] = 1
    time.sleep(1.0 / float(E('THROTTLED_TPS', '2')) + 0.1)
    seq = ts.submit('8613800138001', 'throttle %s-late' % token, rd=0)
    r = ts.wait_resp(seq)
    check('after 1/throughput seconds the throttled user is accepted again', r and r.status == 0,
          'status=%s' % (r and r.status))
    sent['throttle %s-late' % token] = 1
    ts.close()

    # 6. upstream saw each accepted message exactly once (give retries a moment)
    time.sleep(1.0)
    msgs = [m for m in ctl('/messages') if m['n'] > base and m['text'] and token in m['text']]
    counts = {}
    for m in msgs:
        counts[m['text']] = counts.get(m['text'], 0) + 1
    check('upstream received every accepted message exactly once', counts == sent,
          'expected %d texts, got %s' % (len(sent), {k: v for k, v in counts.items() if sent.get(k) != v}
                                         or len(counts)))
    zh = [m for m in msgs if m['text'].endswith('-ok')]
    check('upstream got UCS-2 (data_coding=8) text intact', zh and zh[0]['data_coding'] == 8
          and zh[0]['text'] == '您好，测试短信 %s-ok' % token, zh and json.dumps(zh[0], ensure_ascii=False))
    s.close()

    passed = sum(RESULTS)
    print('%d passed, %d failed' % (passed, len(RESULTS) - passed))
    sys.exit(0 if passed == len(RESULTS) else 1)


if __name__ == '__main__':
    main()
