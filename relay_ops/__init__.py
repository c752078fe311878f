"""RelayOps: parcel relay shops and automatic lockers."""
