"""OpenID Connect benchmark: token endpoint requests per second (authorization code with PKCE and
an ID token; refresh with rotation), and the ID-token signing cost against the raw RSA signature
cost, each printed as a ratio against a baseline measured in the same run:

- ID token: the raw RSA-SHA256 signature of the same JWS signing input (cryptography, the same
  key) is the baseline; jwcrypto's signed JWT and the validator's whole ID token (claims from the
  mappings, signature, the ID token row) are printed as multiples of it;
- token endpoint: a request to the connector's discovery document through the same middleware
  stack is the baseline (what any request costs here); the code and refresh grants are printed as
  multiples of it, with their requests per second.

Self-contained: its own database (PostgreSQL `idp_oidc_bench`, dropped at the end, when
127.0.0.1:5432 answers or BENCH_DATABASE_URL says so; else SQLite in a temporary folder), a user
who signs in through the portal's login page, and a generic-oidc connector. In-process (Django's
test client, the full middleware stack, one request at a time): figures are per core.
Run: `.venv/bin/python bench/oidc_token.py` (well under a minute).
"""

import base64
import hashlib
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SIGN_RUNS = int(os.environ.get("BENCH_SIGN_RUNS", "500"))
TOKEN_RUNS = int(os.environ.get("BENCH_TOKEN_RUNS", "200"))
BENCH_DATABASE = "idp_oidc_bench"
REDIRECT_URI = "https://rp.bench.example/callback"
# The expectation for a signed token: within a small multiple of its one RSA signature.
SIGN_RATIO_GOAL = 2.5


def _postgres_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), 1).close()
        return True
    except OSError:
        return False


def _prepare_environment(workdir: Path) -> None:
    database_url = os.environ.get("BENCH_DATABASE_URL")
    if database_url is None and _postgres_up() and os.environ.get("BENCH_SQLITE") is None:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
            connection.execute(f"CREATE DATABASE {BENCH_DATABASE}")
        database_url = f"postgres://postgres@127.0.0.1:5432/{BENCH_DATABASE}"
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "idp_portal.settings",
            "DATABASE_URL": database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
            "IDP_VAR_DIR": str(workdir),
            "PORTAL_BASE_URL": "http://127.0.0.1:8000",
            "DEBUG": "true",
            "SECRET_KEY": "bench-" + uuid.uuid4().hex * 2,
            "LOG_LEVEL": "WARNING",
            "REDIS_URL": "",
        }
    )


def _drop_database() -> None:
    if os.environ["DATABASE_URL"].endswith(f"/{BENCH_DATABASE}"):
        from django.db import connections

        connections.close_all()
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")


def _time(function, runs: int) -> tuple[float, float]:
    """(median wall ms, median CPU ms) per call, after a warm-up."""
    for _ in range(min(20, runs)):
        function()
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def _setup():
    from django.core.management import call_command
    from django.test import Client

    from apps.connectors import services as connector_services
    from apps.directory import services as directory_services

    call_command("migrate", verbosity=0)
    user = directory_services.user_create(
        actor=None,
        username="bench.user",
        email="bench.user@example.com",
        first_name="Bench",
        last_name="User",
        password="bench-Pass-12345",
        validate_password=False,
    )
    group = directory_services.group_create(actor=None, name="Benchers", members=[user])
    connector = connector_services.connector_create(
        actor=None, template="generic-oidc", name="Bench RP", enabled=True, oidc={"redirect_uris": [REDIRECT_URI]}
    )
    connector_services.assignment_create(actor=None, connector=connector, group=group)
    client = Client(HTTP_HOST="127.0.0.1")
    response = client.post("/login/", {"username": "bench.user", "password": "bench-Pass-12345", "next": "/"})
    if response.status_code != 302:
        raise SystemExit(f"bench user could not sign in: HTTP {response.status_code}")
    return connector, user, client


def _code(client, connector) -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "client_id": connector.oidc.client_id,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid profile email groups offline_access",
        "state": secrets.token_urlsafe(12),
        "nonce": secrets.token_urlsafe(12),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    response = client.get(f"/oidc/{connector.slug}/authorize?{urlencode(params)}")
    return parse_qs(urlsplit(response["Location"]).query)["code"][0], verifier


