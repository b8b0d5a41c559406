#!/usr/bin/env python3
"""Lists the packets on one interface for SECONDS, with the HTTP/2 frames in each TCP payload
(type:length:flags), for reading where a transport's bytes on the wire go (bench/wire_bytes.sh
counts them; this shows them). Root; run inside the node's network namespace, e.g.

  ip netns exec si_wb_node python3 bench/http2_frames.py si_wb_n 10.77.0.1 6

Assumes IPv4 over Ethernet and that each TCP payload starts at an HTTP/2 frame boundary (true
for gRPC's small messages; a frame split across packets is listed as its first part).
"""
import socket
import sys
import time

NAMES = {0: "DATA", 1: "HEADERS", 3: "RST_STREAM", 4: "SETTINGS", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE"}


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    ifname, node_ip, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
    s.bind((ifname, 0))
    s.settimeout(0.5)
    end = time.time() + seconds
    while time.time() < end:
        try:
            pkt = s.recv(65535)
        except socket.timeout:
            continue
        if pkt[12:14] != b"\x08\x00" or pkt[23] != 6:  # IPv4, TCP
            continue
        ihl = (pkt[14] & 15) * 4
        tcp = 14 + ihl
        payload = pkt[tcp + (pkt[tcp + 12] >> 4) * 4:]
        frames, i = [], 0
        while i + 9 <= len(payload):
            length = int.from_bytes(payload[i:i + 3], "big")
            frames.append(f"{NAMES.get(payload[i + 3], payload[i + 3])}:{length}:{payload[i + 4]:#x}")
            i += 9 + length
        direction = "node->server" if socket.inet_ntoa(pkt[26:30]) == node_ip else "server->node"
        print(f"{direction} frame_bytes={len(pkt)} tcp_payload={len(payload)} {' '.join(frames)}", flush=True)


if __name__ == "__main__":
    main()
