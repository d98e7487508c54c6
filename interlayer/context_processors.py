from django.conf import settings


def shopify(request):
    return {
        "shopify_api_key": settings.SHOPIFY_API_KEY,
        "app_bridge_url": settings.SHOPIFY_APP_BRIDGE_URL,
        "polaris_url": settings.SHOPIFY_POLARIS_URL,
    }
