FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=idp_portal.settings \
    DEBUG=false \
    IDP_VAR_DIR=/var/lib/idp-portal \
    STATIC_ROOT=/app/staticfiles

WORKDIR /app
# xmlsec1 verifies an upstream IdP's signatures for delegated login (djangosaml2 runs pysaml2's
# default crypto backend); the portal's own signing runs in-process.
RUN apt-get update && apt-get install -y --no-install-recommends xmlsec1 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system idp && useradd --system --gid idp --home-dir /app --shell /usr/sbin/nologin idp \
    && mkdir -p /var/lib/idp-portal && chown idp:idp /var/lib/idp-portal

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=idp:idp . .
# collectstatic needs settings but no secrets or services.
RUN SECRET_KEY=collectstatic-only ALLOWED_HOSTS=localhost python manage.py collectstatic --noinput

USER idp
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz?only=database', timeout=4).status == 200 else 1)"
# Forwarded headers are believed only from TRUSTED_PROXIES (gunicorn.conf.py, and the portal's own
# settings): whoever reaches port 8000 directly cannot claim another address or HTTPS.
CMD ["gunicorn", "idp_portal.wsgi:application", "--config", "gunicorn.conf.py", "--bind", "0.0.0.0:8000"]
