"""Policies the tests name through PROTECTED_MEDIA_POLICY."""

from protected_media.policy import default_policy


async def public_reports(user, obj, record):
    return bool(getattr(obj, "public", False)) or await default_policy(user, obj, record)


async def broken(user, obj, record):
    raise RuntimeError("policy bug")


def not_async(user, obj, record):
    return True


async def truthy_not_true(user, obj, record):
    return "yes"
