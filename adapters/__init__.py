"""Adapters that drive a system under test at the system level or the applet level: not built yet."""
