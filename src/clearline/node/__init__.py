"""The live hotline node: keys, configuration, TLS transport, log writer, local API."""
