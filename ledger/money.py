"""Money is an integer number of tiyn (1 tenge = 100 tiyn) in one asset; never a float."""

from enum import IntEnum


class Asset(IntEnum):
    """The rail the money lives on. A transfer never crosses assets (`different_assets`)."""

    KZT = 1  # ordinary treasury tenge
    DIGITAL_KZT = 2  # the National Bank's digital tenge (CBDC), which can be marked for a purpose
