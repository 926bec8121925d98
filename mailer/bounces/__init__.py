"""Bounces and complaints: VERP return paths, DSN and feedback-report parsing, provider webhooks, one policy."""
