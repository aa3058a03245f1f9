"""Headers every answer of the site's own carries, on Django 5.2 and 6 alike.

Django 6 has a CSP middleware of its own, 5.2 none; one small middleware
serves both. Both headers are added only where the view set none. Media
requests are left alone: their answers carry their own headers, and
ProtectedMediaASGI, which answers most of them, runs no middleware of ours,
so both paths must answer alike.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import patch_cache_control
from django.utils.deprecation import MiddlewareMixin

from protected_media.conf import conf

CONTENT_SECURITY_POLICY = "Content-Security-Policy"
CACHE_CONTROL = "Cache-Control"
# Scripts, styles, images and fonts from our origin only; no inline script or
# style (the templates and the admin need none), no plugins, no <base>, forms
# post only to us, and no other origin may frame a page (clickjacking).
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class SiteHeadersMiddleware(MiddlewareMixin):
    """A Content-Security-Policy on every page, and ``Cache-Control: private,
    no-store`` on every answer: each one depends on who asks (the session, the
    CSRF token, the user's files), so no cache, shared or the browser's, may
    keep one for another request."""

    # Read by ProtectedMediaASGI: media requests skip this without a warning.
    protected_media_neutral = True

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if request.path_info.startswith(conf.url):
            return response
        if CONTENT_SECURITY_POLICY not in response:
            response[CONTENT_SECURITY_POLICY] = PAGE_POLICY
        if CACHE_CONTROL not in response:
            patch_cache_control(response, private=True, no_store=True)
        return response
