import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "interlayer.settings")
django.setup(set_prefix=False)  # as django.core.wsgi.get_wsgi_application does

from interlayer.handler import Handler  # noqa: E402 -- needs the settings configured above

# Django's handler, with a short lane for the storefront's two hottest requests.
application = Handler()

# What a web process's first storefront requests would otherwise pay for, paid as it starts.
from recommender.web import storefront  # noqa: E402 -- needs the app registry set up above

storefront.warm_up()