def measure_signing(connector, user) -> dict:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from jwcrypto import jwt
    from oauthlib.common import Request

    from apps.oidc import keys
    from apps.oidc.models import OidcSession
    from apps.oidc.selectors import oidc_settings_by_client_id
    from apps.oidc.services import application_for
    from apps.oidc.validator import PortalOAuth2Validator
    from apps.saml_idp.keys import private_key_pem, signing_key_for

    signing_key = signing_key_for(connector)
    private = load_pem_private_key(private_key_pem(signing_key).encode(), password=None)
    key = keys.signing_jwk(connector)
    validator = PortalOAuth2Validator()
    oidc = oidc_settings_by_client_id(connector.oidc.client_id)
    application = application_for(oidc)
    application.oidc, application.connector = oidc, connector
    request = Request("https://127.0.0.1/token")
    request.client, request.user, request.scopes, request.nonce = (
        application,
        user,
        ["openid", "profile", "email", "groups"],
        "n",
    )
    request.oidc_session = OidcSession(
        sid="bench", auth_time=__import__("django.utils.timezone").utils.timezone.now(), amr=["pwd"], acr="pwd"
    )
    claims, _ = validator.get_id_token_dictionary({}, None, request)
    header = {"typ": "JWT", "alg": "RS256", "kid": key.get("kid")}
    probe = jwt.JWT(header=header, claims=claims)
    probe.make_signed_token(key)
    signing_input = ".".join(probe.serialize().split(".")[:2]).encode()

    raw = _time(lambda: private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()), SIGN_RUNS)

    def jwcrypto_sign() -> None:
        token = jwt.JWT(header=header, claims=claims)
        token.make_signed_token(key)
        token.serialize()

    library = _time(jwcrypto_sign, SIGN_RUNS)
    whole = _time(
        lambda: validator.finalize_id_token({"aud": application.client_id, "iat": 0}, {}, None, request), SIGN_RUNS
    )
    return {"raw": raw, "jwcrypto": library, "validator": whole}


def measure_token_endpoint(connector, client) -> dict:
    from django.test import Client

    secret = connector.issued_client_secret
    auth = "Basic " + base64.b64encode(f"{connector.oidc.client_id}:{secret}".encode()).decode()
    backend = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=auth)
    codes = [_code(client, connector) for _ in range(TOKEN_RUNS + 20)]
    refresh_tokens: list[str] = []
    pending = iter(codes)

    def exchange() -> None:
        code, verifier = next(pending)
        response = backend.post(
            f"/oidc/{connector.slug}/token",
            {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier},
        )
        assert response.status_code == 200, response.content
        refresh_tokens.append(response.json()["refresh_token"])

    code_grant = _time(exchange, TOKEN_RUNS)
    state = {"token": refresh_tokens[-1]}

    def refresh() -> None:
        response = backend.post(
            f"/oidc/{connector.slug}/token", {"grant_type": "refresh_token", "refresh_token": state["token"]}
        )
        assert response.status_code == 200, response.content
        state["token"] = response.json()["refresh_token"]

    refresh_grant = _time(refresh, TOKEN_RUNS)
    discovery = _time(lambda: client.get(f"/oidc/{connector.slug}/.well-known/openid-configuration"), TOKEN_RUNS)
    return {"code": code_grant, "refresh": refresh_grant, "discovery": discovery}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="oidc-bench-") as workdir:
        _prepare_environment(Path(workdir))
        import django

        django.setup()
        try:
            connector, user, client = _setup()
            signing = measure_signing(connector, user)
            endpoint = measure_token_endpoint(connector, client)
        finally:
            _drop_database()
    raw_wall, raw_cpu = signing["raw"]
    print("ID token signing (RSA-2048, RS256), median per token; baseline: one raw RSA-SHA256 signature")
    print(f"  raw RSA signature (cryptography)        {raw_wall:7.3f} ms   (CPU {raw_cpu:.3f} ms)   1.00x")
    for label, name in (
        ("jwcrypto signed JWT (same claims)", "jwcrypto"),
        ("whole ID token (claims, sign, row)", "validator"),
    ):
        wall, cpu = signing[name]
        print(f"  {label:<40}{wall:7.3f} ms   (CPU {cpu:.3f} ms)   {cpu / raw_cpu:.2f}x")
    ratio = signing["jwcrypto"][1] / raw_cpu
    print(
        f"  signed JWT within {SIGN_RATIO_GOAL}x of the raw signature: {'PASS' if ratio <= SIGN_RATIO_GOAL else 'MISS'}"
    )
    base_wall, _base_cpu = endpoint["discovery"]
    print()
    print("Token endpoint, in-process, one request at a time; baseline: a discovery document request")
    print(f"  discovery document                      {base_wall:7.3f} ms   {1000 / base_wall:7.0f} req/s   1.00x")
    for label, name in (
        ("authorization_code + PKCE (ID token)", "code"),
        ("refresh_token (rotation, ID token)", "refresh"),
    ):
        wall, cpu = endpoint[name]
        print(f"  {label:<40}{wall:7.3f} ms   {1000 / wall:7.0f} req/s   {wall / base_wall:.2f}x  (CPU {cpu:.3f} ms)")


if __name__ == "__main__":
    main()
