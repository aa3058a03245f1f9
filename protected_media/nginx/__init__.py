"""The nginx config, rendered from Django's settings.

- ``render``: the pure renderer (a ``SiteConfig`` in, nginx text out);
- ``limits``: the rate and connection limits it places;
- ``from_settings``: the adapter that builds a ``SiteConfig`` from ``conf``,
  used by ``protected_media_nginx`` and ``protected_media_doctor``.
"""
