"""A local Shopify simulator: the parts of Shopify Interlayer talks to, on one machine.

Run ``python -m simulator serve`` and ``python -m simulator install <shop> --app URL``.
Product code never imports this package; it only reaches it over HTTP.
"""
