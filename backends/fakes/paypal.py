"""PayPal's REST API on a loopback port, as the `paypal` webhook source calls it.

- `POST /v1/oauth2/token`: HTTP Basic with the app's client id and secret,
  `grant_type=client_credentials` → `{"scope", "access_token", "token_type": "Bearer",
  "app_id", "expires_in", "nonce"}`; a wrong client → 401 `invalid_client`;
- `POST /v1/notifications/verify-webhook-signature` (Bearer): really verifies. The fake
  holds a test RSA key and a certificate for it (served at its `cert_url`); it checks the
  `transmission_sig` (SHA256withRSA) over `transmission_id|transmission_time|webhook_id|
  crc32`, the CRC-32 (unsigned, decimal) being over `webhook_event` as the bytes sent —
  so a tampered or re-serialized event is `FAILURE`, as is another key, another Webhook
  ID or a certificate URL that is not its own;
- `GET /v2/payments/captures/{id}` (Bearer): the captures the test added;
- `GET /v1/notifications/certs/{cert}`: the certificate, PEM.

Errors take PayPal's shape (`name`, `message`, `debug_id`, `details[]`, `links[]`),
OAuth errors theirs (`error`, `error_description`). `sign()` makes the PAYPAL-* headers
of a delivery as PayPal would. Knobs: `latency`, `status` (every API answers this error,
e.g. 503, until set back to 200), `capture_status` (the same for captures only),
`expires_in` of new tokens, and counters `token_requests`, `verify_requests`,
`capture_requests`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from backends.fakes.loopback import loopback

CLIENT_ID = "AYSq3RDGsmBLJE-otTkBtM-jBRd1TCQwFf9RGfwddNXWz0uFU9ztymylOhRS"
CLIENT_SECRET = "EGnHDxD_qRPdaLdZz8iCr8N7_MzF-YHPTkjs6NKYQvQSBngp4PTTVWkPZRbL"
WEBHOOK_ID = "1JE4291016473214C"
FIELDS = (
    "auth_algo",
    "cert_url",
    "transmission_id",
    "transmission_sig",
    "transmission_time",
    "webhook_id",
    "webhook_event",
)
_EVENT_KEY = re.compile(rb'"webhook_event"\s*:\s*')


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def signed_string(
    transmission_id: str, transmission_time: str, webhook_id: str, body: bytes
) -> bytes:
    crc = zlib.crc32(body) & 0xFFFFFFFF
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{crc}".encode()


def _certificate(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.paypal.test")]
    )
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


def _error(status: int, name: str, message: str, **detail: str) -> web.Response:
    body: dict[str, Any] = {
        "name": name,
        "message": message,
        "debug_id": secrets.token_hex(6),
        "details": [detail] if detail else [],
        "links": [],
    }
    return web.json_response(body, status=status)


def _raw_event(request: bytes) -> bytes | None:
    """The `webhook_event` member of the request as its bytes, if it is the last one."""
    decoder = json.JSONDecoder()
    text = request.decode()
    for match in reversed(list(_EVENT_KEY.finditer(request))):
        start = len(request[: match.end()].decode())
        try:
            _, end = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if text[end:].strip() == "}":
            return text[start:end].encode()
    return None


class FakePaypal:
    def __init__(self, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = new_key()
        self.certificate = _certificate(self.key)
        self.captures: dict[str, dict[str, Any]] = {}
        self.tokens: set[str] = set()
        self.expires_in = 32400
        self.latency = 0.0
        self.status = 200
        self.capture_status = 200
        self.token_requests = 0
        self.verify_requests = 0
        self.capture_requests = 0
        self.base = ""

    @property
    def cert_url(self) -> str:
        return f"{self.base}/v1/notifications/certs/CERT-360caa42-fca2a594-fake"

    def paypal_section(self, webhook_id: str = WEBHOOK_ID) -> dict[str, str]:
        """The `[paypal]` section of a program whose app is this one."""
        return {
            "webhook_id": webhook_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "base_url": self.base,
        }

    def sign(
        self,
        body: bytes,
        transmission_id: str,
        transmission_time: datetime,
        webhook_id: str = WEBHOOK_ID,
        key: rsa.RSAPrivateKey | None = None,
    ) -> dict[str, str]:
        """The PAYPAL-* headers of a delivery of `body`, signed with the fake's key."""
        moment = transmission_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = signed_string(transmission_id, moment, webhook_id, body)
        signature = (key or self.key).sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": moment,
            "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
            "PAYPAL-CERT-URL": self.cert_url,
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
            "Content-Type": "application/json",
        }

    async def _gate(self, request: web.Request) -> web.Response | None:
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.status != 200:
            return _error(
                self.status, "INTERNAL_SERVICE_ERROR", "An internal service error occurred."
            )
        return None

    def _bearer(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or header[7:] not in self.tokens:
            return web.json_response(
                {
                    "error": "invalid_token",
                    "error_description": "The token passed in was not found in the system",
                },
                status=401,
            )
        return None

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        refused = await self._gate(request)
        if refused is not None:
            return refused
        expected = f"{self.client_id}:{self.client_secret}".encode()
        given = request.headers.get("Authorization", "").removeprefix("Basic ")
        try:
            valid = base64.b64decode(given, validate=True) == expected
        except ValueError:
            valid = False
        form = await request.post()
        if not valid:
            return web.json_response(
                {"error": "invalid_client", "error_description": "Client Authentication failed"},
                status=401,
            )
        if form.get("grant_type") != "client_credentials":
            return web.json_response(
                {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"},
                status=400,
            )
        token = f"A21AA{secrets.token_urlsafe(32)}"
        self.tokens.add(token)
        return web.json_response(
            {
                "scope": "https://uri.paypal.com/services/applications/webhooks "
                "https://uri.paypal.com/services/applications/verify-webhook-signature",
                "access_token": token,
                "token_type": "Bearer",
                "app_id": "APP-80W284485P519543T",
                "expires_in": self.expires_in,
                "nonce": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}{secrets.token_hex(8)}",
            }
        )

    async def _verify(self, request: web.Request) -> web.Response:
        self.verify_requests += 1
        refused = await self._gate(request) or self._bearer(request)
        if refused is not None:
            return refused
        raw = await request.read()
        try:
            fields = json.loads(raw)
        except ValueError:
            fields = None
        if not isinstance(fields, dict):
            return _error(
                400,
                "INVALID_REQUEST",
                "Request is not well-formed, syntactically incorrect, or violates schema.",
            )
        for field in FIELDS:
            if not fields.get(field):
                return _error(
                    400,
                    "VALIDATION_ERROR",
                    "Invalid request - see details",
                    field=field,
                    location="body",
                    issue="MISSING_REQUIRED_PARAMETER",
                )
        event = _raw_event(raw)
        return web.json_response(
            {
                "verification_status": "SUCCESS"
                if event and self._valid(fields, event)
                else "FAILURE"
            }
        )

    def _valid(self, fields: dict[str, Any], event: bytes) -> bool:
        if fields["cert_url"] != self.cert_url or fields["auth_algo"] != "SHA256withRSA":
            return False
        try:
            signature = base64.b64decode(str(fields["transmission_sig"]), validate=True)
            message = signed_string(
                str(fields["transmission_id"]),
                str(fields["transmission_time"]),
                str(fields["webhook_id"]),
                event,
            )
            public = self.certificate.public_key()
            assert isinstance(public, rsa.RSAPublicKey)
            public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return False
        return True

    async def _capture(self, request: web.Request) -> web.Response:
        self.capture_requests += 1
        refused = await self._gate(request) or self._bearer(request)
        if refused is not None:
            return refused
        if self.capture_status != 200:
            return _error(self.capture_status, "INTERNAL_SERVICE_ERROR", "An internal error.")
        found = self.captures.get(request.match_info["capture_id"])
        if found is None:
            return _error(
                404,
                "RESOURCE_NOT_FOUND",
                "The specified resource does not exist.",
                issue="INVALID_RESOURCE_ID",
                description="Specified resource ID does not exist. Please check the resource ID "
                "and try again.",
            )
        return web.json_response(found)

    async def _cert(self, request: web.Request) -> web.Response:
        pem = self.certificate.public_bytes(serialization.Encoding.PEM)
        return web.Response(body=pem, content_type="application/x-pem-file")

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[FakePaypal]:
        app = web.Application()
        app.router.add_post("/v1/oauth2/token", self._token)
        app.router.add_post("/v1/notifications/verify-webhook-signature", self._verify)
        app.router.add_get("/v2/payments/captures/{capture_id}", self._capture)
        app.router.add_get("/v1/notifications/certs/{cert}", self._cert)
        async with loopback(app) as self.base:
            yield self
