"""The nginx config, rendered from Django's settings.

- ``templates/``: the config itself, ``site.conf`` and ``standalone.conf``,
  and ``site_http.conf`` and ``site_locations.conf`` for a server block of the
  site's own, all made of the pieces in ``templates/parts/``;
- ``render``: the pure renderer (a ``SiteConfig`` in, nginx text out), and the
  header line that records the options a file was rendered with;
- ``rules``: what a value must be to be written into the config, for the
  renderer and the system checks;
- ``limits``: the rate and connection limits it places;
- ``store``: the object store's upstream and internal location, when the
  files live in S3-compatible storage;
- ``from_settings``: the adapter that builds a ``SiteConfig`` from ``conf``,
  used by ``protected_media_nginx`` and ``protected_media_doctor``.
"""
