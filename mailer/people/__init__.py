"""The people on the list: signups and consent, confirmation, the welcome sequence, preferences, privacy."""
