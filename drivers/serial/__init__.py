"""Serial scanners: transport (pyserial ``serial_for_url``), pure framing, pure protocol parsers."""
