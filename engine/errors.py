"""Exceptions raised by the engine for bad experiment input."""


class InputError(ValueError):
    """An experiment parameter or input file is invalid; the message names the field."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.detail = message
        super().__init__(f"{field}: {message}")

    def __reduce__(self):
        # picklable, so errors raised on Dask workers reach the client intact
        return (type(self), (self.field, self.detail))
