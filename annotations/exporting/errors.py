"""The one error exports raise for bad requests or data: its message names what is wrong."""


class ExportError(ValueError):
    """The export cannot be made as asked (bad filter, slide in two splits, folder not empty)."""
