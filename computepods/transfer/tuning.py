"""How both ends of a transfer are tuned: one place for the SSH window, the
packet size, the cipher order and the read pipeline, measured by
``python bench/transfer.py`` on loopback (docs/architecture.md §10).

- A response carries a 255 KiB read plus a 13-byte SFTP header; packets of
  256 KiB cut each one in two (a full packet and a 13-byte one), which
  halved the rate.  1 MiB packets carry a read whole.
- Reads of 255 KiB: OpenSSH's sftp-server answers at most that much
  (SFTP_MAX_MSG_LENGTH 256 KiB less its headers), so one size serves both
  our server and a system sshd; larger reads were slower here.
- 8 reads in flight (2 MiB): with the two pods in two processes, 4, 8 and
  16 moved the same on loopback within the noise (2 cores), 1 half as
  much; 8 keeps a link with 10 ms of round trip at 200 MB/s.  (With both
  ends in one process, where they share a GIL, 2 to 4 were best.)
  paramiko's own prefetch (32 KiB requests from a thread that sleeps while
  its window is full) moved 4-50 MB/s, whatever its request limit.
- aes128-gcm first: one pass for cipher and MAC; both ends together spent
  1.0 CPU-second per 200 MB with it, 1.4 with aes128-ctr and hmac-sha2-256.
"""
from __future__ import annotations

import logging

import paramiko

WINDOW_BYTES = 64 << 20              # 64 MiB channel window
MAX_PACKET_BYTES = 1 << 20           # 1 MiB channel packets
READ_BYTES = 255 << 10               # 255 KiB per SFTP read request
READS_IN_FLIGHT = 8                  # read requests outstanding per transfer
CIPHERS = ("aes128-gcm@openssh.com", "aes128-ctr", "aes256-gcm@openssh.com",
           "aes256-ctr")
# paramiko logs a peer that hangs up, and each failed handshake, as an ERROR
# with a traceback, from its transport threads: between pods these are
# ordinary events, which the server and the puller report themselves.
# Both ends' transports log here, quietly.
WIRE_LOG = "computepods.transfer.wire"
logging.getLogger(WIRE_LOG).setLevel(logging.CRITICAL)


def tune(transport: paramiko.Transport) -> None:
    """Put our cipher order first (the client's order decides; the server's
    matters to clients that share it)."""
    options = transport.get_security_options()
    offered = tuple(c for c in CIPHERS if c in options.ciphers)
    options.ciphers = offered + tuple(c for c in options.ciphers if c not in offered)


def transport(sock, **kwargs) -> paramiko.Transport:
    """A tuned Transport on a connected socket (SSHClient's transport_factory)."""
    made = paramiko.Transport(sock, default_window_size=WINDOW_BYTES,
                              default_max_packet_size=MAX_PACKET_BYTES, **kwargs)
    made.set_log_channel(WIRE_LOG)
    tune(made)
    return made
