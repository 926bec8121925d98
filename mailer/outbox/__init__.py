"""The outbox: owing a mail (ledger), what it says (compose, digest_mail), sending it (sender).

Imports nothing: importing the ledger must not bring the sender, and with it the domain, along.
"""
