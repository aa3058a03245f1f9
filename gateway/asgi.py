import os

from django.core.asgi import get_asgi_application

from protected_media.asgi import ProtectedMediaASGI

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")

# Media requests are answered by protected_media's entry point (the same view,
# without Django's per-request machinery); everything else goes to Django.
# GATEWAY_FAST_MEDIA=0 (PROTECTED_MEDIA_FAST_PATH = False) sends media to
# Django as well.
application = ProtectedMediaASGI(get_asgi_application())
