"""Check a live deployment from outside, as an operator would after a deploy.

- ``client``: the site as a client sees it, one connection per request, the
  target sent as written, redirects not followed;
- ``checks``: each check a small function that takes what it needs as keyword
  arguments and returns a ``Result``; ``nginx_config`` the one that compares
  the config on disk with a fresh render;
- ``findings``: every finding's id, words and fix;
- ``runner``: reads the settings, the database and the disk once (``gather``)
  and runs the checks (``run``), for ``protected_media_doctor``;
- ``bucket`` and ``store``: with PROTECTED_MEDIA_STORAGE = "s3", the bucket as
  the doctor reaches it, and the checks of the store made with it.
"""
