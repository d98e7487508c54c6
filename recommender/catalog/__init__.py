"""The catalog: every product of every participating store, read through the Admin GraphQL
API (``sync``, politely: ``pacer``), kept fresh by webhooks (``product_webhooks``), mapped
and judged eligible (``products``), embedded (``embedding_pass``), and announced to the
index (``index_events``)."""
