# Optional, test-stack only (start.sh adds this dir to PYTHONPATH when JASMIN_TCP_NODELAY=1):
# set TCP_NODELAY on every Twisted TCP connection of jasmind. Stock Twisted leaves Nagle on;
# Jasmin's AMQP basic.ack (21 bytes, sent right after a publish) then waits for the broker's
# delayed ACK (~40 ms), which caps each SMPP client connector at ~25 submit_sm/s.
import socket

try:
    from twisted.internet import tcp as _tcp

    _orig_init = _tcp.Connection.__init__

    def _init(self, skt, protocol, reactor=None):
        _orig_init(self, skt, protocol, reactor)
        try:
            if skt.family in (socket.AF_INET, socket.AF_INET6):
                skt.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    _tcp.Connection.__init__ = _init
except Exception:  # twisted missing: nothing to patch
    pass
