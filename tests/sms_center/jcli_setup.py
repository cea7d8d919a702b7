#!/usr/bin/env python3
"""Configure a running Jasmin 0.11.0 through jCli (telnet), non-interactively.

Creates: group, SMPP user (+ a throttled user), the SMPP client connector to the
upstream SMSC (started), an MT DefaultRoute to it and an MO DefaultRoute back to
the SMPP user. Settings come from the environment (see stack.env).

  jcli_setup.py [--wait-bound SECONDS] [--persist] [--run "jcli command" ...]

--run executes raw jCli commands instead (e.g. --run "smppccm -l" --run "user -l").
Only the standard library is used (a minimal telnet client: telnetlib is gone in 3.13).
"""
import argparse
import os
import re
import socket
import sys
import time

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
E = os.environ.get


class JCli:
    PROMPT = b'jcli : '

    def __init__(self, host, port, user, password, timeout=10):
        self.sock = socket.create_connection((host, port), timeout)
        self.buf = b''
        # jcli prints "Authentication required." but no "Username: " prompt before the first line
        self.read_until(b'Authentication required.', self.PROMPT)
        self.sock.sendall(user.encode() + b'\n')
        self.read_until(b'Password: ')
        self.sock.sendall(password.encode() + b'\n')
        out = self.read_until(self.PROMPT, b'Incorrect')
        if b'Incorrect' in out:
            raise SystemExit('jcli: authentication failed')

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError('jcli closed the connection')
        out = bytearray()
        i = 0
        while i < len(data):  # strip telnet negotiation, refuse every option
            c = data[i]
            if c == IAC and i + 1 < len(data):
                cmd = data[i + 1]
                if cmd in (DO, DONT, WILL, WONT) and i + 2 < len(data):
                    opt = data[i + 2]
                    if cmd == DO:
                        self.sock.sendall(bytes([IAC, WONT, opt]))
                    elif cmd == WILL:
                        self.sock.sendall(bytes([IAC, DONT, opt]))
                    i += 3
                    continue
                if cmd == SB:
                    j = data.find(bytes([IAC, SE]), i)
                    i = len(data) if j < 0 else j + 2
                    continue
                i += 2
                continue
            out.append(c)
            i += 1
        return bytes(out)

    def read_until(self, *markers, timeout=15):
        deadline = time.time() + timeout
        while not any(m in self.buf for m in markers):
            if time.time() > deadline:
                raise TimeoutError('jcli: no %r in %r' % (markers, self.buf[-300:]))
            self.buf += self._recv()
        idx = min(self.buf.index(m) + len(m) for m in markers if m in self.buf)
        out, self.buf = self.buf[:idx], self.buf[idx:]
        return out

    def cmd(self, line, prompt=None):
        """Send one line; return the text printed before the next prompt."""
        self.sock.sendall(line.encode() + b'\n')
        # prompts are matched at line start: argument hints contain "<class '...'> "
        out = self.read_until(*(prompt or (b'\n' + self.PROMPT, b'\n> ')))
        text = out.decode('utf-8', 'replace').replace('\r', '')
        # drop the echoed command line and the prompt
        lines = [ln for ln in text.split('\n')]
        if lines and lines[0].strip() == line.strip():
            lines = lines[1:]
        return '\n'.join(lines).rsplit('jcli : ', 1)[0].rstrip('> ').strip()

    def add(self, command, params):
        """Run an interactive add/update session: `command`, then key/value lines, then ok."""
        out = self.cmd(command)
        if 'ok: save' not in out:
            raise RuntimeError('%s: unexpected answer %r' % (command, out))
        for kv in params:
            ans = self.cmd(kv)
            if ans and not ans.startswith(kv.split()[0]):
                # jcli prints errors ("Unknown ...") or argument hints; errors abort
                if re.search(r'(?i)unknown|error|invalid|must', ans):
                    self.cmd('ko')
                    raise RuntimeError('%s / %r: %s' % (command, kv, ans))
        res = self.cmd('ok')
        if 'Successfully' not in res:
            raise RuntimeError('%s: %s' % (command, res))
        return res

    def close(self):
        try:
            self.sock.sendall(b'quit\n')
        finally:
            self.sock.close()


