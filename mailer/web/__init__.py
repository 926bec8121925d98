"""HTTP: public pages and the embed, error pages, response headers, the development outbox."""
