"""What the app reads from an incoming request."""

from integrations.conf import app_settings


def client_ip(meta: dict) -> str | None:
    """The client address; behind a proxy, set INTEGRATIONS_TRUSTED_PROXY_HEADER (e.g. HTTP_X_REAL_IP)."""
    header = app_settings.TRUSTED_PROXY_HEADER
    if header and meta.get(header):
        return meta[header].split(",")[-1].strip()  # the address the trusted proxy saw; earlier ones are forgeable
    return meta.get("REMOTE_ADDR")
