"""A hotspare node process: store, recorder engine and API, plus its role in a site."""
