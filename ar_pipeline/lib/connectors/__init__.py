"""API connectors: fetch source records over HTTP and land them as API pages for the ingest assets."""
