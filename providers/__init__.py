"""Vendor clients behind small trio-native interfaces, their loopback simulators
(``providers.sim``) and the offline local engines (``providers.local``)."""
