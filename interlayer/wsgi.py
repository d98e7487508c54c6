import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "interlayer.settings")
application = get_wsgi_application()

# What a web process's first storefront requests would otherwise pay for, paid as it starts.
from recommender.web import storefront  # noqa: E402 -- needs the app registry set up above

storefront.warm_up()