def setup(j):
    up_cid = E('UPSTREAM_CID', 'upstream')
    user, tuser = E('SMPP_USER', 'acetest'), E('THROTTLED_USER', 'acethrot')
    steps = [
        ('group -a', ['gid testers']),
        ('user -a', ['username %s' % user, 'password %s' % E('SMPP_PASS', 'acepass'),
                     'uid %s' % user, 'gid testers']),
        ('user -a', ['username %s' % tuser, 'password %s' % E('THROTTLED_PASS', 'acepass'),
                     'uid %s' % tuser, 'gid testers',
                     'mt_messaging_cred quota smpps_throughput %s' % E('THROTTLED_TPS', '2')]),
    ]
    cids = connector_ids()
    for cid in cids:
        steps.append(('smppccm -a', ['cid %s' % cid,
                                     'host %s' % E('STACK_HOST', '127.0.0.1'),
                                     'port %s' % E('UPSTREAM_PORT', '2776'),
                                     'username %s' % E('UPSTREAM_USER', 'jasmin'),
                                     'password %s' % E('UPSTREAM_PASS', 'upstrpw'),
                                     'bind transceiver',
                                     'submit_throughput %s' % E('CONNECTOR_TPS', '0'),  # default 1 msg/s !
                                     'con_fail_delay 2', 'con_loss_delay 2',
                                     'elink_interval 30']))
    steps.append(('mtrouter -a', ['type DefaultRoute', 'connector smppc(%s)' % up_cid, 'rate 0.0']))
    if len(cids) > 1:
        # spread MT over several binds to the same upstream (each connector has a window of 1)
        steps.append(('filter -a', ['fid all', 'type TransparentFilter']))
        steps.append(('mtrouter -a', ['type RandomRoundrobinMTRoute', 'order 10', 'filters all',
                                      'connectors %s' % ';'.join('smppc(%s)' % c for c in cids),
                                      'rate 0.0']))
    steps.append(('morouter -a', ['type DefaultRoute', 'connector smpps(%s)' % user]))
    for command, params in steps:
        print('%s %s -> %s' % (command, params[0], j.add(command, params)))
    for cid in cids:
        print(j.cmd('smppccm -1 %s' % cid))


def connector_ids():
    """UPSTREAM_CONNECTORS=N (default 1): cids upstream, upstream2, ... upstreamN."""
    up_cid = E('UPSTREAM_CID', 'upstream')
    n = int(E('UPSTREAM_CONNECTORS', '1'))
    return [up_cid] + ['%s%d' % (up_cid, i) for i in range(2, n + 1)]


def wait_bound(j, cid, timeout):
    deadline = time.time() + timeout
    while True:
        out = j.cmd('smppccm -l')
        m = re.search(r'#%s\s+(\S+)\s+(\S+)' % re.escape(cid), out)
        state = m.group(2) if m else '?'
        if state.startswith('BOUND'):
            print('connector %s: %s' % (cid, state))
            return
        if time.time() > deadline:
            raise SystemExit('connector %s not bound after %ss:\n%s' % (cid, timeout, out))
        time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--host', default=E('STACK_HOST', '127.0.0.1'))
    ap.add_argument('--port', type=int, default=int(E('JCLI_PORT', 8990)))
    ap.add_argument('--user', default=E('JCLI_USER', 'jcliadmin'))
    ap.add_argument('--password', default=E('JCLI_PASS', 'jclipwd'))
    ap.add_argument('--wait-bound', type=float, default=0, help='wait until the upstream connector is BOUND')
    ap.add_argument('--persist', action='store_true', help='also persist the profile to the store')
    ap.add_argument('--run', action='append', help='run raw jcli command(s) and print the output')
    a = ap.parse_args()
    j = JCli(a.host, a.port, a.user, a.password)
    try:
        if a.run:
            for c in a.run:
                print('jcli : %s\n%s' % (c, j.cmd(c)))
            return
        t0 = time.time()
        setup(j)
        if a.wait_bound:
            for cid in connector_ids():
                wait_bound(j, cid, a.wait_bound)
        if a.persist:
            print(j.cmd('persist'))
        for c in ('user -l', 'smppccm -l', 'mtrouter -l', 'morouter -l'):
            print('jcli : %s\n%s' % (c, j.cmd(c)))
        print('jcli setup took %.2fs' % (time.time() - t0))
    finally:
        j.close()


if __name__ == '__main__':
    main()
