"""Store URLs without their secrets: every message shows these forms only."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"


def url_password(url: str) -> str | None:
    """The password a store URL carries, in its user part or as ?password=."""
    try:
        parts = urlsplit(url)
        if parts.password:
            return parts.password
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "password" and value:
                return value
    except ValueError:
        pass
    match = re.search(r"password=([^&\s]+)", url)
    return match.group(1) if match else None


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***."""
    masked = re.sub(r"(://[^/@:]*:)[^/@]*@", rf"\g<1>{MASK}@", url)
    return re.sub(r"(password=)[^&\s]*", rf"\g<1>{MASK}", masked)


def mask_secrets(text: str, url: str) -> str:
    """Text (a driver's error message) with the URL's password removed."""
    password = url_password(url)
    if password:
        for form in {password, unquote(password)}:
            text = text.replace(form, MASK)
    return mask_url(text)
