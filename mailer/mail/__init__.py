"""Building messages from templates and handing them to an SMTP server or the local outbox."""
