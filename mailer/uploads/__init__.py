"""Files uploaded in the console, kept in the database in parts, so any web host or worker can read them."""
