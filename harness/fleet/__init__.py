"""The device fleet: inventory, profiles, host-key trust, the device lock, bootstrap, capabilities and fleet operations."""
