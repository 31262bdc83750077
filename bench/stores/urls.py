"""Server addresses as they may be shown: without the password a URL can carry.

Users may write credentials into a URL (``redis://:secret@host:6379/0``,
``http://user:secret@host:19530``). Messages, logs and results.json get the URL with the
password replaced, so a secret never leaves the process that was given it.

The command line goes further: :func:`url_password_problem` refuses a password typed into
``store.uri`` or ``metadata.url`` before Hydra writes the run folder's ``.hydra/*.yaml`` (which hold
the config and the overrides verbatim). Passwords belong in the environment variables the config names.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"
# Config key that takes a server address -> (the key naming the environment variable for its secret,
# that variable's default name, what goes into it).
SECRET_HOMES = {"store.uri": ("store.token_env", "MILVUS_TOKEN", "user:password"),
                "metadata.url": ("metadata.password_env", "REDIS_PASSWORD", "...")}
# scheme://userinfo@ anywhere in a string (a sweep override may list several URLs).
_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#@\s]*)@")


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


def has_password(text: str) -> bool:
    """True if any URL in ``text`` carries a password (``scheme://user:password@`` or ``scheme://:password@``)."""
    return any(":" in match.group(1) for match in _USERINFO.finditer(text))


def url_password_problem(values: dict[str, Any], env_names: dict[str, Any],
                         overrides: Sequence[str] = ()) -> Optional[str]:
    """Why this config must not run, in one line, or None.

    ``values``: config key (``store.uri``, ``metadata.url``) -> its value as written (unresolved).
    ``env_names``: the same keys' ``*_env`` settings -> the variable name to suggest.
    ``overrides``: the command line's ``key=value`` strings, which a multirun sweep keeps unexpanded
    (``store.uri=a,b``) and Hydra writes out verbatim.
    """
    for key, (env_key, default_env, secret) in SECRET_HOMES.items():
        typed = [str(values.get(key) or "")]
        typed += [o.split("=", 1)[1] for o in overrides if "=" in o and o.split("=", 1)[0].lstrip("+~") == key]
        if any(has_password(text) for text in typed):
            env = env_names.get(env_key)
            where = (f"export {env}={secret} instead ({env_key} names the variable)" if env else
                     f"set {env_key}={default_env} and export {default_env}={secret} instead")
            return f"{key} holds a password: take it out of the URL and {where}; nothing was run or written"
    return None
