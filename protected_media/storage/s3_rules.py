"""What the S3 settings must be (pure): one rule per setting, used by the
system checks. The endpoint's rule is the nginx config's (``nginx.rules``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..nginx.rules import store_endpoint_problem

# S3's naming rules for buckets (R2, MinIO and SeaweedFS take them too): 3 to
# 63 lowercase letters, digits, dots and hyphens, a letter or digit at both
# ends. Such a name needs no escaping in a path or in the nginx config.
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# "us-east-1", R2's "auto", a self-hosted store's own name.
REGION_RE = re.compile(r"[A-Za-z0-9_-]+")
# SigV4 refuses a presigned URL meant to live longer than seven days.
MAX_URL_LIFETIME = 7 * 24 * 3600


def is_endpoint(value: object) -> bool:
    # The one reading of the endpoint, shared with the nginx config's upstream.
    return store_endpoint_problem(value) is None


def is_bucket(value: object) -> bool:
    return isinstance(value, str) and BUCKET_RE.fullmatch(value) is not None and ".." not in value


def is_credential(value: object) -> bool:
    # A key id or secret: present, and nothing a copy-paste dragged along.
    return isinstance(value, str) and value.isprintable() and value.strip() == value != ""


def is_region(value: object) -> bool:
    return isinstance(value, str) and REGION_RE.fullmatch(value) is not None


def is_url_lifetime(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_URL_LIFETIME


@dataclass(frozen=True)
class SettingRule:
    valid: Callable[[object], bool]
    hint: str  # what the value must be, in the operator's words
    secret: bool = False  # never shown in a message


S3_SETTING_RULES = {
    "PROTECTED_MEDIA_S3_ENDPOINT_URL": SettingRule(
        is_endpoint,
        "The store's address, scheme, host and port only, such as 'http://127.0.0.1:8333' "
        "or 'https://s3.eu-west-1.amazonaws.com'.",
    ),
    "PROTECTED_MEDIA_S3_BUCKET": SettingRule(
        is_bucket,
        "The bucket's name: 3 to 63 lowercase letters, digits, dots and hyphens.",
    ),
    "PROTECTED_MEDIA_S3_ACCESS_KEY_ID": SettingRule(
        is_credential, "The access key id of credentials that may put, get and delete objects."
    ),
    "PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY": SettingRule(
        is_credential, "The secret access key of those credentials.", secret=True
    ),
    "PROTECTED_MEDIA_S3_REGION": SettingRule(
        is_region, "The bucket's region, such as 'us-east-1' (R2: 'auto')."
    ),
    "PROTECTED_MEDIA_S3_URL_LIFETIME": SettingRule(
        is_url_lifetime,
        f"Seconds a presigned URL lives: an int from 1 to {MAX_URL_LIFETIME}, such as 60.",
    ),
}
