"""Adapters: how the suite drives a system under test, at the system level or the applet level.

System level (`system`: the SystemAdapter interface, a factory per world): the executable spec itself (`spec_adapter`),
the reference implementation (`reference`), and the reference with its phones' SEs across PC/SC (`pcsc_system`).
Applet level (`applet`: the AppletAdapter interface, APDUs in and out): any PC/SC reader (`pcsc`), and the checks any
applet adapter is run through (`applet_checks`).
"""
