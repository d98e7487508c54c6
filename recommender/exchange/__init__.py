"""The exchange: credits for traffic sent, charged for traffic received.

``rules`` holds every number and rule merchants are promised (and their wording), ``tokens``
the signed links and impressions, ``clicks`` and ``impressions`` what a shopper's actions
record, and ``ledger`` the append-only credit entries and the balances derived from them.
"""
