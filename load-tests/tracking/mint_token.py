#!/usr/bin/env python3
"""Mints a tracking token the way engine/src/tracking/token.rs does, for the
benchmark only: version 1, kind, LEB128 tenant/campaign/recipient/link/issued,
then the first 12 bytes of HMAC-SHA256 under the secret, base64url unpadded.

usage: mint_token.py SECRET KIND(1 open, 2 click, 3 unsubscribe) TENANT CAMPAIGN RECIPIENT [LINK]
"""
import base64, hashlib, hmac, sys


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def main():
    secret, kind, tenant, campaign, recipient = sys.argv[1:6]
    link = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    payload = bytes([1, int(kind)]) + b"".join(
        varint(int(v)) for v in (tenant, campaign, recipient, link, 0)
    )
    tag = hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:12]
    print(base64.urlsafe_b64encode(payload + tag).decode().rstrip("="))


main()
