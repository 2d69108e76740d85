"""Errors caused by the user's input (settings, files); the CLI prints them as one line, no traceback."""


class CatneuronError(Exception):
    """A problem the user can fix: the message names the setting or file and what was expected."""


class ConfigError(CatneuronError):
    pass


class DataError(CatneuronError):
    pass
