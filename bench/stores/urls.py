"""Server addresses as they may be shown: without the password a URL can carry.

Users may write credentials into a URL (``redis://:secret@host:6379/0``,
``http://user:secret@host:19530``). Messages, logs and results.json get the URL with the
password replaced, so a secret never leaves the process that was given it.
"""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"


def public_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (the user name is kept); other strings unchanged."""
    parts = urlsplit(url)
    if "://" not in url or parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:{REDACTED}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_config(config: dict) -> dict:
    """The resolved config with passwords taken out of store.uri and metadata.url (in place; returned)."""
    for section, key in (("store", "uri"), ("metadata", "url")):
        value = config.get(section, {}).get(key)
        if isinstance(value, str):
            config[section][key] = public_url(value)
    return config
