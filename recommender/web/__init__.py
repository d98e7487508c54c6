"""The web edge: storefront endpoints behind the app proxy (``storefront``, rendering
``widget`` payloads), and the embedded settings page (``settings_page``, validating with
``forms``, reading through ``stats``)."""
