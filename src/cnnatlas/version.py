"""The installed version of cnnatlas."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cnnatlas")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
