# Verify a mailhook webhook (Standard Webhooks "v1" signature), stdlib only.
import base64, hashlib, hmac, time

def verify(secret: str, headers, body: bytes, tolerance: int = 300) -> bool:
    """headers: a case-insensitive mapping (Flask/Django/Starlette request headers);
    body: the raw request bytes, exactly as received (never re-serialized JSON)."""
    msg_id = headers.get("webhook-id", "")
    ts = headers.get("webhook-timestamp", "")
    if not msg_id or not ts.isdigit() or abs(time.time() - int(ts)) > tolerance:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256)
    expected = base64.b64encode(mac.digest())
    for sig in headers.get("webhook-signature", "").split():
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return True
    return False

if __name__ == "__main__":  # used by the Go tests: verify.py SECRET HEADERS.json BODY
    import json, sys
    headers = {k.lower(): v for k, v in json.load(open(sys.argv[2])).items()}
    sys.exit(0 if verify(sys.argv[1], headers, open(sys.argv[3], "rb").read()) else 1)
