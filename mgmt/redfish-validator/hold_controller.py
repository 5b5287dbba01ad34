#!/usr/bin/env python3
"""hold_controller.py ADDR:PORT SUBNQN HOSTNQN HOSTID-UUID

A minimal NVMe/TCP host for the Redfish validator run: it connects an admin queue to the
subsystem (ICReq, Fabrics Connect with keep-alive off), enables the controller (Property Set
CC.EN), prints "connected CNTLID" and keeps the connection open until stdin closes or it is
killed, so the Redfish view has a live StorageController and an initiator Endpoint to show.
"""
import socket
import struct
import sys
import uuid

PDU_ICREQ, PDU_ICRESP, PDU_CAPSULE_CMD, PDU_CAPSULE_RESP = 0x00, 0x01, 0x04, 0x05


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise SystemExit("hold_controller: the target closed the connection")
        data += chunk
    return data


def recv_pdu(sock):
    head = recv_exact(sock, 8)
    pdu_type, _flags, _hlen, _pdo, plen = struct.unpack("<BBBBI", head)
    return pdu_type, head + recv_exact(sock, plen - 8)


def fabrics_command(sock, cid, sqe_tail, data=b""):
    """A Fabrics command (opcode 7Fh) capsule; `sqe_tail` is bytes 4..64 of the SQE."""
    sqe = struct.pack("<BBH", 0x7F, 0x40, cid) + sqe_tail  # PSDT 01b: SGLs
    assert len(sqe) == 64
    hlen = 8 + 64
    pdo = hlen if data else 0
    head = struct.pack("<BBBBI", PDU_CAPSULE_CMD, 0, hlen, pdo, hlen + len(data))
    sock.sendall(head + sqe + data)
    pdu_type, pdu = recv_pdu(sock)
    if pdu_type != PDU_CAPSULE_RESP:
        raise SystemExit(f"hold_controller: expected a response capsule, got PDU type {pdu_type}")
    dw0, _dw1, _sqhd, _sqid, rcid, status = struct.unpack("<IIHHHH", pdu[8:24])
    if status >> 1:
        raise SystemExit(f"hold_controller: command {cid} failed, status {status >> 1:#x}")
    return dw0


def main():
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    host, port = sys.argv[1].rsplit(":", 1)
    subnqn, hostnqn, hostid = sys.argv[2], sys.argv[3], uuid.UUID(sys.argv[4]).bytes
    sock = socket.create_connection((host, int(port)), timeout=10)
    # ICReq: PFV 0, no digests, HPDA 0, MAXR2T 0.
    sock.sendall(struct.pack("<BBBBIHBBI", PDU_ICREQ, 0, 128, 0, 128, 0, 0, 0, 0) + bytes(112))
    if recv_pdu(sock)[0] != PDU_ICRESP:
        raise SystemExit("hold_controller: no ICResp")
    # Connect (FCTYPE 01h): admin queue, SQSIZE 31, KATO 0 (no keep-alive), 1 KiB of
    # in-capsule data (SGL data block, offset addressing) naming the host and subsystem.
    sgl = struct.pack("<QI3xB", 0, 1024, 0x01)
    tail = struct.pack("<B19x", 0x01) + sgl + struct.pack("<HHHBxI12x", 0, 0, 31, 0, 0)
    data = bytearray(1024)
    data[0:16] = hostid
    data[16:18] = struct.pack("<H", 0xFFFF)
    data[256 : 256 + len(subnqn)] = subnqn.encode()
    data[512 : 512 + len(hostnqn)] = hostnqn.encode()
    cntlid = fabrics_command(sock, 1, tail, bytes(data)) & 0xFFFF
    # Property Set (FCTYPE 00h) CC = IOCQES 4, IOSQES 6, EN.
    null_sgl = bytes(16)
    cc = (4 << 20) | (6 << 16) | 1
    tail = struct.pack("<B19x", 0x00) + null_sgl + struct.pack("<B3xIQ8x", 0, 0x14, cc)
    fabrics_command(sock, 2, tail)
    print(f"connected {cntlid}", flush=True)
    sock.settimeout(None)
    sys.stdin.read()
    sock.close()


if __name__ == "__main__":
    main()
